//! Gradient estimators for discrete choices: straight-through, and the soft conditional.

use crate::autodiff::{InputGrads, Op, record};
use crate::tensor::Tensor;
use smallvec::smallvec;

struct StraightThrough;

impl Op for StraightThrough {
    fn name(&self) -> &str {
        "straight_through"
    }
    fn vjp(&self, _: &[Tensor], _: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
        smallvec![Some(g.clone())]
    }
    fn jvp(&self, _: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        t[0].clone().expect("tangent")
    }
}

/// The value of `forward` with the gradient of `surrogate` (a straight-through estimator,
/// Bengio et al. 2013): use it to pass gradients through a discrete decision.
///
/// The result equals `forward` exactly; in reverse and forward mode it behaves as `surrogate`.
///
/// # Panics
/// If the shapes or dtypes differ.
///
/// ```
/// use nabla::{grad, straight_through, Tensor};
/// // a hard step whose gradient is that of the sigmoid
/// let f = grad(|x: &Tensor| {
///     let soft = x.sigmoid();
///     straight_through(&x.gt_scalar(0.0), &soft).sum()
/// });
/// assert!((f(&Tensor::scalar(0.0f64)).item() - 0.25).abs() < 1e-12);
/// ```
pub fn straight_through(forward: &Tensor, surrogate: &Tensor) -> Tensor {
    if forward.shape() != surrogate.shape() || forward.dtype() != surrogate.dtype() {
        panic!(
            "straight_through: forward {} {} and surrogate {} {} differ",
            forward.shape(),
            forward.dtype(),
            surrogate.shape(),
            surrogate.dtype()
        );
    }
    let out = forward.detach().view_as(forward.layout().clone());
    record(out, StraightThrough, &[surrogate])
}

/// The soft conditional `b · on_true + (1 - b) · on_false`: with `b` in `[0, 1]` (a probability, a
/// sigmoid gate), both branches are evaluated and blended, so gradients reach `b` and both branches.
///
/// ```
/// use nabla::{soft_select, Tensor};
/// let b = Tensor::scalar(0.25f64);
/// let y = soft_select(&b, &Tensor::scalar(4.0f64), &Tensor::scalar(0.0f64));
/// assert_eq!(y.item(), 1.0);
/// ```
pub fn soft_select(b: &Tensor, on_true: &Tensor, on_false: &Tensor) -> Tensor {
    b * on_true + (1.0 - b) * on_false
}
