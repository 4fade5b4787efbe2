//! The numbers a compiled tape runs on: `f32`, `f64`, and dual numbers over them.

/// The numbers a tape runs on: `f32`, `f64`, and dual numbers over them (forward mode over the
/// replay, for Hessian-vector products).
pub(crate) trait Num:
    Copy
    + Send
    + 'static
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + std::ops::AddAssign
{
    fn zero() -> Self;
    fn one() -> Self;
    /// A constant.
    fn cst(c: f64) -> Self;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sin(self) -> Self;
    fn cos(self) -> Self;
    fn tanh(self) -> Self;
    fn sqrt(self) -> Self;
    fn powf(self, p: f64) -> Self;
    /// Whether the value (the primal part of a dual number) is at least zero.
    fn nonneg(self) -> bool;
    /// `out[k] = sin(x[k])` over a slice (vectorised for `f32`, see `vmath`).
    #[inline(always)]
    fn sin_slice(out: &mut [Self], x: &[Self]) {
        for (o, &x) in out.iter_mut().zip(x) {
            *o = x.sin();
        }
    }
    /// `out[k] = cos(x[k])` over a slice (vectorised for `f32`).
    #[inline(always)]
    fn cos_slice(out: &mut [Self], x: &[Self]) {
        for (o, &x) in out.iter_mut().zip(x) {
            *o = x.cos();
        }
    }
}

macro_rules! float_num {
    ($t:ty $(, $slices:item)*) => {
        impl Num for $t {
            #[inline(always)]
            fn zero() -> Self {
                0.0
            }
            #[inline(always)]
            fn one() -> Self {
                1.0
            }
            #[inline(always)]
            fn cst(c: f64) -> Self {
                c as $t
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn sin(self) -> Self {
                <$t>::sin(self)
            }
            #[inline(always)]
            fn cos(self) -> Self {
                <$t>::cos(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn powf(self, p: f64) -> Self {
                <$t>::powf(self, p as $t)
            }
            #[inline(always)]
            fn nonneg(self) -> bool {
                self >= 0.0
            }
            $($slices)*
        }
    };
}
float_num!(
    f32,
    #[inline(always)]
    fn sin_slice(out: &mut [f32], x: &[f32]) {
        super::vmath::sin_f32(out, x)
    },
    #[inline(always)]
    fn cos_slice(out: &mut [f32], x: &[f32]) {
        super::vmath::cos_f32(out, x)
    }
);
float_num!(f64);

/// A dual number `v + d·ε` (ε² = 0): a value and its tangent.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dual<T> {
    pub(crate) v: T,
    pub(crate) d: T,
}

impl<T: Num> std::ops::Add for Dual<T> {
    type Output = Self;
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Dual {
            v: self.v + o.v,
            d: self.d + o.d,
        }
    }
}

impl<T: Num> std::ops::Sub for Dual<T> {
    type Output = Self;
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        Dual {
            v: self.v - o.v,
            d: self.d - o.d,
        }
    }
}

impl<T: Num> std::ops::Mul for Dual<T> {
    type Output = Self;
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Dual {
            v: self.v * o.v,
            d: self.d * o.v + self.v * o.d,
        }
    }
}

impl<T: Num> std::ops::Div for Dual<T> {
    type Output = Self;
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        let z = self.v / o.v;
        Dual {
            v: z,
            d: (self.d - z * o.d) / o.v,
        }
    }
}

impl<T: Num> std::ops::Neg for Dual<T> {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        Dual {
            v: -self.v,
            d: -self.d,
        }
    }
}

impl<T: Num> std::ops::AddAssign for Dual<T> {
    #[inline(always)]
    fn add_assign(&mut self, o: Self) {
        self.v += o.v;
        self.d += o.d;
    }
}

impl<T: Num> Dual<T> {
    /// `f(v) + f'(v)·d·ε` given `f(v)` and `f'(v)`.
    #[inline(always)]
    fn chain(self, f: T, df: T) -> Self {
        Dual {
            v: f,
            d: self.d * df,
        }
    }
}

impl<T: Num> Num for Dual<T> {
    #[inline(always)]
    fn zero() -> Self {
        Dual {
            v: T::zero(),
            d: T::zero(),
        }
    }
    #[inline(always)]
    fn one() -> Self {
        Dual {
            v: T::one(),
            d: T::zero(),
        }
    }
    #[inline(always)]
    fn cst(c: f64) -> Self {
        Dual {
            v: T::cst(c),
            d: T::zero(),
        }
    }
    #[inline(always)]
    fn exp(self) -> Self {
        let e = self.v.exp();
        self.chain(e, e)
    }
    #[inline(always)]
    fn ln(self) -> Self {
        self.chain(self.v.ln(), T::one() / self.v)
    }
    #[inline(always)]
    fn sin(self) -> Self {
        self.chain(self.v.sin(), self.v.cos())
    }
    #[inline(always)]
    fn cos(self) -> Self {
        self.chain(self.v.cos(), -self.v.sin())
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        let t = self.v.tanh();
        self.chain(t, T::one() - t * t)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        let s = self.v.sqrt();
        self.chain(s, T::cst(0.5) / s)
    }
    #[inline(always)]
    fn powf(self, p: f64) -> Self {
        self.chain(self.v.powf(p), T::cst(p) * self.v.powf(p - 1.0))
    }
    #[inline(always)]
    fn nonneg(self) -> bool {
        self.v.nonneg()
    }
}
