#!/usr/bin/env bash
# Run molecule scenarios, MOLECULE_JOBS at a time (default 3), each with its own log; print every log and a
# timing summary at the end so the CI log shows what really ran. Usage: tests/run-molecule.sh [scenario...]
set -uo pipefail
cd "$(dirname "$0")/.."
jobs="${MOLECULE_JOBS:-3}"
logdir=.cache/molecule-logs
mkdir -p "$logdir"
if [[ $# -gt 0 && -n "$1" ]]; then
  scenarios=("$@")
else
  # heaviest first so the parallel slots stay busy; order from molecule/ORDER when present
  mapfile -t scenarios < <(
    { [[ -f molecule/ORDER ]] && grep -v '^#' molecule/ORDER; ls -d molecule/*/ | xargs -n1 basename; } \
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
run_one() {
  local s="$1" start end rc
  start=$(date +%s)
  molecule test -s "$s" >"$logdir/$s.log" 2>&1
  rc=$?
  # a verifier that finds no tests still "succeeds" in molecule: treat it as a failure here
  if [[ $rc == 0 ]] && ! grep -Eq '[0-9]+ passed' "$logdir/$s.log"; then
    echo "molecule: $s ran no testinfra test" >>"$logdir/$s.log"
    rc=1
  fi
  end=$(date +%s)
  echo "$s $rc $((end - start))" >"$logdir/$s.result"
  echo "molecule: $s finished rc=$rc in $((end - start))s"
}
export -f run_one
export logdir
rm -f "$logdir"/*.result
printf '%s\n' "${scenarios[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one {}'
failed=0
for s in "${scenarios[@]}"; do
  echo "::group::molecule $s"
  cat "$logdir/$s.log"
  echo "::endgroup::"
done
read -r busy1 idle1 < <(cpu_times)
echo "==== molecule: $(( $(date +%s) - wall0 ))s wall, $jobs at a time, CPU idle $(( 100 * (idle1 - idle0) / (busy1 - busy0 + idle1 - idle0 + 1) ))% of the time"
echo "==== molecule summary (scenario rc seconds) ===="
for s in "${scenarios[@]}"; do
  if [[ -f "$logdir/$s.result" ]]; then cat "$logdir/$s.result"; else echo "$s missing-result"; failed=1; fi
  [[ -f "$logdir/$s.result" ]] && [[ "$(cut -d' ' -f2 "$logdir/$s.result")" != 0 ]] && failed=1
done
exit $failed
