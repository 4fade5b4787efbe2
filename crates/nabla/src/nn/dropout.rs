//! Dropout (Srivastava et al.) and alpha dropout (for SELU networks).

use super::{Forward, Module, ParamKind};
use crate::Tensor;
use crate::ops::unary::{SELU_ALPHA, SELU_SCALE};
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};
use std::sync::Mutex;

fn check_p(name: &str, p: f64) {
    if !(0.0..1.0).contains(&p) {
        panic!("{name}: drop probability must be in [0, 1), got {p}");
    }
}

/// Zeroes each element with probability `p` in training mode and scales the rest by `1/(1-p)`; the
/// identity in evaluation mode. Its mask generator is seeded at construction, so runs repeat.
///
/// ```
/// use nabla::nn::{Dropout, Forward, Module};
/// use nabla::{rand::SeedableRng, DType, Tensor};
/// let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(0);
/// let mut d = Dropout::new(0.5, &mut rng);
/// let y = d.forward(&Tensor::ones([1000], DType::F32));
/// let kept = y.to_vec::<f32>().iter().filter(|&&v| v > 0.0).count();
/// assert!((400..600).contains(&kept));
/// d.eval();
/// assert_eq!(d.forward(&Tensor::ones([3], DType::F32)).to_vec::<f32>(), vec![1.0; 3]);
/// ```
pub struct Dropout {
    p: f64,
    training: bool,
    rng: Mutex<StdRng>,
}

impl Dropout {
    /// Dropout with probability `p`, its generator seeded from `rng`.
    pub fn new<R: Rng + ?Sized>(p: f64, rng: &mut R) -> Dropout {
        check_p("Dropout", p);
        Dropout {
            p,
            training: true,
            rng: Mutex::new(StdRng::seed_from_u64(rng.random())),
        }
    }
}

impl Forward for Dropout {
    fn forward(&self, x: &Tensor) -> Tensor {
        if !self.training || self.p == 0.0 {
            return x.clone();
        }
        let mut rng = self.rng.lock().expect("dropout rng");
        let keep = Tensor::bernoulli(x.shape(), 1.0 - self.p, x.dtype(), &mut *rng);
        x * &keep.scale(1.0 / (1.0 - self.p))
    }
}

impl Module for Dropout {
    fn visit(&self, _: &str, _: &mut dyn FnMut(&str, &Tensor, ParamKind)) {}
    fn visit_mut(&mut self, _: &str, _: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {}
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

/// Alpha dropout (Klambauer et al. 2017): drops to SELU's negative saturation value and applies an
/// affine correction so activations keep zero mean and unit variance. Identity in evaluation mode.
pub struct AlphaDropout {
    p: f64,
    training: bool,
    rng: Mutex<StdRng>,
}

impl AlphaDropout {
    /// Alpha dropout with probability `p`, its generator seeded from `rng`.
    pub fn new<R: Rng + ?Sized>(p: f64, rng: &mut R) -> AlphaDropout {
        check_p("AlphaDropout", p);
        AlphaDropout {
            p,
            training: true,
            rng: Mutex::new(StdRng::seed_from_u64(rng.random())),
        }
    }
}

impl Forward for AlphaDropout {
    fn forward(&self, x: &Tensor) -> Tensor {
        if !self.training || self.p == 0.0 {
            return x.clone();
        }
        let q = 1.0 - self.p;
        let alpha_p = -SELU_SCALE * SELU_ALPHA;
        let a = 1.0 / (q + alpha_p * alpha_p * q * self.p).sqrt();
        let b = -a * alpha_p * self.p;
        let mut rng = self.rng.lock().expect("alpha dropout rng");
        let keep = Tensor::bernoulli(x.shape(), q, x.dtype(), &mut *rng);
        // a * (x * keep + alpha' * (1 - keep)) + b
        (x * &keep + keep.affine(-alpha_p, alpha_p)).affine(a, b)
    }
}

impl Module for AlphaDropout {
    fn visit(&self, _: &str, _: &mut dyn FnMut(&str, &Tensor, ParamKind)) {}
    fn visit_mut(&mut self, _: &str, _: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {}
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}
