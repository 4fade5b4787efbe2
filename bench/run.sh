#!/usr/bin/env bash
# Side-by-side benchmarks: builds nabla-bench (release) and runs it and the PyTorch/JAX references in
# interleaved rounds; writes bench/results/latest.json and bench/results/latest.md (see BENCHMARKS.md).
#
#   bench/run.sh                                   # every workload (bench/workloads.py), 5 rounds
#   bench/run.sh scalar-chain rk4-pendulum         # some of them (or --only scalar-chain,rk4-pendulum)
#   bench/run.sh --quick                           # 1 round, few repeats: does every side run, do they agree?
#   bench/run.sh --rounds 9 --jax-unrolled never matmul
#   bench/run.sh --with-mimalloc rk4-pendulum      # also a nabla build using mimalloc, same rounds
#
# Other options are those of bench/harness.py (--help). Reference frameworks: bench/reference/setup.sh,
# or NABLA_BENCH_PYTHON=/path/to/venv/bin/python.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
py="${NABLA_BENCH_PYTHON:-$root/bench/reference/.venv/bin/python}"
if [[ ! -x "$py" ]]; then
    echo "run.sh: $py not found: run bench/reference/setup.sh first (or set NABLA_BENCH_PYTHON)" >&2
    exit 1
fi
features="${NABLA_BENCH_FEATURES:-}"
args=()
alt=()
for a in "$@"; do
    if [[ "$a" == "--with-mimalloc" ]]; then
        cargo build --release -p nabla-bench --features "mimalloc${features:+,$features}" \
            --target-dir "$root/target/bench-mimalloc"
        alt=(--nabla-alt "$root/target/bench-mimalloc/release/nabla-bench" --nabla-alt-label nabla+mimalloc)
    else
        args+=("$a")
    fi
done
cargo build --release -p nabla-bench ${features:+--features "$features"}
exec "$py" "$root/bench/harness.py" --python "$py" --nabla "$root/target/release/nabla-bench" \
    ${alt[@]+"${alt[@]}"} ${args[@]+"${args[@]}"}
