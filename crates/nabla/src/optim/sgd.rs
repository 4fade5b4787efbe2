//! Stochastic gradient descent with momentum, Nesterov momentum and weight decay.

use super::{Optimizer, Slots, StateError, for_each_param, update};
use crate::backend::{SgdRule, UpdateRule};
use crate::nn::Module;
use crate::{Grads, Tensor};

/// SGD as in `torch.optim.SGD`: with momentum μ, `b ← μ b + (g + λ p)`, then `p ← p - lr · b`
/// (or `p ← p - lr · (g + μ b)` with Nesterov).
///
/// ```
/// use nabla::optim::{Optimizer, Sgd};
/// let opt = Sgd::new(0.1).momentum(0.9).nesterov(true).weight_decay(1e-4);
/// assert_eq!(opt.learning_rate(), 0.1);
/// ```
#[derive(Clone)]
pub struct Sgd {
    lr: f64,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
    slots: Slots,
}

impl Sgd {
    /// Plain SGD with learning rate `lr`.
    pub fn new(lr: f64) -> Sgd {
        Sgd {
            lr,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            slots: Slots::default(),
        }
    }
    /// Sets the momentum coefficient.
    pub fn momentum(mut self, momentum: f64) -> Sgd {
        self.momentum = momentum;
        self
    }
    /// Uses Nesterov momentum.
    pub fn nesterov(mut self, on: bool) -> Sgd {
        self.nesterov = on;
        self
    }
    /// L2 weight decay added to the gradient.
    pub fn weight_decay(mut self, wd: f64) -> Sgd {
        self.weight_decay = wd;
        self
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, model: &mut dyn Module, grads: &Grads) {
        let rule = UpdateRule::Sgd(SgdRule {
            lr: self.lr,
            momentum: self.momentum,
            nesterov: self.nesterov,
            wd: self.weight_decay,
        });
        let with_momentum = self.momentum != 0.0;
        let slots = &mut self.slots;
        for_each_param(model, grads, &mut |name, p, g| {
            if with_momentum {
                let bufs = slots.get(name, p, 1);
                update(p, g, bufs, &rule);
            } else {
                update(p, g, &mut [], &rule);
            }
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
        self.slots.export(&["momentum_buffer"], &mut out);
        out
    }
    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<(), StateError> {
        self.slots.import(&["momentum_buffer"], state, None)
    }
}
