#!/usr/bin/env bash
# Run molecule scenarios, MOLECULE_JOBS at a time (default 3), each with its own log; print every log and a
# timing summary at the end so the CI log shows what really ran, with a table of each scenario's steps (create,
# prepare, converge, idempotence, verify, destroy...) in seconds and the slowest steps (tests/molecule_steps.py
# times molecule's action lines as they pass). Usage: tests/run-molecule.sh [scenario...]
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
jobs="${MOLECULE_JOBS:-3}"
logdir=${MOLECULE_LOGDIR:-.cache/molecule-logs}
molecule_cmd=${MOLECULE_CMD:-molecule}  # tests/unit/test_run_molecule.py runs a stand-in
mkdir -p "$logdir"
if [[ $# -gt 0 && -n "$1" ]]; then
  scenarios=("$@")
else
  # heaviest first so the parallel slots stay busy; order from molecule/ORDER when present
  mapfile -t scenarios < <(
    { [[ -f molecule/ORDER ]] && grep -v '^#' molecule/ORDER; for d in molecule/*/; do basename "$d"; done; } \
      | awk 'NF && !seen[$0]++' | while read -r s; do [[ -f "molecule/$s/molecule.yml" ]] && echo "$s"; done)
fi
if ! docker info >/dev/null 2>&1; then
  echo "Docker is not reachable: molecule scenarios need a running Docker engine (see README: Testing)." >&2
  exit 1
fi
echo "molecule: ${#scenarios[@]} scenarios, $jobs at a time: ${scenarios[*]}"
# the machine's CPU time while the scenarios run (from /proc/stat): how much stayed idle says whether more slots help
cpu_times() { awk '/^cpu /{print $2+$3+$4+$7+$8, $5+$6}' /proc/stat; }
read -r busy0 idle0 < <(cpu_times)
wall0=$(date +%s)
# shellcheck disable=SC2317  # run_one runs through xargs and bash -c
run_one() {
  local s="$1" start end rc
  start=$(date +%s)
  # the output goes through the step timer: molecule's action lines get "[t+SECONDS]", the times go to $s.steps
  $molecule_cmd test -s "$s" 2>&1 | python3 tests/molecule_steps.py stamp "$logdir/$s.steps" >"$logdir/$s.log"
  rc=${PIPESTATUS[0]}
  # a verifier that finds no tests still "succeeds" in molecule: treat it as a failure here
  if [[ $rc == 0 ]] && ! grep -Eq '[0-9]+ passed' "$logdir/$s.log"; then
    echo "molecule: $s ran no testinfra test" >>"$logdir/$s.log"
    rc=1
  fi
  end=$(date +%s)
  # the CPU of this scenario's controller side: molecule and the processes under it that were waited for
  # (ansible-playbook and its task workers, testinfra). Not in it: the targets' own CPU, and any process that was
  # not reaped under molecule (a Mitogen context or a detached process may not be)
  times >"$logdir/$s.times"  # a builtin in this shell (in a pipe it would run in a subshell that has no children)
  cpu=$(awk 'NR == 2 { split($1, u, "m"); split($2, s, "m"); printf "%.0f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$logdir/$s.times")
  echo "$s $rc $((end - start)) ${cpu:-?}" >"$logdir/$s.result"
  echo "molecule: $s finished rc=$rc in $((end - start))s (controller CPU ${cpu:-?}s)"
}
rm -f "$logdir"/*.result "$logdir"/*.steps "$logdir"/*.times
# The slots: $jobs at a time; while the file MOLECULE_GATE names exists (make test: the unit tests still run beside
# this stage, tests/stage-times.sh removes it when they end, pytest-xdist's controller when only one unit worker is
# left: tests/unit/molecule_gate.py), MOLECULE_GATE_JOBS (default 1) at a time, so the heaviest
# scenarios (first in molecule/ORDER) start at once instead of after the unit tests, and the rest fill the machine
# once they are done (two at a time beside the unit tests loaded the machine so that a unit test's 5 s timeout on a
# bcrypt check expired in the clean-clone run of ab8f5a6)
gate_jobs=${MOLECULE_GATE_JOBS:-1}
gated() { [[ -n ${MOLECULE_GATE:-} && -e $MOLECULE_GATE ]]; }
slots() { if gated; then echo "$gate_jobs"; else echo "$jobs"; fi; }
! gated || echo "molecule: $gate_jobs at a time while $MOLECULE_GATE exists (the unit tests run beside), then $jobs"
running=()
for s in "${scenarios[@]}"; do
  while :; do
    alive=()
    for pid in "${running[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    running=("${alive[@]}")
    ((${#running[@]} < $(slots))) && break
    sleep 2
  done
  echo "molecule: $s starts ($(date +%T), ${#running[@]} running)"
  # in a subshell: bash starts a background *simple command* of a script with SIGINT and SIGQUIT ignored, and every
  # program under it would inherit that, but not a background subshell; the verifiers stop programs with SIGINT as
  # Ctrl-C does (mac_journey: `homeport tunnel`), which an ignored SIGINT leaves running
  (run_one "$s") &
  running+=($!)
done
wait
failed=0
for s in "${scenarios[@]}"; do
  echo "::group::molecule $s"
  cat "$logdir/$s.log"
  echo "::endgroup::"
done
read -r busy1 idle1 < <(cpu_times)
echo "==== molecule: $(( $(date +%s) - wall0 ))s wall, $jobs at a time, CPU idle $(( 100 * (idle1 - idle0) / (busy1 - busy0 + idle1 - idle0 + 1) ))% of the time"
echo "==== molecule summary (scenario rc seconds controller-cpu-seconds) ===="
failed_scenarios=()
for s in "${scenarios[@]}"; do
  if [[ -f "$logdir/$s.result" ]]; then cat "$logdir/$s.result"; else echo "$s missing-result"; fi
  [[ -f "$logdir/$s.result" && "$(cut -d' ' -f2 "$logdir/$s.result")" == 0 ]] || failed_scenarios+=("$s")
done
[[ ${#failed_scenarios[@]} == 0 ]] || failed=1
python3 tests/molecule_steps.py table "$logdir" "${scenarios[@]}"
# a CI log is often read from its end: repeat where each failed scenario stopped (its last lines) after the summary
for s in "${failed_scenarios[@]}"; do
  # molecule destroys the platforms after a failure, so the log ends with the destroy; scenarios also provoke
  # failures on purpose: show the last failure line before that final destroy, with what led to it
  end=$(grep -n -a 'destroy' "$logdir/$s.log" 2>/dev/null | tail -n1 | cut -d: -f1)
  at=$(head -n "${end:-999999999}" "$logdir/$s.log" 2>/dev/null \
    | grep -n -a -E 'fatal: |FAILED|^E  |ERROR|Traceback|failed=[1-9]' | tail -n1 | cut -d: -f1)
  if [[ -n "$at" ]]; then
    echo "==== molecule $s failed: its log ($logdir/$s.log) before the last failure line, $at ===="
    sed -n "$(( at > 100 ? at - 100 : 1 )),$(( at + 20 ))p" "$logdir/$s.log"
  fi
  echo "==== molecule $s: the last 40 lines of its log ===="
  tail -n 40 "$logdir/$s.log" 2>/dev/null || echo "(no log)"
done
# the CI record keeps only the last ~25 lines of the whole run: end with one short line per failed scenario naming
# the task that failed and its message (with the YAML lines under it, cut to 900 characters), so the cause survives that cut
for s in "${failed_scenarios[@]}"; do
  # up to molecule's own first ERROR line (the failed step), before the destroy that follows it
  sed 's/\x1b\[[0-9;]*m//g; s/^ *│ //' "$logdir/$s.log" 2>/dev/null | awk -v s="$s" '
    /^(CRITICAL|ERROR) +(Ansible return code|Molecule executed)/ { exit }
    /^TASK \[/ { task = $0; more = 0 }
    more > 0 { if ($0 ~ /^ *$/) more = 0; else { line = line " " $0; more-- } }
    /fatal: |FAILED!|^E  / { line = $0; at = task; more = 40 }
    END { gsub(/ +/, " ", line)
          if (line != "") printf "==== %s failed in %s\n     %s\n", s, substr(at, 1, 200), substr(line, 1, 900) }'
done
exit $failed
