//! CPU kernels of 2-d pooling, one plane (`[h, w]` of one batch element and channel) at a time,
//! planes on the rayon threads when there is enough work.

use super::PAR_THRESHOLD;
use crate::backend::PoolGeom;
use crate::dtype::Element;
use crate::tensor::{Shape, Tensor, storage};
#[allow(unused_imports)]
use num_traits::{Float, One, Zero};
use rayon::prelude::*;
use std::sync::Arc;

/// Runs `f(plane_index, out_plane, in_plane)` over the planes of `out` and `src`, on the rayon
/// threads when there is enough work.
fn over_planes<A: Send, B: Sync>(
    out: &mut [A],
    out_plane: usize,
    src: &[B],
    in_plane: usize,
    work: usize,
    f: impl Fn(&mut [A], &[B]) + Sync + Send,
) {
    if out_plane == 0 || in_plane == 0 {
        return;
    }
    if work >= PAR_THRESHOLD && rayon::current_num_threads() > 1 {
        out.par_chunks_mut(out_plane)
            .zip(src.par_chunks(in_plane))
            .for_each(|(o, s)| f(o, s));
    } else {
        out.chunks_mut(out_plane)
            .zip(src.chunks(in_plane))
            .for_each(|(o, s)| f(o, s));
    }
}

/// `out[p, j] = x[p, idx[p, j]]` per plane `p` (planes of `in_plane` elements in, `out_plane` out).
pub(crate) fn plane_gather<T: Element>(
    x: &Tensor,
    idx: &[u32],
    [in_plane, out_plane]: [usize; 2],
    out_shape: Shape,
) -> Tensor {
    let src = x.contiguous_data::<T>();
    // Every element is written: gathered below, or zeroed when a plane is empty.
    let data = storage::build_overwrite(out_shape.numel(), |o: &mut [T]| {
        let work = o.len();
        let (op, ip) = (out_plane, in_plane);
        if op == 0 || ip == 0 {
            o.fill(T::zero());
            return;
        }
        let body = |(o, (s, i)): (&mut [T], (&[T], &[u32]))| {
            o.iter_mut().zip(i).for_each(|(o, &i)| *o = s[i as usize]);
        };
        if work >= PAR_THRESHOLD && rayon::current_num_threads() > 1 {
            o.par_chunks_mut(op)
                .zip(src.par_chunks(ip).zip(idx.par_chunks(op)))
                .for_each(body);
        } else {
            o.chunks_mut(op)
                .zip(src.chunks(ip).zip(idx.chunks(op)))
                .for_each(body);
        }
    });
    Tensor::from_arc(data, out_shape)
}

/// The adjoint of [`plane_gather`]: `out[p, q] = Σ_{j : idx[p, j] = q} g[p, j]`.
pub(crate) fn plane_scatter<T: Element>(
    g: &Tensor,
    idx: &[u32],
    [in_plane, out_plane]: [usize; 2],
    in_shape: Shape,
) -> Tensor {
    let src = g.contiguous_data::<T>();
    let data = storage::build(in_shape.numel(), |o: &mut [T]| {
        let work = src.len();
        let (op, ip) = (out_plane, in_plane);
        if op == 0 || ip == 0 {
            return;
        }
        let body = |(o, (s, i)): (&mut [T], (&[T], &[u32]))| {
            s.iter().zip(i).for_each(|(&s, &i)| o[i as usize] += s);
        };
        if work >= PAR_THRESHOLD && rayon::current_num_threads() > 1 {
            o.par_chunks_mut(ip)
                .zip(src.par_chunks(op).zip(idx.par_chunks(op)))
                .for_each(body);
        } else {
            o.chunks_mut(ip)
                .zip(src.chunks(op).zip(idx.chunks(op)))
                .for_each(body);
        }
    });
    Tensor::from_arc(data, in_shape)
}

/// Max pooling values and, per output, the position of the maximum in its plane (the first one on
/// ties; a NaN wins).
pub(crate) fn max_pool<T: Element>(x: &Tensor, g: &PoolGeom) -> (Tensor, Arc<[u32]>) {
    let src = x.contiguous_data::<T>();
    let (in_plane, out_plane) = (g.h * g.w, g.ho * g.wo);
    let total = g.planes() * out_plane;
    let mut idx = vec![0u32; total];
    let mut vals = vec![T::zero(); total];
    let work = total * g.k[0] * g.k[1];
    let mut pairs: Vec<(&mut [T], &mut [u32])> = vals
        .chunks_mut(out_plane.max(1))
        .zip(idx.chunks_mut(out_plane.max(1)))
        .collect();
    let body = |(v, i): &mut (&mut [T], &mut [u32]), s: &[T]| {
        for oh in 0..g.ho {
            let rows = g.window(0, oh);
            for ow in 0..g.wo {
                let cols = g.window(1, ow);
                let mut best = T::neg_infinity();
                let mut at = rows.start * g.w + cols.start;
                'win: for r in rows.clone() {
                    for c in cols.clone() {
                        let val = s[r * g.w + c];
                        if val > best || val.is_nan() {
                            best = val;
                            at = r * g.w + c;
                            if val.is_nan() {
                                break 'win;
                            }
                        }
                    }
                }
                v[oh * g.wo + ow] = best;
                i[oh * g.wo + ow] = at as u32;
            }
        }
    };
    if out_plane > 0 && in_plane > 0 {
        if work >= PAR_THRESHOLD && rayon::current_num_threads() > 1 {
            pairs
                .par_iter_mut()
                .zip(src.par_chunks(in_plane))
                .for_each(|(p, s)| body(p, s));
        } else {
            pairs
                .iter_mut()
                .zip(src.chunks(in_plane))
                .for_each(|(p, s)| body(p, s));
        }
    }
    drop(pairs);
    (Tensor::from_vec(vals, g.out_shape()), idx.into())
}

/// Average pooling (or, with `adjoint`, its transpose) over the planes of `x`. Each window divides
/// by `kH·kW` when `include_pad`, else by the number of input elements it covers.
pub(crate) fn avg_pool<T: Element>(
    x: &Tensor,
    g: &PoolGeom,
    adjoint: bool,
    include_pad: bool,
) -> Tensor {
    let (in_plane, out_plane) = (g.h * g.w, g.ho * g.wo);
    let full = 1.0 / (g.k[0] * g.k[1]) as f64;
    let src = x.contiguous_data::<T>();
    let scale_of = |rows: &std::ops::Range<usize>, cols: &std::ops::Range<usize>| {
        if include_pad {
            T::from_f64(full)
        } else {
            T::from_f64(1.0 / (rows.len() * cols.len()).max(1) as f64)
        }
    };
    let work = g.planes() * out_plane * g.k[0] * g.k[1];
    if !adjoint {
        let data = storage::build(g.planes() * out_plane, |o: &mut [T]| {
            over_planes(o, out_plane, &src, in_plane, work, |o, s| {
                for oh in 0..g.ho {
                    let rows = g.window(0, oh);
                    for ow in 0..g.wo {
                        let cols = g.window(1, ow);
                        let mut acc = T::zero();
                        for r in rows.clone() {
                            acc += s[r * g.w + cols.start..r * g.w + cols.end]
                                .iter()
                                .copied()
                                .sum::<T>();
                        }
                        o[oh * g.wo + ow] = acc * scale_of(&rows, &cols);
                    }
                }
            });
        });
        Tensor::from_arc(data, g.out_shape())
    } else {
        let data = storage::build(g.planes() * in_plane, |o: &mut [T]| {
            over_planes(o, in_plane, &src, out_plane, work, |o, s| {
                for oh in 0..g.ho {
                    let rows = g.window(0, oh);
                    for ow in 0..g.wo {
                        let cols = g.window(1, ow);
                        let v = s[oh * g.wo + ow] * scale_of(&rows, &cols);
                        for r in rows.clone() {
                            o[r * g.w + cols.start..r * g.w + cols.end]
                                .iter_mut()
                                .for_each(|o| *o += v);
                        }
                    }
                }
            });
        });
        Tensor::from_arc(data, g.in_shape())
    }
}
