#!/usr/bin/env bash
# `make tools` (a prerequisite of `make unit` and so of `make test`): the binaries the unit tests run that a fresh
# machine lacks and that need no system install, unpacked from Debian's packages into .cache/tools/bin (installing
# the packages would start their daemons). tests/unit/conftest.py puts .cache/tools/bin on the tests' PATH, and
# under CI=true a test whose tool is missing fails instead of skipping. Fast when everything is there (no apt call).
# The tools that need a system install (restic, curl, OpenSSH's sshd with its privilege-separation user, Docker)
# are installed by .ci/run; this script names any of them that is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/tools/bin

# tool  Debian package  path of the tool in the package
unpacked=(
  "promtool prometheus usr/bin/promtool"
  "prometheus prometheus usr/bin/prometheus"
  "amtool prometheus-alertmanager usr/bin/amtool"
)
# tool  how it gets onto the machine (said when it is missing)
system=(
  "restic apt-get install restic (.ci/run does)"
  "curl apt-get install curl (.ci/run does)"
  "sshd apt-get install openssh-server (.ci/run does; sshd -t needs its privilege-separation user sshd)"
  "ssh-keygen apt-get install openssh-client (.ci/run does)"
  "docker a running Docker engine (.ci/run installs and starts one)"
)

need=()
for row in "${unpacked[@]}"; do
  read -r tool pkg _ <<<"$row"
  [[ -x $dest/$tool ]] || command -v "$tool" >/dev/null || need+=("$row")
done

if [[ ${#need[@]} -gt 0 ]]; then
  pkgs=()
  for row in "${need[@]}"; do read -r _ pkg _ <<<"$row" && pkgs+=("$pkg"); done
  if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
    echo "tools: no apt-get/dpkg-deb here to unpack ${pkgs[*]}: their tests skip (and fail under CI=true)" >&2
    [[ ${CI:-} != true ]] || exit 1
  else
    echo "tools: unpacking ${pkgs[*]} into $dest"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    # as root, apt's download sandbox user cannot write into a fresh mktemp directory
    opts=()
    [[ $(id -u) != 0 ]] || opts=(-o APT::Sandbox::User=root)
    # no `apt-get update` when the package lists already know the packages (its cost is the slow part)
    if ! (cd "$tmp" && apt-get download -qq "${opts[@]}" "${pkgs[@]}" 2>/dev/null); then
      if [[ $(id -u) == 0 ]]; then apt-get update -qq; else sudo -n apt-get update -qq; fi
      (cd "$tmp" && apt-get download -qq "${opts[@]}" "${pkgs[@]}")
    fi
    mkdir -p "$dest"
    for row in "${need[@]}"; do
      read -r tool pkg path <<<"$row"
      deb=$(ls "$tmp/${pkg}"_*.deb)
      dpkg-deb -x "$deb" "$tmp/root-$pkg"
      install -m 0755 "$tmp/root-$pkg/$path" "$dest/$tool.new" && mv "$dest/$tool.new" "$dest/$tool"
      "$dest/$tool" --version 2>&1 | head -n1 | sed "s/^/tools: $tool: /"
    done
  fi
fi

for row in "${system[@]}"; do
  read -r tool how <<<"$row"
  if ! command -v "$tool" >/dev/null && [[ ! -x /usr/sbin/$tool ]]; then
    echo "tools: $tool is missing: $how; its tests skip (and fail under CI=true)" >&2
  fi
done
if [[ -x /usr/sbin/sshd && ! -d /run/sshd ]]; then
  echo "tools: /run/sshd is missing (sshd -t needs it; .ci/run creates it): mkdir -p /run/sshd" >&2
fi
exit 0
