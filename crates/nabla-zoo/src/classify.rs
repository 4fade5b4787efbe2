//! Training an image or feature classifier: shared by `mlp-digits`, `mlp-mnist` and `cnn-mnist`.

use crate::experiment::{Context, Report, ZooError};
use crate::train::{Trainer, ema, step_seed};
use nabla::data::{Augment, DataLoader, TensorDataset};
use nabla::nn::{Forward, Module, cross_entropy};
use nabla::optim::Optimizer;
use nabla::rand::{SeedableRng, rngs::StdRng};
use nabla::{Indices, no_grad};
use serde_json::json;

/// What a classifier run needs.
pub struct Setup<'a, M: Module + Forward> {
    /// The network: `[B, ...] -> [B, classes]` logits.
    pub model: &'a mut M,
    /// Its optimiser.
    pub opt: &'a mut dyn Optimizer,
    /// Training set.
    pub train: TensorDataset,
    /// Held-out set for the reported accuracy.
    pub test: TensorDataset,
    /// Examples per step.
    pub batch_size: usize,
    /// Training steps.
    pub steps: u64,
    /// Augmentation of training batches.
    pub augment: Option<Augment>,
    /// Seed for data order and augmentation.
    pub seed: u64,
    /// Learning rate for step `s` (a schedule), if any.
    pub lr_at: Option<Box<dyn Fn(u64) -> f64>>,
}

/// Final figures of a classifier run.
pub struct Outcome {
    /// Accuracy on the held-out set.
    pub test_accuracy: f64,
    /// Mean cross-entropy on the held-out set.
    pub test_loss: f64,
    /// Smoothed training loss at the end.
    pub train_loss: f64,
    /// Training curves.
    pub curves: crate::train::Curves,
}

impl Outcome {
    /// The report of classifier experiment `name`: its metrics, a two-line summary and the loss and
    /// accuracy plots. `split` names the evaluation set ("test", "held-out"); `sizes` are the
    /// parameter count and the numbers of training and evaluation examples.
    pub fn report(
        self,
        name: &str,
        split: &str,
        steps: u64,
        sizes: (usize, usize, usize),
    ) -> Report {
        let (params, n_train, n_eval) = sizes;
        let mut r = Report::default();
        r.metrics
            .insert("test_accuracy".into(), json!(self.test_accuracy));
        r.metrics.insert("test_loss".into(), json!(self.test_loss));
        r.metrics
            .insert("train_loss".into(), json!(self.train_loss));
        r.metrics.insert("steps".into(), json!(steps));
        r.summary = vec![
            format!(
                "{params} parameters, {n_train} training and {n_eval} {split} images, {steps} Adam steps"
            ),
            format!(
                "{split} accuracy {:.2}% (loss {:.4})",
                100.0 * self.test_accuracy,
                self.test_loss
            ),
        ];
        r.curves = vec![
            self.curves.curve(
                "loss.png",
                &format!("{name}: loss"),
                "step",
                "cross-entropy",
                &[("train_loss", "train (EMA)"), ("test_loss", split)],
                true,
            ),
            self.curves.curve(
                "accuracy.png",
                &format!("{name}: {split} accuracy"),
                "step",
                "accuracy",
                &[("test_accuracy", split)],
                false,
            ),
        ];
        r
    }
}

fn labels(t: &nabla::data::Targets) -> Result<Indices, ZooError> {
    t.labels()
        .map(Indices::from_slice)
        .ok_or_else(|| ZooError::Data("classifier data needs class labels".into()))
}

/// Accuracy and mean loss of `model` on `data`, in evaluation mode, batch by batch.
pub fn evaluate<M: Module + Forward>(
    model: &mut M,
    data: &TensorDataset,
) -> Result<(f64, f64), ZooError> {
    model.eval();
    let n = data.len();
    let (mut correct, mut loss) = (0usize, 0.0f64);
    let all: Vec<usize> = (0..n).collect();
    for chunk in all.chunks(1000) {
        let (x, t) = data.get(chunk);
        let y = labels(&t)?;
        let logits = no_grad(|| model.forward(&x));
        loss += cross_entropy(&logits, &y).item() * chunk.len() as f64;
        let pred = logits.argmax(1, false);
        correct += pred.iter().zip(y.iter()).filter(|(a, b)| a == b).count();
    }
    model.train();
    Ok((correct as f64 / n as f64, loss / n as f64))
}

/// Trains with cross-entropy, checkpointing through `ctx`, and evaluates on the test set.
pub fn run<M: Module + Forward>(
    s: Setup<'_, M>,
    ctx: &mut dyn Context,
) -> Result<Outcome, ZooError> {
    let loader = DataLoader::new(s.train.clone(), s.batch_size)
        .shuffle(s.seed)
        .drop_last(true);
    let per_epoch = loader.num_batches() as u64;
    if s.train.is_empty() {
        return Err(ZooError::Data("the training set is empty".into()));
    }
    if s.test.is_empty() {
        return Err(ZooError::Data("the test set is empty".into()));
    }
    if per_epoch == 0 {
        return Err(ZooError::Data(format!(
            "training set of {} examples is smaller than a batch of {}",
            s.train.len(),
            s.batch_size
        )));
    }
    let mut trainer = Trainer::new(ctx, s.steps, s.model, s.opt)?;
    let log_every = (s.steps / 200).max(1);
    let eval_every = (s.steps / 10).max(1);
    // Curve points during training use a fixed subset; the reported accuracy uses the whole set.
    let probe = if s.test.len() > 2000 {
        s.test.subset(&(0..2000).collect::<Vec<_>>())
    } else {
        s.test.clone()
    };
    let mut order: Option<(u64, Vec<usize>)> = None;
    while !trainer.done() {
        let step = trainer.step();
        let epoch = step / per_epoch;
        if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            order = Some((epoch, loader.order(epoch)));
        }
        let idx = &order.as_ref().expect("set").1;
        let b = (step % per_epoch) as usize * s.batch_size;
        let (mut x, t) = s.train.get(&idx[b..b + s.batch_size]);
        if let Some(aug) = &s.augment {
            x = aug.apply(&x, &mut StdRng::seed_from_u64(step_seed(s.seed, step)));
        }
        if let Some(lr) = &s.lr_at {
            s.opt.set_learning_rate(lr(step));
        }
        let y = labels(&t)?;
        let loss = cross_entropy(&s.model.forward(&x), &y);
        trainer.check_loss(loss.item())?;
        let grads = loss.backward();
        s.opt.step(s.model, &grads);
        let l = ema(&mut trainer.scalars, "train_loss", loss.item(), 0.95);
        if (step + 1) % log_every == 0 {
            trainer.curves.push("train_loss", (step + 1) as f64, l);
        }
        if (step + 1) % eval_every == 0 && step + 1 < s.steps {
            let (acc, tl) = evaluate(s.model, &probe)?;
            trainer.curves.push("test_accuracy", (step + 1) as f64, acc);
            trainer.curves.push("test_loss", (step + 1) as f64, tl);
        }
        let status = format!("loss {l:.4}");
        trainer.end_step(s.model, s.opt, &status)?;
    }
    let (test_accuracy, test_loss) = evaluate(s.model, &s.test)?;
    trainer
        .curves
        .push("test_accuracy", s.steps as f64, test_accuracy);
    trainer.curves.push("test_loss", s.steps as f64, test_loss);
    trainer.finish(s.model, s.opt)?;
    let train_loss = trainer.curves.last("train_loss").unwrap_or(f64::NAN);
    Ok(Outcome {
        test_accuracy,
        test_loss,
        train_loss,
        curves: trainer.curves,
    })
}
