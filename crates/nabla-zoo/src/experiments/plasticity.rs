//! `plasticity`: learning a local learning rule. A layer of linear model neurons changes its
//! synapses only by `Δw = f_θ(pre, post, w, m)` (see [`crate::plasticity`]), with `f_θ` an MLP
//! shared by every synapse and `m` each neuron's error (target minus activity) broadcast to its
//! synapses. The rule is meta-trained on few-shot regression of random linear maps, two ways from
//! the same initial `θ` and the same task batches:
//!
//! - by backprop through whole inner learning episodes (the query loss after the episode,
//!   differentiated with respect to `θ`; Adam);
//! - by an evolution strategy without any backprop: antithetic Gaussian perturbations `θ ± σε`
//!   scored on the same batch of tasks, `ĝ = Σ (L⁺ − L⁻) ε / (2σn)` (Salimans et al. 2017), Adam.
//!
//! On held-out tasks the learned rules are compared with a supervised Hebbian rule
//! (`Δw = η·pre·target`) and with ordinary backprop (SGD on each example's squared error) of the
//! same network for the same number of steps, their rates tuned on training tasks. The number of
//! inner episodes each meta-training method needed before its rule's loss on validation tasks
//! first reached `--target-loss` is reported as `episodes_backprop` and `episodes_es`.

use crate::experiment::{
    Config, Context, Curve, Experiment, Heatmap, OptSpec, Report, Series, Spec, ZooError,
};
use crate::plasticity::{Rule, RuleNet, Tasks, episode, evaluate, rule_grid, tune};
use crate::train::{Trainer, step_seed};
use nabla::nn::Module;
use nabla::optim::{Adam, Optimizer, clip_grad_norm};
use nabla::rand::{SeedableRng, rngs::StdRng};
use nabla::{DType, Grads, Tensor, no_grad};
use serde_json::json;

/// See the module docs.
pub struct Plasticity;

/// The two rules' parameters, trained side by side (one checkpoint, one Adam).
#[derive(Module)]
struct Rules {
    backprop: Tensor,
    es: Tensor,
}

/// The grid of the heat maps: `n` points evenly spaced over `[-r, r]`.
fn grid(n: usize, r: f64) -> Vec<f64> {
    (0..n)
        .map(|k| -r + 2.0 * r * k as f64 / (n - 1) as f64)
        .collect()
}

impl Experiment for Plasticity {
    fn spec(&self) -> Spec {
        Spec {
            name: "plasticity",
            summary: "a local synaptic rule dw = f(pre, post, w, m) meta-learned by backprop through learning episodes and by an evolution strategy",
            runtime: "~2 min; --quick ~10 s",
            options: vec![
                OptSpec::int("meta-steps", "meta-gradient steps by backprop", 500)
                    .min(1)
                    .quick(150),
                OptSpec::int("es-steps", "evolution-strategy steps", 500)
                    .min(1)
                    .quick(150),
                OptSpec::int("es-pairs", "antithetic perturbation pairs per ES step", 16).min(1),
                OptSpec::float("es-sigma", "ES perturbation scale", 0.05).greater_than(0.0),
                OptSpec::int("batch", "tasks per meta-step (and per ES evaluation)", 32)
                    .min(1)
                    .quick(16),
                OptSpec::int("inputs", "input neurons", 4).min(1),
                OptSpec::int("outputs", "output neurons", 2).min(1),
                OptSpec::int("shots", "support examples per task", 10).min(1),
                OptSpec::int("queries", "query examples per task", 20).min(1),
                OptSpec::int(
                    "inner-steps",
                    "plasticity steps per episode (one example each)",
                    20,
                )
                .min(1),
                OptSpec::int("hidden", "hidden units of the rule's MLP", 16).min(1),
                OptSpec::float("rule-scale", "scale of the rule's output", 0.1).greater_than(0.0),
                OptSpec::float("meta-lr", "Adam learning rate (both meta-learners)", 0.01)
                    .greater_than(0.0),
                OptSpec::int("eval-every", "meta-steps between validation scores", 10).min(1),
                OptSpec::int(
                    "val-tasks",
                    "validation tasks (for the episode counts)",
                    200,
                )
                .min(1)
                .quick(100),
                OptSpec::int("test-tasks", "held-out test tasks", 1000).min(1),
                OptSpec::float(
                    "target-loss",
                    "validation loss whose first crossing counts the meta-training episodes",
                    0.3,
                )
                .greater_than(0.0),
            ],
        }
    }

    fn run(&self, cfg: &Config, ctx: &mut dyn Context) -> Result<Report, ZooError> {
        let (ni, no) = (cfg.usize("inputs"), cfg.usize("outputs"));
        let (shots, queries) = (cfg.usize("shots"), cfg.usize("queries"));
        let (batch, steps) = (cfg.usize("batch"), cfg.usize("inner-steps"));
        let (bp_steps, es_steps) = (cfg.usize("meta-steps") as u64, cfg.usize("es-steps") as u64);
        let (pairs, sigma) = (cfg.usize("es-pairs"), cfg.f64("es-sigma"));
        let (every, target) = (cfg.usize("eval-every") as u64, cfg.f64("target-loss"));
        let net = RuleNet {
            hidden: cfg.usize("hidden"),
            scale: cfg.f64("rule-scale"),
        };
        let sample = |n: usize, seed: u64| {
            Tasks::sample(n, ni, no, shots, queries, &mut StdRng::seed_from_u64(seed))
        };
        // validation and test tasks depend only on fixed seeds, not on the run's
        let val = sample(cfg.usize("val-tasks"), 0x5EED_0001);
        let test = sample(cfg.usize("test-tasks"), 0x5EED_0002);

        let theta0 = net.init(&mut StdRng::seed_from_u64(cfg.seed)).variable();
        let mut rules = Rules {
            backprop: theta0.clone(),
            es: theta0.variable(),
        };
        let mut opt = Adam::new(cfg.f64("meta-lr"));
        let total = bp_steps.max(es_steps);
        let mut tr = Trainer::new(ctx, total, &mut rules, &mut opt)?;
        let score = |theta: &Tensor| evaluate(&Rule::Learned(&net, theta), &val, steps);
        if tr.step() == 0 {
            let v0 = score(&rules.backprop);
            tr.curves.push("backprop", 0.0, v0);
            tr.curves.push("es", 0.0, v0);
        }
        while !tr.done() {
            let s = tr.step();
            let tasks = sample(batch, step_seed(cfg.seed, s + 1));
            let mut grads = Grads::default();
            let mut status = String::new();
            if s < bp_steps {
                let w = episode(&Rule::Learned(&net, &rules.backprop), &tasks, steps);
                let loss = tasks.query_loss(&w);
                tr.check_loss(loss.item())?;
                grads = loss.backward();
                clip_grad_norm(&mut grads, 1.0);
                *tr.scalars.entry("episodes_backprop".into()).or_insert(0.0) += batch as f64;
                status += &format!("backprop {:.4} ", loss.item());
            }
            if s < es_steps {
                let mut erng = StdRng::seed_from_u64(step_seed(cfg.seed ^ 0xE5, s + 1));
                let theta = rules.es.detach();
                let mut g = theta.zeros_like();
                let mut mean = 0.0;
                for _ in 0..pairs {
                    let eps = Tensor::randn([net.num_params()], DType::F32, &mut erng);
                    let plus = evaluate(
                        &Rule::Learned(&net, &(&theta + &eps * sigma)),
                        &tasks,
                        steps,
                    );
                    let minus = evaluate(
                        &Rule::Learned(&net, &(&theta - &eps * sigma)),
                        &tasks,
                        steps,
                    );
                    tr.check_loss(plus + minus)?;
                    mean += (plus + minus) / (2 * pairs) as f64;
                    g = g + eps * ((plus - minus) / (2.0 * sigma * pairs as f64));
                }
                // the same clipping as the backprop meta-gradient
                let mut eg = Grads::default();
                eg.insert(&rules.es, g);
                clip_grad_norm(&mut eg, 1.0);
                if let Some(g) = eg.remove(&rules.es) {
                    grads.insert(&rules.es, g);
                }
                *tr.scalars.entry("episodes_es".into()).or_insert(0.0) +=
                    (2 * pairs * batch) as f64;
                status += &format!("ES {mean:.4}");
            }
            opt.step(&mut rules, &grads);
            let done = s + 1;
            if done.is_multiple_of(every) || done == total {
                for (name, theta, active) in [
                    ("backprop", &rules.backprop, s < bp_steps),
                    ("es", &rules.es, s < es_steps),
                ] {
                    if !active {
                        continue;
                    }
                    let v = score(theta);
                    let eps = tr.scalars[&format!("episodes_{name}")];
                    tr.curves.push(name, eps, v);
                    let key = format!("reached_{name}");
                    if v <= target && !tr.scalars.contains_key(&key) {
                        tr.scalars.insert(key, eps);
                    }
                }
            }
            tr.end_step(&mut rules, &mut opt, &status)?;
        }
        tr.finish(&mut rules, &mut opt)?;
        let (curves, scalars) = (tr.curves.clone(), tr.scalars.clone());
        drop(tr);

        // the hand-written rules, tuned on training tasks; everything scored on held-out tasks
        let tune_tasks = sample(cfg.usize("val-tasks"), step_seed(cfg.seed, u64::MAX));
        let (eta, _) = tune(Rule::Hebbian, &tune_tasks, steps);
        let (lr, _) = tune(Rule::Backprop, &tune_tasks, steps);
        let loss_learned = evaluate(&Rule::Learned(&net, &rules.backprop), &test, steps);
        let loss_es = evaluate(&Rule::Learned(&net, &rules.es), &test, steps);
        let loss_initial = evaluate(&Rule::Learned(&net, &theta0.detach()), &test, steps);
        let loss_hebb = evaluate(&Rule::Hebbian(eta), &test, steps);
        let loss_bp = evaluate(&Rule::Backprop(lr), &test, steps);
        let loss_zero = no_grad(|| {
            test.query_loss(&Tensor::zeros([test.len(), no, ni], DType::F32))
                .item()
        });

        // the learned rule's behaviour
        let theta = rules.backprop.detach();
        let (xs, ys) = (grid(41, 2.5), grid(41, 2.5));
        let pre_post = rule_grid(&net, &theta, &xs, &ys, |pre, post| [pre, post, 0.0, 1.0]);
        let pre_m = rule_grid(&net, &theta, &xs, &ys, |pre, m| [pre, 0.0, 0.0, m]);
        // how close it is to the delta rule Δw = c·m·pre (least squares over the (pre, m) grid)
        let prod: Vec<f64> = ys
            .iter()
            .flat_map(|m| xs.iter().map(move |p| p * m))
            .collect();
        let c = prod.iter().zip(&pre_m).map(|(a, b)| a * b).sum::<f64>()
            / prod.iter().map(|a| a * a).sum::<f64>();
        let ss_res: f64 = prod
            .iter()
            .zip(&pre_m)
            .map(|(a, b)| (b - c * a).powi(2))
            .sum();
        let mean_dw = pre_m.iter().sum::<f64>() / pre_m.len() as f64;
        let ss_tot: f64 = pre_m.iter().map(|b| (b - mean_dw).powi(2)).sum();
        let r2 = 1.0 - ss_res / ss_tot.max(1e-30);

        let reached = |k: &str| scalars.get(k).copied();
        let mut r = Report::default();
        for (k, v) in [
            ("loss_learned_rule", loss_learned),
            ("loss_learned_rule_es", loss_es),
            ("loss_initial_rule", loss_initial),
            ("loss_hebbian", loss_hebb),
            ("loss_backprop", loss_bp),
            ("loss_zero_weights", loss_zero),
            ("hebbian_rate", eta),
            ("backprop_lr", lr),
            ("target_loss", target),
            ("delta_rule_coefficient", c),
            ("delta_rule_r2", r2),
        ] {
            r.metrics.insert(k.into(), json!(v));
        }
        r.metrics.insert(
            "episodes_backprop".into(),
            json!(reached("reached_backprop")),
        );
        r.metrics
            .insert("episodes_es".into(), json!(reached("reached_es")));
        r.metrics.insert(
            "episodes_backprop_total".into(),
            json!(scalars.get("episodes_backprop")),
        );
        r.metrics.insert(
            "episodes_es_total".into(),
            json!(scalars.get("episodes_es")),
        );
        let say = |k: &str, tot: &str| match reached(k) {
            Some(e) => format!("reached {target} after {e:.0} inner episodes"),
            None => format!(
                "did not reach {target} within {:.0} inner episodes",
                scalars.get(tot).copied().unwrap_or(0.0)
            ),
        };
        let n_test = test.len();
        r.summary = vec![
            format!(
                "{no} linear neurons with {ni} inputs learn a random linear map from {shots} examples shown one per step for {steps} steps; query MSE on {n_test} held-out tasks (zero weights: {loss_zero:.4})"
            ),
            format!(
                "learned local rule (backprop through episodes, {bp_steps} meta-steps): {loss_learned:.4} (before meta-training {loss_initial:.4})"
            ),
            format!(
                "learned local rule (evolution strategy, {es_steps} steps of {pairs} antithetic pairs): {loss_es:.4}"
            ),
            format!(
                "supervised Hebbian dw = eta*pre*target (eta {eta:.3e}): {loss_hebb:.4}; backprop SGD (lr {lr:.3e}): {loss_bp:.4}"
            ),
            format!(
                "meta-training to validation loss {target}: backprop {}; ES {}",
                say("reached_backprop", "episodes_backprop"),
                say("reached_es", "episodes_es")
            ),
            format!(
                "the learned rule at pre, m in [-2.5, 2.5] (post = w = 0) is dw ~ {c:.4}*m*pre with R^2 {r2:.3} (the delta rule)"
            ),
        ];
        // episodes on a log-10 axis: ES uses orders of magnitude more than backprop
        let log = |pts: &[(f64, f64)]| -> Vec<(f64, f64)> {
            pts.iter().map(|&(x, y)| (x.max(1.0).log10(), y)).collect()
        };
        let x1 = curves
            .get("es")
            .iter()
            .chain(curves.get("backprop"))
            .map(|p| p.0.max(1.0).log10())
            .fold(1.0, f64::max);
        let flat = |label: String, y: f64| Series {
            label,
            points: vec![(0.0, y), (x1, y)],
        };
        let meta = Curve {
            file: "meta_training.png".into(),
            title: "plasticity: meta-training the local rule".into(),
            x_label: "inner learning episodes used by meta-training (log10: 3 = 1,000)".into(),
            y_label: "validation query MSE after an episode".into(),
            series: vec![
                Series {
                    label: "backprop through episodes".into(),
                    points: log(curves.get("backprop")),
                },
                Series {
                    label: "evolution strategy".into(),
                    points: log(curves.get("es")),
                },
                flat(format!("Hebbian ({loss_hebb:.3})"), loss_hebb),
                flat(format!("backprop SGD ({loss_bp:.3})"), loss_bp),
                flat(format!("target ({target})"), target),
            ],
            log_y: true,
        };
        r.curves = vec![meta];
        let heat = |file: &str, title: &str, y_label: &str, values: Vec<f64>| Heatmap {
            file: file.into(),
            title: title.into(),
            x_label: "presynaptic activity (pre)".into(),
            y_label: y_label.into(),
            value_label: "dw".into(),
            xs: xs.clone(),
            ys: ys.clone(),
            values,
        };
        r.heatmaps = vec![
            heat(
                "rule_pre_post.png",
                "learned rule dw(pre, post) at w = 0, m = 1",
                "postsynaptic activity (post)",
                pre_post,
            ),
            heat(
                "rule_pre_m.png",
                "learned rule dw(pre, m) at w = 0, post = 0",
                "modulatory signal (m = error)",
                pre_m,
            ),
        ];
        Ok(r)
    }
}
