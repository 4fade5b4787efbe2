//! CPU kernels of the ODE solvers: the fused Runge–Kutta linear combination and the error norm of
//! an embedded pair.

use crate::dtype::Element;
use crate::tensor::{Tensor, storage};
#[allow(unused_imports)]
use num_traits::{Float, One, Zero};

/// `y + h * sum_j coeffs[j] * ks[j]` (the weights `h·c_j` rounded to `T` once).
pub(crate) fn lincomb<T: Element>(y: &Tensor, h: f64, coeffs: &[f64], ks: &[&Tensor]) -> Tensor {
    let n = y.numel();
    let yd = y.contiguous_data::<T>();
    let kd: Vec<_> = ks.iter().map(|k| k.contiguous_data::<T>()).collect();
    let w: Vec<T> = coeffs.iter().map(|&c| T::from_f64(h * c)).collect();
    let fill = |o: &mut [T]| {
        o.copy_from_slice(&yd);
        for (k, &w) in kd.iter().zip(&w) {
            for (o, &k) in o.iter_mut().zip(k.iter()) {
                *o += w * k;
            }
        }
    };
    if n == 1 {
        let mut v = [T::zero()];
        fill(&mut v);
        return Tensor::from_one(v[0], y.shape().clone());
    }
    Tensor::from_arc(storage::build_overwrite(n, fill), y.shape().clone())
}

/// The RMS over elements of `h sum_i e_i k_i / (atol + rtol max(|y0|, |y1|))`; NaN when `y1` has
/// a non-finite value.
pub(crate) fn error_norm<T: Element>(
    e: &[f64],
    ks: &[Tensor],
    hf: f64,
    [y0, y1]: [&Tensor; 2],
    [rtol, atol]: [f64; 2],
) -> f64 {
    let a = y0.contiguous_data::<T>();
    let b = y1.contiguous_data::<T>();
    let kd: Vec<_> = ks
        .iter()
        .zip(e)
        .filter(|(_, e)| **e != 0.0)
        .map(|(k, &e)| (k.contiguous_data::<T>(), e))
        .collect();
    let mut sum = 0.0;
    for i in 0..a.len() {
        let err: f64 = hf * kd.iter().map(|(k, e)| e * k[i].to_f64()).sum::<f64>();
        let y1 = b[i].to_f64();
        if !y1.is_finite() {
            return f64::NAN;
        }
        let scale = atol + rtol * a[i].to_f64().abs().max(y1.abs());
        sum += (err / scale) * (err / scale);
    }
    (sum / a.len().max(1) as f64).sqrt()
}
