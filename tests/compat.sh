#!/usr/bin/env bash
# issue 20: the tests that depend on ansible-core's and Mitogen's internals, run on the OLDEST versions that
# pyproject.toml allows (the main venv, .venv, resolves to the newest and runs the whole unit suite).
# The lower bounds are read from pyproject.toml, so a changed range changes this lane by itself. The venv is cached
# in .cache/venv-oldest, keyed by those bounds (rebuilt only when they change).
#   the lane: the Mitogen fence (every hook broken in turn falls back with one warning), the runner and its event
#   handler (ansible-runner's event shape), and a real bootstrap of the sandbox host over SSH, twice (changed=0).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.cache/venv-oldest
py=${PYTHON:-python3}

# "ansible>=12,<13" -> "ansible==12"; only the packages whose internals homeport relies on
mapfile -t pins < <("$py" - <<'EOF'
import re, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
for dep in deps:
    m = re.match(r"^(ansible|ansible-core|ansible-runner|mitogen)\s*>=\s*([\w.]+)", dep)
    if m:
        print(f"{m.group(1)}=={m.group(2)}")
EOF
)
[[ ${#pins[@]} -eq 4 ]] || { echo "compat: expected lower bounds for ansible, ansible-core, ansible-runner and mitogen in pyproject.toml, found: ${pins[*]}" >&2; exit 1; }
key=$(printf '%s\n' "${pins[@]}" | sha1sum | cut -c1-12)
# one builder at a time: `make test` starts `compat.sh --venv-only` in the background (tests/stage-times.sh) and the
# compat stage waits here until that build is done, then finds the venv installed
mkdir -p .cache
exec 9>.cache/venv-oldest.lock
flock 9
if [[ ! -f $venv/.installed-$key ]]; then
  echo "compat: building $venv with ${pins[*]}"
  rm -rf "$venv"
  "$py" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  # --retries: PyPI through a slow uplink; the pins go in one resolution with the project so pip cannot upgrade them
  "$venv/bin/pip" install -q --retries 5 -e . "${pins[@]}" 'pytest>=8.0'
  touch "$venv/.installed-$key"
fi
flock -u 9
if [[ ${1:-} == --venv-only ]]; then echo "compat: $venv ready"; exit 0; fi
"$venv/bin/python" -c "import ansible.release, ansible_runner, mitogen, importlib.metadata as m; print('compat tests on ansible-core', ansible.release.__version__, '(ansible', m.version('ansible') + ', ansible-runner', m.version('ansible-runner') + ') with mitogen', '.'.join(map(str, mitogen.__version__)))"

# the sandbox gets a name of its own: the main unit run may use homeport-sandbox-unittest at the same time
export HOMEPORT_TEST_SANDBOX_NAME=homeport-sandbox-compat
PATH="$PWD/$venv/bin:$PATH" "$venv/bin/pytest" -q -p no:cacheprovider \
  tests/unit/test_mitogen_preload.py \
  tests/unit/test_runner.py \
  tests/unit/test_runner_events.py \
  tests/unit/test_interrupt.py \
  tests/unit/test_skip_in_main.py \
  "tests/unit/test_sandbox.py::test_sandbox_bootstrap_is_idempotent"
