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
    /// Rayon worker threads (the reference frameworks are given the same number).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Untimed calls after the first one (default: per benchmark).
    #[arg(long)]
    warmup: Option<usize>,
    /// Timed calls; the median is reported (default: per benchmark).
    #[arg(long)]
    repeats: Option<usize>,
    /// Matrix sizes for `matmul`.
    #[arg(long, value_delimiter = ',', default_value = "256,512,1024")]
    sizes: Vec<usize>,
    /// Round number, copied into the output (set by bench/run.sh).
    #[arg(long)]
    round: Option<usize>,
}

/// What a benchmark needs from the command line.
struct Ctx {
    warmup: Option<usize>,
    repeats: Option<usize>,
    sizes: Vec<usize>,
}

impl Ctx {
    fn counts(&self, warmup: usize, repeats: usize) -> (usize, usize) {
        (
            self.warmup.unwrap_or(warmup),
            self.repeats.unwrap_or(repeats),
        )
    }
}

/// One measurement: a variant's samples plus extra figures; failures are reported, not hidden.
struct Measurement {
    variant: String,
    samples: nb::Samples,
    warmup: usize,
    extra: Map<String, Value>,
    check_failed: Option<String>,
}

impl Measurement {
    fn new(variant: impl Into<String>, samples: nb::Samples, warmup: usize) -> Measurement {
        Measurement {
            variant: variant.into(),
            samples,
            warmup,
            extra: Map::new(),
            check_failed: None,
        }
    }
    fn with(mut self, key: &str, value: Value) -> Measurement {
        self.extra.insert(key.to_string(), value);
        self
    }
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
        run: None,
        missing: "needs nabla's nn layers (Linear, cross-entropy) and optim::Adam",
    },
    Bench {
        name: "lstm",
        about: "LSTM 32→128, 50 steps, batch 16, forward+backward w.r.t. all weights",
        run: None,
        missing: "needs nabla's nn::LSTM",
    },
    Bench {
        name: "cnn-step",
        about: "LeNet-style CNN training step with Adam on MNIST, batch 64",
        run: None,
        missing: "needs nabla's conv2d, max-pool, nn layers and optim::Adam",
    },
    Bench {
        name: "mlp-memory",
        about: "10,000 mlp-step iterations at batch 128, resident memory every 100 steps",
        run: None,
        missing: "needs nabla's nn layers and optim::Adam",
    },
];

fn run_scalar_chain(ctx: &Ctx) -> Result<Vec<Measurement>, String> {
    let (warmup, repeats) = ctx.counts(5, 30);
    let inputs = nb::scalar_chain_inputs();
    let (y, g) = nb::scalar_chain_grad(&inputs);
    let rec = nb::measure(warmup, repeats, || nb::scalar_chain_grad(&inputs));
    let (warmup_ng, repeats_ng) = ctx.counts(5, 50);
    let norec = nb::measure(warmup_ng, repeats_ng, || nb::scalar_chain_no_grad(&inputs));
    let ops = 2 * nb::CHAIN_STEPS;
    Ok(vec![
        Measurement::new("record", rec.clone(), warmup)
            .with("ops", json!(ops))
            .with("ns_per_op", json!(rec.median() / ops as f64 * 1e9))
            .with("y", json!(y.item()))
            .with("grad", json!([g[0].item(), g[1].item()])),
        Measurement::new("no-grad", norec.clone(), warmup_ng)
            .with("ops", json!(ops))
            .with("ns_per_op", json!(norec.median() / ops as f64 * 1e9)),
    ])
}

fn run_rk4_pendulum(ctx: &Ctx) -> Result<Vec<Measurement>, String> {
    let (warmup, repeats) = ctx.counts(3, 20);
    let params = nb::pendulum_params();
    let s = nb::measure(warmup, repeats, || nb::pendulum_grad(&params));
    let (loss, g) = nb::pendulum_grad(&params);
    let grad: Vec<f64> = g.iter().map(Tensor::item).collect();
    let mut m = Measurement::new("grad", s, warmup)
        .with("loss", json!(loss.item()))
        .with("grad", json!(grad))
        .with("expected_loss", json!(nb::PENDULUM_EXPECTED.0))
        .with("expected_grad", json!(nb::PENDULUM_EXPECTED.1));
    m.check_failed = nb::check_pendulum(loss.item(), &grad).err();
    let ok = m.check_failed.is_none();
    Ok(vec![
        m.with("check", json!(if ok { "ok" } else { "FAILED" })),
    ])
}

fn run_matmul(ctx: &Ctx) -> Result<Vec<Measurement>, String> {
    let mut out = Vec::new();
    for &n in &ctx.sizes {
        let (warmup, repeats) = ctx.counts(3, if n <= 512 { 50 } else { 20 });
        let (a, b) = nb::matmul_inputs(n, 0);
        let s = nb::measure(warmup, repeats, || a.matmul(&b));
        let gflops = nb::matmul_flops(n) / s.median() / 1e9;
        out.push(
            Measurement::new(n.to_string(), s, warmup)
                .with("n", json!(n))
                .with("gflops", json!(gflops)),
        );
    }
    Ok(out)
}

#[cfg(feature = "conv")]
fn run_conv2d(ctx: &Ctx) -> Result<Vec<Measurement>, String> {
    let (warmup, repeats) = ctx.counts(3, 20);
    let p = nb::conv2d_inputs(0);
    let s = nb::measure(warmup, repeats, || nb::conv2d_grad(&p));
    let (loss, _) = nb::conv2d_grad(&p);
    Ok(vec![
        Measurement::new("fwd+bwd", s, warmup).with("loss", json!(loss.item())),
    ])
}

#[cfg(not(feature = "conv"))]
fn run_conv2d(_: &Ctx) -> Result<Vec<Measurement>, String> {
    Err("built without the `conv` feature (needs Tensor::conv2d): cargo build -p nabla-bench --features conv".into())
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
    if cli.list {
        for b in REGISTRY {
            let state = match (b.run, b.name) {
                (None, _) => format!("not yet: {}", b.missing),
                (Some(_), "conv2d") if !nb::HAS_CONV => "needs --features conv".to_string(),
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
                    r.insert("cpu_median_s".into(), json!(m.samples.cpu_median()));
                    r.insert("repeats".into(), json!(m.samples.times.len()));
                    r.insert("warmup".into(), json!(m.warmup));
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
