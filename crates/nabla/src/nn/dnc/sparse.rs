//! The sparse memory operations of the DNC (Graves et al. 2016, Methods, "Sparse link matrix";
//! Rae et al. 2016, sparse access memory): top-K content lookup, allocation among the K least-used
//! slots, K-sparse read weightings, and a link matrix kept with at most K entries per row, so that
//! no step costs `N²`. The choice of the K entries is a constant (no gradient, like the sort of the
//! dense allocation); the gradient flows through the values kept.
//!
//! Weightings are held as `[B, …, N]` tensors with at most K (or 2K for the write) non-zero
//! entries, so a step still touches every slot once (`O(N (W + K))`, plus `O(N)` selections), but
//! nothing is quadratic in `N`.

use super::addressing::{EPS, cosine_similarity};
use crate::{DType, Indices, Tensor};

/// The positions of the `k` largest (or smallest when `smallest`) entries of each row of the last
/// axis of `x`, in descending (ascending) order of value; ties go to the lower position. A constant.
pub fn top_k_indices(x: &Tensor, k: usize, smallest: bool) -> Indices {
    let dims = x.dims().to_vec();
    let n = *dims
        .last()
        .expect("top_k_indices: a tensor of rank at least 1");
    if k == 0 || k > n {
        panic!(
            "top_k_indices: k = {k} must be in 1..={n} for a tensor of shape {}",
            x.shape()
        );
    }
    let v = x.to_dtype(DType::F64).to_vec::<f64>();
    let rows = v.len() / n.max(1);
    let mut out = Vec::with_capacity(rows * k);
    let mut idx: Vec<usize> = Vec::with_capacity(n);
    for r in 0..rows {
        let vals = &v[r * n..(r + 1) * n];
        let cmp = |a: &usize, b: &usize| {
            let o = vals[*a].total_cmp(&vals[*b]);
            (if smallest { o } else { o.reverse() }).then(a.cmp(b))
        };
        idx.clear();
        idx.extend(0..n);
        if k < n {
            idx.select_nth_unstable_by(k - 1, cmp);
            idx.truncate(k);
        }
        idx.sort_by(cmp);
        out.extend_from_slice(&idx);
    }
    let mut shape = dims;
    *shape.last_mut().unwrap() = k;
    Indices::new(out, shape)
}

/// `x` with all but the `k` largest entries of each row (last axis) set to zero.
pub fn keep_top_k(x: &Tensor, k: usize) -> Tensor {
    let axis = x.rank() as isize - 1;
    let idx = top_k_indices(x, k, false);
    x.zeros_like()
        .scatter_add(axis, &idx, &x.gather(axis, &idx))
}

/// Top-K content addressing: like [`content_weighting`](super::content_weighting) but the softmax
/// runs over the K most similar slots only and the rest get weight zero. `[B, H, N]`.
pub fn sparse_content_weighting(
    memory: &Tensor,
    keys: &Tensor,
    strengths: &Tensor,
    k: usize,
) -> Tensor {
    let scores = cosine_similarity(memory, keys) * strengths.unsqueeze(2);
    let idx = top_k_indices(&scores, k, false);
    let w = scores.gather(2, &idx).softmax(2);
    scores.zeros_like().scatter_add(2, &idx, &w)
}

/// Allocation among the `k` least-used slots of `usage [B, N]`, by the dense formula restricted to
/// them (the other slots get zero). The selection is a constant.
pub fn sparse_allocation_weighting(usage: &Tensor, k: usize) -> Tensor {
    let idx = top_k_indices(usage, k, true);
    let u = usage * (1.0 - EPS) + EPS;
    let sorted = u.gather(1, &idx);
    let logs = sorted.ln();
    let a = (1.0 - &sorted) * (logs.cumsum(1) - &logs).exp();
    usage.zeros_like().scatter_add(1, &idx, &a)
}

/// A temporal link matrix with at most `k` entries per row: row `i` holds the columns `idx[b, i, :]`
/// and their values `val [B, N, K]`.
#[derive(Clone)]
pub struct SparseLinks {
    /// Column of each entry, `[B, N, K]` (distinct within a row).
    pub idx: Indices,
    /// Value of each entry, `[B, N, K]`.
    pub val: Tensor,
}

impl SparseLinks {
    /// No links (all values zero).
    pub fn empty(batch: usize, n: usize, k: usize, dtype: DType) -> SparseLinks {
        if k == 0 || k >= n {
            panic!("SparseLinks: k = {k} must be in 1..{n} for {n} memory slots");
        }
        let mut idx = Vec::with_capacity(batch * n * k);
        for _ in 0..batch {
            for i in 0..n {
                idx.extend((0..k).map(|j| (i + 1 + j) % n));
            }
        }
        SparseLinks {
            idx: Indices::new(idx, [batch, n, k]),
            val: Tensor::zeros([batch, n, k], dtype),
        }
    }

    /// Slots and entries per row `(N, K)`.
    pub fn size(&self) -> (usize, usize) {
        let d = self.idx.dims();
        (d[1], d[2])
    }

    /// The dense matrix `[B, N, N]` (for tests and plots).
    pub fn to_dense(&self) -> Tensor {
        let d = self.idx.dims();
        let (b, n, k) = (d[0], d[1], d[2]);
        let _ = k;
        Tensor::zeros([b, n, n], self.val.dtype()).scatter_add(2, &self.idx, &self.val)
    }

    /// The link update of [`link_matrix`](super::link_matrix) with the new links `w[i] p'[j]`
    /// taken only for the `K` largest entries of the previous precedence, then the `K` largest
    /// entries of each row kept (the choice is a constant). `write [B, N]`, `prev_precedence
    /// [B, N]`.
    pub fn update(&self, write: &Tensor, prev_precedence: &Tensor) -> SparseLinks {
        let d = self.idx.dims().to_vec();
        let (b, n, k) = (d[0], d[1], d[2]);
        let flat = Indices::new(self.idx.as_slice().to_vec(), [b, n * k]);
        let w_at = write.gather(1, &flat).reshape([b, n, k]);
        let wi = write.unsqueeze(2);
        let decayed = &self.val * (1.0 - &wi - w_at);
        let pidx = top_k_indices(prev_precedence, k, false); // [B, K]
        let fresh = wi * prev_precedence.gather(1, &pidx).unsqueeze(1); // [B, N, K]
        // Merge the old columns and the new ones row by row (constant index bookkeeping).
        let dv = decayed.to_dtype(DType::F64).to_vec::<f64>();
        let fv = fresh.to_dtype(DType::F64).to_vec::<f64>();
        let (oi, pi) = (self.idx.as_slice(), pidx.as_slice());
        let mut new_idx = Vec::with_capacity(b * n * k);
        let mut old_sel = Vec::with_capacity(b * n * k);
        let mut new_sel = Vec::with_capacity(b * n * k);
        // (column, position among old entries or k, position among new entries or k, value)
        let mut cand: Vec<(usize, usize, usize, f64)> = Vec::with_capacity(2 * k);
        for bi in 0..b {
            for i in 0..n {
                let row = (bi * n + i) * k;
                cand.clear();
                for j in 0..k {
                    cand.push((oi[row + j], j, k, dv[row + j]));
                }
                for j in 0..k {
                    let col = pi[bi * k + j];
                    if col == i {
                        continue;
                    }
                    let v = fv[row + j];
                    match cand.iter_mut().find(|c| c.0 == col) {
                        Some(c) => {
                            c.2 = j;
                            c.3 += v;
                        }
                        None => cand.push((col, k, j, v)),
                    }
                }
                // Largest values first; among equals, entries already present, then lower columns.
                cand.sort_by(|x, y| {
                    y.3.abs()
                        .total_cmp(&x.3.abs())
                        .then((x.1 == k).cmp(&(y.1 == k)))
                        .then(x.0.cmp(&y.0))
                });
                for c in &cand[..k] {
                    new_idx.push(c.0);
                    old_sel.push(c.1);
                    new_sel.push(c.2);
                }
            }
        }
        let dt = self.val.dtype();
        let pad = |t: Tensor| Tensor::concat(&[t, Tensor::zeros([b, n, 1], dt)], 2);
        let val = pad(decayed).gather(2, &Indices::new(old_sel, [b, n, k]))
            + pad(fresh).gather(2, &Indices::new(new_sel, [b, n, k]));
        SparseLinks {
            idx: Indices::new(new_idx, [b, n, k]),
            val,
        }
    }

    /// Forward and backward weightings `f = L w`, `b = Lᵀ w` from read weightings `[B, R, N]`,
    /// in time linear in `N K R`: `(forward, backward)`, each `[B, R, N]`.
    pub fn directional_weightings(&self, read_weights: &Tensor) -> (Tensor, Tensor) {
        let d = self.idx.dims();
        let (b, n, k) = (d[0], d[1], d[2]);
        let r = read_weights.dims()[1];
        let src = self.idx.as_slice();
        let mut rep = Vec::with_capacity(b * r * n * k);
        for bi in 0..b {
            for _ in 0..r {
                rep.extend_from_slice(&src[bi * n * k..(bi + 1) * n * k]);
            }
        }
        let idx_r = Indices::new(rep, [b, r, n * k]);
        let val = self.val.unsqueeze(1); // [B, 1, N, K]
        let forward =
            (read_weights.gather(2, &idx_r).reshape([b, r, n, k]) * &val).sum_axis(3, false);
        let contrib = (val * read_weights.unsqueeze(3)).reshape([b, r, n * k]);
        let backward = read_weights.zeros_like().scatter_add(2, &idx_r, &contrib);
        (forward, backward)
    }
}
