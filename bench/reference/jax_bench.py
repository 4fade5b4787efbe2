#!/usr/bin/env python3
"""JAX (CPU) references of scalar-chain, rk4-pendulum, mlp-step and cnn-step, one JSON line per measurement.

    bench/reference/.venv/bin/python bench/reference/jax_bench.py rk4-pendulum --variants fori

The whole gradient function is jitted (`jax.jit(jax.value_and_grad(f, argnums=...))`). Variants:
  unrolled  the loop is a Python loop inside the jitted function, which JAX unrolls (the same program
            as nabla's and PyTorch's); compiling 1,000 RK4 steps takes XLA many minutes.
  fori      the loop body under `lax.fori_loop` (compiled once, run as a loop).
For each, `first_s` is the first call (trace + compile + run; the backend is initialised before) and
`median_s` the steady state of the compiled function.

mlp-step and cnn-step (jax_train.py): the whole training step (forward, backward, Adam written out
as in torch.optim.Adam) is one `jax.jit` function with the parameters and optimiser state donated;
`first_s` includes its compile.

Threads: XLA's CPU backend sizes its pools from the CPUs the process may use, so bench/run.sh starts
this script under `taskset -c 0,1` (2 CPUs). The scalar programs here run on one thread anyway.

To add a workload: a function `bench_xxx(em, args)` and an entry in BENCHES.
"""

import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from common import (Emitter, PENDULUM_EXPECTED, array_summary, check_pendulum, cpu_flags, measure,  # noqa: E402
                    parser)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

CHAIN_STEPS = 5000
RK4_STEPS, DT = 1000, 0.01


def block(r):
    return jax.block_until_ready(r)


# ----- scalar-chain ----------------------------------------------------------------------------------


def chain_unrolled(x, w):
    y = x
    for _ in range(CHAIN_STEPS):
        y = y * w
        y = y + 0.001
    return y


def chain_fori(x, w):
    return lax.fori_loop(0, CHAIN_STEPS, lambda _, y: y * w + 0.001, x)


# ----- rk4-pendulum ----------------------------------------------------------------------------------


def _f(b, g, L):
    def f(th, om):
        return om, -(g / L) * jnp.sin(th) - b * om

    return f


def _rk4_step(f, th, om):
    h, dt = DT / 2, DT
    k1t, k1o = f(th, om)
    k2t, k2o = f(th + k1t * h, om + k1o * h)
    k3t, k3o = f(th + k2t * h, om + k2o * h)
    k4t, k4o = f(th + k3t * dt, om + k3o * dt)
    th = th + (k1t + k2t * 2.0 + k3t * 2.0 + k4t) * (dt / 6.0)
    om = om + (k1o + k2o * 2.0 + k3o * 2.0 + k4o) * (dt / 6.0)
    return th, om


def pendulum_unrolled(b, g, L):
    f = _f(b, g, L)
    th, om = jnp.float32(1.0), jnp.float32(0.0)
    for _ in range(RK4_STEPS):
        th, om = _rk4_step(f, th, om)
    return th * th + om * om


def pendulum_fori(b, g, L):
    f = _f(b, g, L)
    th, om = lax.fori_loop(0, RK4_STEPS, lambda _, s: _rk4_step(f, *s), (jnp.float32(1.0), jnp.float32(0.0)))
    return th * th + om * om


def pendulum_batch_fori(b, g, L):
    # rk4-pendulum-batch: the same program over [1024] parameter sets, loss summed over the batch.
    f = _f(b, g, L)
    th, om = lax.fori_loop(0, RK4_STEPS, lambda _, s: _rk4_step(f, *s), (jnp.ones_like(b), jnp.zeros_like(b)))
    return jnp.sum(th * th + om * om)


def bench_pendulum_batch(em):
    from common import pendulum_batch_params

    inputs = tuple(jnp.asarray(p) for p in pendulum_batch_params())
    warmup, repeats = em.counts(3, 20)
    vg = jax.jit(jax.value_and_grad(pendulum_batch_fori, argnums=(0, 1, 2)))
    s = measure(warmup, repeats, lambda: vg(*inputs), sync=block)
    value, grads = vg(*inputs)
    xcheck = {"loss": float(value)}
    for name, gr in zip("bgL", grads):
        xcheck.update(array_summary(gr, f"grad_{name}"))
    em.emit("rk4-pendulum-batch", "grad-fori", s, warmup, loop="fori", xcheck=xcheck,
            check_id="rk4-pendulum-batch/grad")


VARIANTS = {
    "scalar-chain": {"unrolled": chain_unrolled, "fori": chain_fori},
    "rk4-pendulum": {"unrolled": pendulum_unrolled, "fori": pendulum_fori},
}


def bench_loop(em, name, variants):
    if name == "scalar-chain":
        inputs = (jnp.float32(1.0), jnp.float32(0.999))
        warmup, repeats = em.counts(5, 30)
    else:
        inputs = (jnp.float32(0.1), jnp.float32(9.81), jnp.float32(1.0))
        warmup, repeats = em.counts(3, 20)
    argnums = tuple(range(len(inputs)))
    for variant in variants:
        fn = VARIANTS[name][variant]
        vg = jax.jit(jax.value_and_grad(fn, argnums=argnums))
        s = measure(warmup, repeats, lambda: vg(*inputs), sync=block)
        value, grads = vg(*inputs)
        grad = [float(g) for g in grads]
        extra = {"loop": variant}
        if name == "rk4-pendulum":
            err = check_pendulum(float(value), grad)
            if err:
                em.fail(f"{variant}: {err}")
            extra.update(loss=float(value), grad=grad, expected_loss=PENDULUM_EXPECTED[0],
                         expected_grad=list(PENDULUM_EXPECTED[1]), check="FAILED" if err else "ok")
            xcheck = {"loss": float(value), "grad_b": grad[0], "grad_g": grad[1], "grad_L": grad[2]}
            check_id = "rk4-pendulum/grad"
        else:
            xcheck = {"y": float(value), "grad_x": grad[0], "grad_w": grad[1]}
            check_id = "scalar-chain/record"
        em.emit(name, f"grad-{variant}", s, warmup, xcheck=xcheck, check_id=check_id, **extra)
        if name == "scalar-chain":
            # Forward only, as nabla's and PyTorch's `no-grad` variant.
            fwd = jax.jit(fn)
            s = measure(warmup, repeats, lambda: fwd(*inputs), sync=block)
            em.emit(name, f"no-grad-{variant}", s, warmup, loop=variant,
                    xcheck={"y": float(fwd(*inputs))}, check_id="scalar-chain/no-grad")


def host_info():
    import jaxlib

    dev = jax.devices()[0]
    return {"impl": "jax", "version": jax.__version__, "jaxlib": jaxlib.__version__,
            "device": f"{dev.platform}:{dev.device_kind}",
            "xla_flags": os.environ.get("XLA_FLAGS", "(unset)"),
            "xla_cpu_target": "XLA's CPU compiler targets the host CPU's features (LLVM host CPU) unless "
                              "XLA_FLAGS sets --xla_cpu_max_isa",
            "cpu_flags": cpu_flags()}


def _train(name):
    def run(em, args):
        import jax_train

        jax_train.bench(em, name, args)

    return run


BENCHES = {
    "scalar-chain": lambda em, args: bench_loop(em, "scalar-chain", args.variant_list),
    "rk4-pendulum": lambda em, args: bench_loop(em, "rk4-pendulum", args.variant_list),
    "rk4-pendulum-batch": lambda em, args: bench_pendulum_batch(em),
    "mlp-step": _train("mlp-step"),
    "cnn-step": _train("cnn-step"),
    "maml-step": lambda em, args: __import__("maml_ref").bench_jax(em, measure, block),
}


def main():
    p = parser("JAX references of nabla's benchmarks (scalar-chain, rk4-pendulum, mlp-step, cnn-step)")
    p.add_argument("--variants", default="unrolled,fori",
                   help="scalar-chain, rk4-pendulum: comma-separated loop variants: unrolled (Python loop, "
                        "unrolled by JAX), fori")
    args = p.parse_args()
    if args.list:
        print("\n".join(BENCHES))
        return 0
    if args.host:
        import json

        print(json.dumps(host_info()))
        return 0
    args.variant_list = [v for v in args.variants.split(",") if v]
    em = Emitter("jax", args, version=jax.__version__)
    block(jnp.zeros(()))  # initialise the backend outside the timed first call
    names = list(BENCHES) if "all" in args.names else args.names
    for name in names:
        if name not in BENCHES:
            em.unavailable(name, "no JAX reference for this benchmark")
            continue
        BENCHES[name](em, args)
    return 1 if em.failed else 0


if __name__ == "__main__":
    sys.exit(main())
