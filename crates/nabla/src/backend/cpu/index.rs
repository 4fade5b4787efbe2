//! CPU kernels of the index operations: selection and accumulation along an axis by host index
//! arrays, gather/scatter-add, argmax/argmin and one-hot encoding.

use super::PAR_THRESHOLD;
use crate::dtype::Element;
use crate::ops::index::Indices;
use crate::tensor::layout::{for_each_offset, for_each_offset2};
use crate::tensor::{Shape, Tensor, storage};
#[allow(unused_imports)]
use num_traits::{Float, One, Zero};
use rayon::prelude::*;

/// `(outer, size, inner)`: the products of the dimensions before `axis`, at it, and after it.
fn split_at_axis(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        dims[..axis].iter().product(),
        dims[axis],
        dims[axis + 1..].iter().product(),
    )
}

/// Writes `x`'s elements, row-major, into `o` (which starts zeroed), as cheaply as its layout allows.
fn copy_into<T: Element>(x: &Tensor, o: &mut [T]) {
    let buf = x.buffer::<T>();
    let l = x.layout();
    if let Some(r) = l.contiguous_range() {
        o.copy_from_slice(&buf[r]);
    } else if l.strides.iter().all(|&s| s == 0) {
        let v = buf[l.offset];
        if v != T::zero() || v.is_sign_negative() {
            o.fill(v);
        }
    } else {
        let mut i = 0;
        for_each_offset(l, |off| {
            o[i] = buf[off];
            i += 1;
        });
    }
}

/// `x`'s slices at positions `index` along `axis`.
pub(crate) fn index_select_kernel<T: Element>(x: &Tensor, axis: usize, index: &[usize]) -> Tensor {
    let (outer, n, inner) = split_at_axis(x.dims(), axis);
    let m = index.len();
    let mut dims = x.dims().to_vec();
    dims[axis] = m;
    let total = outer * m * inner;
    let src = x.contiguous_data::<T>();
    let data = storage::build(total, |o: &mut [T]| {
        if total == 0 {
            return;
        }
        if inner == 1 {
            let pick = |j: usize| src[(j / m) * n + index[j % m]];
            if total >= PAR_THRESHOLD {
                o.par_iter_mut().enumerate().for_each(|(j, v)| *v = pick(j));
            } else {
                o.iter_mut().enumerate().for_each(|(j, v)| *v = pick(j));
            }
            return;
        }
        let row = |j: usize, dst: &mut [T]| {
            let s = ((j / m) * n + index[j % m]) * inner;
            dst.copy_from_slice(&src[s..s + inner]);
        };
        if total >= PAR_THRESHOLD {
            o.par_chunks_mut(inner)
                .with_min_len((PAR_THRESHOLD / 4 / inner).max(1))
                .enumerate()
                .for_each(|(j, d)| row(j, d));
        } else {
            o.chunks_mut(inner).enumerate().for_each(|(j, d)| row(j, d));
        }
    });
    Tensor::from_arc(data, Shape::from(dims))
}

/// `x` with the slices of `src` added at positions `index` along `axis`.
pub(crate) fn index_add_kernel<T: Element>(
    x: &Tensor,
    axis: usize,
    index: &[usize],
    src: &Tensor,
) -> Tensor {
    let (outer, n, inner) = split_at_axis(x.dims(), axis);
    let m = index.len();
    let s = src.contiguous_data::<T>();
    let data = storage::build(x.numel(), |o: &mut [T]| {
        copy_into(x, o);
        for oi in 0..outer {
            for (k, &i) in index.iter().enumerate() {
                let d = (oi * n + i) * inner;
                let r = (oi * m + k) * inner;
                for (a, &b) in o[d..d + inner].iter_mut().zip(&s[r..r + inner]) {
                    *a += b;
                }
            }
        }
    });
    Tensor::from_arc(data, x.shape().clone())
}

/// `out[.., k, ..] = x[.., index[.., k, ..], ..]` along `axis` (`index` has the output's shape).
pub(crate) fn gather_kernel<T: Element>(x: &Tensor, axis: usize, index: &Indices) -> Tensor {
    let l = x.layout();
    let buf = x.buffer::<T>();
    let mut sx = l.strides.clone();
    let step = sx[axis];
    sx[axis] = 0;
    let si = index.shape().contiguous_strides();
    let idx = index.as_slice();
    let data = storage::build(index.len(), |o: &mut [T]| {
        for_each_offset2(index.dims(), &sx, l.offset, &si, 0, |ox, k| {
            o[k] = buf[ox + idx[k] * step];
        });
    });
    Tensor::from_arc(data, index.shape().clone())
}

/// `src` must have the shape of `index`.
pub(crate) fn scatter_add_kernel<T: Element>(
    x: &Tensor,
    axis: usize,
    index: &Indices,
    src: &Tensor,
) -> Tensor {
    let mut so = x.shape().contiguous_strides();
    let step = so[axis];
    so[axis] = 0;
    let si = index.shape().contiguous_strides();
    let idx = index.as_slice();
    let s = src.contiguous_data::<T>();
    let data = storage::build(x.numel(), |o: &mut [T]| {
        copy_into(x, o);
        for_each_offset2(index.dims(), &so, 0, &si, 0, |oo, k| {
            o[oo + idx[k] * step] += s[k];
        });
    });
    Tensor::from_arc(data, x.shape().clone())
}

/// Position of the first maximum (`is_max`) or minimum along `axis`; a NaN wins over any number.
pub(crate) fn arg_extremum_kernel<T: Element>(x: &Tensor, axis: usize, is_max: bool) -> Vec<usize> {
    let (outer, n, inner) = split_at_axis(x.dims(), axis);
    let src = x.contiguous_data::<T>();
    let better =
        |v: T, best: T| !best.is_nan() && (v.is_nan() || if is_max { v > best } else { v < best });
    let mut out = vec![0usize; outer * inner];
    let mut best: Vec<T> = vec![T::zero(); inner];
    for oi in 0..outer {
        let base = oi * n * inner;
        best.copy_from_slice(&src[base..base + inner]);
        let pos = &mut out[oi * inner..(oi + 1) * inner];
        for k in 1..n {
            let row = &src[base + k * inner..base + (k + 1) * inner];
            for ((b, p), &v) in best.iter_mut().zip(pos.iter_mut()).zip(row) {
                if better(v, *b) {
                    *b = v;
                    *p = k;
                }
            }
        }
    }
    out
}

/// One-hot rows of `num_classes` for the labels in `index`.
pub(crate) fn one_hot<T: Element>(index: &Indices, num_classes: usize, shape: Shape) -> Tensor {
    let data = storage::build(index.len() * num_classes, |o: &mut [T]| {
        for (k, &i) in index.iter().enumerate() {
            o[k * num_classes + i] = T::one();
        }
    });
    Tensor::from_arc(data, shape)
}
