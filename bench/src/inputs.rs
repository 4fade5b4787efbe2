//! Deterministic inputs shared with the reference scripts (`bench/reference/common.py`, the
//! `det_*` functions): the same float32 values on every side, so the harness can compare the losses
//! and gradient sums the sides compute.
//!
//! splitmix64 of (seed, index) → 24 random bits → an `f64` in [0, 1) → scaled in `f64` → rounded to
//! `f32`. Every step is exact or correctly rounded IEEE arithmetic; normal samples (Box-Muller) go
//! through `ln` and `cos`, where libraries may differ in the last bit of an `f64`, which the rounding
//! to `f32` hides in all but rare cases.

use nabla::Tensor;
use nabla::nn::Module;

/// Seeds of the shared inputs (the same numbers as `SEEDS` in `common.py`).
pub mod seeds {
    pub const MATMUL: u64 = 1;
    pub const CONV2D: u64 = 11;
    pub const LSTM: u64 = 20;
    pub const MLP: u64 = 30;
    pub const CNN: u64 = 40;
}

fn splitmix(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add((i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `n` values in [0, 1) with 24 random bits each.
pub fn det_unit(seed: u64, n: usize) -> Vec<f64> {
    (0..n as u64)
        .map(|i| (splitmix(seed, i) >> 40) as f64 / (1u64 << 24) as f64)
        .collect()
}

/// f32 uniform in [-bound, bound).
pub fn det_uniform(seed: u64, dims: &[usize], bound: f64) -> Tensor {
    let n = dims.iter().product();
    let v: Vec<f32> = det_unit(seed, n)
        .into_iter()
        .map(|u| ((2.0 * u - 1.0) * bound) as f32)
        .collect();
    Tensor::from_vec(v, dims.to_vec())
}

/// f32 standard normal (Box-Muller on the pairs (2i, 2i+1)).
pub fn det_normal(seed: u64, dims: &[usize]) -> Tensor {
    let n: usize = dims.iter().product();
    let u = det_unit(seed, 2 * n);
    let v: Vec<f32> = u
        .chunks_exact(2)
        .map(|p| {
            let u1 = 1.0 - p[0];
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * p[1]).cos()) as f32
        })
        .collect();
    Tensor::from_vec(v, dims.to_vec())
}

/// A permutation of `0..n`: indices sorted by their hash (ties, never seen, by index).
pub fn det_permutation(seed: u64, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (splitmix(seed, i as u64), i));
    order
}

/// Replaces every parameter of `model`, in visiting order (PyTorch's `parameters()` order for the
/// same layers), with uniform values in ±1/√fan_in: fan_in = prod(dims[1..]) for a weight, and for a
/// vector (a bias) the last weight's fan_in. Parameter `k` uses seed `seed * 1000 + k`.
pub fn set_det_params<M: Module + ?Sized>(model: &mut M, seed: u64) {
    let (mut k, mut fan_in) = (0u64, 1usize);
    model.visit_mut("", &mut |_, t, kind| {
        if kind != nabla::nn::ParamKind::Trainable {
            return;
        }
        let dims = t.dims().to_vec();
        if dims.len() >= 2 {
            fan_in = dims[1..].iter().product();
        }
        let bound = 1.0 / (fan_in as f64).sqrt();
        *t = det_uniform(seed * 1000 + k, &dims, bound).variable();
        k += 1;
    });
}

/// Sum and sum of absolute values (f64) of tensors, e.g. every gradient of a model.
pub fn sums<'a>(ts: impl IntoIterator<Item = &'a Tensor>) -> (f64, f64) {
    let (mut s, mut a) = (0.0, 0.0);
    for t in ts {
        for v in t.to_vec::<f32>() {
            s += v as f64;
            a += (v as f64).abs();
        }
    }
    (s, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_are_deterministic_and_in_range() {
        let u = det_unit(3, 1000);
        assert_eq!(u, det_unit(3, 1000));
        assert!(u.iter().all(|&x| (0.0..1.0).contains(&x)));
        let p = det_permutation(5, 100);
        let mut q = p.clone();
        q.sort();
        assert_eq!(q, (0..100).collect::<Vec<_>>());
        assert_ne!(p, q);
        let n = det_normal(7, &[10_000]).to_vec::<f32>();
        let mean = n.iter().map(|&x| x as f64).sum::<f64>() / n.len() as f64;
        let var = n.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n.len() as f64;
        assert!(
            mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }

    /// The first values as `common.py` computes them (`det_uniform(1, (3,), 1.0)`,
    /// `det_permutation(5, 10)`, `det_normal(7, (4,))`, printed by the reference venv's Python).
    #[test]
    fn matches_the_python_generator() {
        let u = det_uniform(1, &[3], 1.0).to_vec::<f32>();
        assert_eq!(u, [0.133_123_04_f32, 0.491_563_44, 0.942_005_4]);
        assert_eq!(det_permutation(5, 10), [3, 4, 2, 5, 0, 8, 7, 9, 1, 6]);
        let n = det_normal(7, &[4]).to_vec::<f32>();
        let want = [0.988_474_25_f32, -1.864_255_9, 0.003_920_42, -0.529_270_5];
        for (a, b) in n.iter().zip(want) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}
