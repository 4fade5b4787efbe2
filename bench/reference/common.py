"""Shared helpers of the reference benchmarks: timing, JSON lines, MNIST (IDX) loading, memory.

Every script prints one JSON line per measurement with the same fields as `nabla-bench`:
name, impl, variant, status, median_s, min_s, first_s, repeats, warmup, threads, [round], extras.
"""

import argparse
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
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls after the first")
    p.add_argument("--repeats", type=int, default=None, help="timed calls (median reported)")
    p.add_argument("--round", type=int, default=None, help="round number, copied to the output")
    p.add_argument("--sizes", default="256,512,1024", help="matmul sizes")
    p.add_argument("--data", default=default_mnist_dir(), help="directory of the MNIST *.gz IDX files")
    return p


class Samples:
    def __init__(self, first, times, cpu_times=None):
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


def measure(warmup, repeats, fn, sync=lambda r: r):
    """One first call, `warmup` untimed calls, `repeats` timed calls; `sync` waits for the result
    (JAX's block_until_ready) inside the timed region. Records wall-clock and process CPU time."""
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
    return Samples(first, times, cpu_times)


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

    def emit(self, name, variant, samples, warmup, **extra):
        r = self._base(name)
        r.update(
            variant=variant,
            status="ok",
            median_s=samples.median,
            min_s=samples.min,
            first_s=samples.first,
            cpu_median_s=samples.cpu_median,
            repeats=len(samples.times),
            warmup=warmup,
        )
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
