//! `learned-optimizer`: learning to learn by gradient descent by gradient descent (Andrychowicz
//! et al. 2016). A coordinate-wise two-layer LSTM (20 units, the paper's log/sign gradient
//! preprocessing, output scaled by 0.1; see [`crate::lstm_optimizer`]) is meta-trained on random
//! 10-dimensional quadratics `f(θ) = ‖Wθ − y‖²` (`W`, `y`, `θ₀` standard normal) by truncated
//! backprop through unrolled optimisation: each training episode runs 100 steps on a batch of
//! quadratics as 5 unrolls of 20 steps; after each unroll the sum of the losses at its 20 iterates
//! is differentiated with respect to the LSTM's weights (Adam), and the iterate and LSTM state are
//! cut from the graph. Two copies, from the same initial weights, train side by side on the same
//! problems: second order (the meta-gradient passes through the optimisee's gradient, so through
//! its Hessian) and first order (that gradient detached).
//!
//! Evaluation: 100 held-out quadratics over 100 steps, against Adam and SGD whose learning rates
//! are tuned (a grid, lowest mean final loss) on a separate batch of training quadratics. Then the
//! LSTM, unchanged, trains a 64-20-10 sigmoid MLP on the UCI digits (minibatches of 128, 100 steps),
//! against Adam and SGD with learning rates tuned on that same task (which favours them).

use crate::experiment::{
    Config, Context, Curve, Experiment, OptSpec, Report, Series, Spec, ZooError,
};
use crate::lstm_optimizer::{Baseline, LstmOptimizer, Method, optimise, tune, unroll};
use crate::train::{Trainer, step_seed};
use nabla::data::datasets;
use nabla::meta::Order;
use nabla::nn::{Module, cross_entropy};
use nabla::optim::{Adam, Optimizer, clip_grad_norm};
use nabla::rand::{RngExt, SeedableRng, rngs::StdRng};
use nabla::{DType, Indices, Tensor, no_grad};
use serde_json::json;

/// See the module docs.
pub struct LearnedOptimizer;

/// The two LSTM optimisers trained side by side (one checkpoint, one Adam).
#[derive(Module)]
struct Pair {
    second: LstmOptimizer,
    first: LstmOptimizer,
}

/// A batch of quadratics `‖W θ − y‖²`: `W [B, D, D]`, `y [B, D]`, start `θ₀ [B, D]`.
struct Quadratics {
    w: Tensor,
    y: Tensor,
    theta0: Tensor,
}

impl Quadratics {
    fn sample(b: usize, d: usize, rng: &mut StdRng) -> Quadratics {
        Quadratics {
            w: Tensor::randn([b, d, d], DType::F32, rng),
            y: Tensor::randn([b, d], DType::F32, rng),
            theta0: Tensor::randn([b, d], DType::F32, rng),
        }
    }

    fn count(&self) -> usize {
        self.y.dims()[0]
    }

    /// The loss of each problem, `[B]`.
    fn losses(&self, theta: &Tensor) -> Tensor {
        let r = (&self.w * theta.unsqueeze(1)).sum_axis(-1, false) - &self.y;
        r.square().sum_axis(-1, false)
    }

    /// The sum over problems (each problem's gradient is its own).
    fn total(&self, theta: &Tensor) -> Tensor {
        self.losses(theta).sum()
    }

    /// The mean loss over problems.
    fn mean(&self, theta: &Tensor) -> f64 {
        no_grad(|| self.losses(theta).mean().item())
    }
}

/// The digits MLP task: a 64-20-10 sigmoid network whose parameters are one flat vector, trained
/// on fixed minibatches (one per step) and scored on the whole training set.
struct DigitsMlp {
    x: Tensor,
    labels: Indices,
    batches: Vec<(Tensor, Indices)>,
    theta0: Tensor,
}

const MLP_IN: usize = 64;
const MLP_HIDDEN: usize = 20;
const MLP_OUT: usize = 10;

impl DigitsMlp {
    fn load(cfg: &Config, steps: usize, batch: usize) -> Result<DigitsMlp, ZooError> {
        let path = cfg
            .path("data")
            .unwrap_or_else(|| datasets::bundled_data_dir().join("digits/digits.csv.gz"));
        let data = datasets::digits(&path).map_err(|e| ZooError::Data(e.to_string()))?;
        // the same 80% training split as mlp-digits
        let (train, _) = data.split(0.8, 20_231_122);
        let labels = train
            .labels()
            .ok_or_else(|| ZooError::Data("digits: no class labels".into()))?
            .to_vec();
        let n = train.len();
        let mut rng = StdRng::seed_from_u64(step_seed(cfg.seed, 0xD161_7500));
        let batches = (0..steps)
            .map(|_| {
                let idx: Vec<usize> = (0..batch.min(n)).map(|_| rng.random_range(0..n)).collect();
                let lab: Vec<usize> = idx.iter().map(|&i| labels[i]).collect();
                (
                    train.inputs().index_select(0, &Indices::from_slice(&idx)),
                    Indices::from(lab),
                )
            })
            .collect();
        let block = |fan_in: usize, n: usize, rng: &mut StdRng| {
            let k = 1.0 / (fan_in as f64).sqrt();
            Tensor::uniform([n], -k, k, DType::F32, rng)
        };
        let theta0 = Tensor::concat(
            &[
                block(MLP_IN, MLP_HIDDEN * MLP_IN, &mut rng),
                block(MLP_IN, MLP_HIDDEN, &mut rng),
                block(MLP_HIDDEN, MLP_OUT * MLP_HIDDEN, &mut rng),
                block(MLP_HIDDEN, MLP_OUT, &mut rng),
            ],
            0,
        );
        Ok(DigitsMlp {
            x: train.inputs().clone(),
            labels: Indices::from(labels),
            batches,
            theta0,
        })
    }

    fn loss(theta: &Tensor, x: &Tensor, y: &Indices) -> Tensor {
        let mut at = 0;
        let mut take = |shape: &[usize]| {
            let n: usize = shape.iter().product();
            let t = theta.narrow(0, at, n).reshape(shape.to_vec());
            at += n;
            t
        };
        let w1 = take(&[MLP_HIDDEN, MLP_IN]);
        let b1 = take(&[MLP_HIDDEN]);
        let w2 = take(&[MLP_OUT, MLP_HIDDEN]);
        let b2 = take(&[MLP_OUT]);
        let h = (x.matmul(&w1.t()) + b1).sigmoid();
        cross_entropy(&(h.matmul(&w2.t()) + b2), y)
    }

    fn full(&self, theta: &Tensor) -> f64 {
        no_grad(|| DigitsMlp::loss(theta, &self.x, &self.labels).item())
    }
}

fn mean_curve(name: &str, v: &[f64]) -> Series {
    Series {
        label: name.into(),
        points: v.iter().enumerate().map(|(t, y)| (t as f64, *y)).collect(),
    }
}

impl Experiment for LearnedOptimizer {
    fn spec(&self) -> Spec {
        Spec {
            name: "learned-optimizer",
            summary: "an LSTM optimiser meta-trained on random quadratics beats tuned Adam and SGD on held-out ones; transfer to a digits MLP",
            runtime: "~5 min; --quick ~15 s",
            options: vec![
                OptSpec::int("episodes", "meta-training episodes (100 steps each)", 400)
                    .min(1)
                    .quick(25),
                OptSpec::int("batch", "quadratics per meta-training episode", 32).min(1),
                OptSpec::int("dim", "dimension of the quadratics", 10).min(1),
                OptSpec::int("steps", "optimisation steps per episode and at test", 100).min(1),
                OptSpec::int("unroll", "steps per truncated unroll", 20).min(1),
                OptSpec::int("hidden", "units per LSTM layer", 20).min(1),
                OptSpec::float("out-scale", "scale of the LSTM's update", 0.1).greater_than(0.0),
                OptSpec::float("meta-lr", "Adam learning rate of the meta-training", 3e-3)
                    .greater_than(0.0),
                OptSpec::float("clip", "meta-gradient norm clip", 1.0).greater_than(0.0),
                OptSpec::int("eval-problems", "held-out quadratics", 100).min(1),
                OptSpec::int(
                    "tune-problems",
                    "training quadratics the baselines' learning rates are tuned on",
                    100,
                )
                .min(1),
                OptSpec::int("mlp-batch", "digits minibatch size", 128).min(1),
                OptSpec::path(
                    "data",
                    "digits CSV (gz or plain) [default: the copy in data/digits]",
                ),
            ],
        }
    }

    fn run(&self, cfg: &Config, ctx: &mut dyn Context) -> Result<Report, ZooError> {
        let (dim, batch) = (cfg.usize("dim"), cfg.usize("batch"));
        let (steps, unroll_len) = (cfg.usize("steps"), cfg.usize("unroll"));
        let episodes = cfg.steps_or(cfg.usize("episodes") as u64);
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        // the untrained network and both trained copies start from the same weights
        let init_seed: u64 = rng.random();
        let init = || {
            let mut r = StdRng::seed_from_u64(init_seed);
            LstmOptimizer::new(cfg.usize("hidden"), cfg.f64("out-scale"), &mut r)
        };
        let untrained = init();
        let mut pair = Pair {
            second: init(),
            first: init(),
        };
        let mut opt = Adam::new(cfg.f64("meta-lr"));
        let mut tr = Trainer::new(ctx, episodes, &mut pair, &mut opt)?;

        // meta-training: one trainer step is one episode of `steps` steps in unrolls
        while !tr.done() {
            let ep = tr.step();
            let mut prng = StdRng::seed_from_u64(step_seed(cfg.seed, ep + 1));
            let q = Quadratics::sample(batch, dim, &mut prng);
            let f = |_: usize, th: &Tensor| q.total(th);
            let (mut th_s, mut th_f) = (q.theta0.clone(), q.theta0.clone());
            let (mut st_s, mut st_f) = (
                pair.second.zero_state(batch * dim),
                pair.first.zero_state(batch * dim),
            );
            let (mut sum_s, mut sum_f) = (0.0, 0.0);
            let mut t = 0;
            while t < steps {
                let n = unroll_len.min(steps - t);
                let (ms, ts, ss, _) = unroll(&pair.second, &th_s, &st_s, t, n, &f, Order::Second);
                let (mf, tf, sf, _) = unroll(&pair.first, &th_f, &st_f, t, n, &f, Order::First);
                let scale = 1.0 / (n * batch) as f64;
                let (ms, mf) = (ms * scale, mf * scale);
                let (vs, vf) = (ms.item(), mf.item());
                tr.check_loss(vs + vf)?;
                sum_s += vs * n as f64;
                sum_f += vf * n as f64;
                let mut grads = ms.backward();
                clip_grad_norm(&mut grads, cfg.f64("clip"));
                let mut gf = mf.backward();
                clip_grad_norm(&mut gf, cfg.f64("clip"));
                for p in pair.first.parameters() {
                    if let Some(g) = gf.remove(&p) {
                        grads.insert(&p, g);
                    }
                }
                opt.step(&mut pair, &grads);
                (th_s, th_f) = (ts.detach(), tf.detach());
                (st_s, st_f) = (ss.detach(), sf.detach());
                t += n;
            }
            let (ls, lf) = (sum_s / steps as f64, sum_f / steps as f64);
            let x = (ep + 1) as f64;
            tr.curves.push("second", x, ls);
            tr.curves.push("first", x, lf);
            tr.end_step(
                &mut pair,
                &mut opt,
                &format!("episode mean loss: second order {ls:.3}, first order {lf:.3}"),
            )?;
        }
        tr.finish(&mut pair, &mut opt)?;
        let curves = tr.curves.clone();
        drop(tr);

        // baselines tuned on training quadratics, everything evaluated on held-out ones
        ctx.progress(episodes, episodes, "tuning Adam and SGD, evaluating");
        let mut trng = StdRng::seed_from_u64(step_seed(cfg.seed, u64::MAX - 1));
        let tune_q = Quadratics::sample(cfg.usize("tune-problems"), dim, &mut trng);
        let tf = |_: usize, th: &Tensor| tune_q.total(th);
        let te = |th: &Tensor| tune_q.mean(th);
        let (adam_lr, _) = tune(Baseline::Adam, &tune_q.theta0, steps, &tf, &te);
        let (sgd_lr, _) = tune(Baseline::Sgd, &tune_q.theta0, steps, &tf, &te);
        // the held-out problems depend only on a fixed seed, not on the run's
        let test_q = Quadratics::sample(
            cfg.usize("eval-problems"),
            dim,
            &mut StdRng::seed_from_u64(0x7E57_0001),
        );
        let qf = |_: usize, th: &Tensor| test_q.total(th);
        let qe = |th: &Tensor| test_q.mean(th);
        let run_q = |m: Method<'_>| optimise(&m, &test_q.theta0, steps, &qf, &qe);
        let q_second = run_q(Method::Learned(&pair.second));
        let q_first = run_q(Method::Learned(&pair.first));
        let q_untrained = run_q(Method::Learned(&untrained));
        let q_adam = run_q(Method::Baseline(Baseline::Adam(adam_lr)));
        let q_sgd = run_q(Method::Baseline(Baseline::Sgd(sgd_lr)));

        // transfer: the same LSTM on the digits MLP
        let mlp = DigitsMlp::load(cfg, steps, cfg.usize("mlp-batch"))?;
        let mf = |t: usize, th: &Tensor| {
            let (x, y) = &mlp.batches[t.min(mlp.batches.len() - 1)];
            DigitsMlp::loss(th, x, y)
        };
        let me = |th: &Tensor| mlp.full(th);
        let (mlp_adam_lr, _) = tune(Baseline::Adam, &mlp.theta0, steps, &mf, &me);
        let (mlp_sgd_lr, _) = tune(Baseline::Sgd, &mlp.theta0, steps, &mf, &me);
        let run_m = |m: Method<'_>| optimise(&m, &mlp.theta0, steps, &mf, &me);
        let m_second = run_m(Method::Learned(&pair.second));
        let m_first = run_m(Method::Learned(&pair.first));
        let m_adam = run_m(Method::Baseline(Baseline::Adam(mlp_adam_lr)));
        let m_sgd = run_m(Method::Baseline(Baseline::Sgd(mlp_sgd_lr)));

        let last = |v: &[f64]| *v.last().expect("nonempty");
        let mut r = Report::default();
        let metrics = [
            ("final_loss_learned", last(&q_second)),
            ("final_loss_learned_first_order", last(&q_first)),
            ("final_loss_untrained", last(&q_untrained)),
            ("final_loss_adam", last(&q_adam)),
            ("final_loss_sgd", last(&q_sgd)),
            ("initial_loss", q_adam[0]),
            ("adam_lr", adam_lr),
            ("sgd_lr", sgd_lr),
            ("mlp_digits_loss_learned", last(&m_second)),
            ("mlp_digits_loss_learned_first_order", last(&m_first)),
            ("mlp_digits_loss_adam", last(&m_adam)),
            ("mlp_digits_loss_sgd", last(&m_sgd)),
            ("mlp_digits_initial_loss", m_adam[0]),
            ("mlp_adam_lr", mlp_adam_lr),
            ("mlp_sgd_lr", mlp_sgd_lr),
        ];
        for (k, v) in metrics {
            r.metrics.insert(k.into(), json!(v));
        }
        r.metrics.insert("meta_episodes".into(), json!(episodes));
        let n_eval = test_q.count();
        r.summary = vec![
            format!(
                "meta-trained {episodes} episodes of {steps} steps ({} unrolls of {unroll_len}) on batches of {batch} random {dim}-d quadratics",
                steps.div_ceil(unroll_len)
            ),
            format!(
                "{n_eval} held-out quadratics, mean loss after {steps} steps (start {:.2}): LSTM second order {:.4}, first order {:.4}, untrained LSTM {:.4}; Adam (lr {adam_lr:.3e}) {:.4}; SGD (lr {sgd_lr:.3e}) {:.4}",
                q_adam[0],
                last(&q_second),
                last(&q_first),
                last(&q_untrained),
                last(&q_adam),
                last(&q_sgd)
            ),
            format!(
                "digits MLP 64-20-10 (sigmoid, minibatch {}), training-set loss after {steps} steps (start {:.3}): LSTM second order {:.4}, first order {:.4}; Adam (lr {mlp_adam_lr:.3e}, tuned on this task) {:.4}; SGD (lr {mlp_sgd_lr:.3e}) {:.4}",
                cfg.usize("mlp-batch"),
                m_adam[0],
                last(&m_second),
                last(&m_first),
                last(&m_adam),
                last(&m_sgd)
            ),
        ];
        let quad = |v: &[f64], name: &str| mean_curve(name, v);
        r.curves = vec![
            Curve {
                file: "quadratics.png".into(),
                title: format!("learned-optimizer: {n_eval} held-out quadratics"),
                x_label: "optimisation step".into(),
                y_label: "mean loss ||W theta - y||^2".into(),
                series: vec![
                    quad(&q_second, "LSTM (second order)"),
                    quad(&q_first, "LSTM (first order)"),
                    quad(&q_adam, &format!("Adam (lr {adam_lr:.3e})")),
                    quad(&q_sgd, &format!("SGD (lr {sgd_lr:.3e})")),
                ],
                log_y: true,
            },
            Curve {
                file: "mlp_digits.png".into(),
                title: "learned-optimizer: transfer to a digits MLP".into(),
                x_label: "optimisation step".into(),
                y_label: "training-set cross-entropy".into(),
                series: vec![
                    quad(&m_second, "LSTM (second order)"),
                    quad(&m_first, "LSTM (first order)"),
                    quad(&m_adam, &format!("Adam (lr {mlp_adam_lr:.3e})")),
                    quad(&m_sgd, &format!("SGD (lr {mlp_sgd_lr:.3e})")),
                ],
                log_y: true,
            },
            curves.curve(
                "meta_training.png",
                "learned-optimizer: meta-training",
                "episode",
                "mean loss over the episode",
                &[("second", "second order"), ("first", "first order")],
                true,
            ),
        ];
        Ok(r)
    }
}
