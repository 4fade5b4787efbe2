#!/usr/bin/env python3
"""PyTorch eager (CPU) references of the benchmarks in BENCHMARKS.md, one JSON line per measurement.

    bench/reference/.venv/bin/python bench/reference/torch_bench.py scalar-chain rk4-pendulum --threads 2

Each workload performs the same sequence of tensor operations as its nabla twin in
`bench/src/lib.rs`, from the same inputs (the `det_*` generators of common.py), and reports the same
cross-check figures (`xcheck`). Threads: `torch.set_num_threads(--threads)` (2 by default); everything
else at PyTorch's defaults (OpenMP's wait policy included). Adam runs both as `foreach=True` (the
default on CPU) and `fused=True`; the faster of the two in this process is the reported `batchN`.

To add a workload: a function `bench_xxx(em, args)` and an entry in BENCHES.
"""

import sys

from common import (
    SEEDS,
    Emitter,
    Samples,
    array_summary,
    check_pendulum,
    cpu_flags,
    det_normal,
    det_params,
    det_uniform,
    grad_summary,
    mnist_batches_source,
    PENDULUM_EXPECTED,
    measure,
    parser,
    peak_rss_bytes,
    rss_bytes,
)

import torch
import torch.nn as nn
import torch.nn.functional as F

# ----- scalar-chain ----------------------------------------------------------------------------------

CHAIN_STEPS = 5000


def chain(x, w, steps=CHAIN_STEPS):
    y = x
    for _ in range(steps):
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

    # The first timed call is the first call of the process (nothing runs the workload before).
    warmup, repeats = em.counts(5, 30)
    s = measure(warmup, repeats, record)
    s_ng = measure(warmup, repeats, no_grad)
    y, (gx, gw) = record()
    ops = 2 * CHAIN_STEPS
    em.emit("scalar-chain", "record", s, warmup, ops=ops, ns_per_op=s.median / ops * 1e9,
            xcheck={"y": y.item(), "grad_x": gx.item(), "grad_w": gw.item()})
    em.emit("scalar-chain", "no-grad", s_ng, warmup, ops=ops, ns_per_op=s_ng.median / ops * 1e9,
            xcheck={"y": no_grad().item()})


# ----- rk4-pendulum ----------------------------------------------------------------------------------

RK4_STEPS, DT = 1000, 0.01


def pendulum_loss(b, g, L, th=None, om=None):
    # Same operations as nabla's `pendulum_loss`: per evaluation div, neg, sin, mul, mul, sub.
    def f(th, om):
        return om, -(g / L) * torch.sin(th) - b * om

    h, dt = DT / 2, DT
    if th is None:
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

    warmup, repeats = em.counts(3, 20)
    s = measure(warmup, repeats, run)
    loss, grads = run()
    grad = [g.item() for g in grads]
    err = check_pendulum(loss.item(), grad)
    if err:
        em.fail(err)
    em.emit("rk4-pendulum", "grad", s, warmup, loss=loss.item(), grad=grad,
            expected_loss=PENDULUM_EXPECTED[0], expected_grad=list(PENDULUM_EXPECTED[1]),
            check="FAILED" if err else "ok",
            xcheck={"loss": loss.item(), "grad_b": grad[0], "grad_g": grad[1], "grad_L": grad[2]})


def bench_rk4_pendulum_batch(em):
    # The same program over 1,024 parameter sets ([1024] tensors), loss summed over the batch.
    from common import pendulum_batch_params

    params = [torch.from_numpy(p).requires_grad_(True) for p in pendulum_batch_params()]

    def run():
        th, om = torch.ones_like(params[0]), torch.zeros_like(params[0])
        loss = pendulum_loss(*params, th, om).sum()
        return loss, torch.autograd.grad(loss, params)

    warmup, repeats = em.counts(3, 20)
    s = measure(warmup, repeats, run)
    loss, grads = run()
    xcheck = {"loss": loss.item()}
    for name, gr in zip("bgL", grads):
        xcheck.update(array_summary(gr.numpy(), f"grad_{name}"))
    em.emit("rk4-pendulum-batch", "grad", s, warmup, xcheck=xcheck)


# ----- matmul ----------------------------------------------------------------------------------------


def bench_matmul(em, sizes):
    for n in sizes:
        a = torch.from_numpy(det_normal(SEEDS["matmul"], (n, n)))
        b = torch.from_numpy(det_normal(SEEDS["matmul"] + 1, (n, n)))
        warmup, repeats = em.counts(3, 20)
        s = measure(warmup, repeats, lambda: torch.matmul(a, b))
        em.emit("matmul", str(n), s, warmup, n=n, gflops=2 * n**3 / s.median / 1e9,
                xcheck=array_summary(torch.matmul(a, b).numpy(), "c"))


# ----- conv2d ----------------------------------------------------------------------------------------


def conv2d_inputs():
    seed = SEEDS["conv2d"]
    x = torch.from_numpy(det_normal(seed, (64, 1, 28, 28))).requires_grad_()
    w1 = torch.from_numpy(det_uniform(seed + 1, (32, 1, 3, 3), 1.0 / 3.0)).requires_grad_()
    w2 = torch.from_numpy(det_uniform(seed + 2, (64, 32, 3, 3), 1.0 / (32.0 * 9.0) ** 0.5)).requires_grad_()
    return x, w1, w2


def bench_conv2d(em):
    x, w1, w2 = conv2d_inputs()

    def run():
        h = F.relu(F.conv2d(x, w1, padding=1))
        loss = F.conv2d(h, w2, padding=1).sum()
        return loss, torch.autograd.grad(loss, (x, w1, w2))

    warmup, repeats = em.counts(3, 20)
    s = measure(warmup, repeats, run)
    loss, grads = run()
    em.emit("conv2d", "fwd+bwd", s, warmup, loss=loss.item(),
            xcheck={"loss": loss.item(), **grad_summary([g.numpy() for g in grads])})


# ----- mlp-step, cnn-step, mlp-memory ----------------------------------------------------------------


class Batches:
    """MNIST training images in the shared shuffled order, served as consecutive batches (wrapping)."""

    def __init__(self, data_dir, batch, image_shape, seed):
        images, labels = mnist_batches_source(data_dir, seed)
        self.x = torch.from_numpy(images).reshape(-1, *image_shape).contiguous()
        self.y = torch.from_numpy(labels).contiguous()
        self.batch, self.pos = batch, 0

    def next(self):
        if self.pos + self.batch > len(self.y):
            self.pos = 0
        i, self.pos = self.pos, self.pos + self.batch
        return self.x[i : i + self.batch], self.y[i : i + self.batch]


def set_det_params(model, seed):
    """The shared initial parameters (common.det_params), in `parameters()` order."""
    params = list(model.parameters())
    values = det_params(seed, [tuple(p.shape) for p in params])
    with torch.no_grad():
        for p, v in zip(params, values):
            p.copy_(torch.from_numpy(v))
    return model


def mlp():
    m = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    return set_det_params(m, SEEDS["mlp"])


def mlp_batches(data_dir, batch):
    return Batches(data_dir, batch, (784,), SEEDS["mlp"] + 1)


def cnn():
    # LeNet-style, unpadded convolutions: 28 → 26 → 13 → 11 → 5, so 64·5·5 = 1600 features.
    m = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 5 * 5, 128), nn.ReLU(), nn.Linear(128, 10),
    )
    return set_det_params(m, SEEDS["cnn"])


def cnn_batches(data_dir, batch):
    return Batches(data_dir, batch, (1, 28, 28), SEEDS["cnn"] + 1)


ADAM_IMPLS = {"foreach": {"foreach": True}, "fused": {"fused": True}}


def training_step(model, data, adam="foreach", inspect=None):
    """One step = zero grads, forward, cross-entropy from logits, backward, Adam update.
    `adam`: a key of ADAM_IMPLS; `inspect(loss, params)` runs between backward and the update."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, **ADAM_IMPLS[adam])

    def step():
        x, y = data.next()
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        if inspect:
            inspect(loss, list(model.parameters()))
        opt.step()
        return loss

    return step


def step_check(model, data, adam):
    """Loss and gradient sums of step 1, loss of step 2 (after the first update), from the shared
    initial parameters and batches: the cross-check figures of a training benchmark."""
    out = {}

    def inspect(loss, params):
        if not out:
            out.update(loss=loss.item(), **grad_summary([p.grad.numpy() for p in params]))

    step = training_step(model, data, adam, inspect)
    step()
    out["loss_step2"] = step().item()
    return out


def per_step(samples, k):
    return Samples(samples.first / k, [t / k for t in samples.times], [t / k for t in samples.cpu_times])


def time_steps(em, step, k, warmup, repeats):
    """Times blocks of `k` steps; returns (samples per step, losses at the end of each block)."""
    losses = []

    def block():
        for _ in range(k):
            loss = step()
        losses.append(loss.item())

    warmup, repeats = em.counts(warmup, repeats)
    return per_step(measure(warmup, repeats, block), k), losses, warmup


def bench_training(em, name, variant, make_model, make_data, k, warmup, repeats, **extra):
    """A training benchmark with each Adam implementation of ADAM_IMPLS; emits each as
    `variant/adam-<impl>` and the faster (median) as `variant`, with `adam` naming it."""
    results = []
    for adam in ADAM_IMPLS:
        step = training_step(make_model(), make_data(), adam)
        s, losses, w = time_steps(em, step, k, warmup, repeats)
        check = step_check(make_model(), make_data(), adam)
        rec = dict(steps_per_sample=k, loss_first=losses[0], loss_last=losses[-1], adam=adam, **extra)
        em.emit(name, f"{variant}/adam-{adam}", s, w, xcheck=check, check_id=f"{name}/{variant}", **rec)
        results.append((s.median, s, w, check, rec))
    _, s, w, check, rec = min(results, key=lambda r: r[0])
    em.emit(name, variant, s, w, xcheck=check, **rec)


def bench_mlp_step(em, data_dir):
    for batch, k in ((128, 10), (1, 100)):
        bench_training(em, "mlp-step", f"batch{batch}", mlp, lambda: mlp_batches(data_dir, batch),
                       k, 10, 30, batch=batch)


def bench_cnn_step(em, data_dir):
    bench_training(em, "cnn-step", "batch64", cnn, lambda: cnn_batches(data_dir, 64), 1, 5, 20, batch=64)


def bench_lstm(em):
    lstm = set_det_params(nn.LSTM(input_size=32, hidden_size=128), SEEDS["lstm"])  # (time, batch, features)
    x = torch.from_numpy(det_normal(SEEDS["lstm"] + 1, (50, 16, 32)))
    params = list(lstm.parameters())

    def run():
        out, _ = lstm(x)
        loss = out.sum()
        return loss, torch.autograd.grad(loss, params)

    warmup, repeats = em.counts(3, 20)
    s = measure(warmup, repeats, run)
    loss, grads = run()
    em.emit("lstm", "fwd+bwd", s, warmup, loss=loss.item(),
            xcheck={"loss": loss.item(), **grad_summary([g.numpy() for g in grads])})


def bench_mlp_memory(em, data_dir, steps=10_000, every=100):
    import time

    step = training_step(mlp(), mlp_batches(data_dir, 128))
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
    s = Samples(block_times[0], block_times[1:], fresh=True)
    em.emit("mlp-memory", "batch128", s, 1, steps=steps, sample_every=every, total_s=total,
            rss_start_mib=rss0 / mib, rss_at_100_mib=base / mib, rss_last_mib=rss[-1] / mib,
            rss_max_growth_after_100_mib=growth / mib, flat=flat,
            rss_mib=[round(r / mib, 2) for r in rss], loss_last=loss.item())
    if not flat:
        em.fail(f"mlp-memory: resident memory grew by {growth / mib:.1f} MiB after step 100")


def bench_graph_memory(em, steps):
    """Resident bytes per recorded scalar op: scalar-chain with `steps` steps (2 ops each), the
    graph alive, the peak during backward, and what is left once everything is dropped."""
    import time

    x = torch.tensor(1.0, requires_grad=True)
    w = torch.tensor(0.999, requires_grad=True)
    rss_before = rss_bytes()
    t0 = time.perf_counter()
    c0 = time.process_time()
    y = chain(x, w, steps)
    forward_s = time.perf_counter() - t0
    rss_graph = rss_bytes()
    t = time.perf_counter()
    gx, gw = torch.autograd.grad(y, (x, w))
    backward_s = time.perf_counter() - t
    peak = peak_rss_bytes()
    check = {"y": y.item(), "grad_x": gx.item(), "grad_w": gw.item()}
    t = time.perf_counter()
    del y, gx, gw
    drop_s = time.perf_counter() - t
    total = time.perf_counter() - t0
    ops, mib = 2 * steps, 1 << 20
    s = Samples(total, [total], [time.process_time() - c0], fresh=True)
    em.emit("graph-memory", f"{ops}ops", s, 0, xcheck=check, ops=ops,
            bytes_per_op_graph=(rss_graph - rss_before) / ops, bytes_per_op_peak=(peak - rss_before) / ops,
            rss_before_mib=rss_before / mib, rss_graph_mib=rss_graph / mib, rss_peak_mib=peak / mib,
            rss_after_drop_mib=rss_bytes() / mib, forward_s=forward_s, backward_s=backward_s, drop_s=drop_s)


def bench_trebuchet_grad(em):
    """The trebuchet shot of trebuchet_torch.py (a port of the zoo's simulator and nabla::ode's solver)."""
    import trebuchet_torch as tt

    params = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (90.0, 45.0, 0.0)]
    warmup, repeats = em.counts(3, 20)
    s = measure(warmup, repeats, lambda: tt.shot_grad(params))
    d, grad, steps = tt.shot_grad(params)
    grad = [g.item() for g in grad]
    em.emit("trebuchet-grad", "grad", s, warmup, distance=d.item(), grad=grad, steps=list(steps),
            xcheck={"distance": d.item(), "grad_mass": grad[0], "grad_angle": grad[1], "grad_wind": grad[2]})


def bench_memn2n_step(em):
    """One MemN2N training step (memn2n_torch.py), timed in blocks of 5 steps like nabla's side."""
    import memn2n_torch as mt

    step = mt.make_step()
    s, _, warmup = time_steps(em, step, 5, 5, 30)
    em.emit("memn2n-step", "batch32", s, warmup, xcheck=mt.check(), batch=mt.B)


def bench_dnc_step(em):
    """One DNC training step (dnc_torch.py, the same model as nabla::nn::dnc) with RMSProp."""
    import dnc_torch

    model, x, y = dnc_torch.inputs(set_det_params)
    step = dnc_torch.training_step(model, x, y)
    s, losses, w = time_steps(em, step, 1, 3, 20)
    check = {}

    def inspect(loss, params):
        if not check:
            check.update(loss=loss.item(), **grad_summary([p.grad.numpy() for p in params]))

    fresh, fx, fy = dnc_torch.inputs(set_det_params)
    first = dnc_torch.training_step(fresh, fx, fy, inspect)
    first()
    check["loss_step2"] = first().item()
    em.emit("dnc-step", "step", s, w, xcheck=check, steps_per_sample=1, loss_first=losses[0], loss_last=losses[-1])


def host_info(args):
    return {"impl": "pytorch", "version": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "mkldnn": torch.backends.mkldnn.is_available(), "mkl": torch.backends.mkl.is_available(),
            "threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
            "parallel_info": [line.strip() for line in torch.__config__.parallel_info().splitlines()
                              if line.strip() and "threads" not in line][:4],
            "cpu_flags": cpu_flags()}


BENCHES = {
    "scalar-chain": lambda em, a: bench_scalar_chain(em),
    "rk4-pendulum": lambda em, a: bench_rk4_pendulum(em),
    "rk4-pendulum-batch": lambda em, a: bench_rk4_pendulum_batch(em),
    "matmul": lambda em, a: bench_matmul(em, [int(n) for n in a.sizes.split(",")]),
    "conv2d": lambda em, a: bench_conv2d(em),
    "mlp-step": lambda em, a: bench_mlp_step(em, a.data),
    "lstm": lambda em, a: bench_lstm(em),
    "cnn-step": lambda em, a: bench_cnn_step(em, a.data),
    "mlp-memory": lambda em, a: bench_mlp_memory(em, a.data),
    "graph-memory": lambda em, a: bench_graph_memory(em, a.graph_steps),
    "trebuchet-grad": lambda em, a: bench_trebuchet_grad(em),
    "maml-step": lambda em, a: __import__("maml_ref").bench_torch(em, measure),
    "memn2n-step": lambda em, a: bench_memn2n_step(em),
    "dnc-step": lambda em, a: bench_dnc_step(em),
}


def main():
    p = parser("PyTorch eager references of nabla's benchmarks")
    p.add_argument("--graph-steps", type=int, default=500_000, help="chain steps of graph-memory")
    args = p.parse_args()
    if args.list:
        print("\n".join(BENCHES))
        return 0
    torch.set_num_threads(args.threads)
    if args.host:
        import json

        print(json.dumps(host_info(args)))
        return 0
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
