//! Batched, broadcasting matrix products on the `gemm` crate (through [`super::gemm`]), called
//! with the operands' own strides (transposed views are never copied); tiny products run as plain
//! loops.

use super::gemm::{Mat, SMALL_GEMM, gemm};
use crate::dtype::Element;
use crate::tensor::layout::Layout;
use crate::tensor::{Shape, Tensor, storage};
#[allow(unused_imports)]
use num_traits::{Float, One, Zero};
use rayon::prelude::*;

/// One `m×k @ k×n` product into a row-major `m×n` block.
#[allow(clippy::too_many_arguments)]
fn gemm_one<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    a_off: usize,
    (a_rs, a_cs): (usize, usize),
    b: &[T],
    b_off: usize,
    (b_rs, b_cs): (usize, usize),
    dst: &mut [T],
    threaded: bool,
) {
    if m * n * k <= SMALL_GEMM {
        if m * n == 0 {
            return;
        }
        let dst = &mut dst[..m * n];
        if b_cs == 1 {
            // rows of b contiguous: dst[r] = Σ_x a[r, x] b[x] as slice updates (same summation
            // order as the dot products below)
            for (r, drow) in dst.chunks_exact_mut(n).enumerate() {
                drow.fill(T::zero());
                for x in 0..k {
                    let av = a[a_off + r * a_rs + x * a_cs];
                    let brow = &b[b_off + x * b_rs..b_off + x * b_rs + n];
                    for (d, &bv) in drow.iter_mut().zip(brow) {
                        *d += av * bv;
                    }
                }
            }
            return;
        }
        if b_rs == 1 && a_cs == 1 {
            // columns of b and rows of a contiguous: plain dot products of slices
            for (r, drow) in dst.chunks_exact_mut(n).enumerate() {
                let arow = &a[a_off + r * a_rs..a_off + r * a_rs + k];
                for (c, d) in drow.iter_mut().enumerate() {
                    let bcol = &b[b_off + c * b_cs..b_off + c * b_cs + k];
                    let mut acc = T::zero();
                    for (&x, &y) in arow.iter().zip(bcol) {
                        acc += x * y;
                    }
                    *d = acc;
                }
            }
            return;
        }
        // other strides: the shared kernel's plain loop
    }
    gemm(
        m,
        n,
        k,
        &mut dst[..m * n],
        n,
        false,
        Mat::new(a, a_off, (a_rs, a_cs)),
        Mat::new(b, b_off, (b_rs, b_cs)),
        threaded,
    );
}

/// Batched, broadcasting `a @ b` for operands of rank ≥ 2.
pub(crate) fn matmul<T: Element>(
    a: &Tensor,
    b: &Tensor,
    batch: &Shape,
    [m, k, n]: [usize; 3],
) -> Tensor {
    let (la, lb) = (a.layout(), b.layout());
    let (ra, rb) = (la.shape.rank(), lb.shape.rank());
    let a_ms = (la.strides[ra - 2], la.strides[ra - 1]);
    let b_ms = (lb.strides[rb - 2], lb.strides[rb - 1]);
    // Batch strides of each operand broadcast to the common batch shape.
    let batch_strides = |l: &Layout, r: usize| {
        let bl = Layout {
            shape: Shape::from(&l.shape[..r - 2]),
            strides: l.strides[..r - 2].into(),
            offset: 0,
        };
        bl.broadcast_strides(batch)
    };
    let (sa, sb) = (batch_strides(la, ra), batch_strides(lb, rb));
    let nb = batch.numel();
    let offsets: Vec<(usize, usize)> = (0..nb)
        .map(|mut idx| {
            let (mut oa, mut ob) = (la.offset, lb.offset);
            for d in (0..batch.rank()).rev() {
                let i = idx % batch[d];
                idx /= batch[d];
                oa += i * sa[d];
                ob += i * sb[d];
            }
            (oa, ob)
        })
        .collect();
    let (ba, bb) = (a.buffer::<T>(), b.buffer::<T>());
    let mut out_dims = batch.to_vec();
    out_dims.extend_from_slice(&[m, n]);
    let data = storage::build_overwrite(nb * m * n, |o: &mut [T]| {
        if m * n == 0 {
            return;
        }
        let per = m * n * k;
        if nb > 1 && per * nb >= 1 << 16 && per < 1 << 20 {
            o.par_chunks_mut(m * n)
                .zip(offsets.par_iter())
                .for_each(|(dst, &(oa, ob))| {
                    gemm_one(m, n, k, ba, oa, a_ms, bb, ob, b_ms, dst, false)
                });
        } else {
            for (dst, &(oa, ob)) in o.chunks_mut(m * n).zip(&offsets) {
                gemm_one(m, n, k, ba, oa, a_ms, bb, ob, b_ms, dst, true);
            }
        }
    });
    Tensor::from_arc(data, Shape::from(out_dims))
}
