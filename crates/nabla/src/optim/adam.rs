//! Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019).

use super::{Optimizer, Slots, StateError, for_each_param, update};
use crate::backend::{AdamRule, UpdateRule};
use crate::nn::Module;
use crate::{Grads, Tensor};

#[derive(Clone)]
struct AdamCore {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
    step: u64,
    slots: Slots,
}

impl AdamCore {
    fn step(&mut self, model: &mut dyn Module, grads: &Grads) {
        self.step += 1;
        let t = self.step as i32;
        let rule = UpdateRule::Adam(AdamRule {
            lr: self.lr,
            b1: self.beta1,
            b2: self.beta2,
            eps: self.eps,
            wd: self.weight_decay,
            decoupled: self.decoupled,
            bc1: 1.0 - self.beta1.powi(t),
            bc2_sqrt: (1.0 - self.beta2.powi(t)).sqrt(),
        });
        let slots = &mut self.slots;
        for_each_param(model, grads, &mut |name, p, g| {
            let bufs = slots.get(name, p, 2);
            update(p, g, bufs, &rule);
        });
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("step".to_string(), Tensor::scalar(self.step as f64))];
        self.slots.export(&["exp_avg", "exp_avg_sq"], &mut out);
        out
    }

    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<(), StateError> {
        let mut step = 0;
        self.slots
            .import(&["exp_avg", "exp_avg_sq"], state, Some(&mut step))?;
        self.step = step;
        Ok(())
    }
}

macro_rules! adam_like {
    ($name:ident, $decoupled:expr, $wd:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone)]
        pub struct $name(AdamCore);

        impl $name {
            /// With learning rate `lr`, betas (0.9, 0.999), eps 1e-8.
            pub fn new(lr: f64) -> $name {
                $name(AdamCore {
                    lr,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: $wd,
                    decoupled: $decoupled,
                    step: 0,
                    slots: Slots::default(),
                })
            }
            /// Sets the moment decay rates.
            pub fn betas(mut self, beta1: f64, beta2: f64) -> $name {
                self.0.beta1 = beta1;
                self.0.beta2 = beta2;
                self
            }
            /// Sets the denominator's epsilon.
            pub fn eps(mut self, eps: f64) -> $name {
                self.0.eps = eps;
                self
            }
            /// Sets the weight decay.
            pub fn weight_decay(mut self, wd: f64) -> $name {
                self.0.weight_decay = wd;
                self
            }
            /// Number of steps taken.
            pub fn steps(&self) -> u64 {
                self.0.step
            }
        }

        impl Optimizer for $name {
            fn step(&mut self, model: &mut dyn Module, grads: &Grads) {
                self.0.step(model, grads)
            }
            fn learning_rate(&self) -> f64 {
                self.0.lr
            }
            fn set_learning_rate(&mut self, lr: f64) {
                self.0.lr = lr;
            }
            fn state(&self) -> Vec<(String, Tensor)> {
                self.0.state()
            }
            fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<(), StateError> {
                self.0.load_state(state)
            }
        }
    };
}

adam_like!(
    Adam,
    false,
    0.0,
    "Adam, as `torch.optim.Adam` (weight decay, if set, is L2 added to the gradient)."
);
adam_like!(
    AdamW,
    true,
    0.01,
    "AdamW, as `torch.optim.AdamW`: decoupled weight decay `p ← p (1 - lr·λ)` (default λ = 0.01)."
);
