//! RMSProp (Tieleman & Hinton 2012).

use super::{Optimizer, Slots, StateError, for_each_param, update};
use crate::backend::{RmsRule, UpdateRule};
use crate::nn::Module;
use crate::{Grads, Tensor};

/// RMSProp as `torch.optim.RMSprop` (not centred, no momentum): `s ← α s + (1-α) g²`,
/// `p ← p - lr · g / (√s + ε)`.
#[derive(Clone)]
pub struct RmsProp {
    lr: f64,
    alpha: f64,
    eps: f64,
    weight_decay: f64,
    slots: Slots,
}

impl RmsProp {
    /// With learning rate `lr`, α = 0.99, ε = 1e-8.
    pub fn new(lr: f64) -> RmsProp {
        RmsProp {
            lr,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            slots: Slots::default(),
        }
    }
    /// Sets the squared-gradient decay α.
    pub fn alpha(mut self, alpha: f64) -> RmsProp {
        self.alpha = alpha;
        self
    }
    /// Sets ε.
    pub fn eps(mut self, eps: f64) -> RmsProp {
        self.eps = eps;
        self
    }
    /// L2 weight decay added to the gradient.
    pub fn weight_decay(mut self, wd: f64) -> RmsProp {
        self.weight_decay = wd;
        self
    }
}

impl Optimizer for RmsProp {
    fn step(&mut self, model: &mut dyn Module, grads: &Grads) {
        let rule = UpdateRule::RmsProp(RmsRule {
            lr: self.lr,
            alpha: self.alpha,
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
        self.slots.export(&["square_avg"], &mut out);
        out
    }
    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<(), StateError> {
        self.slots.import(&["square_avg"], state, None)
    }
}
