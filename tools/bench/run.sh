#!/usr/bin/env bash
# One command for every benchmark: tools/bench/run.sh [GROUP ...]
# Groups: http1 static client db h2 ws was (default: all of them). Then writes docs/benchmarks.md.
# BENCH_DURATION (seconds per wrk/h2load run, default 8) shortens or lengthens the runs.
set -uo pipefail
BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH/../.." && pwd)
ALL=(http1 static client db h2 ws was)

groups=("$@")
((${#groups[@]})) || groups=("${ALL[@]}")
script() { [[ $1 == h2 ]] && echo http2.py || echo "$1.py"; }   # h2.py would shadow the h2 package
for g in "${groups[@]}"; do
  [[ " ${ALL[*]} " == *" $g "* ]] || { echo "unknown group: $g (choose from: ${ALL[*]})" >&2; exit 2; }
done

"$BENCH/setup.sh" || echo "run.sh: setup.sh reported a problem; measuring what can be measured" >&2
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true   # wrk -c1000 needs the descriptors

export BENCH_COMMAND="${BENCH_DURATION:+BENCH_DURATION=$BENCH_DURATION }${BENCH_ROUNDS:+BENCH_ROUNDS=$BENCH_ROUNDS }tools/bench/run.sh${*:+ $*}"
PY="$ROOT/.venv/bin/python"
for g in "${groups[@]}"; do
  echo "== $g"
  # each group is bounded: a hung server or client cannot stall the whole run
  (cd "$BENCH" && timeout --kill-after=10 420 "$PY" "$(script "$g")") || echo "run.sh: group $g failed (exit $?)" >&2
done
(cd "$BENCH" && "$PY" report.py)
