//! Arithmetic: `+ - * /`, `pow`, elementwise `maximum`/`minimum`, with NumPy broadcasting, and the
//! same with a Rust scalar on either side. Each op's forward kernel and its rules sit together.

use crate::autodiff::{InputGrads, Op, record};
use crate::backend::{self, BinaryOp, UnaryOp};
use crate::tensor::shape::broadcast_shapes;
use crate::tensor::{Tensor, same_dtype};
use smallvec::smallvec;

/// The tangent of one operand, broadcast to the output shape, or `None`.
fn bt(t: &Option<Tensor>, a: &Tensor, b: &Tensor) -> Option<Tensor> {
    t.as_ref().map(|t| {
        let s = broadcast_shapes("broadcast", a.shape(), b.shape());
        if t.shape() == &s {
            t.clone()
        } else {
            t.broadcast_to(&s)
        }
    })
}

fn sum_opts(a: Option<Tensor>, b: Option<Tensor>) -> Tensor {
    match (a, b) {
        (Some(a), Some(b)) => &a + &b,
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => unreachable!("jvp with no tangent"),
    }
}

/// `a + b` where either may be absent (a zero tangent), as [`sum_opts`] does for tensors.
fn sum_opt_values(a: Option<f64>, b: Option<f64>) -> f64 {
    match (a, b) {
        (Some(a), Some(b)) => a + b,
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => 0.0,
    }
}

// `scalar:` is the forward rule again on the values of one-element operands (tangents as options),
// taken when the tangent needs no derivatives of its own (`forward::scalar_rule`).
macro_rules! binary_op {
    ($Op:ident, $name:ident,
     vjp: |$xa:ident, $xb:ident, $out:ident, $g:ident| ($ga:expr, $gb:expr),
     jvp: |$ya:ident, $yb:ident, $ta:ident, $tb:ident| $jv:expr
     $(, scalar: |$sa:ident, $sb:ident, $sta:ident, $stb:ident| $sv:expr)?) => {
        struct $Op;
        impl Op for $Op {
            fn name(&self) -> &str {
                stringify!($name)
            }
            fn lower(&self) -> Option<crate::compile::Prim> {
                crate::compile::binary_prim(stringify!($name))
            }
            #[allow(unused_variables)]
            fn vjp(&self, i: &[Tensor], $out: &Tensor, $g: &Tensor, needs: &[bool]) -> InputGrads {
                let ($xa, $xb) = (&i[0], &i[1]);
                smallvec![
                    needs[0].then(|| $ga.sum_to($xa.shape())),
                    needs[1].then(|| $gb.sum_to($xb.shape())),
                ]
            }
            #[allow(unused_variables)]
            fn jvp(&self, i: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
                let ($ya, $yb) = (&i[0], &i[1]);
                $(
                    // one-element operands broadcast to the shape of the one of higher rank
                    let like = if $ya.rank() >= $yb.rank() { $ya } else { $yb };
                    let operands = [Some($ya), Some($yb), t[0].as_ref(), t[1].as_ref()];
                    if let Some(r) = crate::autodiff::forward::scalar_rule(like, operands, |v| {
                        let ($sa, $sb, $sta, $stb) = (v[0].unwrap_or(0.0), v[1].unwrap_or(0.0), v[2], v[3]);
                        $sv
                    }) {
                        return r;
                    }
                )?
                let ($ta, $tb) = (bt(&t[0], $ya, $yb), bt(&t[1], $ya, $yb));
                $jv
            }
        }
        impl Tensor {
            #[doc = concat!("Elementwise `", stringify!($name), "` with NumPy broadcasting.")]
            ///
            /// # Panics
            /// If the shapes cannot be broadcast together or the dtypes differ.
            pub fn $name(&self, other: &Tensor) -> Tensor {
                same_dtype(stringify!($name), self, other);
                let out = backend::binary(BinaryOp::$Op, self, other);
                record(out, $Op, &[self, other])
            }
        }
    };
}

binary_op!(Add, add,
    vjp: |a, b, out, g| (g, g),
    jvp: |a, b, ta, tb| sum_opts(ta, tb),
    scalar: |a, b, ta, tb| sum_opt_values(ta, tb));

binary_op!(Sub, sub,
    vjp: |a, b, out, g| (g, g.neg()),
    jvp: |a, b, ta, tb| sum_opts(ta, tb.map(|t| t.neg())),
    scalar: |a, b, ta, tb| sum_opt_values(ta, tb.map(|t| -t)));

binary_op!(Mul, mul,
    vjp: |a, b, out, g| (g * b, g * a),
    jvp: |a, b, ta, tb| sum_opts(ta.map(|t| t * b), tb.map(|t| a * t)),
    scalar: |a, b, ta, tb| sum_opt_values(ta.map(|t| t * b), tb.map(|t| a * t)));

binary_op!(Div, div,
    vjp: |a, b, out, g| (g / b, (g * out / b).neg()),
    jvp: |a, b, ta, tb| sum_opts(ta.map(|t| t / b), tb.map(|t| (t * a / (b * b)).neg())),
    scalar: |a, b, ta, tb| sum_opt_values(ta.map(|t| t / b), tb.map(|t| -(t * a / (b * b)))));

binary_op!(Pow, pow,
    vjp: |a, b, out, g| (g * b * a.pow(&(b - 1.0)), g * out * a.ln()),
    jvp: |a, b, ta, tb| sum_opts(ta.map(|t| t * b * a.pow(&(b - 1.0))), tb.map(|t| t * a.pow(b) * a.ln())));

binary_op!(Maximum, maximum,
    vjp: |a, b, out, g| (g * &a.ge(b), g * &a.lt(b)),
    jvp: |a, b, ta, tb| sum_opts(ta.map(|t| t * a.ge(b)), tb.map(|t| t * a.lt(b))));

binary_op!(Minimum, minimum,
    vjp: |a, b, out, g| (g * &a.le(b), g * &a.gt(b)),
    jvp: |a, b, ta, tb| sum_opts(ta.map(|t| t * a.le(b)), tb.map(|t| t * a.gt(b))));

// ----- operations with a Rust scalar ------------------------------------------------------------

/// `x * c + d` for Rust scalars `c` and `d`: one kernel, no constant tensor allocated.
struct Affine {
    c: f64,
    d: f64,
}

impl Op for Affine {
    fn name(&self) -> &str {
        "affine"
    }
    fn lower(&self) -> Option<crate::compile::Prim> {
        Some(crate::compile::Prim::Affine(self.c, self.d))
    }
    fn vjp(&self, _: &[Tensor], _: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
        smallvec![Some(if self.c == 1.0 {
            g.clone()
        } else {
            g.scale(self.c)
        })]
    }
    fn jvp(&self, _: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        let t = t[0].as_ref().expect("tangent");
        if self.c == 1.0 {
            t.clone()
        } else {
            t.scale(self.c)
        }
    }
}

/// `c / x` for a Rust scalar `c`.
struct RDiv {
    c: f64,
}

impl Op for RDiv {
    fn name(&self) -> &str {
        "rdiv"
    }
    fn lower(&self) -> Option<crate::compile::Prim> {
        Some(crate::compile::Prim::RDiv(self.c))
    }
    fn vjp(&self, i: &[Tensor], out: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
        smallvec![Some((g * out / &i[0]).neg())]
    }
    fn jvp(&self, i: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        let x = &i[0];
        (t[0].as_ref().expect("tangent") * self.c / (x * x)).neg()
    }
}

/// `x ^ p` for a Rust scalar exponent `p`.
struct PowF {
    p: f64,
}

impl PowF {
    /// `p x^(p-1)`; for a square `2x` (one op, no `powf` call per element).
    fn slope(&self, x: &Tensor) -> Tensor {
        if self.p == 2.0 {
            x.scale(2.0)
        } else {
            x.powf(self.p - 1.0) * self.p
        }
    }
}

impl Op for PowF {
    fn name(&self) -> &str {
        "powf"
    }
    fn lower(&self) -> Option<crate::compile::Prim> {
        Some(crate::compile::Prim::PowF(self.p))
    }
    fn vjp(&self, i: &[Tensor], _: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
        smallvec![Some(g * &self.slope(&i[0]))]
    }
    fn jvp(&self, i: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        t[0].as_ref().expect("tangent") * &self.slope(&i[0])
    }
}

impl Tensor {
    /// `self * c + d` elementwise, for Rust scalars.
    ///
    /// ```
    /// use nabla::Tensor;
    /// assert_eq!(Tensor::scalar(2.0f64).affine(3.0, 1.0).item(), 7.0);
    /// ```
    pub fn affine(&self, c: f64, d: f64) -> Tensor {
        let out = backend::unary(UnaryOp::Affine { c, d }, self);
        record(out, Affine { c, d }, &[self])
    }

    /// `self * c` for a Rust scalar.
    pub fn scale(&self, c: f64) -> Tensor {
        self.affine(c, 0.0)
    }

    /// `self + c` for a Rust scalar.
    pub fn add_scalar(&self, c: f64) -> Tensor {
        self.affine(1.0, c)
    }

    /// `-self`.
    pub fn neg(&self) -> Tensor {
        self.affine(-1.0, 0.0)
    }

    /// `c / self` for a Rust scalar.
    ///
    /// ```
    /// use nabla::Tensor;
    /// assert_eq!(Tensor::scalar(4.0f64).rdiv_scalar(2.0).item(), 0.5);
    /// ```
    pub fn rdiv_scalar(&self, c: f64) -> Tensor {
        let out = backend::unary(UnaryOp::RDiv(c), self);
        record(out, RDiv { c }, &[self])
    }

    /// `1 / self`.
    ///
    /// ```
    /// use nabla::Tensor;
    /// assert_eq!(Tensor::scalar(4.0f64).recip().item(), 0.25);
    /// ```
    pub fn recip(&self) -> Tensor {
        self.rdiv_scalar(1.0)
    }

    /// `self ^ p` for a Rust scalar exponent (`p = 2.0` squares).
    ///
    /// ```
    /// use nabla::Tensor;
    /// assert_eq!(Tensor::scalar(3.0f64).powf(2.0).item(), 9.0);
    /// ```
    pub fn powf(&self, p: f64) -> Tensor {
        let out = backend::unary(UnaryOp::PowF(p), self);
        record(out, PowF { p }, &[self])
    }

    /// `self²`.
    ///
    /// ```
    /// use nabla::Tensor;
    /// assert_eq!(Tensor::from_vec(vec![-3.0f32, 2.0], [2]).square().to_vec::<f32>(), vec![9.0, 4.0]);
    /// ```
    pub fn square(&self) -> Tensor {
        self.powf(2.0)
    }

    /// Elementwise `self ^ exponent` with broadcasting (same as [`pow`](Tensor::pow)).
    pub fn pow_tensor(&self, exponent: &Tensor) -> Tensor {
        self.pow(exponent)
    }
}

// ----- Rust operators ----------------------------------------------------------------------------

macro_rules! impl_binop {
    ($Trait:ident, $method:ident, $fn:ident, $scalar:expr, $rscalar:expr) => {
        impl std::ops::$Trait<&Tensor> for &Tensor {
            type Output = Tensor;
            #[inline]
            fn $method(self, rhs: &Tensor) -> Tensor {
                Tensor::$fn(self, rhs)
            }
        }
        impl std::ops::$Trait<Tensor> for &Tensor {
            type Output = Tensor;
            #[inline]
            fn $method(self, rhs: Tensor) -> Tensor {
                Tensor::$fn(self, &rhs)
            }
        }
        impl std::ops::$Trait<&Tensor> for Tensor {
            type Output = Tensor;
            #[inline]
            fn $method(self, rhs: &Tensor) -> Tensor {
                Tensor::$fn(&self, rhs)
            }
        }
        impl std::ops::$Trait<Tensor> for Tensor {
            type Output = Tensor;
            #[inline]
            fn $method(self, rhs: Tensor) -> Tensor {
                Tensor::$fn(&self, &rhs)
            }
        }
        impl std::ops::$Trait<f64> for &Tensor {
            type Output = Tensor;
            #[inline]
            fn $method(self, c: f64) -> Tensor {
                let f: fn(&Tensor, f64) -> Tensor = $scalar;
                f(self, c)
            }
        }
        impl std::ops::$Trait<f64> for Tensor {
            type Output = Tensor;
            #[inline]
            fn $method(self, c: f64) -> Tensor {
                let f: fn(&Tensor, f64) -> Tensor = $scalar;
                f(&self, c)
            }
        }
        impl std::ops::$Trait<&Tensor> for f64 {
            type Output = Tensor;
            #[inline]
            fn $method(self, x: &Tensor) -> Tensor {
                let f: fn(&Tensor, f64) -> Tensor = $rscalar;
                f(x, self)
            }
        }
        impl std::ops::$Trait<Tensor> for f64 {
            type Output = Tensor;
            #[inline]
            fn $method(self, x: Tensor) -> Tensor {
                let f: fn(&Tensor, f64) -> Tensor = $rscalar;
                f(&x, self)
            }
        }
    };
}

impl_binop!(Add, add, add, |x, c| x.affine(1.0, c), |x, c| x
    .affine(1.0, c));
impl_binop!(Sub, sub, sub, |x, c| x.affine(1.0, -c), |x, c| x
    .affine(-1.0, c));
impl_binop!(Mul, mul, mul, |x, c| x.affine(c, 0.0), |x, c| x
    .affine(c, 0.0));
impl_binop!(Div, div, div, |x, c| x.affine(1.0 / c, 0.0), |x, c| x
    .rdiv_scalar(c));

impl std::ops::Neg for &Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        Tensor::neg(self)
    }
}
impl std::ops::Neg for Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        Tensor::neg(&self)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Tensor, grad};

    #[test]
    fn scalar_ops_and_operators() {
        let x = Tensor::scalar(3.0f64);
        assert_eq!((&x * 2.0 + 1.0).item(), 7.0);
        assert_eq!((1.0 - &x).item(), -2.0);
        assert_eq!((6.0 / &x).item(), 2.0);
        assert_eq!((-&x).item(), -3.0);
        let g = grad(|x: &Tensor| (x * x / (x + 1.0)).sum());
        // d/dx x²/(x+1) = (x² + 2x)/(x+1)² = 15/16 at 3
        assert!((g(&x).item() - 15.0 / 16.0).abs() < 1e-12);
    }

    #[test]
    #[should_panic(expected = "mul: dtype mismatch: f32 [2] and f64 [2]")]
    fn dtype_mismatch_panics() {
        let a = Tensor::from_vec(vec![1.0f32, 2.0], [2]);
        let b = Tensor::from_vec(vec![1.0f64, 2.0], [2]);
        let _ = &a * &b;
    }

    #[test]
    #[should_panic(expected = "add: shapes [2, 3] and [2] cannot be broadcast")]
    fn broadcast_mismatch_panics() {
        let a = Tensor::zeros([2, 3], crate::DType::F32);
        let b = Tensor::zeros([2], crate::DType::F32);
        let _ = a + b;
    }
}
