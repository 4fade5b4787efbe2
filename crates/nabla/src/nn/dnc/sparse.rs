//! The sparse memory operations of the DNC (Graves et al. 2016, Methods, "Sparse link matrix";
//! Rae et al. 2016, sparse access memory): top-K content lookup, allocation among the K least-used
//! slots, K-sparse read weightings, and a link matrix kept with at most K entries per row and per
//! column, so that no step costs `N²`. The choice of the K entries is a constant (no gradient,
//! like the sort of the dense allocation); the gradient flows through the values kept.
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
///
/// Only slots that hold a word compete on similarity: an empty slot (a word of squared norm at
/// most [`EPS`]) has no direction, its similarity to every key is 0, and it is chosen only when
/// fewer than K slots hold a word (then by position). Without this rule the many empty slots of a
/// fresh memory, all at similarity 0, would push every written slot of negative similarity out
/// of the top K: a key could never be drawn towards such a slot (its gradient passes only through
/// the K chosen slots), and early in training reads and content writes would land on empty slots.
/// The choice is a constant.
pub fn sparse_content_weighting(
    memory: &Tensor,
    keys: &Tensor,
    strengths: &Tensor,
    k: usize,
) -> Tensor {
    let scores = cosine_similarity(memory, keys) * strengths.unsqueeze(2);
    let idx = top_k_written(&scores, memory, k);
    let w = scores.gather(2, &idx).softmax(2);
    scores.zeros_like().scatter_add(2, &idx, &w)
}

/// The positions of the `k` largest `scores [B, H, N]` among the slots of `memory [B, N, W]` that
/// hold a word (squared norm above [`EPS`]), then, if fewer than `k` do, the empty slots by
/// position. A constant.
fn top_k_written(scores: &Tensor, memory: &Tensor, k: usize) -> Indices {
    let d = scores.dims().to_vec();
    let (h, n) = (d[1], d[2]);
    let sq = memory
        .square()
        .sum_axis(2, false)
        .to_dtype(DType::F64)
        .to_vec::<f64>();
    let mut key = scores.to_dtype(DType::F64).to_vec::<f64>();
    for (p, v) in key.iter_mut().enumerate() {
        if sq[p / (h * n) * n + p % n] <= EPS {
            *v = f64::NEG_INFINITY;
        }
    }
    top_k_indices(&Tensor::from_vec(key, d), k, false)
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

/// A temporal link matrix with at most `k` entries in each row and in each column (Graves et al.
/// 2016, Methods, "Sparse link matrix"): row `i` holds the columns `idx[b, i, :]` and their values
/// `val [B, N, K]`. An entry whose column is its own row (the diagonal, which never holds a link)
/// is unused and has value zero.
#[derive(Clone)]
pub struct SparseLinks {
    /// Column of each entry, `[B, N, K]` (distinct within a row, except unused entries).
    pub idx: Indices,
    /// Value of each entry, `[B, N, K]`.
    pub val: Tensor,
}

/// No slot: an entry not taken from the previous links or from the fresh outer product.
const NONE: usize = usize::MAX;

/// A candidate entry of the updated links: row, column, position among the previous entries and
/// among the fresh ones (`NONE` when absent), value.
#[derive(Clone, Copy)]
struct Cand {
    row: usize,
    col: usize,
    old: usize,
    fresh: usize,
    val: f64,
}

/// Larger magnitudes first; among equals, entries already present, then the lower `key`.
fn rank(a: &Cand, b: &Cand, key: fn(&Cand) -> usize) -> std::cmp::Ordering {
    b.val
        .abs()
        .total_cmp(&a.val.abs())
        .then((a.old == NONE).cmp(&(b.old == NONE)))
        .then(key(a).cmp(&key(b)))
}

/// Marks in `keep` the entries of `group` (positions into `cands`) outside the `k` best of the group.
fn prune(
    group: &mut [usize],
    cands: &[Cand],
    k: usize,
    key: fn(&Cand) -> usize,
    keep: &mut [bool],
) {
    if group.len() > k {
        group.sort_by(|&a, &b| rank(&cands[a], &cands[b], key));
        for &c in &group[k..] {
            keep[c] = false;
        }
    }
}

impl SparseLinks {
    /// No links (every entry unused).
    pub fn empty(batch: usize, n: usize, k: usize, dtype: DType) -> SparseLinks {
        if k == 0 || k >= n {
            panic!("SparseLinks: k = {k} must be in 1..{n} for {n} memory slots");
        }
        let mut idx = Vec::with_capacity(batch * n * k);
        for _ in 0..batch {
            for i in 0..n {
                idx.extend(std::iter::repeat_n(i, k));
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
        Tensor::zeros([d[0], d[1], d[1]], self.val.dtype()).scatter_add(2, &self.idx, &self.val)
    }

    /// The link update of [`link_matrix`](super::link_matrix) with sparse fresh links: with `ŵ`
    /// and `p̂` the write weighting and the previous precedence with all but their `K` largest
    /// entries set to zero, `L = (1 - w 1ᵀ - 1 wᵀ) ∘ L' + ŵ p̂ᵀ` (no diagonal), of which an entry
    /// is kept only if it is among the `K` largest (in magnitude) of its row and among the `K`
    /// largest of its column. The choices are constants (no gradient flows through them); the
    /// cost is `O(N K + K²)` plus the selection of the top `K` of two vectors of `N`. `write
    /// [B, N]`, `prev_precedence [B, N]`.
    pub fn update(&self, write: &Tensor, prev_precedence: &Tensor) -> SparseLinks {
        let d = self.idx.dims().to_vec();
        let (b, n, k) = (d[0], d[1], d[2]);
        for (name, t) in [("write", write), ("prev_precedence", prev_precedence)] {
            if t.dims() != [b, n] {
                panic!(
                    "SparseLinks::update: {name} of shape {} must be [{b}, {n}] for links of shape [{b}, {n}, {k}]",
                    t.shape()
                );
            }
        }
        let flat = Indices::new(self.idx.as_slice().to_vec(), [b, n * k]);
        let w_at = write.gather(1, &flat).reshape([b, n, k]);
        let decayed = &self.val * (1.0 - write.unsqueeze(2) - w_at); // [B, N, K]
        let widx = top_k_indices(write, k, false); // rows of ŵ, [B, K]
        let pidx = top_k_indices(prev_precedence, k, false); // columns of p̂, [B, K]
        let fresh =
            write.gather(1, &widx).unsqueeze(2) * prev_precedence.gather(1, &pidx).unsqueeze(1); // [B, K, K]
        // Choose the entries kept (constant index bookkeeping, O(N K + K²) per batch row).
        let dv = decayed.to_dtype(DType::F64).to_vec::<f64>();
        let fv = fresh.to_dtype(DType::F64).to_vec::<f64>();
        let (oi, wi, pi) = (self.idx.as_slice(), widx.as_slice(), pidx.as_slice());
        let zero = n * k + k * k; // position of the zero appended to the sources
        let mut new_idx = Vec::with_capacity(b * n * k);
        let mut old_sel = Vec::with_capacity(b * n * k);
        let mut new_sel = Vec::with_capacity(b * n * k);
        let mut fresh_row = vec![NONE; n];
        let mut cands: Vec<Cand> = Vec::with_capacity(n * k + k * k);
        let mut row_start = vec![0usize; n + 1];
        let mut col_count = vec![0usize; n + 1];
        let mut by_col: Vec<usize> = Vec::new();
        let mut keep: Vec<bool> = Vec::new();
        for bi in 0..b {
            for (a, &r) in wi[bi * k..(bi + 1) * k].iter().enumerate() {
                fresh_row[r] = a;
            }
            cands.clear();
            for i in 0..n {
                row_start[i] = cands.len();
                let row = (bi * n + i) * k;
                for j in 0..k {
                    if oi[row + j] != i {
                        cands.push(Cand {
                            row: i,
                            col: oi[row + j],
                            old: i * k + j,
                            fresh: NONE,
                            val: dv[row + j],
                        });
                    }
                }
                let a = fresh_row[i];
                if a != NONE {
                    for j in 0..k {
                        let col = pi[bi * k + j];
                        if col == i {
                            continue;
                        }
                        let (f, v) = (n * k + a * k + j, fv[(bi * k + a) * k + j]);
                        match cands[row_start[i]..].iter_mut().find(|c| c.col == col) {
                            Some(c) => {
                                c.fresh = f;
                                c.val += v;
                            }
                            None => cands.push(Cand {
                                row: i,
                                col,
                                old: NONE,
                                fresh: f,
                                val: v,
                            }),
                        }
                    }
                    fresh_row[i] = NONE;
                }
            }
            row_start[n] = cands.len();
            keep.clear();
            keep.resize(cands.len(), true);
            // the K largest of each row
            let mut group: Vec<usize> = Vec::new();
            for i in 0..n {
                if row_start[i + 1] - row_start[i] > k {
                    group.clear();
                    group.extend(row_start[i]..row_start[i + 1]);
                    prune(&mut group, &cands, k, |c| c.col, &mut keep);
                }
            }
            // the K largest of each column (a counting sort of the candidates by column)
            col_count.iter_mut().for_each(|c| *c = 0);
            for c in &cands {
                col_count[c.col + 1] += 1;
            }
            for j in 0..n {
                col_count[j + 1] += col_count[j];
            }
            by_col.clear();
            by_col.resize(cands.len(), 0);
            let mut fill = col_count.clone();
            for (p, c) in cands.iter().enumerate() {
                by_col[fill[c.col]] = p;
                fill[c.col] += 1;
            }
            for j in 0..n {
                let (lo, hi) = (col_count[j], col_count[j + 1]);
                if hi - lo > k {
                    prune(&mut by_col[lo..hi], &cands, k, |c| c.row, &mut keep);
                }
            }
            // write the kept entries row by row, unused ones padded
            let base = bi * (n * k + k * k + 1);
            for i in 0..n {
                let mut m = 0;
                for (p, c) in cands[row_start[i]..row_start[i + 1]].iter().enumerate() {
                    if keep[row_start[i] + p] {
                        new_idx.push(c.col);
                        old_sel.push(base + if c.old == NONE { zero } else { c.old });
                        new_sel.push(base + if c.fresh == NONE { zero } else { c.fresh });
                        m += 1;
                    }
                }
                for _ in m..k {
                    new_idx.push(i);
                    old_sel.push(base + zero);
                    new_sel.push(base + zero);
                }
            }
        }
        let dt = self.val.dtype();
        let src = Tensor::concat(
            &[
                decayed.reshape([b, n * k]),
                fresh.reshape([b, k * k]),
                Tensor::zeros([b, 1], dt),
            ],
            1,
        )
        .reshape([b * (n * k + k * k + 1)]);
        let val = (src.gather(0, &Indices::new(old_sel, [b * n * k]))
            + src.gather(0, &Indices::new(new_sel, [b * n * k])))
        .reshape([b, n, k]);
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
