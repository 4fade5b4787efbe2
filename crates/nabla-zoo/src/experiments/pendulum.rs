//! `pendulum`: swing-up and balance of Gym's `Pendulum-v1` with a policy network trained by
//! backpropagation through time through the simulated dynamics.
//!
//! The policy maps the observation (cos θ, sin θ, θ̇) through a small tanh network to the torque
//! `2·tanh(out)`. The loss is Gym's cost itself, averaged over the 200 steps of each training
//! trajectory; its gradient comes from nabla's reverse mode through the whole rollout (the
//! clips are `clamp`s). Every simulated 200-step trajectory used for a gradient counts as one
//! training episode, so a budget of 10 episodes is 10 simulated trajectories in all, whatever
//! the batch. After each update the policy is evaluated on 100 held-out random starts (seeded):
//! the mean return (the negative of the summed cost) is the figure Gym's leaderboards use.

use crate::experiment::{Config, Context, Curve, Experiment, OptSpec, Report, Series, Spec, ZooError};
use crate::models::PolicyNet;
use crate::sim::pendulum::{MAX_STEPS, MAX_TORQUE, Pendulum, angle_normalize};
use crate::train::step_seed;
use nabla::nn::Forward;
use nabla::optim::{Adam, Optimizer, clip_grad_norm};
use nabla::rand::{SeedableRng, rngs::StdRng};
use nabla::{Tensor, no_grad};
use serde_json::json;

/// See the module docs.
pub struct PendulumControl;

/// The target: a mean return of at least -200 over 100 random starts.
pub const TARGET_RETURN: f64 = -200.0;

/// The torque the policy applies in state `s`.
fn torque(policy: &PolicyNet, s: &Pendulum) -> Tensor {
    let sc: f64 = std::env::var("VS").ok().and_then(|v| v.parse().ok()).unwrap_or(1.0);
    let o = s.observation() * Tensor::from_vec(vec![1.0, 1.0, sc], [1, 3]);
    policy.forward(&o).tanh() * MAX_TORQUE
}

/// Runs `steps` steps from `start`; returns the summed cost per episode (`[B]`) and, when
/// `trace` is set, the angle (normalised) and torque of every episode at every step.
fn rollout(
    policy: &PolicyNet,
    start: Pendulum,
    steps: usize,
    trace: bool,
) -> (Tensor, Vec<Vec<(f64, f64)>>) {
    let b = start.theta.dims()[0];
    let mut s = start;
    let mut total = Tensor::zeros([b], nabla::DType::F64);
    let mut tr = Vec::new();
    let w: usize = std::env::var("W").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    for t in 0..steps {
        if w > 0 && t > 0 && t % w == 0 {
            s = Pendulum { theta: s.theta.detach(), theta_dot: s.theta_dot.detach() };
        }
        let u = torque(policy, &s);
        if trace {
            let th = angle_normalize(&s.theta).to_vec::<f64>();
            tr.push(th.into_iter().zip(u.to_vec::<f64>()).collect());
        }
        let (next, cost) = s.step(&u);
        let cost = if std::env::var("COS").is_ok() && !trace { (1.0 - s.theta.cos()) * 2.0 + s.theta_dot.square() * 0.1 } else { cost };
        total = total + cost;
        s = next;
    }
    (total, tr)
}

/// Mean return over the held-out starts.
fn evaluate(policy: &PolicyNet, starts: &Pendulum) -> f64 {
    -no_grad(|| rollout(policy, starts.clone(), MAX_STEPS, false).0.mean().item())
}

impl Experiment for PendulumControl {
    fn spec(&self) -> Spec {
        Spec {
            name: "pendulum",
            summary: "Pendulum-v1 swing-up by backprop through time through the simulator, 10 training episodes",
            runtime: "~10 s; --quick ~3 s",
            options: vec![
                OptSpec::int("episodes", "training-episode budget: simulated 200-step trajectories", 10),
                OptSpec::int("batch", "trajectories per gradient step (each counts as an episode)", 1),
                OptSpec::int("hidden", "tanh units of the policy network", 32),
                OptSpec::float("lr", "Adam learning rate", 0.05),
                OptSpec::float("clip", "gradient clipping by global norm (0: none)", 1.0),
                OptSpec::int("eval-episodes", "held-out random starts for the evaluation", 100),
            ],
        }
    }

    fn run(&self, cfg: &Config, ctx: &mut dyn Context) -> Result<Report, ZooError> {
        let (budget, batch) = (cfg.usize("episodes"), cfg.usize("batch"));
        let eval_n = cfg.usize("eval-episodes");
        for (name, v) in [("batch", batch), ("eval-episodes", eval_n), ("hidden", cfg.usize("hidden"))] {
            if v == 0 {
                return Err(ZooError::Data(format!("--{name} must be at least 1")));
            }
        }
        let eval_starts = Pendulum::reset(eval_n, &mut StdRng::seed_from_u64(step_seed(cfg.seed, u64::MAX)));
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let mut policy = PolicyNet::new(3, cfg.usize("hidden"), &mut rng);
        let mut opt = Adam::new(cfg.f64("lr"));
        let clip = cfg.f64("clip");
        let mut curve = vec![(0.0, evaluate(&policy, &eval_starts))];
        let mut train_curve = Vec::new();
        let (mut used, mut reached) = (0usize, None);
        while used + batch <= budget {
            let start = Pendulum::reset(batch, &mut rng);
            let (cost, _) = rollout(&policy, start, MAX_STEPS, false);
            let loss = cost.mean() * (1.0 / MAX_STEPS as f64);
            let mut grads = loss.backward();
            if clip > 0.0 {
                clip_grad_norm(&mut grads, clip);
            }
            opt.step(&mut policy, &grads);
            used += batch;
            train_curve.push((used as f64, -loss.item() * MAX_STEPS as f64));
            let ret = evaluate(&policy, &eval_starts);
            curve.push((used as f64, ret));
            if std::env::var("PD").is_ok() { eprintln!("{used} train {:.1} eval {ret:.1}", -loss.item() * MAX_STEPS as f64); }
            if ret >= TARGET_RETURN && reached.is_none() {
                reached = Some(used);
            }
            ctx.progress(used as u64, budget as u64, &format!("eval return {ret:.1}"));
        }
        let final_return = curve.last().map_or(f64::NAN, |p| p.1);

        // angle and torque against time from a few of the held-out starts
        let shown = eval_n.min(5);
        let (_, trace) = no_grad(|| {
            let s = Pendulum {
                theta: eval_starts.theta.narrow(0, 0, shown),
                theta_dot: eval_starts.theta_dot.narrow(0, 0, shown),
            };
            rollout(&policy, s, MAX_STEPS, true)
        });
        let series = |pick: fn(&(f64, f64)) -> f64| -> Vec<Series> {
            (0..shown)
                .map(|i| Series {
                    label: format!("start θ = {:.2}", trace[0][i].0),
                    points: trace
                        .iter()
                        .enumerate()
                        .map(|(t, row)| (t as f64 * crate::sim::pendulum::DT, pick(&row[i])))
                        .collect(),
                })
                .collect()
        };

        let mut r = Report::default();
        r.metrics.insert("training_episodes".into(), json!(used));
        r.metrics.insert("eval_mean_return".into(), json!(final_return));
        r.metrics.insert("initial_eval_mean_return".into(), json!(curve[0].1));
        r.metrics.insert("episodes_to_reach_minus_200".into(), json!(reached));
        r.summary = vec![
            format!("{used} training episodes (simulated 200-step trajectories, {batch} per gradient step)"),
            format!(
                "mean return over {eval_n} held-out random starts: {final_return:.1} (untrained policy {:.1}; target ≥ {TARGET_RETURN})",
                curve[0].1
            ),
            match reached {
                Some(k) => format!("first reached {TARGET_RETURN} after {k} training episodes"),
                None => format!("did not reach {TARGET_RETURN} within {used} training episodes"),
            },
        ];
        let target = vec![(0.0, TARGET_RETURN), (used.max(1) as f64, TARGET_RETURN)];
        r.curves = vec![
            Curve {
                file: "training.png".into(),
                title: "pendulum: return after each update".into(),
                x_label: "training episodes".into(),
                y_label: "return (negative cost over 200 steps)".into(),
                series: vec![
                    Series { label: "held-out mean".into(), points: curve },
                    Series { label: "training trajectories (mean)".into(), points: train_curve },
                    Series { label: "target -200".into(), points: target },
                ],
                log_y: false,
            },
            Curve {
                file: "angle.png".into(),
                title: "pendulum: angle of the trained policy".into(),
                x_label: "time (s)".into(),
                y_label: "angle from upright (rad)".into(),
                series: series(|p| p.0),
                log_y: false,
            },
            Curve {
                file: "torque.png".into(),
                title: "pendulum: torque of the trained policy".into(),
                x_label: "time (s)".into(),
                y_label: "torque (N·m)".into(),
                series: series(|p| p.1),
                log_y: false,
            },
        ];
        Ok(r)
    }
}
