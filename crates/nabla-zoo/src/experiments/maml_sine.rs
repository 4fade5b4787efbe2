//! `maml-sine`: MAML (Finn et al. 2017) on sinusoid regression, second and first order side by
//! side, against a network pretrained on all tasks.
//!
//! Tasks are `y = a sin(x - φ)` with `a ~ U[0.1, 5]`, `φ ~ U[0, π]`, `x ~ U[-5, 5]`; the model is
//! a 1-40-40-1 ReLU network. Meta-training: 25 tasks per meta-batch, K = 10 support and 10 query
//! points per task, one inner SGD step with α = 0.01, Adam on the meta-loss (the tasks' query MSE
//! after adaptation). The 25 tasks run as one batched tensor program (`nabla_zoo::maml`). The
//! three models (MAML, first-order MAML, pretrained) train side by side on the same meta-batches,
//! the pretrained one on the plain MSE of the same points (support and query).
//! Evaluation: 600 held-out tasks; each model is adapted on K = 5 (or 10) support points by SGD
//! with α = 0.01 and scored on 100 evenly spaced inputs over [-5, 5].

use crate::experiment::{
    Config, Context, Curve, Experiment, OptSpec, Report, Series, Spec, ZooError,
};
use crate::maml::{Tasks, adapt, forward, init_params, meta_loss, task_mse};
use crate::train::{Trainer, ema, step_seed};
use nabla::meta::Order;
use nabla::optim::Adam;
use nabla::rand::{SeedableRng, rngs::StdRng};
use nabla::{Tensor, no_grad};
use serde_json::json;

/// See the module docs.
pub struct MamlSine;

/// Held-out evaluation points per task.
const EVAL_POINTS: usize = 100;

/// Mean over tasks of the query MSE after `steps` SGD steps on `k` support points per task.
fn evaluate(theta: &[Tensor], tasks: &Tasks, k: usize, steps: usize, alpha: f64, seed: u64) -> f64 {
    let (xs, ys) = tasks.points(k, &mut StdRng::seed_from_u64(seed));
    let (xq, yq) = tasks.grid(EVAL_POINTS);
    let p = adapt(theta, &xs, &ys, alpha, steps, Order::First);
    no_grad(|| task_mse(&p, &xq, &yq).mean().item())
}

impl Experiment for MamlSine {
    fn spec(&self) -> Spec {
        Spec {
            name: "maml-sine",
            summary: "MAML on sinusoid regression (second and first order) against a pretrained network: 5-shot MSE on 600 held-out tasks",
            runtime: "~13 min; --quick ~10 s",
            options: vec![
                OptSpec::int(
                    "iterations",
                    "meta-training iterations (meta-batches)",
                    30000,
                )
                .min(1)
                .quick(400),
                OptSpec::int("meta-batch", "tasks per meta-batch", 25).min(1),
                OptSpec::int(
                    "k",
                    "support (and query) points per task in meta-training",
                    10,
                )
                .min(1),
                OptSpec::float("alpha", "inner SGD step size", 0.01).greater_than(0.0),
                OptSpec::float("meta-lr", "Adam learning rate of the meta-optimiser", 1e-3)
                    .greater_than(0.0),
                OptSpec::int("eval-tasks", "held-out tasks", 600)
                    .min(1)
                    .quick(100),
            ],
        }
    }

    fn run(&self, cfg: &Config, ctx: &mut dyn Context) -> Result<Report, ZooError> {
        let iters = cfg.usize("iterations") as u64;
        let batch = cfg.usize("meta-batch");
        let k = cfg.usize("k");
        let alpha = cfg.f64("alpha");
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let init = init_params(&mut rng);
        // [MAML, first-order MAML, pretrained], the same initialisation
        let mut models: Vec<Vec<Tensor>> = vec![init.clone(), init.clone(), init];
        // one Adam over the three disjoint models is three independent Adams (same step count)
        let mut opt = Adam::new(cfg.f64("meta-lr"));
        let mut tr = Trainer::new(ctx, iters, &mut models, &mut opt)?;
        let start = std::time::Instant::now();
        while !tr.done() {
            let step = tr.step();
            let mut trng = StdRng::seed_from_u64(step_seed(cfg.seed, step + 1));
            let tasks = Tasks::sample(batch, &mut trng);
            let (xs, ys) = tasks.points(k, &mut trng);
            let (xq, yq) = tasks.points(k, &mut trng);
            let vars: Vec<Vec<Tensor>> = models
                .iter()
                .map(|m| m.iter().map(Tensor::variable).collect())
                .collect();
            let l2 = meta_loss(&vars[0], (&xs, &ys), (&xq, &yq), alpha, Order::Second);
            let l1 = meta_loss(&vars[1], (&xs, &ys), (&xq, &yq), alpha, Order::First);
            let lp =
                (task_mse(&vars[2], &xs, &ys).mean() + task_mse(&vars[2], &xq, &yq).mean()) * 0.5;
            let (v2, v1, vp) = (l2.item(), l1.item(), lp.item());
            tr.check_loss(v2 + v1 + vp)?;
            let grads = (l2 + l1 + lp).backward();
            for (m, v) in models.iter_mut().zip(vars) {
                *m = v;
            }
            nabla::optim::Optimizer::step(&mut opt, &mut models, &grads);
            for m in models.iter_mut() {
                for p in m.iter_mut() {
                    *p = p.detach();
                }
            }
            let x = (step + 1) as f64;
            let s2 = ema(&mut tr.scalars, "maml", v2, 0.99);
            let s1 = ema(&mut tr.scalars, "fomaml", v1, 0.99);
            let sp = ema(&mut tr.scalars, "pre", vp, 0.99);
            if (step + 1) % 10 == 0 || step + 1 == iters {
                tr.curves.push("maml", x, s2);
                tr.curves.push("fomaml", x, s1);
                tr.curves.push("pre", x, sp);
            }
            tr.end_step(
                &mut models,
                &mut opt,
                &format!("meta-loss {s2:.3} (first order {s1:.3}, pretrained {sp:.3})"),
            )?;
        }
        tr.finish(&mut models, &mut opt)?;
        let train_secs = start.elapsed().as_secs_f64();

        // held-out tasks (their own seed stream, independent of training)
        let eval_seed = step_seed(cfg.seed, u64::MAX);
        let held = Tasks::sample(
            cfg.usize("eval-tasks"),
            &mut StdRng::seed_from_u64(eval_seed),
        );
        let ev = |m: &[Tensor], shots: usize, steps: usize| {
            evaluate(m, &held, shots, steps, alpha, eval_seed ^ shots as u64)
        };
        let mse_5 = ev(&models[0], 5, 1);
        let mse_5_10 = ev(&models[0], 5, 10);
        let mse_10 = ev(&models[0], 10, 1);
        let mse_5_0 = ev(&models[0], 5, 0);
        let fo_5 = ev(&models[1], 5, 1);
        let fo_5_10 = ev(&models[1], 5, 10);
        let pre_5 = ev(&models[2], 5, 1);
        let pre_5_10 = ev(&models[2], 5, 10);

        let mut r = Report::default();
        let m = &mut r.metrics;
        m.insert("mse_5shot".into(), json!(mse_5));
        m.insert("mse_5shot_10steps".into(), json!(mse_5_10));
        m.insert("mse_10shot".into(), json!(mse_10));
        m.insert("mse_5shot_0steps".into(), json!(mse_5_0));
        m.insert("mse_5shot_first_order".into(), json!(fo_5));
        m.insert("mse_5shot_first_order_10steps".into(), json!(fo_5_10));
        m.insert("mse_5shot_pretrained".into(), json!(pre_5));
        m.insert("mse_5shot_pretrained_10steps".into(), json!(pre_5_10));
        m.insert("meta_iterations".into(), json!(iters));
        m.insert("train_seconds".into(), json!(train_secs));
        let n = held.len();
        r.summary = vec![
            format!(
                "{iters} meta-iterations of {batch} tasks (K = {k}, α = {alpha}) in {train_secs:.0} s, three models side by side"
            ),
            format!(
                "MAML, {n} held-out tasks, 5-shot MSE: {mse_5:.3} after 1 step (paper 0.67), {mse_5_10:.3} after 10 (paper 0.35), {mse_5_0:.3} before adapting; 10-shot after 1 step {mse_10:.3}"
            ),
            format!("first-order MAML, 5-shot: {fo_5:.3} after 1 step, {fo_5_10:.3} after 10"),
            format!(
                "pretrained on all tasks, 5-shot: {pre_5:.3} after 1 step, {pre_5_10:.3} after 10 (paper ~2.2)"
            ),
        ];
        r.curves = vec![tr.curves.curve(
            "meta_training.png",
            "maml-sine: meta-training loss (query MSE after one inner step; EMA 0.99)",
            "meta-iteration",
            "loss",
            &[
                ("maml", "MAML (second order)"),
                ("fomaml", "first-order MAML"),
                ("pre", "pretrained (plain MSE)"),
            ],
            true,
        )];
        r.curves
            .extend(task_plots(&models, &held, alpha, eval_seed));
        Ok(r)
    }
}

/// Three held-out tasks: the true curve, the 5-shot support points' fit before and after
/// adaptation.
fn task_plots(models: &[Vec<Tensor>], held: &Tasks, alpha: f64, seed: u64) -> Vec<Curve> {
    let n = 3.min(held.len());
    let tasks = Tasks {
        amp: held.amp[..n].to_vec(),
        phase: held.phase[..n].to_vec(),
    };
    let (xs, ys) = tasks.points(5, &mut StdRng::seed_from_u64(seed ^ 5));
    let (xq, yq) = tasks.grid(EVAL_POINTS);
    let grid: Vec<f64> = xq.narrow(0, 0, 1).to_dtype(nabla::DType::F64).to_vec();
    let pred = |p: &[Tensor]| -> Vec<f64> {
        no_grad(|| forward(p, &xq).to_dtype(nabla::DType::F64).to_vec())
    };
    let before = pred(&adapt(&models[0], &xs, &ys, alpha, 0, Order::First));
    let one = pred(&adapt(&models[0], &xs, &ys, alpha, 1, Order::First));
    let ten = pred(&adapt(&models[0], &xs, &ys, alpha, 10, Order::First));
    let pre = pred(&adapt(&models[2], &xs, &ys, alpha, 10, Order::First));
    let truth: Vec<f64> = yq.to_dtype(nabla::DType::F64).to_vec();
    let sx: Vec<f64> = xs.to_dtype(nabla::DType::F64).to_vec();
    let m = EVAL_POINTS;
    (0..n)
        .map(|t| {
            let line = |v: &[f64]| -> Vec<(f64, f64)> {
                grid.iter()
                    .copied()
                    .zip(v[t * m..(t + 1) * m].iter().copied())
                    .collect()
            };
            let support: Vec<String> = sx[t * 5..(t + 1) * 5]
                .iter()
                .map(|x| format!("{x:.1}"))
                .collect();
            Curve {
                file: format!("task_{t}.png"),
                title: format!(
                    "held-out task {t}: {:.2} sin(x - {:.2}), 5 support points at x = {}",
                    tasks.amp[t],
                    tasks.phase[t],
                    support.join(", ")
                ),
                x_label: "x".into(),
                y_label: "y".into(),
                series: vec![
                    Series {
                        label: "true function".into(),
                        points: line(&truth),
                    },
                    Series {
                        label: "MAML before adaptation".into(),
                        points: line(&before),
                    },
                    Series {
                        label: "MAML after 1 step".into(),
                        points: line(&one),
                    },
                    Series {
                        label: "MAML after 10 steps".into(),
                        points: line(&ten),
                    },
                    Series {
                        label: "pretrained after 10 steps".into(),
                        points: line(&pre),
                    },
                ],
                log_y: false,
            }
        })
        .collect()
}
