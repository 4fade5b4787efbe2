//! `nalu-arith`: the static arithmetic task of Madsen and Johansen (ICLR 2020, "Neural
//! Arithmetic Units"), for the units of Trask et al. (2018) in [`nabla::nn`]. An input `x` has 100
//! elements; `a` sums a window of 25 of them (subset ratio 0.25) and `b` another window of 25 that
//! shares half of `a`'s elements (overlap ratio 0.5), at positions fixed per seed; the target is
//! `a + b`, `a - b`, `a · b` or `a / b`. Models train on `x ~ U[1, 2]` (interpolation) and are
//! tested on `x ~ U[2, 6]` (extrapolation).
//!
//! Models, two layers each with a hidden width of 2 (as in the paper): NAC₊ → NAC₊ (`nac_add`),
//! NAC₊ → NAC× (`nac_mul`), NALU → NALU (`nalu`), and an MLP baseline (100 → 64 ReLU → 1). All
//! train with Adam on the MSE (learning rate decaying exponentially from 1e-2 to 1e-5), in f64.
//!
//! Success, after the paper: a seed succeeds when its extrapolation MSE is below that of a
//! near-perfect solution, namely the exact solution with every first-layer weight (relevant or not)
//! moved by ε = 1e-5, the two hidden units in the same or in opposite directions, whichever
//! errs more: threshold = max over s in {+1, -1} of mean((op(a + εS, b + sεS) - op(a, b))²) with
//! `S = Σᵢ xᵢ`, on the extrapolation set.

use crate::experiment::{Config, Context, Experiment, OptSpec, Report, Spec, ZooError};
use crate::train::{Curves, step_seed};
use nabla::nn::{Forward, Linear, Module, Nac, NacMul, Nalu, ParamKind, mse_loss};
use nabla::optim::{Adam, Optimizer};
use nabla::rand::{RngExt, SeedableRng, rngs::StdRng};
use nabla::{DType, Tensor, no_grad};
use serde_json::json;

/// See the module docs.
pub struct NaluArith;

const MODELS: [&str; 4] = ["nac_add", "nac_mul", "nalu", "mlp"];
const OPS: [&str; 4] = ["add", "sub", "mul", "div"];
const INPUT: usize = 100;
const SUBSET: usize = 25;
const OVERLAP: usize = 12; // ⌊0.5 · 25⌋
const EPSILON: f64 = 1e-5;

/// The two windows of `x` that make `a` and `b`: start of `a`, start of `b`.
fn windows(rng: &mut StdRng) -> (usize, usize) {
    let span = 2 * SUBSET - OVERLAP;
    let a0 = rng.random_range(0..=INPUT - span);
    (a0, a0 + SUBSET - OVERLAP)
}

fn apply(op: &str, a: f64, b: f64) -> f64 {
    match op {
        "add" => a + b,
        "sub" => a - b,
        "mul" => a * b,
        _ => a / b,
    }
}

/// `n` inputs from `U[lo, hi]`: `x` `[n, 100]`, targets `[n, 1]`, and `a`, `b`, `Σx` per row.
fn dataset(
    n: usize,
    lo: f64,
    hi: f64,
    op: &str,
    (a0, b0): (usize, usize),
    rng: &mut StdRng,
) -> (Tensor, Tensor, Vec<(f64, f64, f64)>) {
    let mut x = Vec::with_capacity(n * INPUT);
    let mut y = Vec::with_capacity(n);
    let mut parts = Vec::with_capacity(n);
    for _ in 0..n {
        let row: Vec<f64> = (0..INPUT).map(|_| rng.random_range(lo..hi)).collect();
        let a: f64 = row[a0..a0 + SUBSET].iter().sum();
        let b: f64 = row[b0..b0 + SUBSET].iter().sum();
        y.push(apply(op, a, b));
        parts.push((a, b, row.iter().sum()));
        x.extend(row);
    }
    (
        Tensor::from_vec(x, [n, INPUT]),
        Tensor::from_vec(y, [n, 1]),
        parts,
    )
}

/// The success threshold of the module docs.
fn threshold(op: &str, parts: &[(f64, f64, f64)]) -> f64 {
    [1.0, -1.0]
        .iter()
        .map(|s| {
            parts
                .iter()
                .map(|&(a, b, sum)| {
                    let d = apply(op, a + EPSILON * sum, b + s * EPSILON * sum) - apply(op, a, b);
                    d * d
                })
                .sum::<f64>()
                / parts.len() as f64
        })
        .fold(0.0, f64::max)
}

/// One of the four models.
enum Model {
    NacAdd(Nac, Nac),
    NacMul(Nac, NacMul),
    Nalu(Nalu, Nalu),
    Mlp(Linear, Linear),
}

impl Model {
    fn new(kind: &str, hidden: usize, rng: &mut StdRng) -> Model {
        let f = DType::F64;
        match kind {
            "nac_add" => Model::NacAdd(Nac::new(INPUT, 2, f, rng), Nac::new(2, 1, f, rng)),
            "nac_mul" => Model::NacMul(Nac::new(INPUT, 2, f, rng), NacMul::new(2, 1, f, rng)),
            "nalu" => Model::Nalu(Nalu::new(INPUT, 2, f, rng), Nalu::new(2, 1, f, rng)),
            _ => Model::Mlp(
                Linear::with_options(INPUT, hidden, true, f, rng),
                Linear::with_options(hidden, 1, true, f, rng),
            ),
        }
    }
}

impl Forward for Model {
    fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            Model::NacAdd(a, b) => b.forward(&a.forward(x)),
            Model::NacMul(a, b) => b.forward(&a.forward(x)),
            Model::Nalu(a, b) => b.forward(&a.forward(x)),
            Model::Mlp(a, b) => b.forward(&a.forward(x).relu()),
        }
    }
}

impl Module for Model {
    fn visit(&self, p: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
        match self {
            Model::NacAdd(a, b) => (a.visit(&format!("{p}0"), f), b.visit(&format!("{p}1"), f)),
            Model::NacMul(a, b) => (a.visit(&format!("{p}0"), f), b.visit(&format!("{p}1"), f)),
            Model::Nalu(a, b) => (a.visit(&format!("{p}0"), f), b.visit(&format!("{p}1"), f)),
            Model::Mlp(a, b) => (a.visit(&format!("{p}0"), f), b.visit(&format!("{p}1"), f)),
        };
    }
    fn visit_mut(&mut self, p: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
        match self {
            Model::NacAdd(a, b) => (
                a.visit_mut(&format!("{p}0"), f),
                b.visit_mut(&format!("{p}1"), f),
            ),
            Model::NacMul(a, b) => (
                a.visit_mut(&format!("{p}0"), f),
                b.visit_mut(&format!("{p}1"), f),
            ),
            Model::Nalu(a, b) => (
                a.visit_mut(&format!("{p}0"), f),
                b.visit_mut(&format!("{p}1"), f),
            ),
            Model::Mlp(a, b) => (
                a.visit_mut(&format!("{p}0"), f),
                b.visit_mut(&format!("{p}1"), f),
            ),
        };
    }
}

struct Settings {
    steps: usize,
    batch: usize,
    lr: f64,
    hidden: usize,
    test_size: usize,
}

/// Trains one seed; returns the extrapolation MSE, the threshold and the interpolation MSE (NaN
/// or infinite when training diverged).
fn run_seed(
    model: &str,
    op: &str,
    seed: u64,
    s: &Settings,
    tick: &mut dyn FnMut(),
) -> (f64, f64, f64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let win = windows(&mut rng);
    let mut net = Model::new(model, s.hidden, &mut rng);
    let mut opt = Adam::new(s.lr);
    let (test_x, test_y, parts) = dataset(s.test_size, 2.0, 6.0, op, win, &mut rng);
    let (in_x, in_y, _) = dataset(s.test_size, 1.0, 2.0, op, win, &mut rng);
    for t in 0..s.steps {
        // exponential decay to lr/1000: Adam's steps shrink, so the weights settle on the exact
        // solution instead of jittering around it
        opt.set_learning_rate(s.lr * 1e-3f64.powf(t as f64 / s.steps as f64));
        let (x, y, _) = dataset(s.batch, 1.0, 2.0, op, win, &mut rng);
        let loss = mse_loss(&net.forward(&x), &y);
        tick();
        if !loss.item().is_finite() {
            return (f64::INFINITY, threshold(op, &parts), f64::INFINITY);
        }
        let grads = loss.backward();
        opt.step(&mut net, &grads);
    }
    let mse = |x: &Tensor, y: &Tensor| {
        let v = no_grad(|| mse_loss(&net.forward(x), y)).item();
        if v.is_finite() { v } else { f64::INFINITY }
    };
    (
        mse(&test_x, &test_y),
        threshold(op, &parts),
        mse(&in_x, &in_y),
    )
}

impl Experiment for NaluArith {
    fn spec(&self) -> Spec {
        Spec {
            name: "nalu-arith",
            summary: "NAC+, NACx, NALU and an MLP on the static arithmetic task (Madsen & Johansen 2020): + - x /, trained on U[1,2], extrapolating to U[2,6], 10 seeds each",
            runtime: "~10 min; --quick ~15 s",
            options: vec![
                OptSpec::int("seeds", "seeds per model and operation", 10)
                    .range(1, 10_000)
                    .quick(2),
                OptSpec::int("batch-size", "examples per step", 128).range(1, 1 << 20),
                OptSpec::float(
                    "lr",
                    "initial Adam learning rate (decays exponentially to 1/1000 of it)",
                    1e-2,
                )
                .greater_than(0.0),
                OptSpec::int("hidden", "hidden units of the MLP baseline", 64).range(1, 1 << 16),
                OptSpec::int(
                    "test-size",
                    "extrapolation (and interpolation) test examples",
                    10_000,
                )
                .range(1, 10_000_000)
                .quick(1000),
                OptSpec::string(
                    "models",
                    "models to train, comma-separated: nac_add,nac_mul,nalu,mlp",
                    "nac_add,nac_mul,nalu,mlp",
                )
                .quick("nac_add"),
            ],
        }
    }

    fn run(&self, cfg: &Config, ctx: &mut dyn Context) -> Result<Report, ZooError> {
        let models: Vec<&str> = cfg.str("models").split(',').map(str::trim).collect();
        if models.is_empty() || models.iter().any(|m| !MODELS.contains(m)) {
            return Err(crate::experiment::ConfigError::Invalid {
                name: "models".into(),
                expected: "a comma-separated list of nac_add, nac_mul, nalu, mlp",
                got: cfg.str("models").into(),
            }
            .into());
        }
        let s = Settings {
            steps: cfg.steps_or(if cfg.quick { 3000 } else { 30_000 }) as usize,
            batch: cfg.usize("batch-size"),
            lr: cfg.f64("lr"),
            hidden: cfg.usize("hidden"),
            test_size: cfg.usize("test-size"),
        };
        let seeds = cfg.usize("seeds");
        let total = (models.len() * OPS.len() * seeds * s.steps) as u64;
        let mut done = 0u64;
        let mut r = Report::default();
        let mut curves = Curves::default();
        let mut table = vec![format!(
            "{:<9} {:>8} {:>8} {:>8} {:>8}   (fraction of {seeds} seeds whose extrapolation MSE < threshold)",
            "model", "add", "sub", "mul", "div"
        )];
        let mut thresholds = Vec::new();
        for (mi, model) in models.iter().enumerate() {
            let mut row = format!("{model:<9}");
            for (oi, op) in OPS.iter().enumerate() {
                let mut ok = 0;
                let mut errs = Vec::new();
                for k in 0..seeds {
                    if ctx.interrupted() {
                        return Err(ZooError::Interrupted { step: done });
                    }
                    let seed = step_seed(cfg.seed, (mi * 100_000 + oi * 10_000 + k) as u64);
                    let status = format!("{model} {op} seed {}/{seeds}", k + 1);
                    let mut tick = || {
                        done += 1;
                        if done.is_multiple_of(100) {
                            ctx.progress(done, total, &status);
                        }
                    };
                    let (extra, thr, _) = run_seed(model, op, seed, &s, &mut tick);
                    if extra < thr {
                        ok += 1;
                    }
                    errs.push(extra);
                    if mi == 0 && k == 0 {
                        thresholds.push(format!("{op} {thr:.2e}"));
                    }
                    curves.push(
                        &format!("{model}_{op}"),
                        (k + 1) as f64,
                        extra.clamp(1e-30, 1e12),
                    );
                }
                let frac = ok as f64 / seeds as f64;
                r.metrics
                    .insert(format!("{model}_{op}_success"), json!(frac));
                errs.sort_by(f64::total_cmp);
                r.metrics.insert(
                    format!("{model}_{op}_median_extrapolation_mse"),
                    json!(errs[errs.len() / 2].min(f64::MAX)),
                );
                row.push_str(&format!(" {frac:>8.2}"));
            }
            table.push(row);
        }
        ctx.progress(total, total, "done");
        r.summary = vec![format!(
            "static arithmetic task, 100 inputs, subsets of 25 overlapping by half; {} Adam steps (lr {}, batch {}) per seed on U[1,2], tested on U[2,6]",
            s.steps, s.lr, s.batch
        )];
        r.summary.extend(table);
        r.summary.push(format!(
            "success threshold: MSE of the exact solution with first-layer weights moved by 1e-5 (first seed): {}",
            thresholds.join(", ")
        ));
        let series: Vec<(String, String)> = models
            .iter()
            .flat_map(|m| {
                OPS.iter()
                    .map(move |o| (format!("{m}_{o}"), format!("{m} {o}")))
            })
            .collect();
        let refs: Vec<(&str, &str)> = series
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        r.curves = vec![curves.curve(
            "extrapolation.png",
            "nalu-arith: extrapolation MSE per seed",
            "seed",
            "extrapolation MSE (U[2,6])",
            &refs,
            true,
        )];
        Ok(r)
    }
}
