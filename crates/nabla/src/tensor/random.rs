//! Random constructors, driven by an explicit seeded generator so runs are reproducible.

use super::{Shape, Tensor};
use crate::dtype::DType;
use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};

impl Tensor {
    /// Uniform samples in `[0, 1)`.
    ///
    /// ```
    /// use nabla::{DType, Tensor, rand::SeedableRng};
    /// let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(0);
    /// let x = Tensor::rand([3], DType::F32, &mut rng);
    /// assert!(x.to_vec::<f32>().iter().all(|v| (0.0..1.0).contains(v)));
    /// ```
    pub fn rand<R: Rng + ?Sized>(shape: impl Into<Shape>, dtype: DType, rng: &mut R) -> Tensor {
        Tensor::uniform(shape, 0.0, 1.0, dtype, rng)
    }

    /// Uniform samples in `[low, high)`.
    ///
    /// ```
    /// use nabla::rand::{rngs::StdRng, SeedableRng};
    /// use nabla::{DType, Tensor};
    /// let mut rng = StdRng::seed_from_u64(0);
    /// let u = Tensor::uniform([1000], -2.0, 3.0, DType::F32, &mut rng);
    /// assert!(u.to_vec::<f32>().iter().all(|v| (-2.0..3.0).contains(v)));
    /// ```
    pub fn uniform<R: Rng + ?Sized>(
        shape: impl Into<Shape>,
        low: f64,
        high: f64,
        dtype: DType,
        rng: &mut R,
    ) -> Tensor {
        let shape = shape.into();
        let v: Vec<f64> = (0..shape.numel())
            .map(|_| low + (high - low) * rng.random::<f64>())
            .collect();
        Tensor::from_vec(v, shape).to_dtype(dtype)
    }

    /// Standard normal samples (mean 0, variance 1).
    ///
    /// ```
    /// use nabla::{DType, Tensor, rand::SeedableRng};
    /// let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(0);
    /// let x = Tensor::randn([10_000], DType::F64, &mut rng);
    /// assert!(x.mean().item().abs() < 0.05);
    /// ```
    pub fn randn<R: Rng + ?Sized>(shape: impl Into<Shape>, dtype: DType, rng: &mut R) -> Tensor {
        let shape = shape.into();
        let v: Vec<f64> = (0..shape.numel())
            .map(|_| StandardNormal.sample(rng))
            .collect();
        Tensor::from_vec(v, shape).to_dtype(dtype)
    }

    /// Normal samples with the given mean and standard deviation.
    ///
    /// ```
    /// use nabla::rand::{rngs::StdRng, SeedableRng};
    /// use nabla::{DType, Tensor};
    /// let mut rng = StdRng::seed_from_u64(0);
    /// let x = Tensor::normal([10_000], 5.0, 2.0, DType::F64, &mut rng);
    /// assert!((x.mean().item() - 5.0).abs() < 0.1);
    /// assert!((x.var(1).item().sqrt() - 2.0).abs() < 0.1);
    /// ```
    pub fn normal<R: Rng + ?Sized>(
        shape: impl Into<Shape>,
        mean: f64,
        std: f64,
        dtype: DType,
        rng: &mut R,
    ) -> Tensor {
        let shape = shape.into();
        let v: Vec<f64> = (0..shape.numel())
            .map(|_| {
                let z: f64 = StandardNormal.sample(rng);
                mean + std * z
            })
            .collect();
        Tensor::from_vec(v, shape).to_dtype(dtype)
    }

    /// Independent Bernoulli(p) samples as 0.0 / 1.0.
    ///
    /// ```
    /// use nabla::rand::{rngs::StdRng, SeedableRng};
    /// use nabla::{DType, Tensor};
    /// let mut rng = StdRng::seed_from_u64(0);
    /// let m = Tensor::bernoulli([1000], 0.3, DType::F32, &mut rng);
    /// assert!(m.to_vec::<f32>().iter().all(|&v| v == 0.0 || v == 1.0));
    /// assert!((m.mean().item() - 0.3).abs() < 0.06);
    /// ```
    pub fn bernoulli<R: Rng + ?Sized>(
        shape: impl Into<Shape>,
        p: f64,
        dtype: DType,
        rng: &mut R,
    ) -> Tensor {
        let shape = shape.into();
        let v: Vec<f64> = (0..shape.numel())
            .map(|_| if rng.random::<f64>() < p { 1.0 } else { 0.0 })
            .collect();
        Tensor::from_vec(v, shape).to_dtype(dtype)
    }
}
