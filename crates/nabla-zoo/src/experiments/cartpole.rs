//! `cartpole`: balancing Gym's `CartPole-v0` with a policy network trained by backpropagation
//! through the simulated dynamics, beside a REINFORCE baseline on the same environment.
//!
//! The policy is a small tanh network from the state to one pre-activation `a`; the force is
//! `+10 N` when `a ≥ 0` and `-10 N` otherwise (the real, discrete policy). Training passes the
//! gradient through that decision with a straight-through estimator whose backward is the
//! derivative of `10·tanh(a)`. The network sees each state variable divided by its typical range.
//! The loss is a differentiable surrogate of "upright and centred": the mean over the horizon
//! (200 steps, no termination: a failure is not differentiable) of
//! `sat(θ/12°)² + c_x·sat(x/2.4)² + c_v·(ẋ² + θ̇²)`, where `sat` clamps to ±`saturate` (2): once a
//! trajectory has clearly failed, its later steps cost a constant and pass no gradient, so the
//! gradient is not swamped by a spinning pole. Every simulated trajectory used for training counts
//! as one training episode. After each update the discrete policy is evaluated on 100 held-out
//! episodes with Gym's termination; the task is solved (Gym's rule) when they last 195 steps on
//! average, and training stops there.
//!
//! The REINFORCE baseline uses the same network as a Bernoulli policy `P(push right) =
//! sigmoid(a)`, discounted returns normalised over each batch of episodes, and Adam; it is
//! evaluated with the same discrete rule (push right when `a ≥ 0`, its most likely action).

use crate::experiment::{
    Config, Context, Curve, Experiment, OptSpec, Report, Series, Spec, ZooError,
};
use crate::models::PolicyNet;
use crate::sim::cartpole::{self, CartPole, FORCE_MAG, MAX_STEPS, THETA_LIMIT, X_LIMIT};
use crate::train::step_seed;
use nabla::nn::Forward;
use nabla::optim::{Adam, Optimizer, clip_grad_norm};
use nabla::rand::{RngExt, SeedableRng, rngs::StdRng};
use nabla::{Tensor, no_grad, straight_through};
use serde_json::json;

/// See the module docs.
pub struct CartPoleControl;

/// Gym's rule: `CartPole-v0` is solved at a mean of 195 steps over 100 episodes.
pub const SOLVED_STEPS: f64 = 195.0;

/// The discrete force `±10 N` of the pre-activations `a` (`+` where `a ≥ 0`).
fn bang(a: &Tensor) -> Tensor {
    a.ge_scalar(0.0).affine(2.0 * FORCE_MAG, -FORCE_MAG)
}

/// The policy's pre-activation for observations `[B, 4]`, each variable first divided by its
/// typical range (2.4 m, 2 m/s, 12°, 2 rad/s) so that all four reach the network at scale 1.
fn preact(policy: &PolicyNet, obs: &Tensor) -> Tensor {
    let scale = Tensor::from_vec(
        vec![1.0 / 2.4, 0.5, 1.0 / cartpole::THETA_LIMIT, 0.5],
        [1, 4],
    );
    policy.forward(&(obs * scale))
}

/// Mean episode length of the policy's discrete actions over the held-out start states.
fn evaluate(policy: &PolicyNet, starts: &CartPole) -> f64 {
    no_grad(|| {
        let lens = cartpole::episode_lengths(starts.clone(), |o| bang(&preact(policy, o)));
        lens.iter().sum::<usize>() as f64 / lens.len() as f64
    })
}

/// The surrogate loss of one batch of trajectories from `start` over `horizon` steps; its
/// gradient reaches the policy through the dynamics.
fn bptt_loss(
    policy: &PolicyNet,
    start: CartPole,
    horizon: usize,
    cx: f64,
    cv: f64,
    k: f64,
) -> Tensor {
    let mut s = start;
    let mut total = Tensor::scalar(0.0f64);
    for _ in 0..horizon {
        let a = preact(policy, &s.observation());
        // forward: the discrete ±10 N; backward: the derivative of 10·tanh(a)
        let force = straight_through(&bang(&a), &(a.tanh() * FORCE_MAG));
        s = s.step(&force);
        // in units of the failure limits, saturated at `k`: once a trajectory has clearly failed,
        // its later steps cost a constant and pass no gradient (a soft count of failed steps)
        let th = (&s.theta * (1.0 / THETA_LIMIT)).clamp(-k, k);
        let x = (&s.x * (1.0 / X_LIMIT)).clamp(-k, k);
        let cost = th.square() + x.square() * cx + (s.x_dot.square() + s.theta_dot.square()) * cv;
        total = total + cost.mean();
    }
    total * (1.0 / horizon as f64)
}

/// One REINFORCE update from `batch` episodes run side by side with the Bernoulli policy
/// `P(push right) = sigmoid(a)`: returns discounted by `gamma`, normalised over the batch.
/// Returns the mean episode length of the batch.
fn reinforce_update(
    policy: &mut PolicyNet,
    opt: &mut Adam,
    batch: usize,
    gamma: f64,
    rng: &mut StdRng,
) -> f64 {
    let mut s = CartPole::reset(batch, rng);
    let mut alive = vec![true; batch];
    // per episode: the observations and actions while it was alive
    let mut obs: Vec<Vec<[f64; 4]>> = vec![Vec::new(); batch];
    let mut acts: Vec<Vec<f64>> = vec![Vec::new(); batch];
    for _ in 0..MAX_STEPS {
        let o = s.observation();
        let p = no_grad(|| preact(policy, &o).sigmoid()).to_vec::<f64>();
        let ov = o.to_vec::<f64>();
        let mut push = vec![0.0f64; batch];
        for i in 0..batch {
            push[i] = if rng.random::<f64>() < p[i] { 1.0 } else { 0.0 };
            if alive[i] {
                obs[i].push([ov[4 * i], ov[4 * i + 1], ov[4 * i + 2], ov[4 * i + 3]]);
                acts[i].push(push[i]);
            }
        }
        let force = Tensor::from_vec(push, [batch]).affine(2.0 * FORCE_MAG, -FORCE_MAG);
        s = no_grad(|| s.step(&force));
        for (i, f) in s.failed().into_iter().enumerate() {
            alive[i] &= !f;
        }
        if !alive.iter().any(|a| *a) {
            break;
        }
    }
    // reward 1 per step: discounted returns to go, normalised over every step of the batch
    let mut returns = Vec::new();
    for a in &acts {
        let mut r = vec![0.0; a.len()];
        let mut g = 0.0;
        for k in (0..r.len()).rev() {
            g = 1.0 + gamma * g;
            r[k] = g;
        }
        returns.extend(r);
    }
    let n = returns.len() as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let std = (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt() + 1e-8;
    let adv: Vec<f64> = returns.iter().map(|r| (r - mean) / std).collect();
    let flat_obs: Vec<f64> = obs.iter().flatten().flatten().copied().collect();
    let flat_act: Vec<f64> = acts.iter().flatten().copied().collect();
    let m = flat_act.len();
    let a = preact(policy, &Tensor::from_vec(flat_obs, [m, 4]));
    let act = Tensor::from_vec(flat_act, [m]);
    // log π(action): log sigmoid(a) if pushed right, log sigmoid(-a) otherwise
    let logp = -((&act * a.neg().softplus()) + (1.0 - &act) * a.softplus());
    let loss = -(logp * Tensor::from_vec(adv, [m])).sum() * (1.0 / batch as f64);
    opt.step(policy, &loss.backward());
    m as f64 / batch as f64
}

/// A learning curve on a log-10 axis of training episodes.
fn log_points(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points
        .iter()
        .filter(|p| p.0 >= 1.0)
        .map(|&(x, y)| (x.log10(), y))
        .collect()
}

impl Experiment for CartPoleControl {
    fn spec(&self) -> Spec {
        Spec {
            name: "cartpole",
            summary: "CartPole-v0 balanced by backprop through the simulator (at most 10 training episodes), beside REINFORCE (at most 2,000)",
            runtime: "~1 s; --quick ~1 s",
            options: vec![
                OptSpec::int(
                    "episodes",
                    "training-episode budget of backprop through the simulator",
                    10,
                )
                .min(1),
                OptSpec::int(
                    "batch",
                    "trajectories per gradient step (each counts as an episode)",
                    1,
                )
                .min(1),
                OptSpec::int("horizon", "steps of each training trajectory", 200).min(1),
                OptSpec::int("hidden", "tanh units of the policy network", 16).min(1),
                OptSpec::float(
                    "lr",
                    "Adam learning rate (backprop through the simulator)",
                    0.3,
                )
                .greater_than(0.0),
                OptSpec::float("x-weight", "weight of (x/2.4)² in the surrogate loss", 3.0)
                    .min(0.0),
                OptSpec::float(
                    "saturate",
                    "the loss's θ and x terms saturate at this multiple of the failure limits",
                    2.0,
                )
                .greater_than(0.0),
                OptSpec::float("v-weight", "weight of ẋ² + θ̇² in the surrogate loss", 0.25)
                    .min(0.0),
                OptSpec::int("reinforce-episodes", "REINFORCE episode budget", 2000)
                    .min(1)
                    .quick(300),
                OptSpec::int("reinforce-batch", "REINFORCE episodes per update", 10).min(1),
                OptSpec::float("reinforce-lr", "REINFORCE Adam learning rate", 0.01)
                    .greater_than(0.0),
                OptSpec::float("gamma", "REINFORCE discount", 0.99).range(0.0, 1.0),
                OptSpec::int(
                    "eval-episodes",
                    "held-out evaluation episodes after each update",
                    100,
                )
                .min(1),
            ],
        }
    }

    fn run(&self, cfg: &Config, ctx: &mut dyn Context) -> Result<Report, ZooError> {
        let budget = cfg.usize("episodes");
        let batch = cfg.usize("batch");
        let horizon = cfg.usize("horizon");
        let (rf_budget, rf_batch) = (
            cfg.usize("reinforce-episodes"),
            cfg.usize("reinforce-batch"),
        );
        let eval_n = cfg.usize("eval-episodes");
        let total = (budget + rf_budget) as u64;
        let eval_starts = CartPole::reset(
            eval_n,
            &mut StdRng::seed_from_u64(step_seed(cfg.seed, u64::MAX)),
        );

        // backprop through the simulator
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let mut policy = PolicyNet::new(4, cfg.usize("hidden"), &mut rng);
        let mut opt = Adam::new(cfg.f64("lr"));
        let mut curve = vec![(0.0, evaluate(&policy, &eval_starts))];
        let (mut used, mut solved) = (0usize, None);
        while used + batch <= budget && solved.is_none() {
            let start = CartPole::reset(batch, &mut rng);
            let loss = bptt_loss(
                &policy,
                start,
                horizon,
                cfg.f64("x-weight"),
                cfg.f64("v-weight"),
                cfg.f64("saturate"),
            );
            let mut grads = loss.backward();
            clip_grad_norm(&mut grads, 1.0);
            opt.step(&mut policy, &grads);
            used += batch;
            let mean = evaluate(&policy, &eval_starts);
            curve.push((used as f64, mean));
            if mean >= SOLVED_STEPS {
                solved = Some(used);
            }
            ctx.progress(
                used as u64,
                total,
                &format!("backprop: {used} episodes, eval {mean:.1} steps"),
            );
        }
        let eval_mean = curve.last().map_or(f64::NAN, |p| p.1);

        // REINFORCE
        let mut rng = StdRng::seed_from_u64(step_seed(cfg.seed, 1));
        let mut rf_policy = PolicyNet::new(4, cfg.usize("hidden"), &mut rng);
        let mut rf_opt = Adam::new(cfg.f64("reinforce-lr"));
        let mut rf_curve = vec![(0.0, evaluate(&rf_policy, &eval_starts))];
        let (mut rf_used, mut rf_solved) = (0usize, None);
        while rf_used + rf_batch <= rf_budget && rf_solved.is_none() {
            let train_len = reinforce_update(
                &mut rf_policy,
                &mut rf_opt,
                rf_batch,
                cfg.f64("gamma"),
                &mut rng,
            );
            rf_used += rf_batch;
            let mean = evaluate(&rf_policy, &eval_starts);
            rf_curve.push((rf_used as f64, mean));
            if mean >= SOLVED_STEPS {
                rf_solved = Some(rf_used);
            }
            ctx.progress(
                (budget + rf_used) as u64,
                total,
                &format!(
                    "REINFORCE: {rf_used} episodes, batch {train_len:.0} steps, eval {mean:.1}"
                ),
            );
        }
        ctx.progress(total, total, "done");
        let rf_best = rf_curve.iter().map(|p| p.1).fold(f64::MIN, f64::max);
        let rf_last = rf_curve.last().map_or(f64::NAN, |p| p.1);

        let mut r = Report::default();
        r.metrics.insert("episodes_to_solve".into(), json!(solved));
        r.metrics.insert("eval_mean_steps".into(), json!(eval_mean));
        r.metrics.insert("training_episodes".into(), json!(used));
        r.metrics
            .insert("reinforce_episodes_to_solve".into(), json!(rf_solved));
        r.metrics
            .insert("reinforce_eval_mean_steps".into(), json!(rf_last));
        r.metrics
            .insert("reinforce_best_eval_mean_steps".into(), json!(rf_best));
        r.metrics
            .insert("reinforce_training_episodes".into(), json!(rf_used));
        let say = |s: Option<usize>, n: usize| match s {
            Some(k) => format!("solved after {k} training episodes"),
            None => format!("not solved within {n} training episodes"),
        };
        r.summary = vec![
            format!(
                "backprop through the simulator ({batch} trajectories of {horizon} steps per update): {}; eval mean {eval_mean:.1} steps over {eval_n} held-out episodes",
                say(solved, budget)
            ),
            format!(
                "REINFORCE ({rf_batch} episodes per update): {}; last eval mean {rf_last:.1}, best {rf_best:.1} steps",
                say(rf_solved, rf_budget)
            ),
            format!(
                "Gym's rule: solved at a mean of {SOLVED_STEPS} steps over 100 episodes (cap 200)"
            ),
        ];
        r.curves = vec![Curve {
            file: "learning.png".into(),
            title: "cartpole: evaluation after each update".into(),
            x_label: "training episodes (log10: 0 = 1, 1 = 10, 3 = 1000)".into(),
            y_label: "mean steps over held-out episodes".into(),
            series: vec![
                Series {
                    label: "backprop through the simulator".into(),
                    points: log_points(&curve),
                },
                Series {
                    label: "REINFORCE".into(),
                    points: log_points(&rf_curve),
                },
                Series {
                    label: "solved (195)".into(),
                    points: vec![
                        (0.0, SOLVED_STEPS),
                        (
                            ((budget.max(rf_budget)).max(1) as f64).log10(),
                            SOLVED_STEPS,
                        ),
                    ],
                },
            ],
            log_y: false,
        }];
        Ok(r)
    }
}
