"""The benchmark table of the harness: one entry per workload (bench/harness.py runs them).

Each workload has one twin on every side it lists: a `Bench` entry of REGISTRY in bench/src/main.rs
(nabla), an entry of BENCHES in bench/reference/torch_bench.py (PyTorch eager) and, for JAX, of BENCHES
in bench/reference/jax_bench.py. Every side prints JSON lines with `name`, `variant`, timings and, for
the cross-check, `check_id` + `xcheck` (loss, gradient sums computed from the shared deterministic
inputs of bench/src/inputs.rs and bench/reference/common.py).

To add a workload (e.g. trebuchet-grad, maml-step):
  1. write it on each side, with the same name, the same variants and the same `xcheck` keys;
  2. add a `Workload` below: its warm-up and repeat counts (passed to every side, so they are the same
     everywhere), the sides, the cross-check tolerance and the comparisons to report.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Comparison:
    """reference time / nabla time for one pair of (impl, variant, metric)."""

    nabla_variant: str
    reference: str  # "pytorch" or "jax"
    reference_variant: str
    what: str
    target: float | None = None  # pass when ratio >= target
    metric: str = "median_s"  # "median_s" (steady state) or "first_s" (a true first call, both sides)


@dataclass(frozen=True)
class Workload:
    name: str
    warmup: int  # untimed calls after the first call, on every side
    repeats: int  # timed calls (the median is reported), on every side
    sides: tuple = ("nabla", "pytorch")
    rtol: float = 1e-4  # cross-check tolerance, relative (sums: relative to the sum of |values|)
    comparisons: list = field(default_factory=list)
    single_round: bool = False  # measured once per run (long, or not a speed ratio)
    jax_loop_variants: bool = False  # JAX runs `--variants fori` every round and `unrolled` once
    # nabla variants run in separate fresh processes, one per group (`nabla-bench --variants`), so that
    # each group's first call is a true first call; empty: one process runs every variant
    nabla_processes: tuple = ()


C = Comparison

WORKLOADS = {w.name: w for w in [
    Workload("scalar-chain", 5, 30, ("nabla", "pytorch", "jax"), rtol=1e-3, jax_loop_variants=True,
             nabla_processes=(("record", "no-grad"), ("record-compiled",)), comparisons=[
        C("record", "pytorch", "record", "10k recorded ops, fwd+bwd, vs PyTorch eager", 30.0),
        C("no-grad", "pytorch", "no-grad", "10k ops without recording, vs PyTorch eager (no_grad)"),
        C("record", "jax", "grad-fori", "vs JAX jit(value_and_grad), fori_loop, steady state"),
        C("record", "jax", "grad-unrolled", "vs JAX jit(value_and_grad), unrolled loop, steady state"),
        C("record", "jax", "grad-fori", "first call vs JAX first call (trace+compile+run), fori_loop",
          metric="first_s"),
        C("record", "jax", "grad-unrolled", "first call vs JAX first call (trace+compile+run), unrolled",
          metric="first_s"),
        C("record-compiled", "jax", "grad-fori", "nabla::compile vs JAX jit(value_and_grad), fori_loop, steady state",
          1 / 3),
        C("record-compiled", "jax", "grad-unrolled", "nabla::compile first call (trace+replay) vs JAX first call, unrolled",
          10.0, "first_s"),
        C("record-compiled", "jax", "grad-fori", "nabla::compile first call (trace+replay) vs JAX first call, fori_loop",
          10.0, "first_s"),
    ]),
    Workload("rk4-pendulum", 3, 20, ("nabla", "pytorch", "jax"), rtol=1e-3, jax_loop_variants=True,
             nabla_processes=(("grad", "hvp-auto", "hvp-fwd-rev", "hvp-rev-rev"), ("grad-compiled", "hvp-compiled")),
             comparisons=[
        C("grad", "pytorch", "grad", "gradient through 1,000 RK4 steps vs PyTorch eager", 30.0),
        C("grad", "jax", "grad-unrolled", "first call vs JAX first call (trace+compile+run), unrolled loop",
          1.0, "first_s"),
        C("grad", "jax", "grad-fori", "first call vs JAX first call (trace+compile+run), fori_loop",
          1.0, "first_s"),
        C("grad", "jax", "grad-unrolled", "vs JAX jitted steady state, unrolled loop"),
        C("grad", "jax", "grad-fori", "vs JAX jitted steady state, fori_loop"),
        C("grad-compiled", "jax", "grad-fori", "nabla::compile vs JAX jitted steady state, fori_loop", 1 / 3),
        C("grad-compiled", "jax", "grad-unrolled", "nabla::compile vs JAX jitted steady state, unrolled loop", 1 / 3),
        C("grad-compiled", "jax", "grad-unrolled",
          "nabla::compile first call (trace+replay) vs JAX first call, unrolled loop", 10.0, "first_s"),
        C("grad-compiled", "jax", "grad-fori",
          "nabla::compile first call (trace+replay) vs JAX first call, fori_loop", 10.0, "first_s"),
    ]),
    # the rk4-pendulum program over 1,024 parameter sets ([1024] tensors), loss summed over the batch;
    # PyTorch eager is slow here (100k ops on [1024] tensors per call), hence the small counts
    Workload("rk4-pendulum-batch", 1, 5, ("nabla", "pytorch", "jax"), rtol=1e-3, comparisons=[
        C("grad-compiled", "jax", "grad-fori", "nabla::compile vs JAX jit(value_and_grad), fori_loop, steady state",
          1.0),
        C("grad-compiled", "jax", "grad-fori", "nabla::compile first call (trace+replay) vs JAX first call, fori_loop",
          metric="first_s"),
        C("grad-compiled", "pytorch", "grad", "nabla::compile vs PyTorch eager"),
        C("grad", "jax", "grad-fori", "nabla eager vs JAX jit(value_and_grad), fori_loop, steady state"),
        C("grad", "pytorch", "grad", "nabla eager vs PyTorch eager"),
    ]),
    Workload("trebuchet-grad", 3, 20, rtol=1e-6, comparisons=[
        C("grad", "pytorch", "grad", "one trebuchet shot (3 event phases, Tsit5, f64) and its gradient vs PyTorch eager",
          20.0),
    ]),
    Workload("maml-step", 5, 30, ("nabla", "pytorch", "jax"), rtol=1e-3, comparisons=[
        C("second-order", "pytorch", "second-order", "MAML meta-step (25 tasks, second order) vs PyTorch eager", 1.0),
        C("second-order", "jax", "second-order", "vs JAX jit(value_and_grad) with vmap, steady state"),
        C("second-order", "jax", "second-order", "first call vs JAX first call (trace+compile+run)",
          metric="first_s"),
    ]),
    Workload("memn2n-step", 5, 30, rtol=1e-4, comparisons=[
        C("batch32", "pytorch", "batch32", "MemN2N training step (3 hops, bAbI sizes, batch 32, SGD) vs PyTorch eager", 1.0),
    ]),
    Workload("matmul", 3, 20, comparisons=[
        C("256", "pytorch", "256", "256×256 f32 vs PyTorch"),
        C("512", "pytorch", "512", "512×512 f32 vs PyTorch"),
        C("1024", "pytorch", "1024", "1024×1024 f32 vs PyTorch", 0.9),
    ]),
    Workload("conv2d", 3, 20, comparisons=[
        C("fwd+bwd", "pytorch", "fwd+bwd", "two 3×3 convs + ReLU, fwd+bwd vs PyTorch", 1.0),
    ]),
    Workload("mlp-step", 10, 30, ("nabla", "pytorch", "jax"), rtol=1e-3, comparisons=[
        C("batch128", "pytorch", "batch128", "MLP Adam step, batch 128, vs PyTorch (faster Adam)", 1.0),
        C("batch1", "pytorch", "batch1", "MLP Adam step, batch 1, vs PyTorch (faster Adam)", 3.0),
        C("batch128", "jax", "batch128", "MLP Adam step, batch 128, vs JAX jit (whole step)"),
        C("batch1", "jax", "batch1", "MLP Adam step, batch 1, vs JAX jit (whole step)"),
    ]),
    Workload("lstm", 3, 20, comparisons=[
        C("fwd+bwd", "pytorch", "fwd+bwd", "LSTM fwd+bwd vs torch.nn.LSTM", 1.0),
    ]),
    Workload("dnc-step", 3, 20, rtol=1e-3, comparisons=[
        C("step", "pytorch", "step", "DNC training step (batch 16, 20 steps, 32 x 16 memory, 4 reads, RMSProp) vs PyTorch eager", 2.0),
    ]),
    Workload("cnn-step", 5, 20, ("nabla", "pytorch", "jax"), rtol=1e-3, comparisons=[
        C("batch64", "pytorch", "batch64", "CNN Adam step, batch 64, vs PyTorch (faster Adam)", 1.0),
        C("batch64", "jax", "batch64", "CNN Adam step, batch 64, vs JAX jit (whole step)"),
    ]),
    Workload("mlp-memory", 0, 0, rtol=1e-2, single_round=True, comparisons=[
        C("batch128", "pytorch", "batch128", "10k MLP steps: time per step (memory below)"),
    ]),
    Workload("graph-memory", 0, 0, rtol=1e-2, single_round=True),
]}

ALL = list(WORKLOADS)
