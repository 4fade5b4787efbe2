//! `hypergrad`: learning SGD's learning rate and momentum by gradient descent on the validation
//! loss, differentiated through the whole unrolled training run (Maclaurin et al. 2015; Baydin et
//! al. 2018), checked against a grid search over the same range.
//!
//! The task: a 1-20-1 tanh network fitted by full-batch momentum SGD (60 steps from a fixed
//! initialisation) to 40 noisy samples of `sin(2x)`, `x ∈ [-2, 2]`; the validation loss is the
//! MSE on 200 fresh samples. The hyperparameters are learned in unconstrained coordinates
//! (`log lr`, `logit μ`) by Adam; the meta-gradient flows through all 60 updates (second order:
//! through the inner gradients), the loop of `nabla::meta::unroll` written out. The search range is
//! `lr ∈ [LR_MIN, LR_MAX]` (log scale), `μ ∈ [0, MU_MAX]`; the learned values are clamped to it.
//!
//! **Engine.** The validation loss as a function of `(lr, μ)` is a fixed program (60 unrolled
//! steps with their recorded inner gradients: matmuls, broadcasts, reductions, elementwise
//! arithmetic), so by default (`--engine compiled`) it runs through [`nabla::compile`]: traced
//! once, then every meta-step and every grid point replays the flat tape (forward, and backward
//! for the meta-gradient). `--engine eager` records and differentiates it afresh each time; both
//! give the same numbers to rounding (checked to 1e-12 in `tests/meta_learning.rs`).

use crate::experiment::{
    Config, ConfigError, Context, Experiment, OptSpec, Report, Spec, ZooError,
};
use crate::train::Trainer;
use nabla::meta::{DiffMomentum, DiffOptimizer, Order, inner_grad};
use nabla::rand::{RngExt, SeedableRng, rngs::StdRng};
use nabla::{DType, Tensor, no_grad};
use serde_json::json;

/// See the module docs.
pub struct Hypergrad;

/// Smallest learning rate of the search range.
pub const LR_MIN: f64 = 1e-3;
/// Largest learning rate of the search range.
pub const LR_MAX: f64 = 1.0;
/// Largest momentum of the search range.
pub const MU_MAX: f64 = 0.99;

struct Problem {
    x: Tensor,
    y: Tensor,
    xv: Tensor,
    yv: Tensor,
    init: Vec<Tensor>,
}

fn samples(n: usize, noise: f64, rng: &mut StdRng) -> (Tensor, Tensor) {
    let mut xs = Vec::with_capacity(n);
    let mut ys = Vec::with_capacity(n);
    for _ in 0..n {
        let x: f64 = rng.random_range(-2.0..2.0);
        let e: f64 = rng.random_range(-1.0..1.0);
        xs.push(x);
        ys.push((2.0 * x).sin() + noise * e);
    }
    (Tensor::from_vec(xs, [n, 1]), Tensor::from_vec(ys, [n, 1]))
}

impl Problem {
    fn new(seed: u64, hidden: usize) -> Problem {
        let mut rng = StdRng::seed_from_u64(seed);
        let (x, y) = samples(40, 0.3, &mut rng);
        let (xv, yv) = samples(200, 0.3, &mut rng);
        let init = vec![
            Tensor::randn([1, hidden], DType::F64, &mut rng),
            Tensor::zeros([hidden], DType::F64),
            Tensor::randn([hidden, 1], DType::F64, &mut rng) * (1.0 / (hidden as f64).sqrt()),
            Tensor::zeros([1], DType::F64),
        ];
        Problem { x, y, xv, yv, init }
    }
}

fn mse(p: &[Tensor], x: &Tensor, y: &Tensor) -> Tensor {
    let h = (x.matmul(&p[0]) + &p[1]).tanh();
    (h.matmul(&p[2]) + &p[3] - y).square().mean()
}

/// Validation loss after `steps` momentum-SGD steps with hyperparameters `(lr, μ)` given as
/// tensors (differentiable).
fn val_loss(pb: &Problem, lr: &Tensor, mu: &Tensor, steps: usize) -> Tensor {
    // the loop of `nabla::meta::unroll` (second order, no truncation), written out so that no
    // inner loss is read as a number (`unroll` reports them): the whole run then compiles
    let opt = DiffMomentum::new(lr.clone(), mu.clone());
    let mut params = pb.init.clone();
    let mut state = opt.init(&params);
    for _ in 0..steps {
        let (_, g) = inner_grad(|p: &[Tensor]| mse(p, &pb.x, &pb.y), &params, Order::Second);
        let (p, s) = opt.update(&params, &g, &state);
        params = p;
        state = s;
    }
    mse(&params, &pb.xv, &pb.yv)
}

/// The validation loss of `(lr, μ)` (0-d tensors) after `steps` inner steps, evaluated eagerly or
/// through a compiled tape.
/// A function of `(lr, μ)`, boxed for [`nabla::compile`].
type LossFn<'a> = Box<dyn Fn(&[Tensor]) -> Tensor + 'a>;

struct ValLoss<'a> {
    compiled: Option<nabla::Compiled<LossFn<'a>>>,
    pb: &'a Problem,
    steps: usize,
}

impl<'a> ValLoss<'a> {
    fn new(pb: &'a Problem, steps: usize, compiled: bool) -> ValLoss<'a> {
        let f: LossFn<'a> = Box::new(move |h: &[Tensor]| val_loss(pb, &h[0], &h[1], steps));
        ValLoss {
            compiled: compiled.then(|| nabla::compile(f)),
            pb,
            steps,
        }
    }

    /// The loss and its gradient with respect to `(lr, μ)`.
    fn value_and_grad(&self, h: &[Tensor]) -> (Tensor, Vec<Tensor>) {
        match &self.compiled {
            Some(cf) => cf.value_and_grad(h),
            None => nabla::value_and_grad(
                |h: &[Tensor]| val_loss(self.pb, &h[0], &h[1], self.steps),
                h,
            ),
        }
    }

    /// The validation loss of a run without gradients; a diverged run scores `f64::INFINITY`.
    fn score(&self, lr: f64, mu: f64) -> f64 {
        let h = [Tensor::scalar(lr), Tensor::scalar(mu)];
        let v = match &self.compiled {
            Some(cf) => cf.call(&h).item(),
            None => no_grad(|| val_loss(self.pb, &h[0], &h[1], self.steps).item()),
        };
        if v.is_finite() { v } else { f64::INFINITY }
    }
}

fn from_raw(raw: &[f64]) -> (f64, f64) {
    let lr = raw[0].exp().clamp(LR_MIN, LR_MAX);
    let mu = (1.0 / (1.0 + (-raw[1]).exp())).clamp(0.0, MU_MAX);
    (lr, mu)
}

impl Experiment for Hypergrad {
    fn spec(&self) -> Spec {
        Spec {
            name: "hypergrad",
            summary: "SGD's learning rate and momentum learned through 60 unrolled training steps, against a grid search",
            runtime: "~20 s; --quick ~5 s",
            options: vec![
                OptSpec::int("meta-steps", "Adam steps on (log lr, logit momentum)", 150)
                    .min(1)
                    .quick(60),
                OptSpec::int("inner-steps", "unrolled SGD steps", 60).min(1),
                OptSpec::float(
                    "meta-lr",
                    "Adam learning rate on the raw hyperparameters",
                    0.1,
                )
                .greater_than(0.0),
                OptSpec::float("lr0", "initial learning rate", 0.01).range(LR_MIN, LR_MAX),
                OptSpec::float("momentum0", "initial momentum", 0.5).range(0.0, MU_MAX),
                OptSpec::int("grid", "grid points per hyperparameter", 15)
                    .min(2)
                    .quick(8),
                OptSpec::int("hidden", "tanh units of the regression network", 20).min(1),
                OptSpec::string(
                    "engine",
                    "`compiled`: the validation loss runs through nabla::compile (traced once, replayed); `eager`: recorded afresh each call",
                    "compiled",
                ),
            ],
        }
    }

    fn run(&self, cfg: &Config, ctx: &mut dyn Context) -> Result<Report, ZooError> {
        let pb = Problem::new(cfg.seed, cfg.usize("hidden"));
        let steps = cfg.usize("inner-steps");
        let meta_steps = cfg.usize("meta-steps") as u64;
        let mu0 = cfg.f64("momentum0").clamp(1e-3, MU_MAX);
        let mut raw: Vec<Tensor> = vec![
            Tensor::scalar(cfg.f64("lr0").ln()),
            Tensor::scalar((mu0 / (1.0 - mu0)).ln()),
        ];
        let compiled = match cfg.str("engine") {
            "compiled" => true,
            "eager" => false,
            other => {
                return Err(ZooError::Config(ConfigError::Invalid {
                    name: "engine".into(),
                    expected: "`compiled` or `eager`",
                    got: other.into(),
                }));
            }
        };
        let vl = ValLoss::new(&pb, steps, compiled);
        let started = std::time::Instant::now();
        let mut opt = nabla::optim::Adam::new(cfg.f64("meta-lr"));
        let mut tr = Trainer::new(ctx, meta_steps, &mut raw, &mut opt)?;
        while !tr.done() {
            raw = raw.iter().map(Tensor::variable).collect();
            let lr_t = raw[0].exp().clamp(LR_MIN, LR_MAX);
            let mu_t = raw[1].sigmoid().clamp(0.0, MU_MAX);
            // the loss and its gradient w.r.t. (lr, μ), then the chain rule into the raw
            // coordinates through the recorded exp/sigmoid/clamp
            let (loss, g) = vl.value_and_grad(&[lr_t.detach(), mu_t.detach()]);
            let v = loss.item();
            if v.is_finite() {
                let grads = (&lr_t * &g[0] + &mu_t * &g[1]).backward();
                nabla::optim::Optimizer::step(&mut opt, &mut raw, &grads);
                raw = raw.iter().map(Tensor::detach).collect();
            } else {
                // the inner run diverged: no usable gradient, halve the learning rate
                raw = vec![&raw[0].detach() - 2f64.ln(), raw[1].detach()];
            }
            // stay inside the search range
            let r: Vec<f64> = raw.iter().map(Tensor::item).collect();
            let (lr, mu) = from_raw(&r);
            raw = vec![
                Tensor::scalar(lr.ln()),
                Tensor::scalar((mu.max(1e-6) / (1.0 - mu.max(1e-6))).ln()),
            ];
            let x = (tr.step() + 1) as f64;
            tr.curves.push("val", x, v);
            tr.curves.push("lr", x, lr);
            tr.curves.push("mu", x, mu);
            tr.end_step(
                &mut raw,
                &mut opt,
                &format!("val loss {v:.4}, lr {lr:.4}, momentum {mu:.3}"),
            )?;
        }
        tr.finish(&mut raw, &mut opt)?;
        let meta_s = started.elapsed().as_secs_f64();
        let r: Vec<f64> = raw.iter().map(Tensor::item).collect();
        let (lr, mu) = from_raw(&r);
        let learned = vl.score(lr, mu);

        // grid search over the same range
        let n = cfg.usize("grid");
        let mut best = (f64::INFINITY, 0.0, 0.0);
        for i in 0..n {
            let glr = (LR_MIN.ln() + (LR_MAX.ln() - LR_MIN.ln()) * i as f64 / (n - 1) as f64).exp();
            for j in 0..n {
                let gmu = MU_MAX * j as f64 / (n - 1) as f64;
                let v = vl.score(glr, gmu);
                if v < best.0 {
                    best = (v, glr, gmu);
                }
            }
        }
        let init_loss = vl.score(cfg.f64("lr0"), cfg.f64("momentum0"));
        let total_s = started.elapsed().as_secs_f64();

        let mut rep = Report::default();
        let m = &mut rep.metrics;
        m.insert("learned_lr".into(), json!(lr));
        m.insert("learned_momentum".into(), json!(mu));
        m.insert("val_loss_learned".into(), json!(learned));
        m.insert("val_loss_grid_best".into(), json!(best.0));
        m.insert("grid_best_lr".into(), json!(best.1));
        m.insert("grid_best_momentum".into(), json!(best.2));
        m.insert("val_loss_initial".into(), json!(init_loss));
        m.insert("ratio_to_grid_best".into(), json!(learned / best.0));
        m.insert("engine".into(), json!(cfg.str("engine")));
        rep.summary = vec![
            format!(
                "learned through {steps} unrolled steps ({meta_steps} meta-steps): lr {lr:.4}, momentum {mu:.3}, validation loss {learned:.4} (from {init_loss:.4} at the start)"
            ),
            format!(
                "grid search ({n}×{n}, lr {LR_MIN}..{LR_MAX} log-spaced, momentum 0..{MU_MAX}): best {:.4} at lr {:.4}, momentum {:.3}; learned/grid = {:.3} (target ≤ 1.05)",
                best.0,
                best.1,
                best.2,
                learned / best.0
            ),
            format!(
                "engine {}: meta-training {meta_s:.2} s, whole run {total_s:.2} s (wall time)",
                cfg.str("engine")
            ),
        ];
        let mut c = tr.curves.curve(
            "meta_training.png",
            "hypergrad: validation loss after the unrolled run, per meta-step",
            "meta-step",
            "validation MSE",
            &[("val", "learned hyperparameters")],
            true,
        );
        c.series.push(crate::experiment::Series {
            label: "grid-search best".into(),
            points: vec![(1.0, best.0), (meta_steps as f64, best.0)],
        });
        let h = tr.curves.curve(
            "hyperparameters.png",
            "hypergrad: learning rate and momentum during meta-training",
            "meta-step",
            "value",
            &[("lr", "learning rate"), ("mu", "momentum")],
            false,
        );
        rep.curves = vec![c, h];
        Ok(rep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_and_eager_validation_losses_agree() {
        // the quick problem at a few hyperparameters: loss and meta-gradient to 1e-12
        let pb = Problem::new(0, 20);
        let (eager, compiled) = (ValLoss::new(&pb, 12, false), ValLoss::new(&pb, 12, true));
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + a.abs().max(b.abs()));
        for (lr, mu) in [(0.01, 0.5), (0.3, 0.9), (0.05, 0.0)] {
            let h = [Tensor::scalar(lr), Tensor::scalar(mu)];
            let (ve, ge) = eager.value_and_grad(&h);
            let (vc, gc) = compiled.value_and_grad(&h);
            assert!(
                close(ve.item(), vc.item()),
                "{} vs {}",
                ve.item(),
                vc.item()
            );
            for (e, c) in ge.iter().zip(&gc) {
                assert!(close(e.item(), c.item()), "{} vs {}", e.item(), c.item());
            }
            assert!(close(eager.score(lr, mu), compiled.score(lr, mu)));
        }
        let st = compiled.compiled.as_ref().expect("compiled").stats();
        assert_eq!((st.traces, st.eager_calls), (1, 0), "{st:?}");
    }
}
