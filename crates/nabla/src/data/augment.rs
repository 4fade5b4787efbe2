//! Seeded image augmentation for batches `[N, C, H, W]` or `[N, H, W]`.

use crate::Tensor;
use crate::dtype::Element;
use crate::tensor::{cpu::with_dtype, storage};
use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};

/// A composable augmentation, applied per sample with a caller's random generator:
///
/// 1. [`shift(max_px)`](Augment::shift): translate the image by a random whole number of pixels in
///    `[-max_px, max_px]` along each axis, filling with zeros (a random crop of the zero-padded
///    image);
/// 2. [`flip(p)`](Augment::flip): mirror it left–right with probability `p`;
/// 3. [`noise(std)`](Augment::noise): add Gaussian noise of standard deviation `std` to every element.
///
/// All channels of a sample move together. The result is a new tensor with the batch's shape and
/// dtype, not connected to any graph (augmentation acts on data, not on parameters). The same
/// generator state gives the same result.
///
/// ```
/// use nabla::data::Augment;
/// use nabla::rand::{rngs::StdRng, SeedableRng};
/// use nabla::{DType, Tensor};
/// let batch = Tensor::rand([8, 1, 28, 28], DType::F32, &mut StdRng::seed_from_u64(0));
/// let aug = Augment::new().shift(2).flip(0.5).noise(0.1);
/// let a = aug.apply(&batch, &mut StdRng::seed_from_u64(1));
/// let b = aug.apply(&batch, &mut StdRng::seed_from_u64(1));
/// assert_eq!(a.dims(), batch.dims());
/// assert_eq!(a.to_vec::<f32>(), b.to_vec::<f32>());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Augment {
    shift: usize,
    flip: f64,
    noise: f64,
}

impl Augment {
    /// No augmentation (the identity); add steps with the builder methods.
    pub fn new() -> Augment {
        Augment::default()
    }

    /// Random translation by up to `max_px` pixels in each direction, zero-filled.
    pub fn shift(mut self, max_px: usize) -> Augment {
        self.shift = max_px;
        self
    }

    /// Horizontal (left–right) flip with probability `p`.
    ///
    /// # Panics
    /// If `p` is not in `[0, 1]`.
    pub fn flip(mut self, p: f64) -> Augment {
        if !(0.0..=1.0).contains(&p) {
            panic!("Augment::flip: probability must be in [0, 1], got {p}");
        }
        self.flip = p;
        self
    }

    /// Additive Gaussian noise of standard deviation `std`.
    ///
    /// # Panics
    /// If `std` is negative or not finite.
    pub fn noise(mut self, std: f64) -> Augment {
        if !(std.is_finite() && std >= 0.0) {
            panic!("Augment::noise: standard deviation must be finite and >= 0, got {std}");
        }
        self.noise = std;
        self
    }

    /// Applies the augmentation to a batch.
    ///
    /// # Panics
    /// If shift or flip is on and the batch is not `[N, H, W]` or `[N, C, H, W]` (noise alone takes
    /// any shape).
    pub fn apply<R: Rng + ?Sized>(&self, batch: &Tensor, rng: &mut R) -> Tensor {
        let geometric = self.shift > 0 || self.flip > 0.0;
        let out = if geometric {
            let (n, c, h, w) = match *batch.dims() {
                [n, h, w] => (n, 1, h, w),
                [n, c, h, w] => (n, c, h, w),
                _ => panic!(
                    "Augment: shift and flip need images [N, H, W] or [N, C, H, W], got {} (reshape flat images first)",
                    batch.shape()
                ),
            };
            with_dtype!(
                batch.dtype(),
                geometric_step::<T, R>(self, batch, [n, c, h, w], rng)
            )
        } else {
            batch.detach()
        };
        if self.noise > 0.0 {
            with_dtype!(out.dtype(), add_noise::<T, R>(&out, self.noise, rng))
        } else {
            out
        }
    }
}

fn geometric_step<T: Element, R: Rng + ?Sized>(
    aug: &Augment,
    batch: &Tensor,
    [n, c, h, w]: [usize; 4],
    rng: &mut R,
) -> Tensor {
    let src = batch.contiguous_data::<T>();
    let plane = h * w;
    let m = aug.shift as i64;
    let data = storage::build(batch.numel(), |out: &mut [T]| {
        for s in 0..n {
            let (dy, dx) = if m > 0 {
                (
                    rng.random_range(-m..=m) as isize,
                    rng.random_range(-m..=m) as isize,
                )
            } else {
                (0, 0)
            };
            let flip = aug.flip > 0.0 && rng.random::<f64>() < aug.flip;
            for ch in 0..c {
                let base = (s * c + ch) * plane;
                let (src, out) = (&src[base..base + plane], &mut out[base..base + plane]);
                for y in 0..h {
                    let sy = y as isize - dy;
                    if sy < 0 || sy >= h as isize {
                        continue; // stays zero
                    }
                    let srow = &src[sy as usize * w..(sy as usize + 1) * w];
                    let orow = &mut out[y * w..(y + 1) * w];
                    for (x, o) in orow.iter_mut().enumerate() {
                        // Shift, then mirror: out[y][x] = shifted[y][w - 1 - x].
                        let xs = if flip { w - 1 - x } else { x } as isize - dx;
                        if (0..w as isize).contains(&xs) {
                            *o = srow[xs as usize];
                        }
                    }
                }
            }
        }
    });
    Tensor::from_arc(data, batch.shape().clone())
}

fn add_noise<T: Element, R: Rng + ?Sized>(x: &Tensor, std: f64, rng: &mut R) -> Tensor {
    let src = x.contiguous_data::<T>();
    let data = storage::build(x.numel(), |out: &mut [T]| {
        for (o, &v) in out.iter_mut().zip(src.iter()) {
            let z: f64 = StandardNormal.sample(rng);
            *o = v + T::from_f64(std * z);
        }
    });
    Tensor::from_arc(data, x.shape().clone())
}
