#!/usr/bin/env python3
"""PyTorch eager (CPU) references of the benchmarks in BENCHMARKS.md, one JSON line per measurement.

    bench/reference/.venv/bin/python bench/reference/torch_bench.py scalar-chain rk4-pendulum --threads 2

Each workload performs the same sequence of tensor operations as its nabla twin in
`bench/src/lib.rs`. Threads: `torch.set_num_threads(--threads)` (2 by default).
"""

import sys

from common import (
    Emitter,
    Samples,
    check_pendulum,
    PENDULUM_EXPECTED,
    load_mnist,
    measure,
    parser,
    rss_bytes,
)

import torch
import torch.nn as nn
import torch.nn.functional as F

# ----- scalar-chain ----------------------------------------------------------------------------------

CHAIN_STEPS = 5000


def chain(x, w):
    y = x
    for _ in range(CHAIN_STEPS):
        y = y * w
        y = y + 0.001
    return y


def bench_scalar_chain(em):
    x = torch.tensor(1.0, requires_grad=True)
    w = torch.tensor(0.999, requires_grad=True)

    def record():
        y = chain(x, w)
        return y, torch.autograd.grad(y, (x, w))

    def no_grad():
        with torch.no_grad():
            return chain(x, w)

    y, (gx, gw) = record()
    warmup, repeats = em.counts(3, 15)
    s = measure(warmup, repeats, record)
    ops = 2 * CHAIN_STEPS
    em.emit("scalar-chain", "record", s, warmup, ops=ops, ns_per_op=s.median / ops * 1e9,
            y=y.item(), grad=[gx.item(), gw.item()])
    warmup, repeats = em.counts(3, 15)
    s = measure(warmup, repeats, no_grad)
    em.emit("scalar-chain", "no-grad", s, warmup, ops=ops, ns_per_op=s.median / ops * 1e9)


# ----- rk4-pendulum ----------------------------------------------------------------------------------

RK4_STEPS, DT = 1000, 0.01


def pendulum_loss(b, g, L):
    # Same operations as nabla's `pendulum_loss`: per evaluation div, neg, sin, mul, mul, sub.
    def f(th, om):
        return om, -(g / L) * torch.sin(th) - b * om

    h, dt = DT / 2, DT
    th, om = torch.tensor(1.0), torch.tensor(0.0)
    for _ in range(RK4_STEPS):
        k1t, k1o = f(th, om)
        k2t, k2o = f(th + k1t * h, om + k1o * h)
        k3t, k3o = f(th + k2t * h, om + k2o * h)
        k4t, k4o = f(th + k3t * dt, om + k3o * dt)
        th = th + (k1t + k2t * 2.0 + k3t * 2.0 + k4t) * (dt / 6.0)
        om = om + (k1o + k2o * 2.0 + k3o * 2.0 + k4o) * (dt / 6.0)
    return th * th + om * om


def bench_rk4_pendulum(em):
    params = [torch.tensor(v, requires_grad=True) for v in (0.1, 9.81, 1.0)]

    def run():
        loss = pendulum_loss(*params)
        return loss, torch.autograd.grad(loss, params)

    warmup, repeats = em.counts(2, 10)
    s = measure(warmup, repeats, run)
    loss, grads = run()
    grad = [g.item() for g in grads]
    err = check_pendulum(loss.item(), grad)
    if err:
        em.fail(err)
    em.emit("rk4-pendulum", "grad", s, warmup, loss=loss.item(), grad=grad,
            expected_loss=PENDULUM_EXPECTED[0], expected_grad=list(PENDULUM_EXPECTED[1]),
            check="FAILED" if err else "ok")


# ----- matmul ----------------------------------------------------------------------------------------


def bench_matmul(em, sizes):
    torch.manual_seed(0)
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        warmup, repeats = em.counts(3, 50 if n <= 512 else 20)
        s = measure(warmup, repeats, lambda: torch.matmul(a, b))
        em.emit("matmul", str(n), s, warmup, n=n, gflops=2 * n**3 / s.median / 1e9)


# ----- conv2d ----------------------------------------------------------------------------------------


def conv2d_inputs():
    torch.manual_seed(0)
    x = torch.randn(64, 1, 28, 28, requires_grad=True)
    w1 = (torch.randn(32, 1, 3, 3) / 3.0).requires_grad_()
    w2 = (torch.randn(64, 32, 3, 3) / (32 * 9) ** 0.5).requires_grad_()
    return x, w1, w2


def bench_conv2d(em):
    x, w1, w2 = conv2d_inputs()

    def run():
        h = F.relu(F.conv2d(x, w1, padding=1))
        loss = F.conv2d(h, w2, padding=1).sum()
        return loss, torch.autograd.grad(loss, (x, w1, w2))

    warmup, repeats = em.counts(3, 20)
    s = measure(warmup, repeats, run)
    em.emit("conv2d", "fwd+bwd", s, warmup, loss=run()[0].item())


# ----- mlp-step, cnn-step, mlp-memory ----------------------------------------------------------------


class Batches:
    """MNIST training images in a fixed shuffled order, served as consecutive batches (wrapping)."""

    def __init__(self, data_dir, batch, image_shape):
        images, labels = load_mnist(data_dir)
        g = torch.Generator().manual_seed(0)
        perm = torch.randperm(len(labels), generator=g)
        self.x = torch.from_numpy(images).reshape(-1, *image_shape)[perm].contiguous()
        self.y = torch.from_numpy(labels)[perm].contiguous()
        self.batch, self.pos = batch, 0

    def next(self):
        if self.pos + self.batch > len(self.y):
            self.pos = 0
        i, self.pos = self.pos, self.pos + self.batch
        return self.x[i : i + self.batch], self.y[i : i + self.batch]


def mlp():
    return nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


def cnn():
    # LeNet-style, unpadded convolutions: 28 → 26 → 13 → 11 → 5, so 64·5·5 = 1600 features.
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 5 * 5, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def training_step(model, data):
    """One step = zero grads, forward, cross-entropy from logits, backward, Adam update."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        x, y = data.next()
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def per_step(samples, k):
    return Samples(samples.first / k, [t / k for t in samples.times], [t / k for t in samples.cpu_times])


def bench_steps(em, name, variant, step, k, warmup, repeats, **extra):
    """Times blocks of `k` steps and reports seconds per step."""
    losses = []

    def block():
        for _ in range(k):
            loss = step()
        losses.append(loss.item())

    warmup, repeats = em.counts(warmup, repeats)
    s = per_step(measure(warmup, repeats, block), k)
    em.emit(name, variant, s, warmup, steps_per_sample=k, loss_first=losses[0],
            loss_last=losses[-1], **extra)


def bench_mlp_step(em, data_dir):
    for batch, k, warmup, repeats in ((128, 10, 10, 30), (1, 100, 10, 30)):
        torch.manual_seed(0)
        step = training_step(mlp(), Batches(data_dir, batch, (784,)))
        bench_steps(em, "mlp-step", f"batch{batch}", step, k, warmup, repeats, batch=batch)


def bench_cnn_step(em, data_dir):
    torch.manual_seed(0)
    step = training_step(cnn(), Batches(data_dir, 64, (1, 28, 28)))
    bench_steps(em, "cnn-step", "batch64", step, 1, 5, 20, batch=64)


def bench_lstm(em):
    torch.manual_seed(0)
    lstm = nn.LSTM(input_size=32, hidden_size=128)  # (time, batch, features)
    x = torch.randn(50, 16, 32)
    params = list(lstm.parameters())

    def run():
        out, _ = lstm(x)
        loss = out.sum()
        return loss, torch.autograd.grad(loss, params)

    warmup, repeats = em.counts(3, 20)
    s = measure(warmup, repeats, run)
    em.emit("lstm", "fwd+bwd", s, warmup, loss=run()[0].item())


def bench_mlp_memory(em, data_dir, steps=10_000, every=100):
    import time

    torch.manual_seed(0)
    step = training_step(mlp(), Batches(data_dir, 128, (784,)))
    rss, block_times = [], []
    rss0 = rss_bytes()
    t_all = time.perf_counter()
    for i in range(steps // every):
        t = time.perf_counter()
        for _ in range(every):
            loss = step()
        loss.item()
        block_times.append((time.perf_counter() - t) / every)
        rss.append(rss_bytes())
    total = time.perf_counter() - t_all
    mib = 1 << 20
    base, after = rss[0], rss[1:]
    growth = max(after) - base
    flat = growth <= 0.02 * base + 1 * mib
    s = Samples(block_times[0], block_times[1:])
    em.emit("mlp-memory", "batch128", s, 1, steps=steps, sample_every=every, total_s=total,
            rss_start_mib=rss0 / mib, rss_at_100_mib=base / mib, rss_last_mib=rss[-1] / mib,
            rss_max_growth_after_100_mib=growth / mib, flat=flat,
            rss_mib=[round(r / mib, 2) for r in rss], loss_last=loss.item())
    if not flat:
        em.fail(f"mlp-memory: resident memory grew by {growth / mib:.1f} MiB after step 100")


BENCHES = {
    "scalar-chain": lambda em, a: bench_scalar_chain(em),
    "rk4-pendulum": lambda em, a: bench_rk4_pendulum(em),
    "matmul": lambda em, a: bench_matmul(em, [int(n) for n in a.sizes.split(",")]),
    "conv2d": lambda em, a: bench_conv2d(em),
    "mlp-step": lambda em, a: bench_mlp_step(em, a.data),
    "lstm": lambda em, a: bench_lstm(em),
    "cnn-step": lambda em, a: bench_cnn_step(em, a.data),
    "mlp-memory": lambda em, a: bench_mlp_memory(em, a.data),
}


def main():
    args = parser("PyTorch eager references of nabla's benchmarks").parse_args()
    if args.list:
        print("\n".join(BENCHES))
        return 0
    torch.set_num_threads(args.threads)
    em = Emitter("pytorch", args, version=torch.__version__)
    names = list(BENCHES) if "all" in args.names else args.names
    for name in names:
        if name not in BENCHES:
            print(f"torch_bench: unknown benchmark {name!r}; known: {', '.join(BENCHES)}", file=sys.stderr)
            return 2
        BENCHES[name](em, args)
    return 1 if em.failed else 0


if __name__ == "__main__":
    sys.exit(main())
