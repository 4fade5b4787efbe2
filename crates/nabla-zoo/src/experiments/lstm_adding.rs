//! `lstm-adding`: the adding problem (Hochreiter & Schmidhuber 1997). Each input is a sequence of
//! pairs (value in [0, 1], marker); exactly two markers are 1, one in each half of the sequence,
//! and the target is the sum of the two marked values. Predicting the mean (1.0) gives an MSE of
//! about 0.167; solving it needs memory across the whole sequence.

use crate::experiment::{Config, Context, Experiment, OptSpec, Report, Spec, ZooError};
use crate::train::{Trainer, ema, step_seed};
use nabla::nn::{Forward, Linear, Lstm, Module, mse_loss};
use nabla::optim::{Adam, Optimizer, clip_grad_norm};
use nabla::rand::{Rng, RngExt, SeedableRng, rngs::StdRng};
use nabla::{Tensor, no_grad};
use serde_json::json;

/// See the module docs.
pub struct LstmAdding;

/// A batch of `n` sequences of length `len`: inputs `[n, len, 2]` and targets `[n, 1]`.
pub fn adding_batch<R: Rng + ?Sized>(n: usize, len: usize, rng: &mut R) -> (Tensor, Tensor) {
    let mut x = vec![0.0f32; n * len * 2];
    let mut y = vec![0.0f32; n];
    let half = len / 2;
    for s in 0..n {
        for t in 0..len {
            x[(s * len + t) * 2] = rng.random::<f32>();
        }
        let a = rng.random_range(0..half);
        let b = half + rng.random_range(0..len - half);
        for t in [a, b] {
            x[(s * len + t) * 2 + 1] = 1.0;
            y[s] += x[(s * len + t) * 2];
        }
    }
    (
        Tensor::from_vec(x, [n, len, 2]),
        Tensor::from_vec(y, [n, 1]),
    )
}

/// An LSTM reading the sequence and a linear read-out of its last hidden state.
#[derive(Module)]
pub struct AddingModel {
    lstm: Lstm,
    head: Linear,
}

impl Forward for AddingModel {
    fn forward(&self, x: &Tensor) -> Tensor {
        let h = self.lstm.forward(x); // [B, T, H]
        let last = h.select(1, x.dims()[1] - 1);
        self.head.forward(&last)
    }
}

impl Experiment for LstmAdding {
    fn spec(&self) -> Spec {
        Spec {
            name: "lstm-adding",
            summary: "LSTM learns the adding problem, sequences of length 50; 3,000 steps (--quick: length 10, 400 steps)",
            runtime: "~20 s; --quick ~2 s",
            options: vec![
                OptSpec::int("seq-len", "sequence length", 50)
                    .range(2, 100_000)
                    .quick(10),
                OptSpec::int("hidden", "LSTM hidden units", 64).range(1, 16384),
                OptSpec::float("lr", "Adam learning rate", 3e-3)
                    .greater_than(0.0)
                    .quick(1e-2),
                OptSpec::float("clip", "gradient clipping by global norm (0: none)", 1.0).min(0.0),
                OptSpec::int("batch-size", "sequences per step", 64).range(1, 1 << 20),
            ],
        }
    }

    fn run(&self, cfg: &Config, ctx: &mut dyn Context) -> Result<Report, ZooError> {
        let len = cfg.usize("seq-len");
        let (hidden, batch) = (cfg.usize("hidden"), cfg.usize("batch-size"));
        let steps = cfg.steps_or(if cfg.quick { 400 } else { 3000 });
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let mut model = AddingModel {
            lstm: Lstm::new(2, hidden, &mut rng),
            head: Linear::new(hidden, 1, &mut rng),
        };
        let mut opt = Adam::new(cfg.f64("lr"));
        let clip = cfg.f64("clip");
        // A fixed test set, the same for every seed.
        let (test_x, test_y) = adding_batch(1000, len, &mut StdRng::seed_from_u64(0xADD));
        let params = model.num_parameters();
        let mut trainer = Trainer::new(ctx, steps, &mut model, &mut opt)?;
        let eval_every = (steps / 20).max(1);
        while !trainer.done() {
            let step = trainer.step();
            let (x, y) = adding_batch(
                batch,
                len,
                &mut StdRng::seed_from_u64(step_seed(cfg.seed, step)),
            );
            let loss = mse_loss(&model.forward(&x), &y);
            trainer.check_loss(loss.item())?;
            let mut grads = loss.backward();
            if clip > 0.0 {
                clip_grad_norm(&mut grads, clip);
            }
            opt.step(&mut model, &grads);
            let l = ema(&mut trainer.scalars, "train_mse", loss.item(), 0.95);
            if (step + 1) % 10 == 0 {
                trainer.curves.push("train_mse", (step + 1) as f64, l);
            }
            if (step + 1) % eval_every == 0 && step + 1 < steps {
                let t = no_grad(|| mse_loss(&model.forward(&test_x), &test_y)).item();
                trainer.curves.push("test_mse", (step + 1) as f64, t);
            }
            trainer.end_step(&mut model, &mut opt, &format!("mse {l:.4}"))?;
        }
        let test_mse = no_grad(|| mse_loss(&model.forward(&test_x), &test_y)).item();
        trainer.curves.push("test_mse", steps as f64, test_mse);
        trainer.finish(&mut model, &mut opt)?;
        let baseline = no_grad(|| mse_loss(&test_y.ones_like(), &test_y)).item();
        let train_mse = trainer.curves.last("train_mse").unwrap_or(f64::NAN);
        let mut r = Report::default();
        r.metrics.insert("test_mse".into(), json!(test_mse));
        r.metrics.insert("baseline_mse".into(), json!(baseline));
        r.metrics.insert("train_mse".into(), json!(train_mse));
        r.metrics.insert("steps".into(), json!(steps));
        r.summary = vec![
            format!(
                "{params} parameters, sequences of length {len}, {steps} Adam steps of {batch} sequences"
            ),
            format!("test MSE {test_mse:.5} (always answering 1.0 gives {baseline:.4})"),
        ];
        r.curves = vec![trainer.curves.curve(
            "mse.png",
            "lstm-adding: mean squared error",
            "step",
            "MSE",
            &[("train_mse", "train (EMA)"), ("test_mse", "test")],
            true,
        )];
        Ok(r)
    }
}
