"""JAX references of the training benchmarks mlp-step and cnn-step (used by jax_bench.py).

The whole step (forward, cross-entropy, backward, Adam) is one `jax.jit` function; parameters and
optimiser state are donated (updated in place), and the training images live on the device, the
batch being sliced inside the jitted step (no host-to-device copy per step). Adam is written out as
`torch.optim.Adam` computes it (lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight decay), without
optax. Same shared initial parameters and batch order as nabla and PyTorch (common.det_*).
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from common import SEEDS, det_params, grad_summary, measure, mnist_batches_source

LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-8


def _relu(x):
    return jnp.maximum(x, 0.0)


def _linear(x, w, b):
    return x @ w.T + b


def _conv(x, w, b):
    y = lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return y + b[None, :, None, None]


def _maxpool2(x):
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")


def mlp_apply(p, x):
    return _linear(_relu(_linear(x, p[0], p[1])), p[2], p[3])


def cnn_apply(p, x):
    h = _maxpool2(_relu(_conv(x, p[0], p[1])))
    h = _maxpool2(_relu(_conv(h, p[2], p[3])))
    h = h.reshape(h.shape[0], -1)
    return _linear(_relu(_linear(h, p[4], p[5])), p[6], p[7])


# name -> (apply, parameter shapes in PyTorch's order, image shape, seed, batches, block of steps, warmup, repeats)
MODELS = {
    "mlp-step": (mlp_apply, [(128, 784), (128,), (10, 128), (10,)], (784,), SEEDS["mlp"],
                 [(128, 10), (1, 100)], 10, 30),
    "cnn-step": (cnn_apply, [(32, 1, 3, 3), (32,), (64, 32, 3, 3), (64,), (128, 1600), (128,), (10, 128), (10,)],
                 (1, 28, 28), SEEDS["cnn"], [(64, 1)], 5, 20),
}


def cross_entropy(logits, y):
    lp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(lp, y[:, None], axis=1))


def make_step(apply, batch):
    def loss_fn(params, x, y):
        return cross_entropy(apply(params, x), y)

    def step(params, state, images, labels, i):
        x = lax.dynamic_slice_in_dim(images, i, batch)
        y = lax.dynamic_slice_in_dim(labels, i, batch)
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        t, m, v = state
        t = t + 1.0
        bc1, bc2 = 1.0 - B1**t, 1.0 - B2**t
        m = [B1 * mi + (1.0 - B1) * g for mi, g in zip(m, grads)]
        v = [B2 * vi + (1.0 - B2) * g * g for vi, g in zip(v, grads)]
        params = [p - (LR / bc1) * mi / (jnp.sqrt(vi) / jnp.sqrt(bc2) + EPS)
                  for p, mi, vi in zip(params, m, v)]
        return params, (t, m, v), loss

    return jax.jit(step, donate_argnums=(0, 1)), jax.jit(jax.value_and_grad(loss_fn))


class Trainer:
    """Parameters, Adam state and the device-resident data of one training run."""

    def __init__(self, name, batch, data_dir):
        apply, shapes, image_shape, seed, _, _, _ = MODELS[name]
        images, labels = mnist_batches_source(data_dir, seed + 1)
        self.images = jnp.asarray(images.reshape(-1, *image_shape))
        self.labels = jnp.asarray(labels.astype(np.int32))
        self.n, self.batch, self.pos = len(labels), batch, 0
        self.params = [jnp.asarray(a) for a in det_params(seed, shapes)]
        zeros = [jnp.zeros(s, jnp.float32) for s in shapes]
        self.state = (jnp.float32(0.0), zeros, [jnp.zeros(s, jnp.float32) for s in shapes])
        self.step_fn, self.grad_fn = make_step(apply, batch)

    def next_index(self):
        if self.pos + self.batch > self.n:
            self.pos = 0
        i, self.pos = self.pos, self.pos + self.batch
        return i

    def step(self):
        self.params, self.state, loss = self.step_fn(self.params, self.state, self.images, self.labels,
                                                     self.next_index())
        return loss

    def check(self):
        """Loss and gradient sums of step 1, loss of step 2, from the shared initial state."""
        i = self.pos
        x = lax.dynamic_slice_in_dim(self.images, i, self.batch)
        y = lax.dynamic_slice_in_dim(self.labels, i, self.batch)
        loss, grads = self.grad_fn(self.params, x, y)
        out = {"loss": float(loss), **grad_summary([np.asarray(g) for g in grads])}
        self.step()
        out["loss_step2"] = float(self.step())
        return out


def bench(em, name, args):
    warnings.filterwarnings("ignore", message=".*donated buffers.*")
    _, _, _, _, batches, warmup, repeats = MODELS[name]
    warmup, repeats = em.counts(warmup, repeats)
    for batch, k in batches:
        tr = Trainer(name, batch, args.data)
        losses = []

        def block():
            for _ in range(k):
                loss = tr.step()
            losses.append(float(jax.block_until_ready(loss)))

        s = measure(warmup, repeats, block)
        s.first /= k
        s.times = [t / k for t in s.times]
        s.cpu_times = [t / k for t in s.cpu_times]
        check = Trainer(name, batch, args.data).check()
        em.emit(name, f"batch{batch}", s, warmup, xcheck=check, steps_per_sample=k, batch=batch,
                loss_first=losses[0], loss_last=losses[-1], adam="hand-written (torch.optim.Adam rule), jitted step")
