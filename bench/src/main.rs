//! `nabla-bench`: runs named benchmarks of nabla and prints one JSON line per measurement.
//!
//! ```text
//! nabla-bench --list
//! nabla-bench scalar-chain rk4-pendulum matmul --threads 2 --repeats 30
//! ```
//!
//! `bench/run.sh` runs this binary and the PyTorch/JAX scripts in `bench/reference/` in alternating
//! rounds and turns their JSON lines into `bench/results/latest.{json,md}`.

use clap::Parser;
use nabla::Tensor;
use nabla::nn::Module;
use nabla_bench as nb;
use serde_json::{Map, Value, json};
use std::process::ExitCode;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "nabla-bench",
    about = "Benchmarks of nabla, one JSON line per measurement"
)]
struct Cli {
    /// Benchmarks to run (`--list` shows them); `all` runs every one.
    names: Vec<String>,
    /// List the benchmarks and whether this build can run them.
    #[arg(long)]
    list: bool,
    /// Print one JSON line describing the host (CPU features detected, kernels chosen) and exit.
    #[arg(long)]
    host: bool,
    /// Print one JSON line with the measured peak f32 GFLOP/s on `--threads` threads (an FMA
    /// throughput probe) and the speed of an L1-resident GEMM micro-kernel loop (see
    /// bench/src/peak.rs) and exit.
    #[arg(long)]
    peak: bool,
    /// Rayon worker threads (the reference frameworks are given the same number).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Untimed calls after the first one (default: per benchmark; the harness passes the same
    /// counts to every side).
    #[arg(long)]
    warmup: Option<usize>,
    /// Timed calls; the median is reported (default: per benchmark).
    #[arg(long)]
    repeats: Option<usize>,
    /// Chain steps of graph-memory (2 recorded operations each).
    #[arg(long, default_value_t = 500_000)]
    graph_steps: usize,
    /// Matrix sizes for `matmul`.
    #[arg(long, value_delimiter = ',', default_value = "256,512,1024")]
    sizes: Vec<usize>,
    /// Round number, copied into the output (set by bench/run.sh).
    #[arg(long)]
    round: Option<usize>,
    /// Only these variants (comma-separated) of the benchmarks that support it (scalar-chain,
    /// rk4-pendulum, rk4-pendulum-batch), so that a variant's first call is the process's first.
    #[arg(long, value_delimiter = ',')]
    variants: Option<Vec<String>>,
    /// MNIST folder (IDX files) for mlp-step, cnn-step and mlp-memory [default: the repository's data/mnist].
    #[arg(long)]
    data: Option<std::path::PathBuf>,
}

/// What a benchmark needs from the command line.
struct Ctx {
    warmup: Option<usize>,
    repeats: Option<usize>,
    sizes: Vec<usize>,
    graph_steps: usize,
    data: std::path::PathBuf,
    variants: Option<Vec<String>>,
}

impl Ctx {
    /// Whether `--variants` selects this variant (every variant without the option).
    fn wants(&self, variant: &str) -> bool {
        self.variants
            .as_ref()
            .is_none_or(|vs| vs.iter().any(|v| v == variant))
    }

    fn counts(&self, warmup: usize, repeats: usize) -> (usize, usize) {
        (
            self.warmup.unwrap_or(warmup),
            self.repeats.unwrap_or(repeats),
        )
    }
}

/// One measurement: a variant's samples plus extra figures; failures are reported, not hidden.
/// `xcheck` holds the figures computed from the shared inputs (loss, gradient sums) that the harness
/// compares with the references' figures of the same check id (`name/variant`).
struct Measurement {
    variant: String,
    samples: nb::Samples,
    warmup: usize,
    extra: Map<String, Value>,
    xcheck: Map<String, Value>,
    check_failed: Option<String>,
}

impl Measurement {
    fn new(variant: impl Into<String>, samples: nb::Samples, warmup: usize) -> Measurement {
        Measurement {
            variant: variant.into(),
            samples,
            warmup,
            extra: Map::new(),
            xcheck: Map::new(),
            check_failed: None,
        }
    }
    fn with(mut self, key: &str, value: Value) -> Measurement {
        self.extra.insert(key.to_string(), value);
        self
    }
    /// Adds cross-check figures.
    fn check<K: AsRef<str>>(mut self, figures: impl IntoIterator<Item = (K, f64)>) -> Measurement {
        for (k, v) in figures {
            self.xcheck.insert(k.as_ref().to_string(), json!(v));
        }
        self
    }
}

/// Sum and sum of absolute values of tensors, as cross-check figures `{prefix}_sum`, `{prefix}_abs`.
fn sums_check<'a>(prefix: &str, ts: impl IntoIterator<Item = &'a Tensor>) -> [(String, f64); 2] {
    let (s, a) = nb::inputs::sums(ts);
    [(format!("{prefix}_sum"), s), (format!("{prefix}_abs"), a)]
}

type Runner = fn(&Ctx) -> Result<Vec<Measurement>, String>;

/// A benchmark of the spec. `run: None` marks one whose nabla side waits for a library feature.
struct Bench {
    name: &'static str,
    about: &'static str,
    run: Option<Runner>,
    missing: &'static str,
}

/// Every benchmark of `/work/shared/BENCHMARKS-SPEC.md`. To add one: write its workload in `lib.rs`
/// (same operation sequence as `bench/reference/torch_bench.py`), a runner below, and set `run`.
const REGISTRY: &[Bench] = &[
    Bench {
        name: "scalar-chain",
        about: "per-op overhead: 5,000 × (y·w, y+0.001) on 0-d tensors, forward+backward, and without recording",
        run: Some(run_scalar_chain),
        missing: "",
    },
    Bench {
        name: "rk4-pendulum",
        about: "gradient of a damped pendulum through 1,000 RK4 steps w.r.t. (b, g, L)",
        run: Some(run_rk4_pendulum),
        missing: "",
    },
    Bench {
        name: "rk4-pendulum-batch",
        about: "rk4-pendulum over 1,024 parameter sets ([1024] tensors), loss summed; gradient, eager and nabla::compile",
        run: Some(run_rk4_pendulum_batch),
        missing: "",
    },
    Bench {
        name: "matmul",
        about: "C = A·B, n×n f32 (n = 256, 512, 1024), GFLOP/s",
        run: Some(run_matmul),
        missing: "",
    },
    Bench {
        name: "conv2d",
        about: "64×1×28×28 → conv 1→32 3×3 → ReLU → conv 32→64 3×3 → sum; forward+backward",
        run: Some(run_conv2d),
        missing: "",
    },
    Bench {
        name: "mlp-step",
        about: "MLP 784-128-10 training step with Adam on MNIST, batch 128 and 1",
        run: Some(run_mlp_step),
        missing: "",
    },
    Bench {
        name: "lstm",
        about: "LSTM 32→128, 50 steps, batch 16, forward+backward w.r.t. all weights",
        run: Some(run_lstm),
        missing: "",
    },
    Bench {
        name: "cnn-step",
        about: "LeNet-style CNN training step with Adam on MNIST, batch 64",
        run: Some(run_cnn_step),
        missing: "",
    },
    Bench {
        name: "trebuchet-grad",
        about: "one trebuchet shot (3 event-separated phases, Tsit5, f64) at 90 kg, 45 deg, wind 0: distance and its gradient w.r.t. (mass, angle, wind)",
        run: Some(run_trebuchet_grad),
        missing: "",
    },
    Bench {
        name: "maml-step",
        about: "one second-order MAML meta-step on sinusoid regression: 25 tasks (batched), K = 10, 1-40-40-1 ReLU net, one inner SGD step; meta-loss and gradient",
        run: Some(run_maml_step),
        missing: "",
    },
    Bench {
        name: "memn2n-step",
        about: "end-to-end memory network training step (3 hops, d 20, 50 slots x 8 words, vocabulary 40, batch 32): forward, cross-entropy, backward, clip, SGD",
        run: Some(run_memn2n_step),
        missing: "",
    },
    Bench {
        name: "dnc-step",
        about: "one DNC training step with RMSProp: batch 16, 20 steps of 8 bits, LSTM 64, memory 32 x 16, 4 read heads",
        run: Some(run_dnc_step),
        missing: "",
    },
    Bench {
        name: "mlp-memory",
        about: "10,000 mlp-step iterations at batch 128, resident memory every 100 steps",
        run: Some(run_mlp_memory),
        missing: "",
    },
    Bench {
        name: "graph-memory",
        about: "resident bytes per recorded scalar op (1M ops), and after the graph is dropped",
        run: Some(run_graph_memory),
        missing: "",
    },
];

fn run_scalar_chain(ctx: &Ctx) -> Result<Vec<Measurement>, String> {
    let (warmup, repeats) = ctx.counts(5, 30);
    let inputs = nb::scalar_chain_inputs();
    let ops = 2 * nb::CHAIN_STEPS;
    let mut out = Vec::new();
    // The first timed call of each process is its first workload call (nothing runs before);
    // the harness runs the compiled variant in a process of its own (`--variants`).
    if ctx.wants("record") {
        let rec = nb::measure(warmup, repeats, || nb::scalar_chain_grad(&inputs));
        let (y, g) = nb::scalar_chain_grad(&inputs);
        out.push(
            Measurement::new("record", rec.clone(), warmup)
                .with("ops", json!(ops))
                .with("ns_per_op", json!(rec.median() / ops as f64 * 1e9))
                .check([
                    ("y", y.item()),
                    ("grad_x", g[0].item()),
                    ("grad_w", g[1].item()),
                ]),
        );
    }
    if ctx.wants("no-grad") {
        let norec = nb::measure(warmup, repeats, || nb::scalar_chain_no_grad(&inputs));
        let y0 = nb::scalar_chain_no_grad(&inputs).item();
        out.push(
            Measurement::new("no-grad", norec.clone(), warmup)
                .with("ops", json!(ops))
                .with("ns_per_op", json!(norec.median() / ops as f64 * 1e9))
                .check([("y", y0)]),
        );
    }
    if ctx.wants("record-compiled") {
        let cf = nb::scalar_chain_compiled();
        let comp = nb::measure(warmup, repeats, || cf.value_and_grad(&inputs));
        let (yc, gc) = cf.value_and_grad(&inputs);
        out.push(
            Measurement::new("record-compiled", comp.clone(), warmup)
                .with("ops", json!(ops))
                .with("ns_per_op", json!(comp.median() / ops as f64 * 1e9))
                .with("tape_len", json!(cf.stats().tape_len))
                .with("check_id", json!("scalar-chain/record"))
                .check([
                    ("y", yc.item()),
                    ("grad_x", gc[0].item()),
                    ("grad_w", gc[1].item()),
                ]),
        );
    }
    Ok(out)
}

/// A compiled rk4-pendulum measurement, checked against the spec's figures.
fn pendulum_measurement(
    variant: &str,
    s: nb::Samples,
    warmup: usize,
    loss: f64,
    grad: Vec<f64>,
) -> Measurement {
    let mut m = Measurement::new(variant, s, warmup)
        .with("loss", json!(loss))
        .with("grad", json!(grad))
        .with("expected_loss", json!(nb::PENDULUM_EXPECTED.0))
        .with("expected_grad", json!(nb::PENDULUM_EXPECTED.1))
        .with("check_id", json!("rk4-pendulum/grad"))
        .check([
            ("loss", loss),
            ("grad_b", grad[0]),
            ("grad_g", grad[1]),
            ("grad_L", grad[2]),
        ]);
    m.check_failed = nb::check_pendulum(loss, &grad).err();
    let ok = m.check_failed.is_none();
    m.with("check", json!(if ok { "ok" } else { "FAILED" }))
}

fn run_rk4_pendulum(ctx: &Ctx) -> Result<Vec<Measurement>, String> {
    let (warmup, repeats) = ctx.counts(3, 20);
    let params = nb::pendulum_params();
    let mut out = Vec::new();
    let hvp_repeats = repeats.min(5);
    if ctx.wants("grad") {
        let s = nb::measure(warmup, repeats, || nb::pendulum_grad(&params));
        let grad_s = s.median();
        let (loss, g) = nb::pendulum_grad(&params);
        let grad: Vec<f64> = g.iter().map(Tensor::item).collect();
        out.push(pendulum_measurement("grad", s, warmup, loss.item(), grad));
        // Hessian-vector products along (1, 1, 1): the default mode (a trace, then forward over
        // reverse on its tape) and both eager modes, as a multiple of one eager gradient.
        for (variant, mode) in [
            ("hvp-auto", nabla::HvpMode::Auto),
            ("hvp-fwd-rev", nabla::HvpMode::ForwardOverReverse),
            ("hvp-rev-rev", nabla::HvpMode::ReverseOverReverse),
        ] {
            if !ctx.wants(variant) {
                continue;
            }
            let sh = nb::measure(1, hvp_repeats, || nb::pendulum_hvp(&params, mode));
            let hv: Vec<f64> = nb::pendulum_hvp(&params, mode)
                .iter()
                .map(Tensor::item)
                .collect();
            let ratio = sh.median() / grad_s;
            out.push(
                Measurement::new(variant, sh, 1)
                    .with("hv", json!(hv))
                    .with("cost_in_gradients", json!(ratio))
                    .with("gradient_variant", json!("grad")),
            );
        }
    }
    if ctx.wants("grad-compiled") {
        // A fresh compiled function: its first call traces, then replays.
        let cf = nb::pendulum_compiled();
        let sc = nb::measure(warmup, repeats, || cf.value_and_grad(&params));
        let grad_s = sc.median();
        let (closs, cg) = cf.value_and_grad(&params);
        let cgrad: Vec<f64> = cg.iter().map(Tensor::item).collect();
        let mut mc = pendulum_measurement("grad-compiled", sc, warmup, closs.item(), cgrad)
            .with("tape_len", json!(cf.stats().tape_len));
        if cf.stats().replays == 0 {
            mc.check_failed = Some("rk4-pendulum: the compiled path did not replay".into());
        }
        out.push(mc);
        if ctx.wants("hvp-compiled") {
            // forward over reverse on the tape, as a multiple of one compiled gradient
            let sh = nb::measure(1, repeats, || nb::pendulum_hvp_compiled(&cf, &params));
            let hv: Vec<f64> = nb::pendulum_hvp_compiled(&cf, &params)
                .iter()
                .map(Tensor::item)
                .collect();
            let eager: Vec<f64> = nb::pendulum_hvp(&params, nabla::HvpMode::ReverseOverReverse)
                .iter()
                .map(Tensor::item)
                .collect();
            let ratio = sh.median() / grad_s;
            let mut m = Measurement::new("hvp-compiled", sh, 1)
                .with("hv", json!(hv))
                .with("hv_eager", json!(eager))
                .with("cost_in_gradients", json!(ratio))
                .with("gradient_variant", json!("grad-compiled"));
            if hv
                .iter()
                .zip(&eager)
                .any(|(a, b)| (a - b).abs() > 1e-3 * (1.0 + b.abs()))
            {
                m.check_failed = Some(format!(
                    "rk4-pendulum: compiled hvp {hv:?} vs eager {eager:?}"
                ));
            }
            out.push(m);
        }
    }
    Ok(out)
}

fn run_rk4_pendulum_batch(ctx: &Ctx) -> Result<Vec<Measurement>, String> {
    let (warmup, repeats) = ctx.counts(1, 5);
    let params = nb::pendulum_batch_params();
    let mut out = Vec::new();
    let check = |loss: &Tensor, g: &[Tensor]| {
        let mut c = vec![("loss".to_string(), loss.item())];
        for (name, t) in ["b", "g", "L"].iter().zip(g) {
            c.extend(sums_check(&format!("grad_{name}"), [t]));
        }
        c
    };
    // The compiled variant first: its first call is the process's first workload call.
    if ctx.wants("grad-compiled") {
        let cf = nb::pendulum_batch_compiled();
        let s = nb::measure(warmup, repeats, || cf.value_and_grad(&params));
        let (loss, g) = cf.value_and_grad(&params);
        let mut m = Measurement::new("grad-compiled", s, warmup)
            .with("tape_len", json!(cf.stats().tape_len))
            .with("check_id", json!("rk4-pendulum-batch/grad"))
            .check(check(&loss, &g));
        if cf.stats().replays == 0 {
            m.check_failed = Some("rk4-pendulum-batch: the compiled path did not replay".into());
        }
        out.push(m);
    }
    if ctx.wants("grad") {
        let s = nb::measure(warmup, repeats, || nb::pendulum_batch_grad(&params));
        let (loss, g) = nb::pendulum_batch_grad(&params);
        out.push(Measurement::new("grad", s, warmup).check(check(&loss, &g)));
    }
    Ok(out)
}

fn run_trebuchet_grad(ctx: &Ctx) -> Result<Vec<Measurement>, String> {
    let (warmup, repeats) = ctx.counts(3, 20);
    let p = nb::trebuchet_inputs();
    let s = nb::measure(warmup, repeats, || nb::trebuchet_grad(&p));
    let (distance, grad, steps) = nb::trebuchet_grad(&p)?;
    Ok(vec![
        Measurement::new("grad", s, warmup)
            .with("distance", json!(distance))
            .with("grad", json!(grad))
            .with("steps", json!(steps))
            .check([
                ("distance", distance),
                ("grad_mass", grad[0]),
                ("grad_angle", grad[1]),
                ("grad_wind", grad[2]),
            ]),
    ])
}

fn run_maml_step(ctx: &Ctx) -> Result<Vec<Measurement>, String> {
    let (warmup, repeats) = ctx.counts(5, 30);
    let (theta, data) = nb::maml::maml_inputs();
    let s = nb::measure(warmup, repeats, || nb::maml::maml_step(&theta, &data));
    let (loss, grads) = nb::maml::maml_step(&theta, &data);
    Ok(vec![
        Measurement::new("second-order", s, warmup).check(nb::maml::maml_xcheck(&loss, &grads)),
    ])
}

fn run_matmul(ctx: &Ctx) -> Result<Vec<Measurement>, String> {
    let mut out = Vec::new();
    for &n in &ctx.sizes {
        let (warmup, repeats) = ctx.counts(3, 20);
        let (a, b) = nb::matmul_inputs(n);
        let s = nb::measure(warmup, repeats, || a.matmul(&b));
        let gflops = nb::matmul_flops(n) / s.median() / 1e9;
        let c = a.matmul(&b);
        let check = sums_check("c", [&c]);
        out.push(
            Measurement::new(n.to_string(), s, warmup)
                .with("n", json!(n))
                .with("gflops", json!(gflops))
                .check(check),
        );
    }
    Ok(out)
}

fn run_conv2d(ctx: &Ctx) -> Result<Vec<Measurement>, String> {
    let (warmup, repeats) = ctx.counts(3, 20);
    let p = nb::conv2d_inputs();
    let s = nb::measure(warmup, repeats, || nb::conv2d_grad(&p));
    let (loss, g) = nb::conv2d_grad(&p);
    let check = sums_check("grad", &g);
    Ok(vec![
        Measurement::new("fwd+bwd", s, warmup)
            .with("loss", json!(loss.item()))
            .check([("loss", loss.item())])
            .check(check),
    ])
}

/// Times blocks of `k` training steps and reports seconds per step (as the PyTorch script does).
fn step_measurement(
    variant: &str,
    warmup: usize,
    repeats: usize,
    k: usize,
    mut step: impl FnMut() -> f64,
) -> Measurement {
    let mut losses = Vec::new();
    let s = nb::measure(warmup, repeats, || {
        let mut l = 0.0;
        for _ in 0..k {
            l = step();
        }
        losses.push(l);
    });
    let per = |v: &[f64]| v.iter().map(|t| t / k as f64).collect::<Vec<_>>();
    let s = nb::Samples {
        first: s.first / k as f64,
        fresh: s.fresh,
        times: per(&s.times),
        cpu_times: per(&s.cpu_times),
    };
    Measurement::new(variant, s, warmup)
        .with("steps_per_sample", json!(k))
        .with("loss_first", json!(losses[0]))
        .with("loss_last", json!(losses[losses.len() - 1]))
}

fn run_mlp_step(ctx: &Ctx) -> Result<Vec<Measurement>, String> {
    let mut out = Vec::new();
    for (batch, k) in [(128, 10), (1, 100)] {
        let (warmup, repeats) = ctx.counts(10, 30);
        let mut model = nb::mlp();
        let mut opt = nabla::optim::Adam::new(1e-3);
        let mut data = nb::mlp_batches(&ctx.data, batch)?;
        let m = step_measurement(&format!("batch{batch}"), warmup, repeats, k, || {
            nb::training_step(&mut model, &mut opt, &mut data)
        });
        let check = nb::step_check(nb::mlp(), nb::mlp_batches(&ctx.data, batch)?);
        out.push(m.with("batch", json!(batch)).check(check));
    }
    Ok(out)
}

fn run_cnn_step(ctx: &Ctx) -> Result<Vec<Measurement>, String> {
    let (warmup, repeats) = ctx.counts(5, 20);
    let mut model = nb::cnn();
    let mut opt = nabla::optim::Adam::new(1e-3);
    let mut data = nb::cnn_batches(&ctx.data, 64)?;
    let m = step_measurement("batch64", warmup, repeats, 1, || {
        nb::training_step(&mut model, &mut opt, &mut data)
    });
    let check = nb::step_check(nb::cnn(), nb::cnn_batches(&ctx.data, 64)?);
    Ok(vec![m.with("batch", json!(64)).check(check)])
}

fn run_memn2n_step(ctx: &Ctx) -> Result<Vec<Measurement>, String> {
    let (warmup, repeats) = ctx.counts(5, 30);
    let mut net = nb::memn2n::model();
    let mut opt = nabla::optim::Sgd::new(0.01);
    let (batch, answers) = nb::memn2n::inputs();
    let m = step_measurement("batch32", warmup, repeats, 5, || {
        nb::memn2n::step(&mut net, &mut opt, &batch, &answers)
    });
    Ok(vec![
        m.with("batch", json!(nb::memn2n::B))
            .check(nb::memn2n::check()),
    ])
}

fn run_dnc_step(ctx: &Ctx) -> Result<Vec<Measurement>, String> {
    let (warmup, repeats) = ctx.counts(3, 20);
    let (mut model, x, y) = nb::dnc::dnc_inputs();
    let mut opt = nb::dnc::dnc_optimizer();
    let m = step_measurement("step", warmup, repeats, 1, || {
        nb::dnc::dnc_step(&mut model, &mut opt, &x, &y)
    });
    Ok(vec![m.check(nb::dnc::dnc_check())])
}

fn run_lstm(ctx: &Ctx) -> Result<Vec<Measurement>, String> {
    let (warmup, repeats) = ctx.counts(3, 20);
    let (lstm, x) = nb::lstm_inputs();
    let s = nb::measure(warmup, repeats, || nb::lstm_grad(&lstm, &x));
    let (loss, g) = nb::lstm_grad(&lstm, &x);
    let params = lstm.parameters();
    let check = sums_check("grad", params.iter().map(|p| g.get(p).expect("gradient")));
    Ok(vec![
        Measurement::new("fwd+bwd", s, warmup)
            .with("loss", json!(loss.item()))
            .check([("loss", loss.item())])
            .check(check),
    ])
}

fn run_mlp_memory(ctx: &Ctx) -> Result<Vec<Measurement>, String> {
    let (steps, every) = (10_000usize, 100usize);
    let mut model = nb::mlp();
    let mut opt = nabla::optim::Adam::new(1e-3);
    let mut data = nb::mlp_batches(&ctx.data, 128)?;
    let mib = (1u64 << 20) as f64;
    let rss0 = nb::rss_bytes().ok_or("cannot read /proc/self/statm")? as f64;
    let (mut rss, mut block_times, mut block_cpu) = (Vec::new(), Vec::new(), Vec::new());
    let t_all = std::time::Instant::now();
    let mut loss = 0.0;
    for _ in 0..steps / every {
        let (t, c) = (std::time::Instant::now(), nb::cpu_time());
        for _ in 0..every {
            loss = nb::training_step(&mut model, &mut opt, &mut data);
        }
        block_times.push(t.elapsed().as_secs_f64() / every as f64);
        block_cpu.push((nb::cpu_time() - c) / every as f64);
        rss.push(nb::rss_bytes().unwrap_or(0) as f64);
    }
    let total = t_all.elapsed().as_secs_f64();
    let base = rss[0];
    let growth = rss[1..].iter().copied().fold(f64::MIN, f64::max) - base;
    let flat = growth <= 0.02 * base + mib;
    let s = nb::Samples {
        first: block_times[0],
        fresh: true,
        times: block_times[1..].to_vec(),
        cpu_times: block_cpu[1..].to_vec(),
    };
    let mut m = Measurement::new("batch128", s, 1)
        .with("steps", json!(steps))
        .with("sample_every", json!(every))
        .with("total_s", json!(total))
        .with("rss_start_mib", json!(rss0 / mib))
        .with("rss_at_100_mib", json!(base / mib))
        .with("rss_last_mib", json!(rss[rss.len() - 1] / mib))
        .with("rss_max_growth_after_100_mib", json!(growth / mib))
        .with("flat", json!(flat))
        .with(
            "rss_mib",
            json!(
                rss.iter()
                    .map(|r| (r / mib * 100.0).round() / 100.0)
                    .collect::<Vec<_>>()
            ),
        )
        .with("loss_last", json!(loss));
    if !flat {
        m.check_failed = Some(format!(
            "resident memory grew by {:.1} MiB after step 100",
            growth / mib
        ));
    }
    Ok(vec![m])
}

fn run_graph_memory(ctx: &Ctx) -> Result<Vec<Measurement>, String> {
    let (t, c) = (std::time::Instant::now(), nb::cpu_time());
    let g = nb::memory::graph_memory(ctx.graph_steps);
    let (total, cpu) = (t.elapsed().as_secs_f64(), nb::cpu_time() - c);
    let mib = (1u64 << 20) as f64;
    let per_op = |b: u64| b.saturating_sub(g.rss_before) as f64 / g.ops as f64;
    let s = nb::Samples {
        first: total,
        fresh: true,
        times: vec![total],
        cpu_times: vec![cpu],
    };
    Ok(vec![
        Measurement::new(format!("{}ops", g.ops), s, 0)
            .with("ops", json!(g.ops))
            .with("bytes_per_op_graph", json!(per_op(g.rss_graph)))
            .with("bytes_per_op_peak", json!(per_op(g.rss_peak)))
            .with("rss_before_mib", json!(g.rss_before as f64 / mib))
            .with("rss_graph_mib", json!(g.rss_graph as f64 / mib))
            .with("rss_peak_mib", json!(g.rss_peak as f64 / mib))
            .with("rss_after_drop_mib", json!(g.rss_after_drop as f64 / mib))
            .with(
                "rss_after_malloc_trim_mib",
                json!(g.rss_after_trim.map(|b| b as f64 / mib)),
            )
            .with("malloc_trim_s", json!(g.trim_s))
            .with("forward_s", json!(g.forward_s))
            .with("backward_s", json!(g.backward_s))
            .with("drop_s", json!(g.drop_s))
            .check([("y", g.y), ("grad_x", g.grad[0]), ("grad_w", g.grad[1])]),
    ])
}

fn emit(record: Map<String, Value>) {
    println!("{}", Value::Object(record));
}

fn base(name: &str, cli: &Cli) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    m.insert("impl".into(), json!("nabla"));
    m.insert("threads".into(), json!(cli.threads));
    if let Some(r) = cli.round {
        m.insert("round".into(), json!(r));
    }
    m
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.host {
        let mut h = nb::host::host_info();
        h["threads"] = json!(cli.threads);
        println!("{h}");
        return ExitCode::SUCCESS;
    }
    if cli.peak {
        let v = match nb::peak::measured_peak(cli.threads, 7) {
            Some((gflops, kind)) => json!({
                "measured_peak_gflops": gflops,
                "probe": kind,
                "threads": cli.threads,
                // the AVX2 loop is only comparable with an AVX2 peak
                "kernel_loop_gflops": if kind.starts_with("AVX2") {
                    nb::peak::kernel_loop(cli.threads, 5)
                } else {
                    None
                },
            }),
            None => json!({"measured_peak_gflops": null, "probe": "no FMA vector unit detected"}),
        };
        println!("{v}");
        return ExitCode::SUCCESS;
    }
    if cli.list {
        for b in REGISTRY {
            let state = match (b.run, b.name) {
                (None, _) => format!("not yet: {}", b.missing),
                _ => "ok".to_string(),
            };
            println!("{:<13} {}  [{state}]", b.name, b.about);
        }
        return ExitCode::SUCCESS;
    }
    if cli.names.is_empty() {
        eprintln!("nabla-bench: name at least one benchmark (or `all`); see --list");
        return ExitCode::from(2);
    }
    let names: Vec<&str> = if cli.names.iter().any(|n| n == "all") {
        REGISTRY.iter().map(|b| b.name).collect()
    } else {
        cli.names.iter().map(String::as_str).collect()
    };
    if let Err(e) = rayon::ThreadPoolBuilder::new()
        .num_threads(cli.threads)
        .build_global()
    {
        eprintln!("nabla-bench: could not set up {} threads: {e}", cli.threads);
        return ExitCode::FAILURE;
    }
    let ctx = Ctx {
        warmup: cli.warmup,
        repeats: cli.repeats,
        sizes: cli.sizes.clone(),
        graph_steps: cli.graph_steps,
        data: cli.data.clone().unwrap_or_else(nb::default_mnist_dir),
        variants: cli.variants.clone(),
    };
    let mut failed = false;
    for name in names {
        let Some(bench) = REGISTRY.iter().find(|b| b.name == name) else {
            eprintln!("nabla-bench: unknown benchmark `{name}`; see --list");
            return ExitCode::from(2);
        };
        let result = match bench.run {
            Some(run) => run(&ctx),
            None => Err(bench.missing.to_string()),
        };
        match result {
            Err(reason) => {
                let mut r = base(name, &cli);
                r.insert("status".into(), json!("unavailable"));
                r.insert("reason".into(), json!(reason));
                emit(r);
            }
            Ok(measurements) => {
                for m in measurements {
                    let mut r = base(name, &cli);
                    r.insert("variant".into(), json!(m.variant));
                    r.insert("status".into(), json!("ok"));
                    r.insert("median_s".into(), json!(m.samples.median()));
                    r.insert("min_s".into(), json!(m.samples.min()));
                    r.insert("first_s".into(), json!(m.samples.first));
                    r.insert("first_call_fresh".into(), json!(m.samples.fresh));
                    r.insert("cpu_median_s".into(), json!(m.samples.cpu_median()));
                    r.insert("repeats".into(), json!(m.samples.times.len()));
                    r.insert("warmup".into(), json!(m.warmup));
                    if !m.xcheck.is_empty() {
                        r.insert("check_id".into(), json!(format!("{name}/{}", m.variant)));
                        r.insert("xcheck".into(), Value::Object(m.xcheck));
                    }
                    r.extend(m.extra);
                    emit(r);
                    if let Some(msg) = m.check_failed {
                        eprintln!("nabla-bench: {msg}");
                        failed = true;
                    }
                }
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
