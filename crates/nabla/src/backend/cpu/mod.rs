//! The CPU backend: host memory ([`Storage`]'s `F32`/`F64` buffers and inline scalars), kernels
//! generic over the element type, large inputs split across rayon threads. Each kernel family has
//! its file; [`Cpu`] implements [`Backend`] by matching the op enum once and calling the
//! monomorphised loop for that op.
//!
//! [`Storage`]: crate::tensor::storage::Storage

pub(crate) mod conv;
pub(crate) mod dnc;
pub(crate) mod elementwise;
pub(crate) mod gemm;
pub(crate) mod index;
pub(crate) mod lanes;
pub(crate) mod matmul;
pub(crate) mod optim;
pub(crate) mod pool;
pub(crate) mod rnn;
pub(crate) mod sgemm_avx2;
pub(crate) mod solver;

use super::{
    Backend, BinaryOp, CellKind, ConvGeom, ConvKind, LaneOp, PoolGeom, ReduceOp, RnnSaved, UnaryOp,
    UpdateRule,
};
use crate::autodiff::InputGrads;
use crate::dtype::DType;
use crate::ops::index::Indices;
use crate::tensor::layout::Layout;
use crate::tensor::{Shape, Tensor};
use std::sync::Arc;

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
        with_dtype!(x.dtype(), {
            // One value (simulators): the formula on it, without entering the loop kernels.
            if x.numel() == 1
                && let Some(s) = x.contiguous_slice::<T>()
            {
                return Tensor::from_one(
                    elementwise::unary_value::<T>(op, s[0]),
                    x.shape().clone(),
                );
            }
            elementwise::unary::<T>(op, x)
        })
    }

    #[inline]
    fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Tensor {
        with_dtype!(a.dtype(), {
            let (la, lb) = (a.layout(), b.layout());
            // Two 0-d operands (simulators): the formula on the values.
            if la.shape.rank() == 0 && lb.shape.rank() == 0 {
                let v = elementwise::binary_value::<T>(
                    op,
                    a.buffer::<T>()[la.offset],
                    b.buffer::<T>()[lb.offset],
                );
                return Tensor::from_one(v, Shape::scalar());
            }
            elementwise::binary::<T>(op, a, b)
        })
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

    fn cast(x: &Tensor, dtype: DType) -> Tensor {
        elementwise::cast(x, dtype)
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

    fn index_select(x: &Tensor, axis: usize, index: &[usize]) -> Tensor {
        with_dtype!(x.dtype(), index::index_select_kernel::<T>(x, axis, index))
    }

    fn index_add(x: &Tensor, axis: usize, index: &[usize], src: &Tensor) -> Tensor {
        with_dtype!(x.dtype(), index::index_add_kernel::<T>(x, axis, index, src))
    }

    fn gather(x: &Tensor, axis: usize, index: &Indices) -> Tensor {
        with_dtype!(x.dtype(), index::gather_kernel::<T>(x, axis, index))
    }

    fn scatter_add(x: &Tensor, axis: usize, index: &Indices, src: &Tensor) -> Tensor {
        with_dtype!(
            x.dtype(),
            index::scatter_add_kernel::<T>(x, axis, index, src)
        )
    }

    fn arg_extremum(x: &Tensor, axis: usize, is_max: bool) -> Vec<usize> {
        with_dtype!(x.dtype(), index::arg_extremum_kernel::<T>(x, axis, is_max))
    }

    fn one_hot(index: &Indices, num_classes: usize, shape: Shape, dtype: DType) -> Tensor {
        with_dtype!(dtype, index::one_hot::<T>(index, num_classes, shape))
    }

    fn matmul(a: &Tensor, b: &Tensor, batch: &Shape, mkn: [usize; 3]) -> Tensor {
        with_dtype!(a.dtype(), matmul::matmul::<T>(a, b, batch, mkn))
    }

    fn lanes(op: LaneOp, x: &Tensor, axis: usize) -> Tensor {
        with_dtype!(x.dtype(), lanes::lane_op::<T>(op, x, axis))
    }

    fn all_finite(x: &Tensor) -> bool {
        with_dtype!(
            x.dtype(),
            x.contiguous_data::<T>().iter().all(|v| v.is_finite())
        )
    }

    fn prod_others(x: &Tensor, axes: &[usize]) -> Tensor {
        with_dtype!(x.dtype(), elementwise::prod_others::<T>(x, axes))
    }

    fn rnn_forward(cell: CellKind, inputs: &[&Tensor], batch_major: bool) -> (Tensor, RnnSaved) {
        with_dtype!(
            inputs[0].dtype(),
            rnn::forward::<T>(cell, inputs, batch_major)
        )
    }

    fn rnn_backward(
        cell: CellKind,
        batch_major: bool,
        tensors: [&[Tensor]; 2],
        needs: &[bool],
        saved: &RnnSaved,
    ) -> InputGrads {
        with_dtype!(
            tensors[1][1].dtype(),
            rnn::backward::<T>(cell, batch_major, tensors, needs, saved)
        )
    }

    fn link_matrix(prev: &Tensor, write: &Tensor, prev_precedence: &Tensor) -> Tensor {
        with_dtype!(
            prev.dtype(),
            dnc::link_matrix::<T>(prev, write, prev_precedence)
        )
    }

    fn lincomb(y: &Tensor, h: f64, coeffs: &[f64], ks: &[&Tensor]) -> Tensor {
        with_dtype!(y.dtype(), solver::lincomb::<T>(y, h, coeffs, ks))
    }

    fn error_norm(e: &[f64], ks: &[Tensor], hf: f64, y: [&Tensor; 2], tol: [f64; 2]) -> f64 {
        with_dtype!(y[0].dtype(), solver::error_norm::<T>(e, ks, hf, y, tol))
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

    fn max_pool2d(x: &Tensor, geom: &PoolGeom) -> (Tensor, Arc<[u32]>) {
        with_dtype!(x.dtype(), pool::max_pool::<T>(x, geom))
    }

    fn avg_pool2d(x: &Tensor, geom: &PoolGeom, adjoint: bool, include_pad: bool) -> Tensor {
        with_dtype!(
            x.dtype(),
            pool::avg_pool::<T>(x, geom, adjoint, include_pad)
        )
    }

    fn plane_gather(x: &Tensor, idx: &[u32], planes: [usize; 2], out_shape: Shape) -> Tensor {
        with_dtype!(
            x.dtype(),
            pool::plane_gather::<T>(x, idx, planes, out_shape)
        )
    }

    fn plane_scatter(g: &Tensor, idx: &[u32], planes: [usize; 2], in_shape: Shape) -> Tensor {
        with_dtype!(
            g.dtype(),
            pool::plane_scatter::<T>(g, idx, planes, in_shape)
        )
    }

    fn update(p: &mut Tensor, g: &Tensor, bufs: &mut [Tensor], rule: &UpdateRule) {
        optim::update(p, g, bufs, rule)
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
