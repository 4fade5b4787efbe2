//! Meta-learning: differentiating through training itself.
//!
//! Training is a program, so its result can be differentiated with respect to anything that
//! shaped it: the learning rate, the momentum, the initial weights (MAML), or the parameters of a
//! learned update rule. This module supplies the pieces that make that convenient:
//!
//! - [`DiffOptimizer`]: optimiser steps written as pure tensor functions
//!   `(params, grads, state) → (params', state')` whose hyperparameters are tensors
//!   ([`DiffSgd`], [`DiffMomentum`], [`DiffAdam`]). When the parameters, gradients or
//!   hyperparameters are tracked, the update is recorded and gradients flow into all of them;
//!   otherwise it costs what a plain update costs.
//! - [`inner_grad`]: the inner loss's gradient, either kept in the graph
//!   ([`Order::Second`], `create_graph` in PyTorch's words) or cut from it ([`Order::First`],
//!   first-order MAML: the inner gradient is treated as a constant).
//! - [`unroll`]: an inner training loop of `steps` updates with truncation (gradients flow only
//!   through the last `k` steps) and optional gradient checkpointing (only every `s`-th state is
//!   stored; the steps between are recomputed in the backward pass).
//!
//! The guide is `docs/meta-learning.md`.
//!
//! ```
//! use nabla::meta::{DiffOptimizer, DiffSgd, Unroll, unroll};
//! use nabla::{value_and_grad, Tensor};
//!
//! // d(validation loss after 3 SGD steps)/d(learning rate), on f(w) = (w - 2)²
//! let meta = |h: &[Tensor]| {
//!     let opt = DiffSgd::new(h[0].clone());
//!     let w0 = vec![Tensor::scalar(0.0f64)];
//!     let cfg = Unroll::new(3);
//!     let out = unroll(&opt, &w0, &opt.init(&w0), &cfg, |_, w: &[Tensor]| (&w[0] - 2.0).square().sum());
//!     (&out.params[0] - 2.0).square().sum()
//! };
//! let (loss, g) = value_and_grad(meta, &[Tensor::scalar(0.1f64)]);
//! assert!(loss.item() > 0.0 && g[0].item() < 0.0); // a larger step helps here
//! ```

mod step;
mod unroll;

pub use step::{DiffAdam, DiffMomentum, DiffOptimizer, DiffSgd, OptState};
pub use unroll::{Unroll, Unrolled, pack, unpack, unroll};

use crate::autodiff::{Targets, run_backward, state};
use crate::tensor::Tensor;

/// How the meta-gradient treats the inner gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Order {
    /// Differentiate through the inner gradient (the exact meta-gradient; second derivatives of
    /// the inner loss appear in it).
    #[default]
    Second,
    /// Treat the inner gradient as a constant (first-order MAML, "FOMAML"): cheaper, and no second
    /// derivatives are computed or stored.
    First,
}

/// The value of the inner loss `f(params)` and its gradient with respect to each parameter.
///
/// With [`Order::Second`], when the parameters are themselves tracked (they depend on something an
/// outer transform or `backward` differentiates) the gradient computation is recorded, so the
/// returned gradients can be differentiated again. With [`Order::First`] the gradients (and the
/// returned loss) are constants: no backward graph is recorded, whatever encloses the call.
///
/// ```
/// use nabla::meta::{inner_grad, Order};
/// use nabla::{grad, Tensor};
/// // d/dw of the updated weight w - 0.1·f'(w), f(w) = w³: 1 - 0.6w (second order) or 1 (first)
/// let step = |order: Order| move |w: &Tensor| {
///     let (_, g) = inner_grad(|p: &[Tensor]| (&p[0] * &p[0] * &p[0]).sum(), &[w.clone()], order);
///     (w - &g[0] * 0.1).sum()
/// };
/// let w = Tensor::scalar(2.0f64);
/// assert!((grad(step(Order::Second))(&w).item() - (1.0 - 1.2)).abs() < 1e-12);
/// assert_eq!(grad(step(Order::First))(&w).item(), 1.0);
/// ```
pub fn inner_grad<F>(f: F, params: &[Tensor], order: Order) -> (Tensor, Vec<Tensor>)
where
    F: FnOnce(&[Tensor]) -> Tensor,
{
    match order {
        Order::Second => crate::value_and_grad(f, params),
        Order::First => {
            let _depth = state::DepthGuard::enter();
            let vars: Vec<Tensor> = params.iter().map(|p| p.detach().variable()).collect();
            let out = {
                let _on = state::GradModeGuard::set(true);
                f(&vars)
            };
            if out.numel() != 1 {
                panic!(
                    "inner_grad: the inner loss must be a one-element tensor, got shape {}",
                    out.shape()
                );
            }
            let ids: Vec<u64> = vars
                .iter()
                .map(|v| v.0.node.as_ref().expect("variable").id)
                .collect();
            let mut map = run_backward(&out, out.ones_like(), Targets::Nodes(&ids), false);
            let grads = vars
                .iter()
                .zip(&ids)
                .map(|(v, id)| {
                    map.remove(id)
                        .map(|g| g.detach())
                        .unwrap_or_else(|| v.detach().zeros_like())
                })
                .collect();
            (out.detach(), grads)
        }
    }
}
