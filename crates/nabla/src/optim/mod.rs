//! Optimisers, learning-rate schedules and gradient clipping.
//!
//! An optimiser updates a [`Module`]'s trainable parameters from the [`Grads`] that
//! `loss.backward()` returns:
//!
//! ```
//! use nabla::nn::{Forward, Linear, Module};
//! use nabla::optim::{Adam, Optimizer};
//! use nabla::{rand::SeedableRng, DType, Tensor};
//! let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(0);
//! let mut model = Linear::new(2, 1, &mut rng);
//! let mut opt = Adam::new(0.1);
//! let x = Tensor::from_vec(vec![1.0f32, 2.0, -1.0, 0.5], [2, 2]);
//! let y = Tensor::from_vec(vec![1.0f32, -1.0], [2, 1]);
//! let mut last = f64::MAX;
//! for _ in 0..50 {
//!     let loss = (model.forward(&x) - &y).square().mean();
//!     let grads = loss.backward();
//!     opt.step(&mut model, &grads);
//!     last = loss.item();
//! }
//! assert!(last < 1e-2);
//! ```

mod adagrad;
mod adam;
mod clip;
mod rmsprop;
mod schedule;
mod sgd;

pub use adagrad::Adagrad;
pub use adam::{Adam, AdamW};
pub use clip::{clip_grad_norm, clip_grad_value, global_norm};
pub use rmsprop::RmsProp;
pub use schedule::{ConstantLr, CosineLr, ExponentialLr, LinearWarmup, LrSchedule, StepLr};
pub use sgd::Sgd;

use crate::backend::{self, UpdateRule};
use crate::nn::{Module, ParamKind};
use crate::{Grads, Tensor};
use std::collections::BTreeMap;

/// Updates parameters from gradients.
pub trait Optimizer {
    /// One update of every trainable parameter of `model` that has a gradient in `grads`.
    fn step(&mut self, model: &mut dyn Module, grads: &Grads);
    /// The current learning rate.
    fn learning_rate(&self) -> f64;
    /// Sets the learning rate (for schedules).
    fn set_learning_rate(&mut self, lr: f64);
    /// The optimiser's state as named tensors (moments per parameter, the step count), for
    /// checkpoints.
    fn state(&self) -> Vec<(String, Tensor)>;
    /// Restores state saved by [`state`](Optimizer::state).
    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<(), StateError>;
}

/// Optimiser state that does not fit the optimiser.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StateError {
    /// A tensor name the optimiser does not know.
    #[error("optimiser state: unexpected entry `{0}`")]
    Unexpected(String),
    /// A required entry is missing.
    #[error("optimiser state: missing entry `{0}`")]
    Missing(String),
    /// A tensor of the wrong shape or dtype.
    #[error("optimiser state: `{name}` should be {expected} but is {found}")]
    Mismatch {
        /// Entry name.
        name: String,
        /// What it should be.
        expected: String,
        /// What it is.
        found: String,
    },
}

/// Per-parameter buffers, by parameter name.
#[derive(Default, Clone)]
pub(crate) struct Slots {
    pub(crate) map: BTreeMap<String, Vec<Tensor>>,
}

impl Slots {
    /// The `k` buffers of parameter `name`, created as zeros like `p` on first use.
    pub(crate) fn get(&mut self, name: &str, p: &Tensor, k: usize) -> &mut Vec<Tensor> {
        self.map.entry(name.to_string()).or_insert_with(|| {
            (0..k)
                .map(|_| p.detach().zeros_like().contiguous())
                .collect()
        })
    }

    pub(crate) fn export(&self, suffixes: &[&str], out: &mut Vec<(String, Tensor)>) {
        for (name, bufs) in &self.map {
            for (b, s) in bufs.iter().zip(suffixes) {
                out.push((format!("{name}.{s}"), b.clone()));
            }
        }
    }

    /// Loads buffers saved by `export`, plus an optional scalar `step`.
    pub(crate) fn import(
        &mut self,
        suffixes: &[&str],
        state: &[(String, Tensor)],
        step: Option<&mut u64>,
    ) -> Result<(), StateError> {
        let mut map: BTreeMap<String, Vec<Option<Tensor>>> = BTreeMap::new();
        let mut step_seen = false;
        let has_step = step.is_some();
        let mut step_val = 0u64;
        for (n, t) in state {
            if n == "step" && has_step {
                if t.numel() != 1 {
                    return Err(StateError::Mismatch {
                        name: n.clone(),
                        expected: "a scalar".into(),
                        found: t.shape().to_string(),
                    });
                }
                step_val = t.item() as u64;
                step_seen = true;
                continue;
            }
            let Some((param, suffix)) = n.rsplit_once('.') else {
                return Err(StateError::Unexpected(n.clone()));
            };
            let Some(k) = suffixes.iter().position(|s| *s == suffix) else {
                return Err(StateError::Unexpected(n.clone()));
            };
            map.entry(param.to_string())
                .or_insert_with(|| vec![None; suffixes.len()])[k] = Some(t.detach().contiguous());
        }
        if let Some(step) = step {
            if !step_seen {
                return Err(StateError::Missing("step".into()));
            }
            *step = step_val;
        }
        let mut out = BTreeMap::new();
        for (param, bufs) in map {
            let mut v = Vec::with_capacity(bufs.len());
            for (b, s) in bufs.into_iter().zip(suffixes) {
                v.push(b.ok_or_else(|| StateError::Missing(format!("{param}.{s}")))?);
            }
            out.insert(param, v);
        }
        self.map = out;
        Ok(())
    }
}

/// Calls `f(name, param, grad)` for each trainable parameter with a gradient.
pub(crate) fn for_each_param(
    model: &mut dyn Module,
    grads: &Grads,
    f: &mut dyn FnMut(&str, &mut Tensor, &Tensor),
) {
    model.visit_mut("", &mut |name, p, kind| {
        if kind != ParamKind::Trainable {
            return;
        }
        if let Some(g) = grads.get(p) {
            if g.shape() != p.shape() || g.dtype() != p.dtype() {
                panic!(
                    "optimiser: gradient {} {} does not match parameter {name} {} {}",
                    g.shape(),
                    g.dtype(),
                    p.shape(),
                    p.dtype()
                );
            }
            f(name, p, g);
        }
    });
}

/// Applies `rule` to a parameter, its gradient and its buffers on the parameter's device (see
/// [`backend::update`]).
pub(crate) fn update(p: &mut Tensor, g: &Tensor, bufs: &mut [Tensor], rule: &UpdateRule) {
    backend::update(p, g, bufs, rule)
}
