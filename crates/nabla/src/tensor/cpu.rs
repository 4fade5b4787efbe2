//! CPU kernels shared by the operations: elementwise maps with broadcasting, strided copies and
//! axis reductions. Generic over the element type; large inputs are split across rayon threads.

use super::layout::{Layout, for_each_offset, for_each_row2};
use super::shape::{Shape, broadcast_shapes};
use super::{Tensor, storage};
use crate::dtype::Element;
#[allow(unused_imports)]
use num_traits::{Float, One, Zero};
use rayon::prelude::*;

/// Elementwise work above this many elements is split across threads.
pub(crate) const PAR_THRESHOLD: usize = 1 << 15;
const PAR_CHUNK: usize = 1 << 13;

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

/// `dst[i] += src[i]` (slices of the same length), split across threads when large.
pub(crate) fn add_assign<T: Element>(dst: &mut [T], src: &[T]) {
    debug_assert_eq!(dst.len(), src.len());
    if dst.len() >= PAR_THRESHOLD {
        dst.par_chunks_mut(PAR_CHUNK)
            .zip(src.par_chunks(PAR_CHUNK))
            .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(d, &s)| *d += s));
    } else {
        dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s);
    }
}

/// `f` applied to every element, into a new contiguous tensor.
#[inline]
pub(crate) fn map<T: Element>(x: &Tensor, f: impl Fn(T) -> T + Sync + Send) -> Tensor {
    let n = x.numel();
    let shape = x.shape().clone();
    if let Some(src) = x.contiguous_slice::<T>() {
        if n == 1 {
            return Tensor::from_one(f(src[0]), shape);
        }
        let data = storage::build_overwrite(n, |o: &mut [T]| {
            if n >= PAR_THRESHOLD {
                o.par_chunks_mut(PAR_CHUNK)
                    .zip(src.par_chunks(PAR_CHUNK))
                    .for_each(|(o, s)| o.iter_mut().zip(s).for_each(|(o, &s)| *o = f(s)));
            } else {
                o.iter_mut().zip(src).for_each(|(o, &s)| *o = f(s));
            }
        });
        return Tensor::from_arc(data, shape);
    }
    let buf = x.buffer::<T>();
    let data = storage::build_overwrite(n, |o: &mut [T]| {
        let mut i = 0;
        for_each_offset(x.layout(), |off| {
            o[i] = f(buf[off]);
            i += 1;
        });
    });
    Tensor::from_arc(data, shape)
}

/// `f(a, b)` elementwise with NumPy broadcasting, into a new contiguous tensor.
#[inline]
pub(crate) fn zip<T: Element>(
    op: &str,
    a: &Tensor,
    b: &Tensor,
    f: impl Fn(T, T) -> T + Sync + Send,
) -> Tensor {
    let (la, lb) = (a.layout(), b.layout());
    // Scalar fast path: simulators live here.
    if la.shape.rank() == 0 && lb.shape.rank() == 0 {
        let v = f(a.buffer::<T>()[la.offset], b.buffer::<T>()[lb.offset]);
        return Tensor::from_one(v, Shape::scalar());
    }
    let shape = broadcast_shapes(op, &la.shape, &lb.shape);
    let n = shape.numel();
    let (ba, bb) = (a.buffer::<T>(), b.buffer::<T>());
    let data = storage::build_overwrite(n, |o: &mut [T]| {
        let a_full = la.shape == shape;
        let b_full = lb.shape == shape;
        match (a_full, b_full, la.contiguous_range(), lb.contiguous_range()) {
            (true, true, Some(ra), Some(rb)) => {
                let (sa, sb) = (&ba[ra], &bb[rb]);
                if n >= PAR_THRESHOLD {
                    o.par_chunks_mut(PAR_CHUNK)
                        .zip(sa.par_chunks(PAR_CHUNK).zip(sb.par_chunks(PAR_CHUNK)))
                        .for_each(|(o, (a, b))| {
                            for i in 0..o.len() {
                                o[i] = f(a[i], b[i]);
                            }
                        });
                } else {
                    for i in 0..n {
                        o[i] = f(sa[i], sb[i]);
                    }
                }
            }
            (true, false, Some(ra), _) if lb.numel() == 1 => {
                let (sa, y) = (&ba[ra], bb[lb.offset]);
                o.iter_mut().zip(sa).for_each(|(o, &x)| *o = f(x, y));
            }
            (false, true, _, Some(rb)) if la.numel() == 1 => {
                let (x, sb) = (ba[la.offset], &bb[rb]);
                o.iter_mut().zip(sb).for_each(|(o, &y)| *o = f(x, y));
            }
            _ => {
                if n == 0 {
                    return;
                }
                let (sa, sb) = (la.broadcast_strides(&shape), lb.broadcast_strides(&shape));
                let mut i = 0;
                // row by row, so that the common cases (both contiguous, one broadcast along the
                // row) run as plain slice loops
                for_each_row2(
                    &shape,
                    &sa,
                    la.offset,
                    &sb,
                    lb.offset,
                    |pa, pb, len, ia, ib| {
                        let o = &mut o[i..i + len];
                        match (ia, ib) {
                            (1, 1) => {
                                let (xa, xb) = (&ba[pa..pa + len], &bb[pb..pb + len]);
                                for k in 0..len {
                                    o[k] = f(xa[k], xb[k]);
                                }
                            }
                            (1, 0) => {
                                let (xa, y) = (&ba[pa..pa + len], bb[pb]);
                                for k in 0..len {
                                    o[k] = f(xa[k], y);
                                }
                            }
                            (0, 1) => {
                                let (x, xb) = (ba[pa], &bb[pb..pb + len]);
                                for k in 0..len {
                                    o[k] = f(x, xb[k]);
                                }
                            }
                            _ => {
                                for (k, o) in o.iter_mut().enumerate() {
                                    *o = f(ba[pa + k * ia], bb[pb + k * ib]);
                                }
                            }
                        }
                        i += len;
                    },
                );
            }
        }
    });
    Tensor::from_arc(data, shape)
}

/// Gathers the elements of `x`, viewed through `layout` (a layout over x's buffer), into a new
/// contiguous tensor.
pub(crate) fn gather_layout<T: Element>(x: &Tensor, layout: &Layout) -> Tensor {
    let buf = x.buffer::<T>();
    let n = layout.numel();
    let data = storage::build_overwrite(n, |o: &mut [T]| {
        if let Some(r) = layout.contiguous_range() {
            o.copy_from_slice(&buf[r]);
        } else {
            let mut i = 0;
            for_each_offset(layout, |off| {
                o[i] = buf[off];
                i += 1;
            });
        }
    });
    Tensor::from_arc(data, layout.shape.clone())
}

/// Reduces the given (sorted, distinct) axes with `fold`, starting from `init`. The result keeps the
/// reduced axes as size 1 (callers squeeze them when `keepdim` is false).
pub(crate) fn reduce<T: Element>(
    x: &Tensor,
    axes: &[usize],
    init: T,
    fold: impl Fn(T, T) -> T,
) -> Tensor {
    let l = x.layout();
    let mut out_dims: Vec<usize> = l.shape.to_vec();
    for &a in axes {
        out_dims[a] = 1;
    }
    let out_shape = Shape::from(out_dims);
    let out_n = out_shape.numel();
    let buf = x.buffer::<T>();
    // Reducing everything from a contiguous buffer: a straight fold.
    if out_n == 1
        && let Some(r) = l.contiguous_range()
    {
        let v = buf[r].iter().fold(init, |acc, &v| fold(acc, v));
        return Tensor::from_one(v, out_shape);
    }
    let mut out_strides = out_shape.contiguous_strides();
    for &a in axes {
        out_strides[a] = 0;
    }
    let data = storage::build_overwrite(out_n, |o: &mut [T]| {
        o.fill(init);
        if l.shape.contains(&0) {
            return;
        }
        for_each_row2(
            &l.shape,
            &l.strides,
            l.offset,
            &out_strides,
            0,
            |px, po, len, ix, io| match (ix, io) {
                (1, 0) => {
                    let mut acc = o[po];
                    for &v in &buf[px..px + len] {
                        acc = fold(acc, v);
                    }
                    o[po] = acc;
                }
                (1, 1) => {
                    for (d, &v) in o[po..po + len].iter_mut().zip(&buf[px..px + len]) {
                        *d = fold(*d, v);
                    }
                }
                _ => {
                    for k in 0..len {
                        let d = &mut o[po + k * io];
                        *d = fold(*d, buf[px + k * ix]);
                    }
                }
            },
        );
    });
    Tensor::from_arc(data, out_shape)
}
