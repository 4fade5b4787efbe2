#!/usr/bin/env bash
# Alternates short timing runs of nabla's and PyTorch's `lstm` benchmark (BENCHMARKS-SPEC.md) so
# both see the same machine load, and prints each round and the median of the per-round ratios.
# Usage: bench/rnn/compare.sh [rounds] [reps per run] [lstm|gru|rnn]   (from the repository root)
set -euo pipefail
rounds=${1:-7}
reps=${2:-100}
kind=${3:-lstm}
py=${PYTHON:-/work/main/bench/reference/.venv/bin/python}
cargo build --release -q -p nabla --example _lstm_bench
ratios=()
for r in $(seq "$rounds"); do
    n=$(RAYON_NUM_THREADS=2 ./target/release/examples/_lstm_bench "$reps" "$kind")
    t=$("$py" bench/rnn/lstm_torch.py "$reps" "$kind")
    nm=$(echo "$n" | sed -E 's/.*median ([0-9.]+) ms.*/\1/')
    tm=$(echo "$t" | sed -E 's/.*median ([0-9.]+) ms.*/\1/')
    ratio=$(python3 -c "print(f'{$nm / $tm:.3f}')")
    ratios+=("$ratio")
    echo "round $r: $n | $t | nabla/torch $ratio"
done
python3 -c "import statistics,sys; r=[float(x) for x in sys.argv[1:]]; print(f'median ratio nabla/torch over {len(r)} rounds: {statistics.median(r):.3f}')" "${ratios[@]}"
