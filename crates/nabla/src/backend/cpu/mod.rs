//! The CPU backend: host memory ([`Storage`]'s `F32`/`F64` buffers and inline scalars), kernels
//! generic over the element type, large inputs split across rayon threads. Each kernel family has
//! its file; [`Cpu`] implements [`Backend`] by matching the op enum once and calling the
//! monomorphised loop for that op.
//!
//! [`Storage`]: crate::tensor::storage::Storage

pub(crate) mod conv;
pub(crate) mod elementwise;

use super::{Backend, BinaryOp, ConvGeom, ConvKind, ReduceOp, UnaryOp};
use crate::tensor::layout::Layout;
use crate::tensor::{Shape, Tensor};

/// Elementwise work above this many elements is split across threads.
pub(crate) const PAR_THRESHOLD: usize = 1 << 15;
/// Elements per parallel task of an elementwise kernel.
pub(crate) const PAR_CHUNK: usize = 1 << 13;

/// Runs `$body` with the type alias `T` bound to the element type of `$dtype`.
macro_rules! with_dtype {
    ($dtype:expr, $body:expr) => {
        match $dtype {
            $crate::dtype::DType::F32 => {
                #[allow(dead_code)]
                type T = f32;
                $body
            }
            $crate::dtype::DType::F64 => {
                #[allow(dead_code)]
                type T = f64;
                $body
            }
        }
    };
}
pub(crate) use with_dtype;

/// The CPU backend.
pub(crate) struct Cpu;

impl Backend for Cpu {
    #[inline]
    fn unary(op: UnaryOp, x: &Tensor) -> Tensor {
        with_dtype!(x.dtype(), elementwise::unary::<T>(op, x))
    }

    #[inline]
    fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Tensor {
        with_dtype!(a.dtype(), elementwise::binary::<T>(op, a, b))
    }

    fn select(mask: &Tensor, on_true: &Tensor, on_false: &Tensor) -> Tensor {
        with_dtype!(
            on_true.dtype(),
            elementwise::select::<T>(mask, on_true, on_false)
        )
    }

    #[inline]
    fn copy_strided(x: &Tensor, layout: &Layout) -> Tensor {
        with_dtype!(x.dtype(), elementwise::gather_layout::<T>(x, layout))
    }

    fn concat(parts: &[Tensor], axis: usize, shape: Shape) -> Tensor {
        with_dtype!(
            parts[0].dtype(),
            elementwise::concat::<T>(parts, axis, shape)
        )
    }

    #[inline]
    fn reduce(op: ReduceOp, x: &Tensor, axes: &[usize]) -> Tensor {
        with_dtype!(x.dtype(), elementwise::reduce_op::<T>(op, x, axes))
    }

    #[inline]
    fn sum_all(x: &Tensor) -> Tensor {
        with_dtype!(x.dtype(), elementwise::sum_all::<T>(x))
    }

    fn masked_fill(x: &Tensor, mask: &Tensor, value: f64) -> Tensor {
        with_dtype!(x.dtype(), elementwise::masked_fill::<T>(x, mask, value))
    }

    fn conv2d(
        kind: ConvKind,
        geom: &ConvGeom,
        a: &Tensor,
        b: &Tensor,
        bias: Option<&Tensor>,
    ) -> Tensor {
        with_dtype!(
            a.dtype(),
            match kind {
                ConvKind::Forward => conv::forward::<T>(geom, a, b, bias),
                ConvKind::InputGrad => conv::input_grad::<T>(geom, a, b),
                ConvKind::WeightGrad => conv::weight_grad::<T>(geom, a, b),
            }
        )
    }

    #[inline]
    fn add_assign(acc: &mut Tensor, g: &Tensor) -> bool {
        fn add_into<T: crate::dtype::Element>(acc: &mut Tensor, g: &Tensor) -> bool {
            let Some(src) = g.contiguous_slice::<T>() else {
                return false;
            };
            let Some(dst) = acc.try_data_mut::<T>() else {
                return false;
            };
            elementwise::add_assign(dst, src);
            true
        }
        acc.dtype() == g.dtype()
            && acc.shape() == g.shape()
            && with_dtype!(acc.dtype(), add_into::<T>(acc, g))
    }
}
