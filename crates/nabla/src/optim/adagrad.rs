//! Adagrad (Duchi et al. 2011).

use super::{Optimizer, Slots, StateError, for_each_param, update};
use crate::backend::{AdagradRule, UpdateRule};
use crate::nn::Module;
use crate::{Grads, Tensor};

/// Adagrad as `torch.optim.Adagrad`: `s ← s + g²`, `p ← p - lr · g / (√s + ε)`.
#[derive(Clone)]
pub struct Adagrad {
    lr: f64,
    eps: f64,
    weight_decay: f64,
    slots: Slots,
}

impl Adagrad {
    /// With learning rate `lr` and ε = 1e-10.
    pub fn new(lr: f64) -> Adagrad {
        Adagrad {
            lr,
            eps: 1e-10,
            weight_decay: 0.0,
            slots: Slots::default(),
        }
    }
    /// L2 weight decay added to the gradient.
    pub fn weight_decay(mut self, wd: f64) -> Adagrad {
        self.weight_decay = wd;
        self
    }
}

impl Optimizer for Adagrad {
    fn step(&mut self, model: &mut dyn Module, grads: &Grads) {
        let rule = UpdateRule::Adagrad(AdagradRule {
            lr: self.lr,
            eps: self.eps,
            wd: self.weight_decay,
        });
        let slots = &mut self.slots;
        for_each_param(model, grads, &mut |name, p, g| {
            update(p, g, slots.get(name, p, 1), &rule);
        });
    }
    fn learning_rate(&self) -> f64 {
        self.lr
    }
    fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.slots.export(&["sum"], &mut out);
        out
    }
    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<(), StateError> {
        self.slots.import(&["sum"], state, None)
    }
}
