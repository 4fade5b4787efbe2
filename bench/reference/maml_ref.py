"""maml-step: one MAML meta-step on sinusoid regression (Finn et al. 2017): 25 tasks, K = 10 support and
10 query points each, a 1-40-40-1 ReLU network, one inner SGD step (alpha = 0.01), second order: the
mean query MSE after adaptation and its gradient with respect to the initial parameters.

Inputs are deterministic formulas (no RNG) that nabla-bench reproduces (bench/src/lib.rs, maml_inputs):
parameter j, element i (f64, then f32): sin(0.37 (i + 1) + 1.1 j) / sqrt(fan_in); task t:
amplitude 0.1 + 4.9 frac(0.618034 (t + 1)), phase pi frac(0.414214 (t + 1)); point n = t K + j:
support x = -5 + 10 frac(0.7548777 (n + 1)), query x = -5 + 10 frac(0.5698403 (n + 1)),
y = amplitude sin(x - phase).

PyTorch eager: the 25 tasks as a batch dimension (torch.bmm), the inner gradient by
torch.autograd.grad(create_graph=True). JAX: jax.vmap over tasks of the inner jax.grad, the whole
meta-gradient under jax.jit.
"""

import math

import numpy as np

TASKS, K, HIDDEN, ALPHA = 25, 10, 40, 0.01
SHAPES = [(1, HIDDEN), (1, HIDDEN), (HIDDEN, HIDDEN), (1, HIDDEN), (HIDDEN, 1), (1, 1)]
FAN_IN = [1, 1, HIDDEN, HIDDEN, HIDDEN, HIDDEN]


def _frac(v):
    return v - math.floor(v)


def inputs():
    """(params: list of float32 arrays [1, a, b], xs, ys, xq, yq: float32 [TASKS, K, 1])."""
    params = []
    for j, (shape, fan) in enumerate(zip(SHAPES, FAN_IN)):
        n = shape[0] * shape[1]
        v = np.array([math.sin(0.37 * (i + 1) + 1.1 * j) / math.sqrt(fan) for i in range(n)])
        params.append(v.astype(np.float32).reshape((1,) + shape))
    amp = [0.1 + 4.9 * _frac(0.618034 * (t + 1)) for t in range(TASKS)]
    phase = [math.pi * _frac(0.414214 * (t + 1)) for t in range(TASKS)]

    def points(c):
        x = np.array([-5.0 + 10.0 * _frac(c * (n + 1)) for n in range(TASKS * K)])
        y = np.array([amp[n // K] * math.sin(x[n] - phase[n // K]) for n in range(TASKS * K)])
        return x.astype(np.float32).reshape(TASKS, K, 1), y.astype(np.float32).reshape(TASKS, K, 1)

    xs, ys = points(0.7548777)
    xq, yq = points(0.5698403)
    return params, xs, ys, xq, yq


def xcheck(loss, grads):
    return {"loss": float(loss), **{f"grad_sum_{j}": float(g.sum()) for j, g in enumerate(grads)}}


# ----- PyTorch eager -----------------------------------------------------------------------------------


def torch_meta_step(torch):
    params, xs, ys, xq, yq = inputs()
    theta = [torch.tensor(p, requires_grad=True) for p in params]
    xs, ys, xq, yq = (torch.tensor(a) for a in (xs, ys, xq, yq))

    def forward(p, x):
        h = torch.relu(torch.baddbmm(p[1], x, p[0]))
        h = torch.relu(torch.baddbmm(p[3], h, p[2]))
        return torch.baddbmm(p[5], h, p[4])

    def task_mse(p, x, y):
        return ((forward(p, x) - y) ** 2).mean(dim=(1, 2))

    def step():
        p = [w.expand((TASKS,) + w.shape[1:]) for w in theta]
        g = torch.autograd.grad(task_mse(p, xs, ys).sum(), p, create_graph=True)
        adapted = [w - ALPHA * gw for w, gw in zip(p, g)]
        loss = task_mse(adapted, xq, yq).mean()
        grads = torch.autograd.grad(loss, theta)
        return loss.detach(), grads

    return step


def bench_torch(em, measure):
    import torch

    step = torch_meta_step(torch)
    warmup, repeats = em.counts(5, 30)
    s = measure(warmup, repeats, step)
    loss, grads = step()
    em.emit("maml-step", "second-order", s, warmup, xcheck=xcheck(loss.item(), [g.numpy() for g in grads]))


# ----- JAX ---------------------------------------------------------------------------------------------


def bench_jax(em, measure, block):
    import jax
    import jax.numpy as jnp

    params, xs, ys, xq, yq = inputs()
    theta = [jnp.asarray(p[0]) for p in params]  # per-task shapes, vmapped over tasks
    xs, ys, xq, yq = (jnp.asarray(a) for a in (xs, ys, xq, yq))

    def forward(p, x):
        h = jax.nn.relu(x @ p[0] + p[1])
        h = jax.nn.relu(h @ p[2] + p[3])
        return h @ p[4] + p[5]

    def mse(p, x, y):
        return jnp.mean((forward(p, x) - y) ** 2)

    def task_loss(p, xs, ys, xq, yq):
        g = jax.grad(mse)(p, xs, ys)
        adapted = [w - ALPHA * gw for w, gw in zip(p, g)]
        return mse(adapted, xq, yq)

    def meta_loss(p):
        return jnp.mean(jax.vmap(task_loss, in_axes=(None, 0, 0, 0, 0))(p, xs, ys, xq, yq))

    vg = jax.jit(jax.value_and_grad(meta_loss))
    warmup, repeats = em.counts(5, 30)
    s = measure(warmup, repeats, lambda: vg(theta), sync=block)
    loss, grads = vg(theta)
    em.emit("maml-step", "second-order", s, warmup, xcheck=xcheck(float(loss), [np.asarray(g) for g in grads]))
