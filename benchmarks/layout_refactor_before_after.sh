#!/usr/bin/env bash
# Training throughput before and after the package-layout refactor (issue: one direction of
# imports), measured A-B-A in one sitting: the code at 9dd39aa, this tree, 9dd39aa again, each a
# fresh `benchmarks/throughput.py` (median of 3 runs). Nothing else may run meanwhile.
#
#   bash benchmarks/layout_refactor_before_after.sh        # ~4 min on 2 cores
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
OLD="$(mktemp -d)/old"
git -C "$REPO" worktree add -q "$OLD" 9dd39aa
trap 'git -C "$REPO" worktree remove --force "$OLD"' EXIT
ARGS="--sizes ptb --precisions fp32 --steps 50 --warmup 5 --repeats 3 --no-baseline --ablations --iw-sentences 0 --matmul-sizes 512 1024 --threads 2"
# The old benchmark puts its own checkout first on sys.path, so it measures the old package.
(cd "$OLD" && python benchmarks/throughput.py $ARGS --output "$REPO/benchmarks/results/layout_refactor_before_avx2.md")
(cd "$REPO" && python benchmarks/throughput.py $ARGS --output "$REPO/benchmarks/results/layout_refactor_after_avx2.md")
(cd "$OLD" && python benchmarks/throughput.py $ARGS --output "$REPO/benchmarks/results/layout_refactor_before2_avx2.md")
grep -h "textvae trainer" "$REPO"/benchmarks/results/layout_refactor_{before,after,before2}_avx2.md
