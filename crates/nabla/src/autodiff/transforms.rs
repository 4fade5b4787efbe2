//! JAX-style function transforms: `grad`, `value_and_grad`, `vjp`, `jvp`, `hvp`, `jacobian`.
//! They compose freely: each one may run inside another.

use super::backward::{self, Targets};
use super::{forward, fresh_variable, state};
use crate::tensor::Tensor;

fn check_scalar(op: &str, out: &Tensor) {
    if out.numel() != 1 {
        panic!(
            "{op}: the function must return a one-element tensor, got shape {}",
            out.shape()
        );
    }
}

/// The gradient of a scalar function of one tensor, as a new function (`jax.grad`).
///
/// It composes: `grad(grad(f))` is the second derivative, and gradients flow through whatever Rust
/// control flow `f` runs (loops, branches on values, recursion, early returns).
///
/// ```
/// use nabla::{grad, Tensor};
/// let f = |x: &Tensor| (x * x * x).sum();          // x³
/// let df = grad(f);                                // 3x²
/// let d2f = grad(move |x: &Tensor| df(x).sum());   // 6x
/// assert_eq!(d2f(&Tensor::scalar(2.0f64)).item(), 12.0);
/// ```
pub fn grad<F>(f: F) -> impl Fn(&Tensor) -> Tensor
where
    F: Fn(&Tensor) -> Tensor,
{
    move |x: &Tensor| {
        let (_, g) = value_and_grad(|xs: &[Tensor]| f(&xs[0]), std::slice::from_ref(x));
        g.into_iter().next().expect("one gradient")
    }
}

/// The value of a scalar function and its gradient with respect to each input.
///
/// ```
/// use nabla::{value_and_grad, Tensor};
/// let w = Tensor::from_vec(vec![1.0f64, -2.0], [2]);
/// let b = Tensor::scalar(0.5f64);
/// let (loss, g) = value_and_grad(|p: &[Tensor]| (&p[0] * &p[0]).sum() + &p[1], &[w, b]);
/// assert_eq!(loss.item(), 5.5);
/// assert_eq!(g[0].to_vec::<f64>(), vec![2.0, -4.0]);
/// assert_eq!(g[1].item(), 1.0);
/// ```
pub fn value_and_grad<F>(f: F, inputs: &[Tensor]) -> (Tensor, Vec<Tensor>)
where
    F: FnOnce(&[Tensor]) -> Tensor,
{
    let _depth = state::DepthGuard::enter();
    let vars: Vec<Tensor> = inputs.iter().map(fresh_variable).collect();
    let out = {
        let _on = state::GradModeGuard::set(true);
        f(&vars)
    };
    check_scalar("value_and_grad", &out);
    let create_graph = state::depth() > 1 || inputs.iter().any(|x| x.requires_grad());
    let ids: Vec<u64> = vars
        .iter()
        .map(|v| v.0.node.as_ref().expect("var").id)
        .collect();
    let mut map = backward::run(&out, out.ones_like(), Targets::Nodes(&ids), create_graph);
    let grads = vars
        .iter()
        .zip(&ids)
        .map(|(v, id)| map.remove(id).unwrap_or_else(|| v.zeros_like().detach()))
        .collect();
    // Not recorded, but an enclosing jvp's tangents stay (d/dx of the value is f'(x)).
    let value = if create_graph {
        out
    } else {
        forward::without_node(&out)
    };
    (value, grads)
}

/// The vector-Jacobian product: the function's output and its pullback, which maps a cotangent of
/// the output to cotangents of the inputs (`jax.vjp`).
///
/// ```
/// use nabla::{vjp, Tensor};
/// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], [3]);
/// let (y, pullback) = vjp(|xs: &[Tensor]| &xs[0] * &xs[0], &[x]);
/// let g = pullback(&Tensor::from_vec(vec![1.0f64, 0.0, 1.0], [3]));
/// assert_eq!(y.to_vec::<f64>(), vec![1.0, 4.0, 9.0]);
/// assert_eq!(g[0].to_vec::<f64>(), vec![2.0, 0.0, 6.0]);
/// ```
pub fn vjp<F>(f: F, inputs: &[Tensor]) -> (Tensor, impl Fn(&Tensor) -> Vec<Tensor> + use<F>)
where
    F: FnOnce(&[Tensor]) -> Tensor,
{
    let outer_tracked = inputs.iter().any(|x| x.requires_grad());
    let _depth = state::DepthGuard::enter();
    let vars: Vec<Tensor> = inputs.iter().map(fresh_variable).collect();
    let out = {
        let _on = state::GradModeGuard::set(true);
        f(&vars)
    };
    let ids: Vec<u64> = vars
        .iter()
        .map(|v| v.0.node.as_ref().expect("var").id)
        .collect();
    let value = if state::depth() > 1 || outer_tracked {
        out.clone()
    } else {
        forward::without_node(&out)
    };
    let pullback = move |cotangent: &Tensor| -> Vec<Tensor> {
        if cotangent.shape() != out.shape() {
            panic!(
                "vjp: cotangent shape {} differs from output shape {}",
                cotangent.shape(),
                out.shape()
            );
        }
        crate::tensor::same_dtype("vjp", &out, cotangent);
        let create_graph = state::depth() > 0 || outer_tracked || cotangent.requires_grad();
        let mut map = backward::run(&out, cotangent.clone(), Targets::Nodes(&ids), create_graph);
        vars.iter()
            .zip(&ids)
            .map(|(v, id)| map.remove(id).unwrap_or_else(|| v.zeros_like().detach()))
            .collect()
    };
    (value, pullback)
}

/// What a function pushed forward by [`jvp`] may return: one tensor, or several
/// (`Vec<Tensor>`), whose tangents come back in the same form.
pub trait JvpOutput: Sized {
    /// Applies `each` to every output tensor, keeping the form.
    #[doc(hidden)]
    fn map_tensors(&self, each: &mut dyn FnMut(&Tensor) -> Tensor) -> Self;
}

impl JvpOutput for Tensor {
    fn map_tensors(&self, each: &mut dyn FnMut(&Tensor) -> Tensor) -> Tensor {
        each(self)
    }
}

impl JvpOutput for Vec<Tensor> {
    fn map_tensors(&self, each: &mut dyn FnMut(&Tensor) -> Tensor) -> Vec<Tensor> {
        self.iter().map(each).collect()
    }
}

/// Checks a tangent against its primal and returns it with the primal's shape: a tangent of the
/// same shape is taken as is, a one-element tangent of a one-element primal is reshaped (a 0-d
/// tangent for a `[1]` primal and the reverse), and a tangent that broadcasts to the primal's shape
/// (a 0-d tangent for any primal: the same rate everywhere) is broadcast.
fn conform_tangent(p: &Tensor, t: &Tensor) -> Tensor {
    let mismatch = || -> ! {
        panic!(
            "jvp: tangent {} {} does not match primal {} {}",
            t.shape(),
            t.dtype(),
            p.shape(),
            p.dtype()
        )
    };
    if p.dtype() != t.dtype() {
        mismatch();
    }
    if p.shape() == t.shape() {
        return t.clone();
    }
    if p.numel() == 1 && t.numel() == 1 {
        return t.reshape(p.shape().clone());
    }
    let (pd, td) = (p.dims(), t.dims());
    let broadcasts = td.len() <= pd.len()
        && td
            .iter()
            .rev()
            .zip(pd.iter().rev())
            .all(|(&a, &b)| a == b || a == 1);
    if !broadcasts {
        mismatch();
    }
    t.broadcast_to(p.shape().clone()).contiguous()
}

/// Forward mode: the function's output and its directional derivative along `tangents`
/// (`jax.jvp`). Costs about one extra evaluation and stores no graph.
///
/// `f` returns one tensor or several (`Vec<Tensor>`); the tangents come back in the same form. Each
/// tangent has its primal's shape, or is one element for a one-element primal, or broadcasts to the
/// primal (a 0-d tangent moves every element at the same rate).
///
/// ```
/// use nabla::{jvp, Tensor};
/// let x = Tensor::scalar(0.0f64);
/// let (y, dy) = jvp(|xs: &[Tensor]| xs[0].sin(), &[x], &[Tensor::scalar(2.0f64)]);
/// assert_eq!((y.item(), dy.item()), (0.0, 2.0));
///
/// // several outputs at once: (sin x, x²) along v = 1
/// let x = Tensor::from_vec(vec![0.0f64, 3.0], [2]);
/// let (ys, dys) = jvp(
///     |xs: &[Tensor]| vec![xs[0].sin(), xs[0].square()],
///     &[x],
///     &[Tensor::scalar(1.0f64)], // broadcast to [2]
/// );
/// assert_eq!(ys.len(), 2);
/// assert_eq!(dys[1].to_vec::<f64>(), vec![0.0, 6.0]);
/// ```
pub fn jvp<F, O>(f: F, primals: &[Tensor], tangents: &[Tensor]) -> (O, O)
where
    F: FnOnce(&[Tensor]) -> O,
    O: JvpOutput,
{
    if primals.len() != tangents.len() {
        panic!(
            "jvp: {} primals but {} tangents",
            primals.len(),
            tangents.len()
        );
    }
    let tangents: Vec<Tensor> = primals
        .iter()
        .zip(tangents)
        .map(|(p, t)| conform_tangent(p, t))
        .collect();
    // The tangents are recorded for reverse mode only when a reverse transform outside this one
    // may differentiate them: an enclosing `grad`/`vjp`, or primals or tangents that are part of a
    // recorded computation. (A reverse transform inside `f` only differentiates primal values;
    // like `value_and_grad` at top level, a top-level `jvp` does not record what its result owes
    // to variables that `f` captures.)
    let records = state::depth() > 0
        || primals.iter().any(Tensor::requires_grad)
        || tangents.iter().any(Tensor::requires_grad);
    let level = state::LevelGuard::enter(records);
    let duals: Vec<Tensor> = primals
        .iter()
        .zip(tangents)
        .map(|(p, t)| forward::with_tangent(p, level.0, t))
        .collect();
    let out = f(&duals);
    let tangent =
        out.map_tensors(&mut |o| forward::tangent_at(o, level.0).unwrap_or_else(|| o.zeros_like()));
    // Lower levels' tangents stay on the primal; only this level's is removed.
    let primal = out.map_tensors(&mut |o| forward::strip_from(o, level.0));
    drop(level);
    (primal, tangent)
}

/// The Jacobian of `f` at `x`, with shape `f(x).shape ++ x.shape`. Uses reverse mode (one pullback per
/// output element) when the output is smaller than the input, forward mode (one `jvp` per input
/// element) otherwise.
///
/// ```
/// use nabla::{jacobian, Tensor};
/// let x = Tensor::from_vec(vec![1.0f64, 2.0], [2]);
/// let j = jacobian(|x: &Tensor| x * x, &x);
/// assert_eq!(j.to_vec::<f64>(), vec![2.0, 0.0, 0.0, 4.0]);
/// ```
pub fn jacobian<F>(f: F, x: &Tensor) -> Tensor
where
    F: Fn(&Tensor) -> Tensor,
{
    let n = x.numel();
    let basis = |k: usize, like: &Tensor| {
        let mut e = vec![0.0f64; like.numel()];
        e[k] = 1.0;
        Tensor::from_vec(e, like.shape()).to_dtype(like.dtype())
    };
    let probe = no_grad(|| f(&x.detach()));
    let m = probe.numel();
    let mut dims: Vec<usize> = probe.dims().to_vec();
    dims.extend_from_slice(x.dims());
    if m <= n {
        let (_, pullback) = vjp(|xs: &[Tensor]| f(&xs[0]), std::slice::from_ref(x));
        let rows: Vec<Tensor> = (0..m)
            .map(|i| pullback(&basis(i, &probe)).remove(0).reshape([n]))
            .collect();
        Tensor::stack(&rows, 0).reshape(dims)
    } else {
        let cols: Vec<Tensor> = (0..n)
            .map(|j| {
                jvp(
                    |xs: &[Tensor]| f(&xs[0]),
                    std::slice::from_ref(x),
                    &[basis(j, x)],
                )
                .1
                .reshape([m])
            })
            .collect();
        Tensor::stack(&cols, 1).reshape(dims)
    }
}

/// Runs `f` without recording operations for reverse mode (like `torch.no_grad()`). Forward-mode
/// tangents still propagate.
///
/// ```
/// use nabla::{no_grad, Tensor};
/// let w = Tensor::scalar(1.0f64).variable();
/// let y = no_grad(|| &w * 2.0);
/// assert!(!y.requires_grad());
/// ```
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _g = NoGradGuard::new();
    f()
}

/// While alive, operations on this thread are not recorded for reverse mode.
///
/// ```
/// use nabla::{NoGradGuard, Tensor};
/// let w = Tensor::scalar(1.0f64).variable();
/// {
///     let _guard = NoGradGuard::new();
///     assert!(!(&w * 2.0).requires_grad());
/// }
/// assert!((&w * 2.0).requires_grad()); // recording is back once the guard is dropped
/// ```
pub struct NoGradGuard(#[allow(dead_code)] state::GradModeGuard);

impl NoGradGuard {
    /// Turns recording off until the guard is dropped.
    #[allow(clippy::new_without_default)]
    pub fn new() -> NoGradGuard {
        NoGradGuard(state::GradModeGuard::set(false))
    }
}
