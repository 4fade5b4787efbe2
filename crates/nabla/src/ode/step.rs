//! One Runge–Kutta step over tensors, the error norm and the Hermite interpolant.

use super::lincomb::lincomb;
use super::tableau::Tableau;
use crate::Tensor;
use smallvec::SmallVec;

/// The right-hand side `f(t, y)`.
pub(crate) type Rhs = dyn Fn(&Tensor, &Tensor) -> Tensor + Send + Sync;

/// Whether `x` is a constant: no graph node and no forward-mode tangent.
pub(crate) fn is_const(x: &Tensor) -> bool {
    x.0.node.is_none() && x.0.tangents.is_empty()
}

/// Evaluates `f(t, y)`, checking that the derivative has the state's shape and dtype.
pub(crate) fn eval_rhs(f: &Rhs, t: &Tensor, y: &Tensor, evals: &mut usize) -> Tensor {
    *evals += 1;
    let k = f(t, y);
    check_derivative(&k, y);
    k
}

/// Panics unless the derivative `k` has the state `y`'s shape and dtype.
pub(crate) fn check_derivative(k: &Tensor, y: &Tensor) {
    if k.shape() != y.shape() || k.dtype() != y.dtype() {
        panic!(
            "ode: the right-hand side returned shape {} {} for a state of shape {} {}",
            k.shape(),
            k.dtype(),
            y.shape(),
            y.dtype()
        );
    }
}

/// The time `tf + offset` as a tensor: a constant when `t` (whose value is `tf`) is one, else
/// `t + offset`, so that gradients reach the initial time.
pub(crate) fn shifted(t: &Tensor, tf: f64, offset: f64) -> Tensor {
    if offset == 0.0 {
        t.clone()
    } else if is_const(t) {
        Tensor::scalar_of(tf + offset, t.dtype())
    } else {
        t.add_scalar(offset)
    }
}

/// The result of a step.
pub(crate) struct Stepped {
    pub y: Tensor,
    /// All stage derivatives, and for FSAL methods `f(t + h, y_new)` last.
    pub ks: Vec<Tensor>,
    /// `f(t + h, y_new)` when the method computes it (FSAL).
    pub f_new: Option<Tensor>,
}

/// One step of `tab` from `(t, y)` with `k1 = f(t, y)` and step `h` (0-d; `hf` its value). `one`
/// is a 0-d one of the state's dtype.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rk_step(
    f: &Rhs,
    tab: &Tableau,
    one: &Tensor,
    (t, tf): (&Tensor, f64),
    y: &Tensor,
    k1: &Tensor,
    (h, hf): (&Tensor, f64),
    evals: &mut usize,
) -> Stepped {
    let stage_time = |c: f64| -> Tensor {
        if c == 0.0 {
            t.clone()
        } else if is_const(h) {
            shifted(t, tf, c * hf)
        } else {
            lincomb(t, h, &[c], &[one])
        }
    };
    let mut ks: Vec<Tensor> = Vec::with_capacity(tab.c.len() + 1);
    ks.push(k1.clone());
    let combine = |y: &Tensor, weights: &[f64], ks: &[Tensor]| -> Tensor {
        let mut coeffs: SmallVec<[f64; 8]> = SmallVec::new();
        let mut terms: SmallVec<[&Tensor; 8]> = SmallVec::new();
        for (&w, k) in weights.iter().zip(ks) {
            if w != 0.0 {
                coeffs.push(w);
                terms.push(k);
            }
        }
        lincomb(y, h, &coeffs, &terms)
    };
    for i in 1..tab.c.len() {
        let yi = combine(y, tab.a[i], &ks);
        let k = eval_rhs(f, &stage_time(tab.c[i]), &yi, evals);
        ks.push(k);
    }
    let y_new = combine(y, tab.b, &ks);
    let f_new = tab.fsal.then(|| {
        let k = eval_rhs(f, &stage_time(1.0), &y_new, evals);
        ks.push(k.clone());
        k
    });
    Stepped {
        y: y_new,
        ks,
        f_new,
    }
}

/// The error norm of an embedded pair: the RMS over elements of
/// `h sum_i e_i k_i / (atol + rtol max(|y0|, |y1|))`, read from detached data (no graph nodes).
/// NaN or infinite when the step produced non-finite values.
pub(crate) fn error_norm(
    e: &[f64],
    ks: &[Tensor],
    hf: f64,
    y0: &Tensor,
    y1: &Tensor,
    rtol: f64,
    atol: f64,
) -> f64 {
    crate::backend::error_norm(e, ks, hf, [y0, y1], [rtol, atol])
}

/// Whether every element of `x` is finite.
pub(crate) fn all_finite(x: &Tensor) -> bool {
    crate::backend::all_finite(x)
}

/// The RMS norm of `v / scale`.
pub(crate) fn rms(v: &[f64], scale: &[f64]) -> f64 {
    let s: f64 = v.iter().zip(scale).map(|(v, s)| (v / s) * (v / s)).sum();
    (s / v.len().max(1) as f64).sqrt()
}

/// The cubic Hermite interpolant of a step from `(y0, f0)` to `(y1, f1)` over a step of size `h`
/// at fraction `theta`; with `d_theta` (a 0-d tensor whose value is zero and whose derivatives are
/// those of the fraction), the first-order correction `(dH/dθ) d_theta` is added so the result's
/// derivative includes the dependence of the fraction on the times.
#[allow(clippy::too_many_arguments)]
pub(crate) fn hermite(
    one: &Tensor,
    y0: &Tensor,
    y1: &Tensor,
    f0: &Tensor,
    f1: &Tensor,
    h: &Tensor,
    theta: f64,
    d_theta: Option<&Tensor>,
) -> Tensor {
    let s = theta;
    let h01 = s * s * (3.0 - 2.0 * s);
    let h10 = s * (1.0 - s) * (1.0 - s);
    let h11 = s * s * (s - 1.0);
    let base = lincomb(y0, one, &[-h01, h01], &[y0, y1]);
    let value = lincomb(&base, h, &[h10, h11], &[f0, f1]);
    match d_theta {
        None => value,
        Some(dt) => {
            let d01 = 6.0 * s * (1.0 - s);
            let d10 = 3.0 * s * s - 4.0 * s + 1.0;
            let d11 = 3.0 * s * s - 2.0 * s;
            let dbase = lincomb(y0, one, &[-d01 - 1.0, d01], &[y0, y1]);
            let slope = lincomb(&dbase, h, &[d10, d11], &[f0, f1]);
            lincomb(&value, dt, &[1.0], &[&slope])
        }
    }
}
