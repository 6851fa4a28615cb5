#!/bin/bash
# Run a study script on one CPU core with 1 thread, so that two studies share a 2-core machine
# without the OpenMP co-scheduling slowdown (5–15×) of two 2-thread jobs on the same cores:
#
#   CORE=0 setsid bash benchmarks/pinned.sh ptb_full.py lm --threads 1 --eval-threads 1 --note "…" &
#   CORE=1 setsid bash benchmarks/pinned.sh ptb_full.py info_vae --threads 1 --eval-threads 1 --note "…" &
#
# The study runs from this checkout with the active Python (activate the venv first). Started with
# setsid it leads its own session, hence its own scheduler autogroup, and gives that group a higher
# share (nice −10) where the kernel allows it, so interactive work beside it slows it little. Without
# setsid the autogroup is the caller's shell's, and raising it would raise everything started from that
# shell to the study's share (it did once: a profile took half a core from a row), so it is left alone.
set -euo pipefail
: "${CORE:?set CORE to the core to pin to (0, 1, ...)}"
script="$1"; shift
if [ "$(ps -o sid= -p $$ | tr -d ' ')" = "$$" ]; then
    echo -10 > /proc/self/autogroup 2>/dev/null || true
fi
cd "$(dirname "$0")/.."
exec taskset -c "$CORE" python "benchmarks/$script" "$@"
