//! Dropout (Srivastava et al.) and alpha dropout (for SELU networks).

use super::{Forward, Module, ParamKind, join};
use crate::ops::unary::{SELU_ALPHA, SELU_SCALE};
use crate::{DType, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};
use std::sync::atomic::{AtomicU64, Ordering};

/// A counter-based mask generator: draw `k` uses a generator seeded from `(seed, k)`. Its state is
/// two integers below 2^53, exposed to checkpoints as a buffer `rng_state = [seed, draws]`, so a
/// resumed run draws the same masks as an uninterrupted one.
struct MaskRng {
    seed: u64,
    draws: AtomicU64,
}

impl MaskRng {
    fn new<R: Rng + ?Sized>(rng: &mut R) -> MaskRng {
        MaskRng {
            seed: rng.random::<u64>() >> 12,
            draws: AtomicU64::new(0),
        }
    }

    fn next(&self) -> StdRng {
        let k = self.draws.fetch_add(1, Ordering::Relaxed);
        StdRng::seed_from_u64(self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ k)
    }

    fn state(&self) -> Tensor {
        Tensor::from_vec(
            vec![self.seed as f64, self.draws.load(Ordering::Relaxed) as f64],
            [2],
        )
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
        f(&join(prefix, "rng_state"), &self.state(), ParamKind::Buffer);
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
        let mut t = self.state();
        f(&join(prefix, "rng_state"), &mut t, ParamKind::Buffer);
        let v = t.to_dtype(DType::F64).to_vec::<f64>();
        if v.len() != 2 {
            panic!(
                "dropout: rng_state must have 2 elements, got shape {}",
                t.shape()
            );
        }
        self.seed = v[0] as u64;
        *self.draws.get_mut() = v[1] as u64;
    }
}

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
    rng: MaskRng,
}

impl Dropout {
    /// Dropout with probability `p`, its generator seeded from `rng`.
    pub fn new<R: Rng + ?Sized>(p: f64, rng: &mut R) -> Dropout {
        check_p("Dropout", p);
        Dropout {
            p,
            training: true,
            rng: MaskRng::new(rng),
        }
    }
}

impl Forward for Dropout {
    fn forward(&self, x: &Tensor) -> Tensor {
        if !self.training || self.p == 0.0 {
            return x.clone();
        }
        let keep = Tensor::bernoulli(x.shape(), 1.0 - self.p, x.dtype(), &mut self.rng.next());
        x * &keep.scale(1.0 / (1.0 - self.p))
    }
}

impl Module for Dropout {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
        self.rng.visit(prefix, f);
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
        self.rng.visit_mut(prefix, f);
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

/// Alpha dropout (Klambauer et al. 2017): drops to SELU's negative saturation value and applies an
/// affine correction so activations keep zero mean and unit variance. Identity in evaluation mode.
pub struct AlphaDropout {
    p: f64,
    training: bool,
    rng: MaskRng,
}

impl AlphaDropout {
    /// Alpha dropout with probability `p`, its generator seeded from `rng`.
    pub fn new<R: Rng + ?Sized>(p: f64, rng: &mut R) -> AlphaDropout {
        check_p("AlphaDropout", p);
        AlphaDropout {
            p,
            training: true,
            rng: MaskRng::new(rng),
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
        let keep = Tensor::bernoulli(x.shape(), q, x.dtype(), &mut self.rng.next());
        // a * (x * keep + alpha' * (1 - keep)) + b
        (x * &keep + keep.affine(-alpha_p, alpha_p)).affine(a, b)
    }
}

impl Module for AlphaDropout {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
        self.rng.visit(prefix, f);
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
        self.rng.visit_mut(prefix, f);
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}
