//! Comparisons (masks of 0.0 and 1.0, not differentiable) and `where_`, the differentiable select.

use crate::autodiff::{InputGrads, Op, record};
use crate::backend::{self, BinaryOp, CmpOp, UnaryOp};
use crate::tensor::{Tensor, same_dtype};
use smallvec::smallvec;

macro_rules! comparisons {
    ($($name:ident, $sname:ident, $Cmp:ident, $op:tt, $doc:literal;)*) => {
        impl Tensor {
            $(
                #[doc = concat!("Elementwise `a ", stringify!($op), " b` with broadcasting, as 1.0 (true) or 0.0 (false) in `a`'s dtype. Not differentiable. ", $doc)]
                pub fn $name(&self, other: &Tensor) -> Tensor {
                    crate::compile::guard_read(stringify!($name), self);
                    crate::compile::guard_read(stringify!($name), other);
                    same_dtype(stringify!($name), self, other);
                    backend::binary(BinaryOp::Cmp(CmpOp::$Cmp), self, other)
                }
                #[doc = concat!("Elementwise `a ", stringify!($op), " c` for a Rust scalar, as 1.0 or 0.0.")]
                pub fn $sname(&self, c: f64) -> Tensor {
                    crate::compile::guard_read(stringify!($sname), self);
                    backend::unary(UnaryOp::CmpScalar(CmpOp::$Cmp, c), self)
                }
            )*
        }
    };
}

comparisons! {
    eq, eq_scalar, Eq, ==, "";
    ne, ne_scalar, Ne, !=, "";
    lt, lt_scalar, Lt, <, "";
    le, le_scalar, Le, <=, "";
    gt, gt_scalar, Gt, >, "\n\n```\nuse nabla::Tensor;\nlet a = Tensor::from_vec(vec![1.0f64, 3.0], [2]);\nassert_eq!(a.gt_scalar(2.0).to_vec::<f64>(), vec![0.0, 1.0]);\n```";
    ge, ge_scalar, Ge, >=, "";
}

impl Tensor {
    /// Elementwise logical not of a 0/1 mask.
    pub fn logical_not(&self) -> Tensor {
        self.affine(-1.0, 1.0).detach()
    }

    /// Picks `on_true` where `self` (a mask) is non-zero and `on_false` elsewhere, broadcasting all
    /// three (like `torch.where`). Differentiable in both branches; the mask is not.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec(vec![-1.0f64, 2.0], [2]);
    /// let y = x.gt_scalar(0.0).where_(&x, &x.neg());
    /// assert_eq!(y.to_vec::<f64>(), vec![1.0, 2.0]);
    /// ```
    pub fn where_(&self, on_true: &Tensor, on_false: &Tensor) -> Tensor {
        crate::compile::guard_read("where", self);
        same_dtype("where", on_true, on_false);
        same_dtype("where", self, on_true);
        let out = backend::select(self, on_true, on_false);
        record(
            out,
            Where {
                mask: self.detach(),
            },
            &[on_true, on_false],
        )
    }
}

struct Where {
    mask: Tensor,
}

impl Op for Where {
    fn name(&self) -> &str {
        "where"
    }
    fn vjp(&self, i: &[Tensor], _: &Tensor, g: &Tensor, needs: &[bool]) -> InputGrads {
        let zero = g.zeros_like();
        smallvec![
            needs[0].then(|| self.mask.where_(g, &zero).sum_to(i[0].shape())),
            needs[1].then(|| self.mask.where_(&zero, g).sum_to(i[1].shape())),
        ]
    }
    fn jvp(&self, i: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        let ta = t[0].clone().unwrap_or_else(|| i[0].zeros_like());
        let tb = t[1].clone().unwrap_or_else(|| i[1].zeros_like());
        self.mask.where_(&ta, &tb)
    }
}
