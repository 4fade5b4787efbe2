//! The memory operations of the Differentiable Neural Computer (Graves et al. 2016, Nature,
//! Methods), each a function of batched tensors composed from differentiable nabla operations, so
//! each has its own gradient test and no hand-written derivative. Shapes: batch `B`, memory slots
//! `N`, word size `W`, heads `H` (read heads `R`).

use crate::{Indices, Tensor};

/// Added to denominators and logarithms to keep them finite (the paper's `ε`).
pub const EPS: f64 = 1e-6;

/// `oneplus(x) = 1 + ln(1 + eˣ)`: maps a real to `[1, ∞)`, used for key strengths.
///
/// ```
/// use nabla::{nn::dnc::oneplus, Tensor};
/// assert!((oneplus(&Tensor::scalar(0.0f64)).item() - (1.0 + 2f64.ln())).abs() < 1e-12);
/// ```
pub fn oneplus(x: &Tensor) -> Tensor {
    x.softplus() + 1.0
}

fn check_rank(op: &str, name: &str, t: &Tensor, rank: usize) {
    if t.rank() != rank {
        panic!(
            "{op}: {name} must have rank {rank}, got shape {}",
            t.shape()
        );
    }
}

/// Cosine similarity of each key with each memory row: `keys [B, H, W]`, `memory [B, N, W]` ->
/// `[B, H, N]`, `D(k, M[i]) = k·M[i] / (|k| |M[i]| + ε)`.
pub fn cosine_similarity(memory: &Tensor, keys: &Tensor) -> Tensor {
    check_rank("cosine_similarity", "memory", memory, 3);
    check_rank("cosine_similarity", "keys", keys, 3);
    let (m, k) = (memory.dims(), keys.dims());
    if m[0] != k[0] || m[2] != k[2] {
        panic!(
            "cosine_similarity: memory {} and keys {} must agree in batch and word size",
            memory.shape(),
            keys.shape()
        );
    }
    let dot = keys.matmul(&memory.transpose(1, 2)); // [B, H, N]
    let mn = (memory.square().sum_axis(2, false) + EPS * EPS).sqrt(); // [B, N]
    let kn = (keys.square().sum_axis(2, false) + EPS * EPS).sqrt(); // [B, H]
    let denom = kn.unsqueeze(2) * mn.unsqueeze(1) + EPS;
    dot / denom
}

/// Content-based addressing: `C(M, k, β)[i] = softmax_i(β D(k, M[i]))` for each head, from
/// `memory [B, N, W]`, `keys [B, H, W]` and strengths `[B, H]` (already `≥ 1`): `[B, H, N]`.
///
/// ```
/// use nabla::{nn::dnc::content_weighting, Tensor};
/// let m = Tensor::from_vec(vec![1.0f64, 0.0, 0.0, 1.0], [1, 2, 2]);
/// let k = Tensor::from_vec(vec![1.0f64, 0.0], [1, 1, 2]);
/// let w = content_weighting(&m, &k, &Tensor::from_vec(vec![50.0f64], [1, 1]));
/// assert!(w.to_vec::<f64>()[0] > 0.99);
/// ```
pub fn content_weighting(memory: &Tensor, keys: &Tensor, strengths: &Tensor) -> Tensor {
    check_rank("content_weighting", "strengths", strengths, 2);
    let sim = cosine_similarity(memory, keys);
    (sim * strengths.unsqueeze(2)).softmax(2)
}

/// Memory retention `ψ = ∏_r (1 - f_r w_r)` from free gates `[B, R]` (in `[0, 1]`) and the
/// previous read weightings `[B, R, N]`: `[B, N]`.
pub fn retention(free_gates: &Tensor, read_weights: &Tensor) -> Tensor {
    check_rank("retention", "free_gates", free_gates, 2);
    check_rank("retention", "read_weights", read_weights, 3);
    let keep = 1.0 - free_gates.unsqueeze(2) * read_weights; // [B, R, N]
    keep.prod_axes([1], false)
}

/// Usage `u = (u' + w' - u'∘w') ∘ ψ` from the previous usage `[B, N]`, the previous write
/// weighting `[B, N]` and the retention `[B, N]`.
pub fn usage(prev_usage: &Tensor, prev_write: &Tensor, retention: &Tensor) -> Tensor {
    (prev_usage + prev_write - prev_usage * prev_write) * retention
}

/// The ascending order of each row of `usage [B, N]` (a constant: no gradient flows through the
/// sort, as in the paper), as `(order, inverse)` index tensors of shape `[B, N]`.
pub fn usage_order(usage: &Tensor) -> (Indices, Indices) {
    check_rank("usage_order", "usage", usage, 2);
    let (b, n) = (usage.dims()[0], usage.dims()[1]);
    let u = usage.to_dtype(crate::DType::F64).to_vec::<f64>();
    let mut order = Vec::with_capacity(b * n);
    let mut inverse = vec![0usize; b * n];
    for row in 0..b {
        let mut idx: Vec<usize> = (0..n).collect();
        let vals = &u[row * n..(row + 1) * n];
        idx.sort_by(|&x, &y| vals[x].total_cmp(&vals[y]).then(x.cmp(&y)));
        for (rank, &i) in idx.iter().enumerate() {
            inverse[row * n + i] = rank;
        }
        order.extend(idx);
    }
    (Indices::new(order, [b, n]), Indices::new(inverse, [b, n]))
}

/// Allocation weighting from usage `[B, N]`: with `φ` the slots sorted by ascending usage,
/// `a[φ_j] = (1 - u[φ_j]) ∏_{i<j} u[φ_i]`. The sort is constant (no gradient); the gradient flows
/// through the usage values. Usage is first mapped to `ε + (1 - ε) u` so that the logarithms of
/// the running product stay finite.
///
/// ```
/// use nabla::{nn::dnc::allocation_weighting, Tensor};
/// let u = Tensor::from_vec(vec![0.9f64, 0.1, 0.5], [1, 3]);
/// let a = allocation_weighting(&u).to_vec::<f64>();
/// assert!((a[1] - 0.9).abs() < 1e-5 && (a[2] - 0.05).abs() < 1e-5);
/// ```
pub fn allocation_weighting(usage: &Tensor) -> Tensor {
    let (order, inverse) = usage_order(usage);
    let u = usage * (1.0 - EPS) + EPS;
    let sorted = u.gather(1, &order);
    let logs = sorted.ln();
    let exclusive = (logs.cumsum(1) - &logs).exp(); // ∏_{i<j} u[φ_i]
    let a_sorted = (1.0 - &sorted) * exclusive;
    a_sorted.gather(1, &inverse)
}

/// Write weighting `w = g_w (g_a a + (1 - g_a) c)` from the allocation `[B, N]`, the write
/// content weighting `[B, N]` and the allocation and write gates `[B, 1]`.
pub fn write_weighting(
    allocation: &Tensor,
    content: &Tensor,
    alloc_gate: &Tensor,
    write_gate: &Tensor,
) -> Tensor {
    write_gate * (alloc_gate * allocation + (1.0 - alloc_gate) * content)
}

/// Memory write `M' = M ∘ (1 - w eᵀ) + w vᵀ` from `memory [B, N, W]`, the write weighting
/// `[B, N]`, the erase vector `[B, W]` (in `[0, 1]`) and the write vector `[B, W]`.
pub fn write_memory(memory: &Tensor, write: &Tensor, erase: &Tensor, value: &Tensor) -> Tensor {
    check_rank("write_memory", "memory", memory, 3);
    let w = write.unsqueeze(2); // [B, N, 1]
    memory * (1.0 - &w * erase.unsqueeze(1)) + w * value.unsqueeze(1)
}

/// Precedence `p = (1 - Σ_i w[i]) p' + w` from the previous precedence `[B, N]` and the write
/// weighting `[B, N]`.
pub fn precedence(prev: &Tensor, write: &Tensor) -> Tensor {
    (1.0 - write.sum_axis(1, true)) * prev + write
}

/// Temporal link matrix `L[i, j] = (1 - w[i] - w[j]) L'[i, j] + w[i] p'[j]`, zero on the diagonal,
/// from the previous links `[B, N, N]`, the write weighting `[B, N]` and the previous precedence
/// `[B, N]`. Dense: time and memory grow as `N²`. One fused operation (one pass over the
/// `N x N` entries forward, and only the `[B, N, N]` gradient of the links backward).
pub fn link_matrix(prev: &Tensor, write: &Tensor, prev_precedence: &Tensor) -> Tensor {
    check_rank("link_matrix", "links", prev, 3);
    let d = prev.dims();
    let (b, n) = (d[0], d[1]);
    if d[2] != n || write.dims() != [b, n] || prev_precedence.dims() != [b, n] {
        panic!(
            "link_matrix: links {}, write weighting {} and precedence {} must be [B, N, N], [B, N] and [B, N]",
            prev.shape(),
            write.shape(),
            prev_precedence.shape()
        );
    }
    crate::tensor::same_dtype("link_matrix", prev, write);
    crate::tensor::same_dtype("link_matrix", prev, prev_precedence);
    let out = crate::backend::link_matrix(prev, write, prev_precedence);
    crate::autodiff::record(out, LinkMatrix, &[prev, write, prev_precedence])
}

/// The reverse and forward rules of [`link_matrix`].
struct LinkMatrix;

/// `1` off the diagonal, `0` on it: `[N, N]`, a constant.
fn off_diagonal(n: usize, dtype: crate::DType) -> Tensor {
    1.0 - Tensor::eye(n, dtype)
}

impl crate::autodiff::Op for LinkMatrix {
    fn name(&self) -> &str {
        "link_matrix"
    }
    fn vjp(
        &self,
        i: &[Tensor],
        _: &Tensor,
        g: &Tensor,
        needs: &[bool],
    ) -> crate::autodiff::InputGrads {
        let (l, w, p) = (&i[0], &i[1], &i[2]);
        let g = g * off_diagonal(l.dims()[1], l.dtype());
        let dl = needs[0].then(|| &g * (1.0 - w.unsqueeze(2) - w.unsqueeze(1)));
        let dw = needs[1].then(|| {
            // ∂/∂w[k]: Σ_j g[k, j] (p[j] - L'[k, j]) - Σ_i g[i, k] L'[i, k]
            let gl = &g * l;
            g.matmul(&p.unsqueeze(2)).squeeze(2) - gl.sum_axis(2, false) - gl.sum_axis(1, false)
        });
        let dp = needs[2].then(|| w.unsqueeze(1).matmul(&g).squeeze(1));
        smallvec::smallvec![dl, dw, dp]
    }
    fn jvp(&self, i: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        let (l, w, p) = (&i[0], &i[1], &i[2]);
        let (wi, wj) = (w.unsqueeze(2), w.unsqueeze(1));
        let mut terms = Vec::new();
        if let Some(tl) = &t[0] {
            terms.push(tl * (1.0 - &wi - &wj));
        }
        if let Some(tw) = &t[1] {
            let (ti, tj) = (tw.unsqueeze(2), tw.unsqueeze(1));
            terms.push(&ti * p.unsqueeze(1) - (ti + tj) * l);
        }
        if let Some(tp) = &t[2] {
            terms.push(wi * tp.unsqueeze(1));
        }
        let sum = terms
            .into_iter()
            .reduce(|a, b| a + b)
            .expect("link_matrix: jvp with no tangent");
        sum * off_diagonal(l.dims()[1], l.dtype())
    }
}

/// Forward and backward weightings `f = L w`, `b = Lᵀ w` of each read head, from the links
/// `[B, N, N]` and the previous read weightings `[B, R, N]`: `(forward, backward)`, each
/// `[B, R, N]`.
pub fn directional_weightings(links: &Tensor, read_weights: &Tensor) -> (Tensor, Tensor) {
    check_rank("directional_weightings", "read_weights", read_weights, 3);
    // f[r, i] = Σ_j L[i, j] w[r, j]  =>  f = w Lᵀ;  b[r, j] = Σ_i w[r, i] L[i, j]  =>  b = w L
    let forward = read_weights.matmul(&links.transpose(1, 2));
    let backward = read_weights.matmul(links);
    (forward, backward)
}

/// Read weighting `w = π₁ b + π₂ c + π₃ f` from the backward, content and forward weightings
/// (each `[B, R, N]`) and the read modes `[B, R, 3]` (a softmax over the last axis).
pub fn read_weighting(
    backward: &Tensor,
    content: &Tensor,
    forward: &Tensor,
    modes: &Tensor,
) -> Tensor {
    check_rank("read_weighting", "modes", modes, 3);
    let pi = |k: usize| modes.narrow(2, k, 1);
    pi(0) * backward + pi(1) * content + pi(2) * forward
}

/// Read vectors `r = w M`: read weightings `[B, R, N]` and memory `[B, N, W]` -> `[B, R, W]`.
pub fn read_memory(memory: &Tensor, read_weights: &Tensor) -> Tensor {
    read_weights.matmul(memory)
}
