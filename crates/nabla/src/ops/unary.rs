//! Elementwise functions of one tensor: `exp`, `ln`, `sin`, activations, .... For each, the forward
//! kernel and the derivative `dy/dx` (written with tensor ops, so it can be differentiated again) sit
//! on one line; the reverse rule is `g * dy/dx` and the forward rule `t * dy/dx` (with `ds`, the derivative
//! on one value, for the one-step forward rule of `forward::scalar_rule`).

use crate::autodiff::{InputGrads, Op, record};
use crate::backend::{self, UnaryOp};
use crate::tensor::Tensor;
#[allow(unused_imports)]
use num_traits::{Float, One, Zero};
use smallvec::smallvec;

/// SELU constants (Klambauer et al. 2017).
pub const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;
/// SELU scale.
pub const SELU_SCALE: f64 = 1.050_700_987_355_480_5;

pub(crate) const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
/// `√(2/π)`, the scale inside the tanh approximation of GELU.
pub(crate) const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
/// The cubic coefficient of the tanh approximation of GELU.
pub(crate) const GELU_TANH_A: f64 = 0.044_715;

macro_rules! unary_ops {
    ($( $(#[$doc:meta])* $Op:ident $name:ident, d: |$x:ident, $y:ident| $deriv:expr
        $(, ds: |$sx:ident| $sderiv:expr)?; )*) => {
        $(
            struct $Op;
            impl $Op {
                #[allow(unused_variables)]
                fn derivative($x: &Tensor, $y: &Tensor) -> Tensor {
                    $deriv
                }
            }
            impl Op for $Op {
                fn name(&self) -> &str {
                    stringify!($name)
                }
                fn lower(&self) -> Option<crate::compile::Prim> {
                    crate::compile::unary_prim(stringify!($name))
                }
                fn vjp(&self, i: &[Tensor], out: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
                    smallvec![Some(g * &$Op::derivative(&i[0], out))]
                }
                fn jvp(&self, i: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
                    $(
                        let operands = [Some(&i[0]), t[0].as_ref()];
                        if let Some(r) = crate::autodiff::forward::scalar_rule(&i[0], operands, |v| {
                            let $sx = v[0].unwrap_or(0.0);
                            v[1].unwrap_or(0.0) * $sderiv
                        }) {
                            return r;
                        }
                    )?
                    let y = i[0].$name();
                    t[0].as_ref().expect("tangent") * &$Op::derivative(&i[0], &y)
                }
            }
            impl Tensor {
                $(#[$doc])*
                pub fn $name(&self) -> Tensor {
                    let out = backend::unary(UnaryOp::$Op, self);
                    record(out, $Op, &[self])
                }
            }
        )*
    };
}

unary_ops! {
    /// `eˣ` elementwise.
    ///
    /// ```
    /// use nabla::Tensor;
    /// assert_eq!(Tensor::scalar(0.0f64).exp().item(), 1.0);
    /// ```
    Exp exp, d: |x, y| y.clone(), ds: |x| x.exp();
    /// Natural logarithm elementwise.
    Ln ln, d: |x, y| x.recip(), ds: |x| 1.0 / x;
    /// `ln(1 + x)`, accurate near 0.
    Log1p log1p, d: |x, y| (x + 1.0).recip();
    /// `eˣ - 1`, accurate near 0.
    Expm1 expm1, d: |x, y| y + 1.0;
    /// Square root elementwise.
    Sqrt sqrt, d: |x, y| y.recip() * 0.5, ds: |x| 0.5 / x.sqrt();
    /// Absolute value; its derivative at 0 is taken as 0.
    Abs abs, d: |x, y| x.sign();
    /// Sine.
    Sin sin, d: |x, y| x.cos(), ds: |x| x.cos();
    /// Cosine.
    Cos cos, d: |x, y| x.sin().neg(), ds: |x| -x.sin();
    /// Tangent.
    Tan tan, d: |x, y| y.square() + 1.0;
    /// Hyperbolic tangent.
    ///
    /// ```
    /// use nabla::Tensor;
    /// assert_eq!(Tensor::scalar(0.0f32).tanh().item(), 0.0);
    /// ```
    Tanh tanh, d: |x, y| 1.0 - y.square(), ds: |x| 1.0 - x.tanh().powi(2);
    /// Logistic sigmoid `1 / (1 + e⁻ˣ)`.
    Sigmoid sigmoid, d: |x, y| y * (1.0 - y);
    /// Rectified linear unit `max(x, 0)`; its derivative at 0 is taken as 0.
    Relu relu, d: |x, y| x.gt_scalar(0.0);
    /// Gaussian error linear unit, exact form `x Φ(x)` (PyTorch's default).
    Gelu gelu,
        d: |x, y| (x * FRAC_1_SQRT_2).erf().affine(0.5, 0.5) + x * (x.square() * -0.5).exp() * FRAC_1_SQRT_2PI;
    /// Gaussian error linear unit, tanh approximation (PyTorch's `gelu(x, approximate='tanh')`):
    /// `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let y = Tensor::from_vec(vec![-1.0f64, 0.0, 2.0], [3]).gelu_tanh().to_vec::<f64>();
    /// assert!((y[0] + 0.158_808).abs() < 1e-6 && y[1] == 0.0 && (y[2] - 1.954_598).abs() < 1e-6);
    /// ```
    GeluTanh gelu_tanh, d: |x, y| {
        let x2 = x.square();
        let t = (x * (&x2 * GELU_TANH_A + 1.0)).scale(SQRT_2_OVER_PI).tanh();
        let du = (&x2 * (3.0 * GELU_TANH_A) + 1.0).scale(SQRT_2_OVER_PI);
        (&t + 1.0).scale(0.5) + x * (1.0 - t.square()) * du * 0.5
    };
    /// The error function.
    Erf erf, d: |x, y| (x.square().neg()).exp() * std::f64::consts::FRAC_2_SQRT_PI;
    /// Scaled exponential linear unit (Klambauer et al.), self-normalising with LeCun-normal init.
    Selu selu, d: |x, y| {
        let pos = x.gt_scalar(0.0);
        &pos * SELU_SCALE + (1.0 - &pos) * x.exp() * (SELU_SCALE * SELU_ALPHA)
    };
    /// Exponential linear unit with α = 1.
    Elu elu, d: |x, y| {
        let pos = x.gt_scalar(0.0);
        &pos + (1.0 - &pos) * x.exp()
    };
    /// `ln(1 + eˣ)`, computed without overflow.
    Softplus softplus, d: |x, y| x.sigmoid();
    /// SiLU / swish `x · sigmoid(x)`.
    Silu silu, d: |x, y| { let s = x.sigmoid(); &s + x * &s * (1.0 - &s) };
}

impl Tensor {
    /// Sign elementwise: -1, 0 or 1 (no gradient).
    pub fn sign(&self) -> Tensor {
        crate::compile::guard_read("sign", self);
        backend::unary(UnaryOp::Sign, self)
    }

    /// Floor elementwise (no gradient: piecewise constant).
    pub fn floor(&self) -> Tensor {
        crate::compile::guard_read("floor", self);
        backend::unary(UnaryOp::Floor, self)
    }

    /// Ceiling elementwise (no gradient).
    pub fn ceil(&self) -> Tensor {
        crate::compile::guard_read("ceil", self);
        backend::unary(UnaryOp::Ceil, self)
    }

    /// Round half away from zero (no gradient; see [`straight_through`](crate::straight_through) to
    /// pass a gradient).
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec(vec![-1.5f32, 0.4, 2.5], [3]);
    /// assert_eq!(x.round().to_vec::<f32>(), vec![-2.0, 0.0, 3.0]);
    /// assert_eq!(x.floor().to_vec::<f32>(), vec![-2.0, 0.0, 2.0]);
    /// assert_eq!(x.sign().to_vec::<f32>(), vec![-1.0, 1.0, 1.0]);
    /// ```
    pub fn round(&self) -> Tensor {
        crate::compile::guard_read("round", self);
        backend::unary(UnaryOp::Round, self)
    }

    /// Leaky ReLU: `x` for `x > 0`, `slope · x` otherwise.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec(vec![-2.0f32, 3.0], [2]);
    /// assert_eq!(x.leaky_relu(0.1).to_vec::<f32>(), vec![-0.2, 3.0]);
    /// ```
    pub fn leaky_relu(&self, slope: f64) -> Tensor {
        let pos = self.gt_scalar(0.0);
        let factor = pos.affine(1.0 - slope, slope);
        self * &factor
    }

    /// Base-2 logarithm.
    pub fn log2(&self) -> Tensor {
        self.ln() * std::f64::consts::LOG2_E
    }

    /// Clamps every element into `[min, max]`; the gradient is passed where the input is inside.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec(vec![-2.0f64, 0.5, 3.0], [3]);
    /// assert_eq!(x.clamp(-1.0, 1.0).to_vec::<f64>(), vec![-1.0, 0.5, 1.0]);
    /// ```
    pub fn clamp(&self, min: f64, max: f64) -> Tensor {
        if min > max {
            panic!("clamp: min {min} is greater than max {max}");
        }
        let out = backend::unary(UnaryOp::Clamp { min, max }, self);
        record(out, Clamp { min, max }, &[self])
    }

    /// `clamp(min, +∞)`.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec(vec![-2.0f32, 3.0], [2]);
    /// assert_eq!(x.clamp_min(0.0).to_vec::<f32>(), vec![0.0, 3.0]);
    /// assert_eq!(x.clamp_max(0.0).to_vec::<f32>(), vec![-2.0, 0.0]);
    /// ```
    pub fn clamp_min(&self, min: f64) -> Tensor {
        self.clamp(min, f64::INFINITY)
    }

    /// `clamp(-∞, max)`.
    pub fn clamp_max(&self, max: f64) -> Tensor {
        self.clamp(f64::NEG_INFINITY, max)
    }
}

struct Clamp {
    min: f64,
    max: f64,
}

impl Clamp {
    fn inside(&self, x: &Tensor) -> Tensor {
        x.ge_scalar(self.min) * x.le_scalar(self.max)
    }
}

impl Op for Clamp {
    fn name(&self) -> &str {
        "clamp"
    }
    fn vjp(&self, i: &[Tensor], _: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
        smallvec![Some(g * &self.inside(&i[0]))]
    }
    fn jvp(&self, i: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        t[0].as_ref().expect("tangent") * &self.inside(&i[0])
    }
}
