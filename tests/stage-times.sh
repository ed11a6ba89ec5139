#!/usr/bin/env bash
# `make test` (issue 34): runs each stage as `make STAGE`, in order, stopping at the first that fails, then prints
# each stage's seconds against its share of the budget, with a WARNING line for each stage past its share.
# Usage: tests/stage-times.sh BUDGET_SECONDS STAGE=SHARE_SECONDS ...   (the Makefile's `test` target holds the table)
# A stage written A+B runs `make A` and `make B` side by side (one share for both): the first one's output streams,
# the others' is kept in .cache/stage-NAME.log and printed when they end; the group fails when one of them fails.
# While A runs, the file .cache/stage-gate (or STAGE_GATE) exists (exported as MOLECULE_GATE): the molecule stage
# in a group runs fewer scenarios at once until A has ended (tests/run-molecule.sh).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
make_cmd=${MAKE:-make}
budget=${1:?usage: tests/stage-times.sh BUDGET_SECONDS STAGE=SHARE_SECONDS ...}
shift
names=() shares=() took=() busy=() idle=()
# the machine's CPU time (from /proc/stat, in core-seconds): busy and idle per stage say whether a stage is short of
# CPU (idle near 0: less work helps, more parallelism does not) or leaves cores unused (idle high: overlap helps)
hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
cpu_times() { awk -v hz="$hz" '/^cpu /{printf "%d %d\n", ($2+$3+$4+$7+$8)/hz, ($5+$6)/hz}' /proc/stat; }
sum=0
for arg in "$@"; do
  names+=("${arg%%=*}") && shares+=("${arg#*=}") && sum=$((sum + ${arg#*=}))
done
minutes=$((budget / 60))

report() {
  local i total=0 name
  echo "==== make test: stage times (shares of the ${minutes}-minute budget, ${budget}s) ===="
  local tbusy=0 tidle=0
  printf '%-16s %8s %8s %10s %10s\n' stage seconds share cpu-busy cpu-idle
  for i in "${!took[@]}"; do
    printf '%-16s %8d %8d %10d %10d\n' "${names[$i]}" "${took[$i]}" "${shares[$i]}" "${busy[$i]}" "${idle[$i]}"
    total=$((total + took[i])) tbusy=$((tbusy + busy[i])) tidle=$((tidle + idle[i]))
  done
  for ((i = ${#took[@]}; i < ${#names[@]}; i++)); do printf '%-16s %8s %8d\n' "${names[$i]}" "-" "${shares[$i]}"; done
  printf '%-16s %8d %8d %10d %10d\n' total "$total" "$budget" "$tbusy" "$tidle"
  echo "(cpu-busy, cpu-idle: core-seconds of the whole machine, $(nproc) cores, during the stage)"
  for i in "${!took[@]}"; do
    name=${names[$i]}
    if ((took[i] > shares[i])); then
      echo "WARNING: stage $name took ${took[$i]}s, more than its share ${shares[$i]}s of the ${minutes}-minute budget"
    fi
  done
  if ((total > budget)); then
    echo "WARNING: make test took ${total}s, more than the ${minutes}-minute budget (${budget}s)"
  fi
}

if ((sum != budget)); then
  echo "stage-times: the shares add up to ${sum}s, not the budget ${budget}s" >&2
  exit 2
fi
# work that waits on the network more than on the CPU (TEST_BACKGROUND, a command: the compat lane's venv of the
# oldest versions, from PyPI) starts after the first stage (setup: the project's own pip install is done, so the two
# never build the project at once) beside the next ones; the stage that needs it waits for it (compat.sh: flock)
background() {
  [[ -n ${TEST_BACKGROUND:-} ]] || return 0
  mkdir -p .cache
  echo "make test: in the background: $TEST_BACKGROUND (log .cache/test-background.log)"
  bash -c "$TEST_BACKGROUND" >.cache/test-background.log 2>&1 &
}
# stop what still runs in the background when make test ends early (a failed stage, Ctrl-C)
gate=${STAGE_GATE:-.cache/stage-gate}
trap 'jobs -pr | xargs -r kill 2>/dev/null; rm -f "$gate"' EXIT
# run one stage, or a group A+B side by side; rc of the first member that failed
run_stage() {
  local group=$1 first rest member pid rc=0 r i
  first=${group%%+*}
  if [[ $first == "$group" ]]; then
    $make_cmd --no-print-directory "$group"
    return
  fi
  rest=${group#*+}
  local pids=() members=() t0=$SECONDS
  # the earlier stages made setup, tools and images: the members side by side must not redo them at once (two
  # concurrent `pip install`s or image builds would collide), so make takes them as done (-o)
  local done_flags=(-o setup -o tools -o images)
  mkdir -p .cache
  # the gate: exists while the first member runs; a member that yields to it (the molecule stage: MOLECULE_GATE)
  # runs with fewer slots until the first member has ended
  echo "$first" >"$gate"
  export MOLECULE_GATE=$gate
  for member in ${rest//+/ }; do
    echo "make test: $member runs beside $first (its output: .cache/stage-$member.log, printed when it ends)"
    (
      s=$SECONDS
      $make_cmd --no-print-directory "${done_flags[@]}" "$member"
      r=$?
      echo "make test: $member took $((SECONDS - s))s (exit $r)"
      exit "$r"
    ) >".cache/stage-$member.log" 2>&1 &
    pids+=($!) members+=("$member")
  done
  $make_cmd --no-print-directory "${done_flags[@]}" "$first" || rc=$?
  rm -f "$gate"
  echo "make test: $first took $((SECONDS - t0))s (exit $rc)"
  for i in "${!pids[@]}"; do
    pid=${pids[$i]} member=${members[$i]}
    r=0 && wait "$pid" || r=$?
    echo "==== make test: $member (beside $first) exit $r; its output:"
    cat ".cache/stage-$member.log"
    ((rc != 0)) || rc=$r
  done
  return "$rc"
}
for i in "${!names[@]}"; do
  ((i == 1)) && background
  start=$(date +%s)
  read -r b0 i0 < <(cpu_times)
  run_stage "${names[$i]}"
  rc=$?
  took+=($(($(date +%s) - start)))
  read -r b1 i1 < <(cpu_times)
  busy+=($((b1 - b0))) idle+=($((i1 - i0)))
  if [[ $rc != 0 ]]; then
    report
    echo "make test: stage ${names[$i]} failed (exit $rc)"
    exit "$rc"
  fi
done
report
