"""Shared helpers of the reference benchmarks: timing, JSON lines, MNIST (IDX) loading, memory.

Every script prints one JSON line per measurement with the same fields as `nabla-bench`:
name, impl, variant, status, median_s, min_s, first_s, first_call_fresh, repeats, warmup, threads,
[round], [check_id, xcheck], extras. `xcheck` holds the figures (loss, gradient sums) that the harness
compares between the sides; they are computed from the deterministic inputs below, which `nabla-bench`
reproduces bit for bit (`bench/src/inputs.rs`).
"""

import argparse
import functools
import gzip
import json
import os
import statistics
import struct
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def default_mnist_dir():
    """The repository's own copy (data/mnist) when present, else the shared one."""
    for d in (os.environ.get("NABLA_MNIST"), REPO / "data" / "mnist", "/work/shared/data/mnist"):
        if d and (Path(d) / "train-images-idx3-ubyte.gz").exists():
            return str(d)
    return str(REPO / "data" / "mnist")


def parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("names", nargs="*", help="benchmarks to run (`all` for every one)")
    p.add_argument("--list", action="store_true", help="list the benchmarks")
    p.add_argument("--host", action="store_true", help="print one JSON line describing the host and exit")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls after the first")
    p.add_argument("--repeats", type=int, default=None, help="timed calls (median reported)")
    p.add_argument("--round", type=int, default=None, help="round number, copied to the output")
    p.add_argument("--sizes", default="256,512,1024", help="matmul sizes")
    p.add_argument("--data", default=default_mnist_dir(), help="directory of the MNIST *.gz IDX files")
    return p


class Samples:
    def __init__(self, first, times, cpu_times=None, fresh=False):
        self.fresh = fresh
        self.first = first
        self.times = times
        self.cpu_times = cpu_times or []

    @property
    def cpu_median(self):
        return statistics.median(self.cpu_times) if self.cpu_times else None

    @property
    def median(self):
        return statistics.median(self.times)

    @property
    def min(self):
        return min(self.times)


_MEASURED = False


def measure(warmup, repeats, fn, sync=lambda r: r):
    """One first call, `warmup` untimed calls, `repeats` timed calls; `sync` waits for the result
    (JAX's block_until_ready) inside the timed region. Records wall-clock and process CPU time.
    `first_call_fresh` says whether the first call was the first workload call of this process
    (only such first calls are compared between the sides)."""
    global _MEASURED
    fresh, _MEASURED = not _MEASURED, True
    t = time.perf_counter()
    sync(fn())
    first = time.perf_counter() - t
    for _ in range(warmup):
        sync(fn())
    times, cpu_times = [], []
    for _ in range(max(1, repeats)):
        c = time.process_time()
        t = time.perf_counter()
        sync(fn())
        times.append(time.perf_counter() - t)
        cpu_times.append(time.process_time() - c)
    s = Samples(first, times, cpu_times)
    s.fresh = fresh
    return s


class Emitter:
    def __init__(self, impl, args, **fixed):
        self.impl = impl
        self.args = args
        self.fixed = fixed
        self.failed = False

    def counts(self, warmup, repeats):
        return (
            self.args.warmup if self.args.warmup is not None else warmup,
            self.args.repeats if self.args.repeats is not None else repeats,
        )

    def _base(self, name):
        r = {"name": name, "impl": self.impl, "threads": self.args.threads}
        if self.args.round is not None:
            r["round"] = self.args.round
        r.update(self.fixed)
        return r

    def emit(self, name, variant, samples, warmup, xcheck=None, check_id=None, **extra):
        """One measurement; `xcheck` (figures from the shared inputs) is compared by the harness with
        the other sides' figures of the same `check_id` (default `name/variant`)."""
        r = self._base(name)
        r.update(
            variant=variant,
            status="ok",
            median_s=samples.median,
            min_s=samples.min,
            first_s=samples.first,
            first_call_fresh=samples.fresh,
            cpu_median_s=samples.cpu_median,
            repeats=len(samples.times),
            warmup=warmup,
        )
        if xcheck is not None:
            r.update(check_id=check_id or f"{name}/{variant}", xcheck=xcheck)
        r.update(extra)
        print(json.dumps(r), flush=True)

    def unavailable(self, name, reason):
        r = self._base(name)
        r.update(status="unavailable", reason=reason)
        print(json.dumps(r), flush=True)

    def fail(self, message):
        print(f"{self.impl}: {message}", file=sys.stderr, flush=True)
        self.failed = True


# ----- rk4-pendulum check ---------------------------------------------------------------------------

PENDULUM_EXPECTED = (3.18, (-39.25, -2.07, 20.33))


def check_pendulum(loss, grad):
    """None when loss and gradient match the spec's figures within 1% (else a message)."""
    want_loss, want_grad = PENDULUM_EXPECTED

    def close(got, want):
        return abs(got - want) <= 0.01 * max(abs(want), 0.1)

    if not close(loss, want_loss):
        return f"rk4-pendulum: loss {loss} differs from the expected {want_loss}"
    for i, (got, want) in enumerate(zip(grad, want_grad)):
        if not close(got, want):
            return f"rk4-pendulum: gradient[{i}] = {got} differs from the expected {want}"
    return None


# ----- deterministic inputs (bit-identical to bench/src/inputs.rs) ----------------------------------
#
# splitmix64 of (seed, index) -> 24 random bits -> a float64 in [0, 1) -> scaled in float64 -> float32.
# Every step is exact or correctly rounded IEEE arithmetic, so nabla computes the same float32 values.
# Normal samples use Box-Muller (log, cos): libraries may differ in the last bit of a float64 there,
# which the rounding to float32 hides in all but rare cases.

SEEDS = {"matmul": 1, "conv2d": 11, "lstm": 20, "mlp": 30, "cnn": 40, "dnc": 50}


def _splitmix(seed, idx):
    import numpy as np

    u = np.uint64
    with np.errstate(over="ignore"):
        z = u(seed) + (idx.astype(u) + u(1)) * u(0x9E3779B97F4A7C15)
        z = (z ^ (z >> u(30))) * u(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> u(27))) * u(0x94D049BB133111EB)
        return z ^ (z >> u(31))


def det_unit(seed, n, offset=0):
    """n float64 values in [0, 1) with 24 random bits each."""
    import numpy as np

    z = _splitmix(seed, np.arange(offset, offset + n, dtype=np.uint64))
    return (z >> np.uint64(40)).astype(np.float64) / float(1 << 24)


def det_uniform(seed, shape, bound):
    """float32 uniform in [-bound, bound)."""
    import numpy as np

    n = int(np.prod(shape))
    return ((2.0 * det_unit(seed, n) - 1.0) * float(bound)).astype(np.float32).reshape(shape)


def det_normal(seed, shape):
    """float32 standard normal (Box-Muller on the pairs (2i, 2i+1))."""
    import numpy as np

    n = int(np.prod(shape))
    u = det_unit(seed, 2 * n).reshape(n, 2)
    u1 = 1.0 - u[:, 0]  # (0, 1]
    z = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u[:, 1])
    return z.astype(np.float32).reshape(shape)


def det_permutation(seed, n):
    """A permutation of 0..n (indices sorted by their hash; ties, never seen, by index)."""
    import numpy as np

    return np.argsort(_splitmix(seed, np.arange(n, dtype=np.uint64)), kind="stable")


PENDULUM_BATCH, PENDULUM_BATCH_SEED = 1024, 60


def pendulum_batch_params():
    """rk4-pendulum-batch: 1,024 parameter sets (b, g, L) around (0.1, 9.81, 1.0), float32, computed
    in float64 from det_unit then rounded (bench/src/lib.rs `pendulum_batch_params` does the same):
    b = 0.1 + 0.05(2u - 1), g = 9.81 + 0.981(2u - 1), L = 1 + 0.5(2u - 1), with seeds 60, 61, 62."""
    import numpy as np

    out = []
    for k, (centre, half) in enumerate([(0.1, 0.05), (9.81, 0.981), (1.0, 0.5)]):
        u = det_unit(PENDULUM_BATCH_SEED + k, PENDULUM_BATCH)
        out.append((centre + half * (2.0 * u - 1.0)).astype(np.float32))
    return out


def det_params(seed, shapes):
    """Parameters in a model's order: uniform in ±1/sqrt(fan_in) like PyTorch's default init, where
    fan_in = prod(shape[1:]) for a weight and, for a vector (a bias), the last weight's fan_in.
    Parameter k uses seed `seed * 1000 + k`."""
    import numpy as np

    out, fan_in = [], 1
    for k, shape in enumerate(shapes):
        if len(shape) >= 2:
            fan_in = int(np.prod(shape[1:]))
        out.append(det_uniform(seed * 1000 + k, tuple(shape), 1.0 / np.sqrt(float(fan_in))))
    return out


def grad_summary(grads):
    """Sum and sum of absolute values (float64) over a list of gradient arrays."""
    import numpy as np

    arrs = [np.asarray(g, dtype=np.float64) for g in grads]
    return {"grad_sum": float(sum(a.sum() for a in arrs)), "grad_abs": float(sum(np.abs(a).sum() for a in arrs))}


def array_summary(a, prefix):
    import numpy as np

    a = np.asarray(a, dtype=np.float64)
    return {f"{prefix}_sum": float(a.sum()), f"{prefix}_abs": float(np.abs(a).sum())}


# ----- MNIST -----------------------------------------------------------------------------------------


def read_idx(path):
    """An IDX file (optionally gzipped) as a numpy array."""
    import numpy as np

    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {arr.size} bytes of data for dimensions {dims}")
    return arr.reshape(dims)


@functools.lru_cache(maxsize=4)
def mnist_batches_source(data_dir, seed):
    """Training images (float32 in [0, 1], (n, 28, 28)) and labels in the shared order `det_permutation`
    (cached: callers must not modify them)."""
    images, labels = load_mnist(data_dir)
    order = det_permutation(seed, len(labels))
    return images[order], labels[order]


def load_mnist(data_dir, split="train"):
    """(images as float32 in [0, 1] of shape (n, 28, 28), labels as int64)."""
    import numpy as np

    prefix = "train" if split == "train" else "t10k"
    d = Path(data_dir)
    images = read_idx(d / f"{prefix}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    labels = read_idx(d / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    return images, labels


# ----- memory ----------------------------------------------------------------------------------------


def rss_bytes():
    """Resident set size of this process (psutil when installed, else /proc/self/statm)."""
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes():
    """Peak resident set size of this process so far (getrusage; Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_flags():
    """The x86 ISA extensions the kernel reports for this CPU (a short list of the relevant ones)."""
    wanted = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
              "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in wanted if f in have]
    except OSError:
        pass
    return []
