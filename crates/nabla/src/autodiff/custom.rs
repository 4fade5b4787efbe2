//! User-defined operations with their own gradient rules (like `torch.autograd.Function` or
//! `jax.custom_vjp`).

use super::backward::{self, Targets};
use super::{InputGrads, Op, fresh_variable, record, state};
use crate::tensor::Tensor;
use std::sync::Arc;

/// An operation whose derivative you supply.
///
/// `forward` computes the value from plain (untracked) inputs; `backward` maps the output's cotangent
/// to the inputs' cotangents and must be written with tensor operations (then higher-order gradients
/// work through it too). `jvp` is optional: by default forward mode is derived from `backward`, which
/// is linear in its cotangent.
///
/// ```
/// use nabla::{grad, CustomOp, Tensor};
///
/// /// Clips the gradient passing through to [-1, 1]; the identity on values.
/// struct ClipGrad;
/// impl CustomOp for ClipGrad {
///     fn name(&self) -> &str { "clip_grad" }
///     fn forward(&self, inputs: &[Tensor]) -> Tensor { inputs[0].clone() }
///     fn backward(&self, _inputs: &[Tensor], _out: &Tensor, g: &Tensor) -> Vec<Option<Tensor>> {
///         vec![Some(g.clamp(-1.0, 1.0))]
///     }
/// }
///
/// let f = grad(|x: &Tensor| (ClipGrad.apply(&[x.clone()]) * 10.0).sum());
/// assert_eq!(f(&Tensor::scalar(3.0f64)).item(), 1.0);
/// ```
pub trait CustomOp: Send + Sync + 'static {
    /// A name for error messages.
    fn name(&self) -> &str;

    /// The value, from untracked inputs.
    fn forward(&self, inputs: &[Tensor]) -> Tensor;

    /// Cotangents of the inputs (each of its input's shape; `None` for zero) given the output's
    /// cotangent `grad_output`.
    fn backward(
        &self,
        inputs: &[Tensor],
        output: &Tensor,
        grad_output: &Tensor,
    ) -> Vec<Option<Tensor>>;

    /// The output's tangent given the inputs' tangents (`None` for zero). Return `None` (the default)
    /// to have it derived from [`backward`](CustomOp::backward).
    fn jvp(&self, inputs: &[Tensor], tangents: &[Option<Tensor>]) -> Option<Tensor> {
        let _ = (inputs, tangents);
        None
    }

    /// Applies the operation: the result is differentiable with the rules above.
    fn apply(self, inputs: &[Tensor]) -> Tensor
    where
        Self: Sized,
    {
        apply_shared(Arc::new(self), inputs)
    }
}

fn apply_shared(op: Arc<dyn CustomOp>, inputs: &[Tensor]) -> Tensor {
    let plain: Vec<Tensor> = inputs.iter().map(|t| t.detach()).collect();
    let out = {
        let _off = state::GradModeGuard::set(false);
        op.forward(&plain)
    };
    let out = out.detach().view_as(out.layout().clone());
    let refs: Vec<&Tensor> = inputs.iter().collect();
    record(out, Custom(op), &refs)
}

struct Custom(Arc<dyn CustomOp>);

impl Op for Custom {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn vjp(&self, inputs: &[Tensor], out: &Tensor, g: &Tensor, _needs: &[bool]) -> InputGrads {
        let grads = self.0.backward(inputs, out, g);
        if grads.len() != inputs.len() {
            panic!(
                "{}: backward returned {} gradients for {} inputs",
                self.0.name(),
                grads.len(),
                inputs.len()
            );
        }
        for (k, (gk, x)) in grads.iter().zip(inputs).enumerate() {
            if let Some(gk) = gk
                && (gk.shape() != x.shape() || gk.dtype() != x.dtype())
            {
                panic!(
                    "{}: backward gave gradient {k} of shape {} {} for an input of shape {} {}",
                    self.0.name(),
                    gk.shape(),
                    gk.dtype(),
                    x.shape(),
                    x.dtype()
                );
            }
        }
        grads.into_iter().collect()
    }

    fn jvp(&self, inputs: &[Tensor], tangents: &[Option<Tensor>]) -> Tensor {
        if let Some(t) = self.0.jvp(inputs, tangents) {
            return t;
        }
        // J t = d/du < backward(u), t >, since backward is linear in the cotangent u.
        let out = apply_shared(self.0.clone(), inputs);
        let u = fresh_variable(&out.zeros_like());
        let inner = {
            let _on = state::GradModeGuard::set(true);
            let gs = self.0.backward(inputs, &out, &u);
            let mut acc: Option<Tensor> = None;
            for (gk, tk) in gs.iter().zip(tangents) {
                if let (Some(gk), Some(tk)) = (gk, tk) {
                    let term = (gk * tk).sum();
                    acc = Some(match acc {
                        Some(a) => a + term,
                        None => term,
                    });
                }
            }
            acc
        };
        let Some(inner) = inner else {
            return out.zeros_like();
        };
        let id = u.0.node.as_ref().expect("var").id;
        let create_graph = state::grad_enabled();
        let mut map = backward::run(
            &inner,
            inner.ones_like(),
            Targets::Nodes(&[id]),
            create_graph,
        );
        map.remove(&id).unwrap_or_else(|| out.zeros_like().detach())
    }
}
