//! CPU kernels that work along one axis, lane by lane: softmax, log-softmax, cumulative sums.

use crate::backend::LaneOp;
use crate::dtype::Element;
use crate::tensor::{Tensor, storage};
#[allow(unused_imports)]
use num_traits::{Float, One, Zero};

/// Applies `f` to every 1-d lane along `axis` of a contiguous copy of `x`, writing lanes of the same
/// length into a new tensor of x's shape.
fn lanes<T: Element>(x: &Tensor, axis: usize, f: impl Fn(&[T], &mut [T])) -> Tensor {
    let r = x.rank();
    // Move the axis last, work on contiguous lanes, move it back.
    let xp = if axis + 1 == r {
        x.detach()
    } else {
        x.detach().transpose(axis as isize, -1)
    };
    let src = xp.contiguous_data::<T>();
    let len = x.dims()[axis].max(1);
    let data = storage::build_overwrite(src.len(), |o: &mut [T]| {
        for (oc, sc) in o.chunks_mut(len).zip(src.chunks(len)) {
            f(sc, oc);
        }
    });
    let y = Tensor::from_arc(data, xp.shape().clone());
    if axis + 1 == r {
        y
    } else {
        y.transpose(axis as isize, -1).contiguous()
    }
}

/// `op` along `axis` of `x`: one monomorphised [`lanes`] loop per arm.
pub(crate) fn lane_op<T: Element>(op: LaneOp, x: &Tensor, axis: usize) -> Tensor {
    match op {
        LaneOp::Softmax => lanes::<T>(x, axis, |s, o| {
            let m = s.iter().copied().fold(T::neg_infinity(), T::max);
            let m = if m.is_finite() { m } else { T::zero() };
            let mut z = T::zero();
            for (o, &v) in o.iter_mut().zip(s) {
                *o = (v - m).exp();
                z += *o;
            }
            for o in o.iter_mut() {
                *o /= z;
            }
        }),
        LaneOp::LogSoftmax => lanes::<T>(x, axis, |s, o| {
            let m = s.iter().copied().fold(T::neg_infinity(), T::max);
            let m = if m.is_finite() { m } else { T::zero() };
            let lse = s.iter().map(|&v| (v - m).exp()).sum::<T>().ln() + m;
            for (o, &v) in o.iter_mut().zip(s) {
                *o = v - lse;
            }
        }),
        LaneOp::Cumsum | LaneOp::CumsumReverse => {
            let reverse = op == LaneOp::CumsumReverse;
            lanes::<T>(x, axis, |s, o| {
                let mut acc = T::zero();
                if reverse {
                    for k in (0..s.len()).rev() {
                        acc += s[k];
                        o[k] = acc;
                    }
                } else {
                    for k in 0..s.len() {
                        acc += s[k];
                        o[k] = acc;
                    }
                }
            })
        }
    }
}
