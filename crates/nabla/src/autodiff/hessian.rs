//! Hessian-vector products: `H v` of a scalar function without forming `H`, over one input or
//! jointly over several, by forward mode over reverse mode or reverse mode over reverse mode, eagerly
//! or on the tape of a trace.

use super::transforms::{jvp, value_and_grad};
use crate::tensor::Tensor;

/// How a Hessian-vector product is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HvpMode {
    /// The default: traces `f` once, as [`compile`](crate::compile) does, and where it compiles
    /// (no control flow on values, only operations with a compiled form, plain inputs, not inside
    /// another transform) runs forward over reverse on the tape, over dual numbers; else
    /// [`ForwardOverReverse`](HvpMode::ForwardOverReverse). The trace is one lean evaluation of `f`
    /// that keeps no graph, so on a compilable function this costs less than one eager gradient
    /// (rk4-pendulum: see BENCHMARKS.md), and where `f` does not compile, about a forward pass more
    /// than forward over reverse. Either way `f` runs on the inputs once or twice (the trace, then
    /// eagerly if it does not compile); it must be a pure function of them. The values equal the
    /// eager modes' to rounding (1e-12 in f64 in the tests).
    #[default]
    Auto,
    /// `jvp` of the gradient: pushes the direction forward through the gradient computation. It
    /// records nothing beyond the gradient's own graph, and on one-element values (a simulator's
    /// scalars) each tangent is one step. rk4-pendulum: about 2.9 gradients in instructions
    /// (`bench/examples/hvp_repeat.rs`), against 3.2 for reverse over reverse; in wall time on a
    /// quiet host 4.9-5.7 gradients (reverse over reverse 7.4-8.0): an HVP's working set is about
    /// three times a gradient's.
    ForwardOverReverse,
    /// `grad` of `<∇f, v>`: records the gradient computation and differentiates it again.
    ReverseOverReverse,
}

fn check_directions(op: &str, xs: &[Tensor], vs: &[Tensor]) {
    if xs.len() != vs.len() {
        panic!("{op}: {} inputs but {} directions", xs.len(), vs.len());
    }
    for (x, v) in xs.iter().zip(vs) {
        if x.shape() != v.shape() || x.dtype() != v.dtype() {
            panic!(
                "{op}: direction {} {} does not match input {} {}",
                v.shape(),
                v.dtype(),
                x.shape(),
                x.dtype()
            );
        }
    }
}

/// The joint Hessian-vector product of a scalar function of several tensors: with `x = (x₁, …, xₙ)`
/// and `v = (v₁, …, vₙ)`, returns the blocks of `H(x) v`, one per input (block `i` is
/// `Σⱼ ∂²f/∂xᵢ∂xⱼ vⱼ`), computed as `mode` says.
///
/// ```
/// use nabla::{hvp_with, HvpMode, Tensor};
/// // f(a, b) = a²·b: H = [[2b, 2a], [2a, 0]]
/// let f = |p: &[Tensor]| (p[0].square() * &p[1]).sum();
/// let (a, b) = (Tensor::scalar(1.0f64), Tensor::scalar(3.0f64));
/// let v = [Tensor::scalar(1.0f64), Tensor::scalar(1.0f64)];
/// for mode in [HvpMode::Auto, HvpMode::ForwardOverReverse, HvpMode::ReverseOverReverse] {
///     let hv = hvp_with(mode, f, &[a.clone(), b.clone()], &v);
///     assert_eq!((hv[0].item(), hv[1].item()), (8.0, 2.0));
/// }
/// ```
pub fn hvp_with<F>(mode: HvpMode, f: F, xs: &[Tensor], vs: &[Tensor]) -> Vec<Tensor>
where
    F: Fn(&[Tensor]) -> Tensor,
{
    check_directions("hvp", xs, vs);
    match mode {
        HvpMode::Auto => match crate::compile::hvp_once(&f, xs, vs) {
            Some(hv) => hv,
            None => hvp_with(HvpMode::ForwardOverReverse, f, xs, vs),
        },
        HvpMode::ForwardOverReverse => jvp(|ys: &[Tensor]| value_and_grad(&f, ys).1, xs, vs).1,
        HvpMode::ReverseOverReverse => {
            let vs: Vec<Tensor> = vs.iter().map(Tensor::detach).collect();
            let inner = |ys: &[Tensor]| {
                let (_, g) = value_and_grad(&f, ys);
                g.iter()
                    .zip(&vs)
                    .map(|(g, v)| (g * v).sum())
                    .reduce(|a, b| a + b)
                    .unwrap_or_else(|| Tensor::scalar(0.0f64))
            };
            value_and_grad(inner, xs).1
        }
    }
}

/// The joint Hessian-vector product over several inputs in the default mode ([`HvpMode`]).
///
/// ```
/// use nabla::{hvp_joint, Tensor};
/// // f(w, b) = Σ (w·b)²: ∂²f/∂w² = 2b², ∂²f/∂w∂b = 4wb
/// let f = |p: &[Tensor]| (&p[0] * &p[1]).square().sum();
/// let w = Tensor::from_vec(vec![1.0f64, 2.0], [2]);
/// let b = Tensor::scalar(0.5f64);
/// let hv = hvp_joint(f, &[w, b], &[Tensor::from_vec(vec![1.0f64, 0.0], [2]), Tensor::scalar(0.0f64)]);
/// assert_eq!(hv[0].to_vec::<f64>(), vec![0.5, 0.0]);
/// assert_eq!(hv[1].item(), 2.0); // 4·w₀·b
/// ```
pub fn hvp_joint<F>(f: F, xs: &[Tensor], vs: &[Tensor]) -> Vec<Tensor>
where
    F: Fn(&[Tensor]) -> Tensor,
{
    hvp_with(HvpMode::default(), f, xs, vs)
}

/// Hessian-vector product `H(x) v` of a scalar function of one tensor, without forming `H`, in the
/// default mode ([`HvpMode`]); [`hvp_with`] chooses the mode and takes several inputs.
///
/// ```
/// use nabla::{hessian_vector_product, Tensor};
/// // f(x) = sum(x³) has Hessian diag(6x)
/// let x = Tensor::from_vec(vec![1.0f64, 2.0], [2]);
/// let v = Tensor::from_vec(vec![1.0f64, 1.0], [2]);
/// let hv = hessian_vector_product(|x: &Tensor| (x * x * x).sum(), &x, &v);
/// assert_eq!(hv.to_vec::<f64>(), vec![6.0, 12.0]);
/// ```
pub fn hessian_vector_product<F>(f: F, x: &Tensor, v: &Tensor) -> Tensor
where
    F: Fn(&Tensor) -> Tensor,
{
    hvp_with(
        HvpMode::default(),
        |xs: &[Tensor]| f(&xs[0]),
        std::slice::from_ref(x),
        std::slice::from_ref(v),
    )
    .remove(0)
}

/// Short name for [`hessian_vector_product`].
///
/// ```
/// use nabla::{hvp, Tensor};
/// // f(x, y) = x²y has Hessian [[2y, 2x], [2x, 0]]
/// let f = |p: &Tensor| (p.select(0, 0).square() * p.select(0, 1)).sum();
/// let p = Tensor::from_vec(vec![1.0f64, 3.0], [2]);
/// let hv = hvp(f, &p, &Tensor::from_vec(vec![1.0f64, 0.0], [2]));
/// assert_eq!(hv.to_vec::<f64>(), vec![6.0, 2.0]);
/// ```
pub fn hvp<F>(f: F, x: &Tensor, v: &Tensor) -> Tensor
where
    F: Fn(&Tensor) -> Tensor,
{
    hessian_vector_product(f, x, v)
}
