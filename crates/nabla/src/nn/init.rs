//! Parameter initialisers (Glorot/Xavier, He/Kaiming, LeCun, orthogonal), PyTorch's conventions for
//! fan-in and fan-out: a weight `[out, in, k…]` has fan_in = in·k… and fan_out = out·k….

use crate::{DType, Shape, Tensor};
use rand::Rng;

/// `(fan_in, fan_out)` of a weight shape.
///
/// ```
/// assert_eq!(nabla::nn::init::fans(&[16, 3, 5, 5].into()), (75, 400));
/// ```
pub fn fans(shape: &Shape) -> (usize, usize) {
    match shape.rank() {
        0 => (1, 1),
        1 => (shape[0], shape[0]),
        _ => {
            let receptive: usize = shape[2..].iter().product();
            (shape[1] * receptive, shape[0] * receptive)
        }
    }
}

/// Recommended gain for a nonlinearity, as `torch.nn.init.calculate_gain`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Nonlinearity {
    /// Identity / linear / sigmoid: gain 1.
    Linear,
    /// tanh: 5/3.
    Tanh,
    /// ReLU: √2.
    Relu,
    /// Leaky ReLU with the given slope: √(2 / (1 + slope²)).
    LeakyRelu(f64),
    /// SELU: 3/4 (use with LeCun normal).
    Selu,
}

impl Nonlinearity {
    /// The gain.
    pub fn gain(self) -> f64 {
        match self {
            Nonlinearity::Linear => 1.0,
            Nonlinearity::Tanh => 5.0 / 3.0,
            Nonlinearity::Relu => 2f64.sqrt(),
            Nonlinearity::LeakyRelu(a) => (2.0 / (1.0 + a * a)).sqrt(),
            Nonlinearity::Selu => 0.75,
        }
    }
}

/// Glorot/Xavier uniform: `U(-a, a)`, `a = gain·√(6 / (fan_in + fan_out))`.
pub fn xavier_uniform<R: Rng + ?Sized>(
    shape: impl Into<Shape>,
    gain: f64,
    dtype: DType,
    rng: &mut R,
) -> Tensor {
    let shape = shape.into();
    let (fi, fo) = fans(&shape);
    let a = gain * (6.0 / (fi + fo) as f64).sqrt();
    Tensor::uniform(shape, -a, a, dtype, rng)
}

/// Glorot/Xavier normal: `N(0, gain²·2 / (fan_in + fan_out))`.
pub fn xavier_normal<R: Rng + ?Sized>(
    shape: impl Into<Shape>,
    gain: f64,
    dtype: DType,
    rng: &mut R,
) -> Tensor {
    let shape = shape.into();
    let (fi, fo) = fans(&shape);
    Tensor::normal(
        shape,
        0.0,
        gain * (2.0 / (fi + fo) as f64).sqrt(),
        dtype,
        rng,
    )
}

/// He/Kaiming uniform on fan_in: `U(-b, b)`, `b = gain·√(3 / fan_in)`.
pub fn kaiming_uniform<R: Rng + ?Sized>(
    shape: impl Into<Shape>,
    nonlinearity: Nonlinearity,
    dtype: DType,
    rng: &mut R,
) -> Tensor {
    let shape = shape.into();
    let (fi, _) = fans(&shape);
    let b = nonlinearity.gain() * (3.0 / fi.max(1) as f64).sqrt();
    Tensor::uniform(shape, -b, b, dtype, rng)
}

/// He/Kaiming normal on fan_in: `N(0, gain² / fan_in)`.
pub fn kaiming_normal<R: Rng + ?Sized>(
    shape: impl Into<Shape>,
    nonlinearity: Nonlinearity,
    dtype: DType,
    rng: &mut R,
) -> Tensor {
    let shape = shape.into();
    let (fi, _) = fans(&shape);
    Tensor::normal(
        shape,
        0.0,
        nonlinearity.gain() / (fi.max(1) as f64).sqrt(),
        dtype,
        rng,
    )
}

/// LeCun normal: `N(0, 1 / fan_in)`, the initialisation that makes SELU networks self-normalising.
pub fn lecun_normal<R: Rng + ?Sized>(shape: impl Into<Shape>, dtype: DType, rng: &mut R) -> Tensor {
    let shape = shape.into();
    let (fi, _) = fans(&shape);
    Tensor::normal(shape, 0.0, 1.0 / (fi.max(1) as f64).sqrt(), dtype, rng)
}

/// LeCun uniform: `U(-√(3 / fan_in), √(3 / fan_in))`.
pub fn lecun_uniform<R: Rng + ?Sized>(
    shape: impl Into<Shape>,
    dtype: DType,
    rng: &mut R,
) -> Tensor {
    let shape = shape.into();
    let (fi, _) = fans(&shape);
    let b = (3.0 / fi.max(1) as f64).sqrt();
    Tensor::uniform(shape, -b, b, dtype, rng)
}

/// A (semi-)orthogonal matrix times `gain` (Saxe et al.): the rows (or columns, whichever are fewer)
/// are orthonormal. Shapes of rank > 2 are flattened to `[shape[0], rest]`.
///
/// ```
/// use nabla::{nn::init::orthogonal, DType, rand::SeedableRng};
/// let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(0);
/// let q = orthogonal([4, 4], 1.0, DType::F64, &mut rng);
/// let qtq = q.t().matmul(&q).to_vec::<f64>();
/// for i in 0..4 { for j in 0..4 {
///     assert!((qtq[i * 4 + j] - if i == j { 1.0 } else { 0.0 }).abs() < 1e-10);
/// } }
/// ```
pub fn orthogonal<R: Rng + ?Sized>(
    shape: impl Into<Shape>,
    gain: f64,
    dtype: DType,
    rng: &mut R,
) -> Tensor {
    let shape = shape.into();
    if shape.rank() < 2 {
        panic!("orthogonal: needs a shape of rank >= 2, got {shape}");
    }
    let rows = shape[0];
    let cols: usize = shape[1..].iter().product();
    // Orthonormalise the columns of a tall random matrix (modified Gram-Schmidt, twice for
    // accuracy), then transpose if the requested matrix is wide.
    let (m, n) = if rows >= cols {
        (rows, cols)
    } else {
        (cols, rows)
    };
    let g = Tensor::randn([m, n], DType::F64, rng).to_vec::<f64>();
    let mut q = vec![0.0f64; m * n];
    for j in 0..n {
        let mut v: Vec<f64> = (0..m).map(|i| g[i * n + j]).collect();
        for _ in 0..2 {
            for k in 0..j {
                let dot: f64 = (0..m).map(|i| q[i * n + k] * v[i]).sum();
                for i in 0..m {
                    v[i] -= dot * q[i * n + k];
                }
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        for i in 0..m {
            q[i * n + j] = v[i] / norm;
        }
    }
    let q = Tensor::from_vec(q, [m, n]);
    let q = if rows >= cols { q } else { q.t().contiguous() };
    (q * gain).reshape(shape).to_dtype(dtype)
}
