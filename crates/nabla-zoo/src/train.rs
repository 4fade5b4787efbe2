//! The training loop shared by the experiments: resuming, progress, periodic checkpoints, Ctrl-C,
//! and the curves that go into plots (carried through checkpoints so a resumed run plots its whole
//! history).

use crate::experiment::{Context, Curve, Series, State, ZooError};
use nabla::nn::Module;
use nabla::optim::Optimizer;
use std::collections::BTreeMap;

/// Named series of `(x, y)` points.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Curves(pub BTreeMap<String, Vec<(f64, f64)>>);

impl Curves {
    /// Adds a point to a series.
    pub fn push(&mut self, name: &str, x: f64, y: f64) {
        self.0.entry(name.to_string()).or_default().push((x, y));
    }

    /// The points of a series.
    pub fn get(&self, name: &str) -> &[(f64, f64)] {
        self.0.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The last value of a series.
    pub fn last(&self, name: &str) -> Option<f64> {
        self.get(name).last().map(|p| p.1)
    }

    fn to_extra(&self, extra: &mut BTreeMap<String, String>) {
        for (k, v) in &self.0 {
            extra.insert(
                format!("curve.{k}"),
                serde_json::to_string(v).expect("serialisable"),
            );
        }
    }

    fn from_extra(extra: &BTreeMap<String, String>) -> Result<Curves, ZooError> {
        let mut c = Curves::default();
        for (k, v) in extra {
            if let Some(name) = k.strip_prefix("curve.") {
                let pts: Vec<(f64, f64)> = serde_json::from_str(v)
                    .map_err(|e| ZooError::Checkpoint(format!("checkpoint metadata {k}: {e}")))?;
                c.0.insert(name.to_string(), pts);
            }
        }
        Ok(c)
    }

    /// A plot of some series.
    pub fn curve(
        &self,
        file: &str,
        title: &str,
        x: &str,
        y: &str,
        names: &[(&str, &str)],
        log_y: bool,
    ) -> Curve {
        Curve {
            file: file.into(),
            title: title.into(),
            x_label: x.into(),
            y_label: y.into(),
            series: names
                .iter()
                .map(|(key, label)| Series {
                    label: label.to_string(),
                    points: self.get(key).to_vec(),
                })
                .collect(),
            log_y,
        }
    }
}

fn scalars_from_extra(extra: &BTreeMap<String, String>) -> Result<BTreeMap<String, f64>, ZooError> {
    let mut out = BTreeMap::new();
    for (k, v) in extra {
        if let Some(name) = k.strip_prefix("scalar.") {
            let x = v
                .parse::<f64>()
                .map_err(|e| ZooError::Checkpoint(format!("checkpoint metadata {k}: {e}")))?;
            out.insert(name.to_string(), x);
        }
    }
    Ok(out)
}

/// Counts steps and talks to the [`Context`].
pub struct Trainer<'c> {
    ctx: &'c mut dyn Context,
    total: u64,
    every: u64,
    step: u64,
    /// Curves logged so far (restored on resume).
    pub curves: Curves,
    /// Named running values (moving averages, counters), restored on resume.
    pub scalars: BTreeMap<String, f64>,
}

impl<'c> Trainer<'c> {
    /// A loop of `total` steps over `model` and `opt`, resumed from the context's checkpoint if
    /// it has one.
    pub fn new(
        ctx: &'c mut dyn Context,
        total: u64,
        model: &mut dyn Module,
        opt: &mut dyn Optimizer,
    ) -> Result<Trainer<'c>, ZooError> {
        let every = ctx.checkpoint_every(total);
        let mut state = State {
            model,
            optimizer: opt,
            extra: BTreeMap::new(),
        };
        let (step, curves, scalars) = match ctx.resume(&mut state)? {
            Some((step, extra)) => (
                step,
                Curves::from_extra(&extra)?,
                scalars_from_extra(&extra)?,
            ),
            None => (0, Curves::default(), BTreeMap::new()),
        };
        Ok(Trainer {
            ctx,
            total,
            every,
            step,
            curves,
            scalars,
        })
    }

    /// Steps completed so far.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Total steps of the run.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Whether every step is done.
    pub fn done(&self) -> bool {
        self.step >= self.total
    }

    fn save(&mut self, model: &mut dyn Module, opt: &mut dyn Optimizer) -> Result<(), ZooError> {
        let mut extra = BTreeMap::new();
        self.curves.to_extra(&mut extra);
        for (k, v) in &self.scalars {
            // `{:?}` prints an f64 so that it parses back to the same bits
            extra.insert(format!("scalar.{k}"), format!("{v:?}"));
        }
        let state = State {
            model,
            optimizer: opt,
            extra,
        };
        self.ctx.save(self.step, &state)
    }

    /// Stops the run with [`ZooError::Diverged`] when the loss of the current step is NaN or
    /// infinite: call it before the optimiser step, so that nothing is saved from a diverged
    /// state and the last checkpoint on disk stays the last good one.
    pub fn check_loss(&self, loss: f64) -> Result<(), ZooError> {
        if loss.is_finite() {
            Ok(())
        } else {
            Err(ZooError::Diverged {
                step: self.step + 1,
                loss,
            })
        }
    }

    /// Marks one step done: reports progress, saves a checkpoint when one is due, and stops
    /// (after saving) if the user asked.
    pub fn end_step(
        &mut self,
        model: &mut dyn Module,
        opt: &mut dyn Optimizer,
        status: &str,
    ) -> Result<(), ZooError> {
        self.step += 1;
        self.ctx.progress(self.step, self.total, status);
        if self.ctx.interrupted() {
            self.save(model, opt)?;
            return Err(ZooError::Interrupted { step: self.step });
        }
        if self.every > 0 && self.step.is_multiple_of(self.every) && self.step < self.total {
            self.save(model, opt)?;
        }
        Ok(())
    }

    /// Saves the final state.
    pub fn finish(
        &mut self,
        model: &mut dyn Module,
        opt: &mut dyn Optimizer,
    ) -> Result<(), ZooError> {
        self.save(model, opt)
    }
}

/// A seed for step `step` of a run seeded with `seed`: per-step randomness (augmentation, data
/// generation) that a resumed run reproduces.
pub fn step_seed(seed: u64, step: u64) -> u64 {
    let mut z = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Updates the exponential moving average held in `scalars[name]` with `x` and returns it (the
/// first value starts the average).
pub fn ema(scalars: &mut BTreeMap<String, f64>, name: &str, x: f64, decay: f64) -> f64 {
    let v = match scalars.get(name) {
        Some(v) => decay * v + (1.0 - decay) * x,
        None => x,
    };
    scalars.insert(name.to_string(), v);
    v
}
