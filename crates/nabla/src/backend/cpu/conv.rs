//! CPU kernels for 2-d convolution, one batch element at a time: the element's input is unfolded
//! into a column matrix (im2col) in a small scratch buffer that stays in cache, and each group's
//! product is one `gemm` call on strided operands. The three kernels are the three bilinear maps of
//! the convolution's trilinear form `T(x, w, g) = Σ g[n,o,p] w[o,c,k] x[n,c,p·s + k·d − pad]`:
//!
//! - [`forward`]: `y = ∂T/∂g`, per element `y[g] = w[g] · cols[g]` (+ bias, written before the product);
//! - [`input_grad`]: `x̄ = ∂T/∂x`, per element `cols = w[g]ᵀ · ḡ[g]`, folded back (col2im);
//! - [`weight_grad`]: `w̄ = ∂T/∂w = Σₙ ḡ[g] · cols[g]ᵀ`, summed over fixed batch chunks.
//!
//! Work is split over the batch (single-threaded gemm per element); with a batch of one, gemm itself
//! runs on the rayon threads. The columns of one element are built in tiles of output rows, in a
//! buffer of at most [`TILE_VALUES`] values cached per thread. A 1×1 convolution with unit stride
//! and no padding reads the input (or writes the input gradient) directly, without columns.

use super::elementwise::gather_layout;
use super::gemm::{Mat, gemm};
use crate::backend::ConvGeom;
use crate::dtype::Element;
use crate::tensor::{Tensor, storage};
use rayon::prelude::*;
use std::any::Any;
use std::cell::Cell;
use std::ops::Range;

/// Below this many flops for the whole call, everything runs on the calling thread.
const PAR_FLOPS: usize = 1 << 20;

/// A 4-d tensor's buffer, offset and strides.
struct View4<'a, T> {
    buf: &'a [T],
    off: usize,
    s: [usize; 4],
}

fn view4<T: Element>(t: &Tensor) -> View4<'_, T> {
    let l = t.layout();
    View4 {
        buf: t.buffer::<T>(),
        off: l.offset,
        s: [l.strides[0], l.strides[1], l.strides[2], l.strides[3]],
    }
}

/// `t` itself when its last two dimensions merge into one strided dimension (so each batch element
/// is a strided `[C, H·W]` matrix, e.g. a broadcast gradient), else a contiguous copy.
fn mergeable<T: Element>(t: &Tensor) -> std::borrow::Cow<'_, Tensor> {
    let (d, s) = (t.dims(), t.strides());
    if d[2] == 1 || d[3] == 1 || s[2] == d[3] * s[3] {
        std::borrow::Cow::Borrowed(t)
    } else {
        std::borrow::Cow::Owned(gather_layout::<T>(t, t.layout()))
    }
}

/// Batch element `i` of a mergeable `[N, C, H, W]` tensor as a `[C, H·W]` matrix.
fn batch_mat<'a, T: Element>(v: &View4<'a, T>, i: usize, w: usize) -> Mat<'a, T> {
    let cs = if w == 1 { v.s[2] } else { v.s[3] };
    Mat {
        buf: v.buf,
        off: v.off + i * v.s[0],
        rs: v.s[1],
        cs,
    }
}

/// The output columns `lo..hi` whose input column `ow·stride + shift − pad` lies in `0..w`.
#[inline]
fn valid_range(wo: usize, w: usize, stride: usize, shift: usize, pad: usize) -> (usize, usize) {
    let lo = if pad > shift {
        (pad - shift).div_ceil(stride)
    } else {
        0
    };
    let hi = if w + pad > shift {
        (w + pad - shift).div_ceil(stride)
    } else {
        0
    };
    let hi = hi.min(wo);
    (lo.min(hi), hi)
}

/// Output rows `rows` of batch element `i` of `x` unfolded into `cols`
/// (`[c_in·kh·kw, rows.len()·wo]`, row-major): row `(c·kh + ki)·kw + kj`, column
/// `(oh − rows.start)·wo + ow` holds `x[i, c, oh·sh + ki·dh − ph, ow·sw + kj·dw − pw]`, or 0 in the
/// padding.
fn im2col<T: Element>(
    x: &View4<'_, T>,
    i: usize,
    g: &ConvGeom,
    rows: Range<usize>,
    cols: &mut [T],
) {
    let wo = g.wo;
    let ([sh, sw], [ph, pw], [dh, dw]) = (g.stride, g.pad, g.dil);
    let xs = x.s;
    let mut out_rows = cols.chunks_exact_mut(rows.len() * wo);
    for c in 0..g.c_in {
        let base_c = x.off + i * xs[0] + c * xs[1];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = out_rows.next().expect("im2col: rows");
                let (lo, hi) = valid_range(wo, g.w, sw, kj * dw, pw);
                for (oh, dst) in rows.clone().zip(row.chunks_exact_mut(wo)) {
                    let ih = (oh * sh + ki * dh).wrapping_sub(ph);
                    if ih >= g.h || lo == hi {
                        dst.fill(T::zero());
                        continue;
                    }
                    dst[..lo].fill(T::zero());
                    dst[hi..].fill(T::zero());
                    let base = base_c + ih * xs[2];
                    let iw0 = lo * sw + kj * dw - pw;
                    if sw == 1 && xs[3] == 1 {
                        let src = &x.buf[base + iw0..base + iw0 + (hi - lo)];
                        dst[lo..hi].copy_from_slice(src);
                    } else {
                        let step = sw * xs[3];
                        let src0 = base + iw0 * xs[3];
                        for (t, d) in dst[lo..hi].iter_mut().enumerate() {
                            *d = x.buf[src0 + t * step];
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds each entry of the columns of output rows `rows` to the input
/// position it was read from, in the contiguous `[c_in, h, w]` block `dst`.
fn col2im<T: Element>(cols: &[T], g: &ConvGeom, rows: Range<usize>, dst: &mut [T]) {
    let wo = g.wo;
    let ([sh, sw], [ph, pw], [dh, dw]) = (g.stride, g.pad, g.dil);
    let hw = g.h * g.w;
    let mut in_rows = cols.chunks_exact(rows.len() * wo);
    for c in 0..g.c_in {
        let plane = &mut dst[c * hw..(c + 1) * hw];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = in_rows.next().expect("col2im: rows");
                let (lo, hi) = valid_range(wo, g.w, sw, kj * dw, pw);
                if lo == hi {
                    continue;
                }
                let iw0 = lo * sw + kj * dw - pw;
                for (oh, src) in rows.clone().zip(row.chunks_exact(wo)) {
                    let ih = (oh * sh + ki * dh).wrapping_sub(ph);
                    if ih >= g.h {
                        continue;
                    }
                    let line = &mut plane[ih * g.w..(ih + 1) * g.w];
                    if sw == 1 {
                        line[iw0..iw0 + (hi - lo)]
                            .iter_mut()
                            .zip(&src[lo..hi])
                            .for_each(|(d, &s)| *d += s);
                    } else {
                        for (t, &s) in src[lo..hi].iter().enumerate() {
                            line[iw0 + t * sw] += s;
                        }
                    }
                }
            }
        }
    }
}

/// Most values a column buffer holds: the output rows are processed in tiles this size (at least
/// one row), so the buffer stays in cache and its size is bounded whatever the layer.
#[cfg(not(test))]
const TILE_VALUES: usize = 1 << 18;
/// Tiny tiles in unit tests, so they exercise tiling (the integration tests use the real size).
#[cfg(test)]
const TILE_VALUES: usize = 100;

/// The output row tiles of one batch element, and the scratch length they need (0 when the input
/// is read directly, see [`direct`]).
fn tiles(g: &ConvGeom, direct: bool) -> (Vec<Range<usize>>, usize) {
    let per_row = g.c_in * g.kh * g.kw * g.wo;
    let step = if direct {
        g.ho.max(1)
    } else {
        (TILE_VALUES / per_row.max(1)).clamp(1, g.ho.max(1))
    };
    let tiles: Vec<Range<usize>> = (0..g.ho)
        .step_by(step)
        .map(|r| r..(r + step).min(g.ho))
        .collect();
    (tiles, if direct { 0 } else { step * per_row })
}

/// Whether a pointwise convolution reads `x` itself as the column matrix (its spatial dimensions
/// merge into one strided dimension), instead of unfolding it.
fn direct(x: &Tensor, g: &ConvGeom) -> bool {
    let (d, s) = (x.dims(), x.strides());
    g.pointwise() && (d[2] == 1 || d[3] == 1 || s[2] == d[3] * s[3])
}

/// The column matrix (`[c_in·kh·kw, rows.len()·wo]`) of output rows `rows` of batch element `i`:
/// `x` itself when `direct`, else unfolded into `scratch`.
fn columns<'a, T: Element>(
    x: &View4<'a, T>,
    i: usize,
    g: &ConvGeom,
    rows: &Range<usize>,
    direct: bool,
    scratch: &'a mut [T],
) -> Mat<'a, T> {
    if direct {
        batch_mat(x, i, g.w)
    } else {
        let n = g.c_in * g.kh * g.kw * rows.len() * g.wo;
        im2col(x, i, g, rows.clone(), &mut scratch[..n]);
        Mat {
            buf: scratch,
            off: 0,
            rs: rows.len() * g.wo,
            cs: 1,
        }
    }
}

thread_local! {
    /// A column buffer kept per thread between calls (no allocation, zeroing or page faults in
    /// training loops); at most [`TILE_VALUES`] values (or one output row) of one element type.
    static SCRATCH: Cell<Option<Box<dyn Any>>> = const { Cell::new(None) };
}

/// Runs `f` on a buffer of `len` values of unspecified content (callers overwrite what they read).
fn with_scratch<T: Element, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    if len == 0 {
        return f(&mut []);
    }
    let mut v: Vec<T> = SCRATCH
        .with(|c| c.take())
        .and_then(|b| b.downcast::<Vec<T>>().ok())
        .map(|b| *b)
        .unwrap_or_default();
    if v.len() < len {
        v.resize(len, T::zero());
    }
    let r = f(&mut v[..len]);
    SCRATCH.with(|c| c.set(Some(Box::new(v))));
    r
}

/// Runs `f(first_batch_index, block, threaded_gemm)` over `out`, split into blocks of whole batch
/// elements (`per_n` values each) on the rayon threads when the work is large enough.
fn over_batch<T: Element>(
    n: usize,
    per_n: usize,
    flops: usize,
    out: &mut [T],
    f: impl Fn(usize, &mut [T], bool) + Sync + Send,
) {
    if per_n == 0 || n == 0 {
        return;
    }
    let threads = rayon::current_num_threads();
    let big = threads > 1 && flops >= PAR_FLOPS;
    if big && n > 1 {
        let chunk = n.div_ceil(4 * threads).max(1);
        out.par_chunks_mut(chunk * per_n)
            .enumerate()
            .for_each(|(c, o)| f(c * chunk, o, false));
    } else {
        f(0, out, big);
    }
}

/// `y = conv(x, w) + bias`: `[n, c_out, ho, wo]`.
pub(crate) fn forward<T: Element>(
    g: &ConvGeom,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
) -> Tensor {
    let wd = w.contiguous_data::<T>();
    let bd = bias.map(|b| b.contiguous_data::<T>());
    let xv = view4::<T>(x);
    let direct = direct(x, g);
    let (tiles, scratch_len) = tiles(g, direct);
    let (k, l, cg_out, wo) = (g.k(), g.l(), g.cg_out(), g.wo);
    let per_n = g.c_out * l;
    // Every element is written: the bias fill, or the first product into it (which overwrites
    // without a bias); the row tiles cover every output row and the groups every channel.
    let data = storage::build_overwrite(g.n * per_n, |o: &mut [T]| {
        over_batch(g.n, per_n, g.flops(), o, |i0, block, threaded| {
            with_scratch(scratch_len, |scratch: &mut [T]| {
                for (j, dst_n) in block.chunks_exact_mut(per_n).enumerate() {
                    if let Some(b) = &bd {
                        for (row, &bv) in dst_n.chunks_exact_mut(l).zip(b.iter()) {
                            row.fill(bv);
                        }
                    }
                    for rows in &tiles {
                        let cols = columns(&xv, i0 + j, g, rows, direct, scratch);
                        let tl = rows.len() * wo;
                        for gi in 0..g.groups {
                            let dst = &mut dst_n[gi * cg_out * l + rows.start * wo..];
                            let wm = Mat {
                                buf: &wd[..],
                                off: gi * cg_out * k,
                                rs: k,
                                cs: 1,
                            };
                            let cm = cols.at(gi * k * cols.rs);
                            gemm(cg_out, tl, k, dst, l, bd.is_some(), wm, cm, threaded);
                        }
                    }
                }
            })
        });
    });
    Tensor::from_arc(data, g.output_shape())
}

/// `x̄ = ∂/∂x ⟨ḡ, conv(x, w)⟩`: `[n, c_in, h, w]` (a transposed convolution of `ḡ`).
pub(crate) fn input_grad<T: Element>(g: &ConvGeom, gy: &Tensor, w: &Tensor) -> Tensor {
    let wd = w.contiguous_data::<T>();
    let gy = mergeable::<T>(gy);
    let gv = view4::<T>(&gy);
    let (k, l, cg_in, cg_out, wo) = (g.k(), g.l(), g.cg_in(), g.cg_out(), g.wo);
    let per_n = g.c_in * g.h * g.w;
    // A pointwise convolution writes x̄ directly (it is contiguous), without folding columns.
    let direct = g.pointwise();
    let (tiles, scratch_len) = tiles(g, direct);
    // Every element is written: by the products when pointwise, else zeroed per batch element (on
    // the thread that then folds the columns into it) before the folds add to it.
    let data = storage::build_overwrite(g.n * per_n, |o: &mut [T]| {
        over_batch(g.n, per_n, g.flops(), o, |i0, block, threaded| {
            with_scratch(scratch_len, |scratch: &mut [T]| {
                for (j, dst_n) in block.chunks_exact_mut(per_n).enumerate() {
                    if !direct {
                        dst_n.fill(T::zero());
                    }
                    let gm = batch_mat(&gv, i0 + j, g.wo);
                    for rows in &tiles {
                        let tl = rows.len() * wo;
                        for gi in 0..g.groups {
                            // w[g]ᵀ: [k, cg_out]
                            let wt = Mat {
                                buf: &wd[..],
                                off: gi * cg_out * k,
                                rs: k,
                                cs: 1,
                            }
                            .t();
                            let gg = gm.at(gi * cg_out * gm.rs + rows.start * wo * gm.cs);
                            if direct {
                                let dst = &mut dst_n[gi * cg_in * l..];
                                gemm(cg_in, l, cg_out, dst, l, false, wt, gg, threaded);
                            } else {
                                let dst = &mut scratch[gi * k * tl..];
                                gemm(k, tl, cg_out, dst, tl, false, wt, gg, threaded);
                            }
                        }
                        if !direct {
                            let n = g.c_in * g.kh * g.kw * tl;
                            col2im(&scratch[..n], g, rows.clone(), dst_n);
                        }
                    }
                }
            })
        });
    });
    Tensor::from_arc(data, g.input_shape())
}

/// `w̄ = ∂/∂w ⟨ḡ, conv(x, w)⟩`: `[c_out, c_in / groups, kh, kw]`. The batch is summed in a fixed
/// number of chunks (independent of the thread count, so results are reproducible).
pub(crate) fn weight_grad<T: Element>(g: &ConvGeom, x: &Tensor, gy: &Tensor) -> Tensor {
    let gy = mergeable::<T>(gy);
    let gv = view4::<T>(&gy);
    let xv = view4::<T>(x);
    let direct = direct(x, g);
    let (tiles, scratch_len) = tiles(g, direct);
    let (k, cg_out, wo) = (g.k(), g.cg_out(), g.wo);
    let wn = g.c_out * k;
    // Chunks of the batch, each with its own accumulator: at most 16, and at most 2^24 values.
    let mut nchunks = g.n.clamp(1, 16);
    while nchunks > 1 && nchunks * wn > 1 << 24 {
        nchunks /= 2;
    }
    let chunk = g.n.div_ceil(nchunks).max(1);
    let nchunks = g.n.div_ceil(chunk);
    let threads = rayon::current_num_threads();
    let big = threads > 1 && g.flops() >= PAR_FLOPS;
    let run = |c: usize, threaded: bool| -> Vec<T> {
        let mut acc = vec![T::zero(); wn];
        with_scratch(scratch_len, |scratch: &mut [T]| {
            for i in c * chunk..((c + 1) * chunk).min(g.n) {
                let gm = batch_mat(&gv, i, g.wo);
                for rows in &tiles {
                    let cols = columns(&xv, i, g, rows, direct, scratch);
                    let tl = rows.len() * wo;
                    for gi in 0..g.groups {
                        let dst = &mut acc[gi * cg_out * k..];
                        let gg = gm.at(gi * cg_out * gm.rs + rows.start * wo * gm.cs);
                        // cols[g]ᵀ: [tl, k]
                        let ct = cols.at(gi * k * cols.rs).t();
                        gemm(cg_out, k, tl, dst, k, true, gg, ct, threaded);
                    }
                }
            }
        });
        acc
    };
    let partials: Vec<Vec<T>> = if big && nchunks > 1 {
        (0..nchunks)
            .into_par_iter()
            .map(|c| run(c, false))
            .collect()
    } else {
        (0..nchunks).map(|c| run(c, big)).collect()
    };
    let mut parts = partials.into_iter();
    let data = match parts.next() {
        None => storage::zeroed(wn),
        Some(mut first) => {
            for p in parts {
                first.iter_mut().zip(&p).for_each(|(a, &b)| *a += b);
            }
            std::sync::Arc::new(storage::Buffer::from_vec(first))
        }
    };
    Tensor::from_arc(data, g.weight_shape())
}
