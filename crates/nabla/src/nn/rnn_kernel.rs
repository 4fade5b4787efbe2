//! The fused primitive behind [`Rnn`](super::Rnn), [`Lstm`](super::Lstm), [`Gru`](super::Gru) and
//! their cells: one recorded operation runs one layer over a whole sequence.
//!
//! Inputs, in this order: `x [T, B, I]` (any layout), `w_ih [G·H, I]`, `w_hh [G·H, H]`,
//! `b_ih [G·H]`, `b_hh [G·H]`, `h0 [B, H]` and, for the LSTM, `c0 [B, H]` (missing biases and states
//! are passed as zeros). The output is `[T + S - 1, B, H]`, time-major: rows `0..T` are the hidden
//! states `h_0 … h_{T-1}`, and for the LSTM (S = 2 states) row `T` is the last cell state.
//!
//! - Forward: the input projection of all steps is one matrix product; each step is one product with
//!   `W_hhᵀ` followed by one fused elementwise pass (activations inline, vectorised for `f32`). The
//!   gate activations are kept (detached) for the backward pass, like cuDNN's reserve space.
//! - Reverse rule, first order (nothing records the backward pass): a fused backpropagation through
//!   time that gathers the gate gradients of all steps, then forms the weight gradients with one
//!   matrix product each (`Σ_t dgatesᵀ h_{t-1}` as a single `[G·H, T·B] @ [T·B, H]` product).
//! - When the backward pass is itself recorded or carries forward-mode tangents (grad of grad,
//!   Hessian-vector products), and for the forward rule, the derivatives are those of
//!   [`reference`], the same recurrence written with differentiable tensor operations, recomputed
//!   from the inputs (as [`checkpoint`](crate::checkpoint) does): so every order of derivative is
//!   exact.

use crate::autodiff::{InputGrads, Op, record, state};
use crate::dtype::Element;
use crate::tensor::cpu::with_dtype;
use crate::tensor::{Shape, Tensor, same_dtype, storage};
use std::sync::Arc;

/// Which recurrence a layer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CellKind {
    /// Gates i, f, g, o; states (h, c).
    Lstm,
    /// Gates r, z, n.
    Gru,
    /// `h = tanh(W_ih x + b_ih + W_hh h + b_hh)`.
    RnnTanh,
    /// `h = relu(W_ih x + b_ih + W_hh h + b_hh)`.
    RnnRelu,
}

impl CellKind {
    /// Number of gate blocks G (weights have G·H rows).
    pub(crate) fn gates(self) -> usize {
        match self {
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
            CellKind::RnnTanh | CellKind::RnnRelu => 1,
        }
    }

    /// Number of state tensors S (2 for the LSTM's h and c).
    pub(crate) fn states(self) -> usize {
        if self == CellKind::Lstm { 2 } else { 1 }
    }

    fn name(self) -> &'static str {
        match self {
            CellKind::Lstm => "lstm",
            CellKind::Gru => "gru",
            CellKind::RnnTanh => "rnn_tanh",
            CellKind::RnnRelu => "rnn_relu",
        }
    }
}

// ----- element math ---------------------------------------------------------------------------------

/// The activations the kernels need, per element type: `f64` uses the standard library (exact to an
/// ulp, so results match other frameworks to ~1e-15); `f32` uses branch-free approximations (Cephes'
/// `expf`/`tanhf`, within a few ulp) that the compiler vectorises.
pub(crate) trait RnnFloat: Element {
    fn act_sigmoid(x: Self) -> Self;
    fn act_tanh(x: Self) -> Self;
}

impl RnnFloat for f64 {
    #[inline(always)]
    fn act_sigmoid(x: f64) -> f64 {
        if x >= 0.0 {
            1.0 / (1.0 + (-x).exp())
        } else {
            let e = x.exp();
            e / (1.0 + e)
        }
    }
    #[inline(always)]
    fn act_tanh(x: f64) -> f64 {
        x.tanh()
    }
}

/// `eˣ` for `f32` (Cephes `expf`: range reduction by ln 2, degree-6 polynomial), without branches.
/// Inputs are clamped to [-87.3, 88]; NaN propagates.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.3, 88.0);
    let fx = (x * LOG2E + 0.5).floor();
    let r = x - fx * C1 - fx * C2;
    let z = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 5.000_000_1e-1;
    let y = p * z + r + 1.0;
    let n = fx as i32;
    y * f32::from_bits(((n + 127) as u32) << 23)
}

impl RnnFloat for f32 {
    #[inline(always)]
    fn act_sigmoid(x: f32) -> f32 {
        1.0 / (1.0 + exp_f32(-x))
    }
    #[inline(always)]
    fn act_tanh(x: f32) -> f32 {
        // Cephes tanhf: a polynomial near 0 (keeps the relative accuracy), 1 - 2/(e^{2|x|} + 1)
        // elsewhere.
        let a = x.abs();
        let s = x * x;
        let small = ((((-5.704_988_7e-3 * s + 2.063_908_9e-2) * s - 5.373_971_6e-2) * s
            + 1.333_144_2e-1)
            * s
            - 3.333_328_2e-1)
            * s
            * x
            + x;
        let big = (1.0 - 2.0 / (exp_f32(2.0 * a) + 1.0)).copysign(x);
        if a < 0.625 { small } else { big }
    }
}

/// Defines `$name`, which runs the `#[inline(always)]` body `$body` compiled for AVX2 + FMA when the
/// CPU has them (detected once), and for the baseline target otherwise.
macro_rules! multiversion {
    ($name:ident, $avx:ident, $body:ident, ($($a:ident: $t:ty),* $(,)?)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $avx<T: RnnFloat>($($a: $t),*) {
            $body::<T>($($a),*)
        }

        #[allow(clippy::too_many_arguments)]
        fn $name<T: RnnFloat>($($a: $t),*) {
            #[cfg(target_arch = "x86_64")]
            if simd_ok() {
                // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
                return unsafe { $avx::<T>($($a),*) };
            }
            $body::<T>($($a),*)
        }
    };
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn simd_ok() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

// ----- small dense helpers --------------------------------------------------------------------------

/// `dst[m×n]` (row-major with row stride `dst_rs`) `=` (or `+=` when `accumulate`) `a · b`, where
/// `a` is `m×k` with strides `(a_rs, a_cs)` and `b` is `k×n` with strides `(b_rs, b_cs)`.
#[allow(clippy::too_many_arguments)]
fn gemm<T: Element>(
    (m, n, k): (usize, usize, usize),
    dst: &mut [T],
    dst_rs: usize,
    accumulate: bool,
    a: &[T],
    (a_rs, a_cs): (usize, usize),
    b: &[T],
    (b_rs, b_cs): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        (m - 1) * dst_rs + n <= dst.len(),
        "gemm: destination too short"
    );
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_rs..r * dst_rs + n].fill(T::zero());
            }
        }
        return;
    }
    assert!(
        (m - 1) * a_rs + (k - 1) * a_cs < a.len(),
        "gemm: lhs too short"
    );
    assert!(
        (k - 1) * b_rs + (n - 1) * b_cs < b.len(),
        "gemm: rhs too short"
    );
    let threads = rayon::current_num_threads();
    let par = if m * n * k >= 1 << 20 && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the assertions above show that every element addressed through the given sizes and
    // strides lies inside the slices; `dst` is exclusively borrowed and distinct from `a` and `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            if accumulate { T::one() } else { T::zero() },
            T::one(),
            false,
            false,
            false,
            par,
        );
    }
}

/// The `rows×cols` row-major matrix `w`, transposed into a new row-major `cols×rows` buffer.
fn transposed<T: Element>(w: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut t = vec![T::zero(); rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    t
}

/// Sums of the columns of a row-major `[rows, cols]` matrix.
fn column_sums<T: Element>(m: &[T], cols: usize) -> Vec<T> {
    let mut s = vec![T::zero(); cols];
    for row in m.chunks_exact(cols) {
        for (a, &v) in s.iter_mut().zip(row) {
            *a += v;
        }
    }
    s
}

fn tensor_from<T: Element>(data: Vec<T>, shape: impl Into<Shape>) -> Tensor {
    Tensor::from_arc(Arc::from(data), shape.into())
}

// ----- elementwise steps ------------------------------------------------------------------------------

/// One LSTM step: `z` holds the input projections `[B, 4H]` and becomes the activations
/// (i, f, g, o); writes `c`, `tanh c` and `h`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn lstm_fwd_body<T: RnnFloat>(
    h: usize,
    z: &mut [T],
    hp: &[T],
    bias: &[T],
    c_prev: &[T],
    c: &mut [T],
    tc: &mut [T],
    hout: &mut [T],
) {
    let g = 4 * h;
    for (b, (zr, hr)) in z.chunks_exact_mut(g).zip(hp.chunks_exact(g)).enumerate() {
        for ((zv, &hv), &bv) in zr.iter_mut().zip(hr).zip(bias) {
            *zv = *zv + hv + bv;
        }
        let (ifg, o) = zr.split_at_mut(3 * h);
        let (i_f, gg) = ifg.split_at_mut(2 * h);
        for v in i_f.iter_mut() {
            *v = T::act_sigmoid(*v);
        }
        for v in gg.iter_mut() {
            *v = T::act_tanh(*v);
        }
        for v in o.iter_mut() {
            *v = T::act_sigmoid(*v);
        }
        let (i, f) = i_f.split_at(h);
        let r = b * h..(b + 1) * h;
        let (cp, cr, tr, hr) = (
            &c_prev[r.clone()],
            &mut c[r.clone()],
            &mut tc[r.clone()],
            &mut hout[r],
        );
        for j in 0..h {
            let cv = f[j] * cp[j] + i[j] * gg[j];
            let t = T::act_tanh(cv);
            cr[j] = cv;
            tr[j] = t;
            hr[j] = o[j] * t;
        }
    }
}
multiversion!(lstm_fwd, lstm_fwd_avx2, lstm_fwd_body, (
    h: usize, z: &mut [T], hp: &[T], bias: &[T], c_prev: &[T], c: &mut [T], tc: &mut [T], hout: &mut [T],
));

/// One LSTM step backwards: from the cotangent of `h_t` (`gh` plus the recurrent `dh`) and of `c_t`
/// (`dc`, updated in place to the cotangent of `c_{t-1}`), the gate pre-activation gradients.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn lstm_bwd_body<T: RnnFloat>(
    h: usize,
    gh: &[T],
    dh: &[T],
    dc: &mut [T],
    acts: &[T],
    c_prev: &[T],
    tc: &[T],
    dpre: &mut [T],
) {
    let g = 4 * h;
    let one = T::one();
    for (b, (ar, dr)) in acts
        .chunks_exact(g)
        .zip(dpre.chunks_exact_mut(g))
        .enumerate()
    {
        let (i, rest) = ar.split_at(h);
        let (f, rest) = rest.split_at(h);
        let (gg, o) = rest.split_at(h);
        let (di, rest) = dr.split_at_mut(h);
        let (df, rest) = rest.split_at_mut(h);
        let (dg, dpo) = rest.split_at_mut(h);
        let r = b * h..(b + 1) * h;
        let (ghr, dhr, dcr, cpr, tcr) = (
            &gh[r.clone()],
            &dh[r.clone()],
            &mut dc[r.clone()],
            &c_prev[r.clone()],
            &tc[r],
        );
        for j in 0..h {
            let dhv = ghr[j] + dhr[j];
            let t = tcr[j];
            let dcv = dcr[j] + dhv * o[j] * (one - t * t);
            dpo[j] = dhv * t * o[j] * (one - o[j]);
            di[j] = dcv * gg[j] * i[j] * (one - i[j]);
            df[j] = dcv * cpr[j] * f[j] * (one - f[j]);
            dg[j] = dcv * i[j] * (one - gg[j] * gg[j]);
            dcr[j] = dcv * f[j];
        }
    }
}
multiversion!(lstm_bwd, lstm_bwd_avx2, lstm_bwd_body, (
    h: usize, gh: &[T], dh: &[T], dc: &mut [T], acts: &[T], c_prev: &[T], tc: &[T], dpre: &mut [T],
));

/// One GRU step: `z` holds the input projections `[B, 3H]` and becomes (r, z, n); `hn` receives
/// `W_hn h + b_hn` (needed backwards).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gru_fwd_body<T: RnnFloat>(
    h: usize,
    z: &mut [T],
    hp: &[T],
    b_ih: &[T],
    b_hh: &[T],
    h_prev: &[T],
    hn: &mut [T],
    hout: &mut [T],
) {
    let g = 3 * h;
    for (b, (zr, hr)) in z.chunks_exact_mut(g).zip(hp.chunks_exact(g)).enumerate() {
        for k in 0..2 * h {
            zr[k] = T::act_sigmoid(zr[k] + b_ih[k] + hr[k] + b_hh[k]);
        }
        let (rz, n) = zr.split_at_mut(2 * h);
        let (rg, zg) = rz.split_at(h);
        let r = b * h..(b + 1) * h;
        let (hpr, hnr, hor) = (&h_prev[r.clone()], &mut hn[r.clone()], &mut hout[r]);
        for j in 0..h {
            let hnv = hr[2 * h + j] + b_hh[2 * h + j];
            let nv = T::act_tanh(n[j] + b_ih[2 * h + j] + rg[j] * hnv);
            hnr[j] = hnv;
            n[j] = nv;
            hor[j] = nv + zg[j] * (hpr[j] - nv);
        }
    }
}
multiversion!(gru_fwd, gru_fwd_avx2, gru_fwd_body, (
    h: usize, z: &mut [T], hp: &[T], b_ih: &[T], b_hh: &[T], h_prev: &[T], hn: &mut [T], hout: &mut [T],
));

/// One GRU step backwards: writes the gradients of the input-side pre-activations (`dxp`), of the
/// hidden-side ones (`dhp`), and the direct part `z ⊙ dh` of the cotangent of `h_{t-1}`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gru_bwd_body<T: RnnFloat>(
    h: usize,
    gh: &[T],
    dh: &[T],
    acts: &[T],
    hn: &[T],
    h_prev: &[T],
    dxp: &mut [T],
    dhp: &mut [T],
    direct: &mut [T],
) {
    let g = 3 * h;
    let one = T::one();
    for (b, ((ar, xr), hr)) in acts
        .chunks_exact(g)
        .zip(dxp.chunks_exact_mut(g))
        .zip(dhp.chunks_exact_mut(g))
        .enumerate()
    {
        let (rg, rest) = ar.split_at(h);
        let (zg, n) = rest.split_at(h);
        let r = b * h..(b + 1) * h;
        let (ghr, dhr, hnr, hpr, dir) = (
            &gh[r.clone()],
            &dh[r.clone()],
            &hn[r.clone()],
            &h_prev[r.clone()],
            &mut direct[r],
        );
        for j in 0..h {
            let dhv = ghr[j] + dhr[j];
            let dn = dhv * (one - zg[j]) * (one - n[j] * n[j]);
            let dz = dhv * (hpr[j] - n[j]) * zg[j] * (one - zg[j]);
            let dr = dn * hnr[j] * rg[j] * (one - rg[j]);
            xr[j] = dr;
            xr[h + j] = dz;
            xr[2 * h + j] = dn;
            hr[j] = dr;
            hr[h + j] = dz;
            hr[2 * h + j] = dn * rg[j];
            dir[j] = dhv * zg[j];
        }
    }
}
multiversion!(gru_bwd, gru_bwd_avx2, gru_bwd_body, (
    h: usize, gh: &[T], dh: &[T], acts: &[T], hn: &[T], h_prev: &[T], dxp: &mut [T], dhp: &mut [T], direct: &mut [T],
));

/// One Elman step: `hout` holds the input projections and becomes `act(xp + hp + bias)`.
#[inline(always)]
fn rnn_fwd_body<T: RnnFloat>(relu: bool, h: usize, hout: &mut [T], hp: &[T], bias: &[T]) {
    for (orow, hrow) in hout.chunks_exact_mut(h).zip(hp.chunks_exact(h)) {
        for ((o, &hv), &bv) in orow.iter_mut().zip(hrow).zip(bias) {
            let v = *o + hv + bv;
            *o = if relu {
                v.max(T::zero())
            } else {
                T::act_tanh(v)
            };
        }
    }
}
multiversion!(rnn_fwd, rnn_fwd_avx2, rnn_fwd_body, (
    relu: bool, h: usize, hout: &mut [T], hp: &[T], bias: &[T],
));

/// One Elman step backwards, from the step's output `hv` (the derivative of tanh is `1 - h²`, of
/// relu `h > 0`).
#[inline(always)]
fn rnn_bwd_body<T: RnnFloat>(relu: bool, gh: &[T], dh: &[T], hv: &[T], dpre: &mut [T]) {
    for (((d, &g), &r), &y) in dpre.iter_mut().zip(gh).zip(dh).zip(hv) {
        let deriv = if relu {
            if y > T::zero() { T::one() } else { T::zero() }
        } else {
            T::one() - y * y
        };
        *d = (g + r) * deriv;
    }
}
multiversion!(rnn_bwd, rnn_bwd_avx2, rnn_bwd_body, (
    relu: bool, gh: &[T], dh: &[T], hv: &[T], dpre: &mut [T],
));

// ----- whole-sequence kernels ----------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Dims {
    t: usize,
    b: usize,
    i: usize,
    h: usize,
}

/// The forward pass: the output `[T+S-1, B, H]`, the gate activations `[T, B, G·H]` (LSTM, GRU)
/// and the extra saved values (LSTM: c and tanh c, `[2, T, B, H]`; GRU: `W_hn h + b_hn`,
/// `[T, B, H]`).
#[allow(clippy::too_many_arguments)]
fn forward_kernel<T: RnnFloat>(
    cell: CellKind,
    d: Dims,
    x: &[T],
    w_ih: &[T],
    w_hh: &[T],
    b_ih: &[T],
    b_hh: &[T],
    h0: &[T],
    c0: &[T],
) -> (Arc<[T]>, Arc<[T]>, Arc<[T]>) {
    let Dims {
        t: tn,
        b: bn,
        i: isz,
        h,
    } = d;
    let g = cell.gates() * h;
    let (bh, bg) = (bn * h, bn * g);
    let rnn = matches!(cell, CellKind::RnnTanh | CellKind::RnnRelu);
    let mut out = storage::zeroed::<T>((tn + cell.states() - 1) * bh);
    let mut acts = storage::zeroed::<T>(if rnn { 0 } else { tn * bg });
    let mut extra = storage::zeroed::<T>(match cell {
        CellKind::Lstm => 2 * tn * bh,
        CellKind::Gru => tn * bh,
        _ => 0,
    });
    {
        let o = Arc::get_mut(&mut out).expect("fresh");
        let a = Arc::get_mut(&mut acts).expect("fresh");
        let e = Arc::get_mut(&mut extra).expect("fresh");
        // The input projections of every step in one product: [T·B, I] @ W_ihᵀ.
        let xp: &mut [T] = if rnn { &mut o[..tn * bh] } else { &mut a[..] };
        gemm((tn * bn, g, isz), xp, g, false, x, (isz, 1), w_ih, (1, isz));
        let wt = transposed(w_hh, g, h); // [H, G·H], so each step reads W_hhᵀ by rows
        let bias: Vec<T> = b_ih.iter().zip(b_hh).map(|(&p, &q)| p + q).collect();
        let mut hp = vec![T::zero(); bg];
        for t in 0..tn {
            let (done, cur) = o.split_at_mut(t * bh);
            let h_prev: &[T] = if t == 0 { h0 } else { &done[(t - 1) * bh..] };
            gemm((bn, g, h), &mut hp, g, false, h_prev, (h, 1), &wt, (g, 1));
            let hout = &mut cur[..bh];
            match cell {
                CellKind::Lstm => {
                    let (cs, tcs) = e.split_at_mut(tn * bh);
                    let (c_done, c_cur) = cs.split_at_mut(t * bh);
                    let c_prev: &[T] = if t == 0 { c0 } else { &c_done[(t - 1) * bh..] };
                    lstm_fwd::<T>(
                        h,
                        &mut a[t * bg..(t + 1) * bg],
                        &hp,
                        &bias,
                        c_prev,
                        &mut c_cur[..bh],
                        &mut tcs[t * bh..(t + 1) * bh],
                        hout,
                    );
                }
                CellKind::Gru => gru_fwd::<T>(
                    h,
                    &mut a[t * bg..(t + 1) * bg],
                    &hp,
                    b_ih,
                    b_hh,
                    h_prev,
                    &mut e[t * bh..(t + 1) * bh],
                    hout,
                ),
                CellKind::RnnTanh | CellKind::RnnRelu => {
                    rnn_fwd::<T>(cell == CellKind::RnnRelu, h, hout, &hp, &bias)
                }
            }
        }
        if cell == CellKind::Lstm {
            o[tn * bh..].copy_from_slice(&e[(tn - 1) * bh..tn * bh]);
        }
    }
    (out, acts, extra)
}

/// Input gradients of the fused backward pass, each `None` when not needed.
struct Grads<T> {
    x: Option<Vec<T>>,
    w_ih: Option<Vec<T>>,
    w_hh: Option<Vec<T>>,
    b_ih: Option<Vec<T>>,
    b_hh: Option<Vec<T>>,
    h0: Option<Vec<T>>,
    c0: Option<Vec<T>>,
}

/// Backpropagation through time given the cotangent `gout` of the output.
#[allow(clippy::too_many_arguments)]
fn backward_kernel<T: RnnFloat>(
    cell: CellKind,
    d: Dims,
    needs: &[bool],
    x: &[T],
    w_ih: &[T],
    w_hh: &[T],
    h0: &[T],
    c0: &[T],
    out: &[T],
    acts: &[T],
    extra: &[T],
    gout: &[T],
) -> Grads<T> {
    let Dims {
        t: tn,
        b: bn,
        i: isz,
        h,
    } = d;
    let g = cell.gates() * h;
    let (bh, bg) = (bn * h, bn * g);
    // Gradients of the input-side pre-activations of every step, and (GRU only, where they differ
    // in the n gate) of the hidden-side ones.
    let mut dxp = vec![T::zero(); tn * bg];
    let mut dhp_own = if cell == CellKind::Gru {
        vec![T::zero(); tn * bg]
    } else {
        Vec::new()
    };
    let mut dh = vec![T::zero(); bh];
    let mut dc = if cell == CellKind::Lstm {
        gout[tn * bh..(tn + 1) * bh].to_vec()
    } else {
        Vec::new()
    };
    let mut direct = if cell == CellKind::Gru {
        vec![T::zero(); bh]
    } else {
        Vec::new()
    };
    for t in (0..tn).rev() {
        let gh = &gout[t * bh..(t + 1) * bh];
        let h_prev: &[T] = if t == 0 {
            h0
        } else {
            &out[(t - 1) * bh..t * bh]
        };
        let dxt = &mut dxp[t * bg..(t + 1) * bg];
        match cell {
            CellKind::Lstm => {
                let (cs, tcs) = extra.split_at(tn * bh);
                let c_prev: &[T] = if t == 0 {
                    c0
                } else {
                    &cs[(t - 1) * bh..t * bh]
                };
                lstm_bwd::<T>(
                    h,
                    gh,
                    &dh,
                    &mut dc,
                    &acts[t * bg..(t + 1) * bg],
                    c_prev,
                    &tcs[t * bh..(t + 1) * bh],
                    dxt,
                );
                gemm((bn, h, g), &mut dh, h, false, dxt, (g, 1), w_hh, (h, 1));
            }
            CellKind::Gru => {
                let dht = &mut dhp_own[t * bg..(t + 1) * bg];
                gru_bwd::<T>(
                    h,
                    gh,
                    &dh,
                    &acts[t * bg..(t + 1) * bg],
                    &extra[t * bh..(t + 1) * bh],
                    h_prev,
                    dxt,
                    dht,
                    &mut direct,
                );
                dh.copy_from_slice(&direct);
                gemm((bn, h, g), &mut dh, h, true, dht, (g, 1), w_hh, (h, 1));
            }
            CellKind::RnnTanh | CellKind::RnnRelu => {
                let hv = &out[t * bh..(t + 1) * bh];
                rnn_bwd::<T>(cell == CellKind::RnnRelu, gh, &dh, hv, dxt);
                gemm((bn, h, g), &mut dh, h, false, dxt, (g, 1), w_hh, (h, 1));
            }
        }
    }
    let dhp: &[T] = if cell == CellKind::Gru {
        &dhp_own
    } else {
        &dxp
    };
    let w_hh_grad = needs[2].then(|| {
        // Σ_t dhp_tᵀ h_{t-1}: steps 1.. read the output rows 0..T-1 as one [(T-1)·B, H] block.
        let mut gw = vec![T::zero(); g * h];
        gemm(
            (g, h, bn),
            &mut gw,
            h,
            false,
            &dhp[..bg],
            (1, g),
            h0,
            (h, 1),
        );
        if tn > 1 {
            gemm(
                (g, h, (tn - 1) * bn),
                &mut gw,
                h,
                true,
                &dhp[bg..],
                (1, g),
                &out[..(tn - 1) * bh],
                (h, 1),
            );
        }
        gw
    });
    let w_ih_grad = needs[1].then(|| {
        let mut gw = vec![T::zero(); g * isz];
        gemm(
            (g, isz, tn * bn),
            &mut gw,
            isz,
            false,
            &dxp,
            (1, g),
            x,
            (isz, 1),
        );
        gw
    });
    let x_grad = needs[0].then(|| {
        let mut gx = vec![T::zero(); tn * bn * isz];
        gemm(
            (tn * bn, isz, g),
            &mut gx,
            isz,
            false,
            &dxp,
            (g, 1),
            w_ih,
            (isz, 1),
        );
        gx
    });
    Grads {
        x: x_grad,
        w_ih: w_ih_grad,
        w_hh: w_hh_grad,
        b_ih: needs[3].then(|| column_sums(&dxp, g)),
        b_hh: needs[4].then(|| column_sums(dhp, g)),
        h0: needs[5].then(|| dh.clone()),
        c0: (cell == CellKind::Lstm && needs.get(6).copied().unwrap_or(false)).then(|| dc.clone()),
    }
}

// ----- the recorded operation -------------------------------------------------------------------

struct Recurrent {
    cell: CellKind,
    /// Detached gate activations and saved values from the forward pass (see [`forward_kernel`]).
    acts: Tensor,
    extra: Tensor,
}

/// Whether a computation on `ts` would be recorded (reverse mode) or carry tangents (forward mode).
fn differentiated(ts: &[&Tensor]) -> bool {
    (state::grad_enabled() && ts.iter().any(|t| t.requires_grad()))
        || (state::forward_active() && ts.iter().any(|t| !t.0.tangents.is_empty()))
}

fn dims_of(inputs: &[Tensor]) -> Dims {
    let xd = inputs[0].dims();
    Dims {
        t: xd[0],
        b: xd[1],
        i: xd[2],
        h: inputs[2].dims()[1],
    }
}

impl Recurrent {
    fn fast_vjp<T: RnnFloat>(
        &self,
        inputs: &[Tensor],
        out: &Tensor,
        g: &Tensor,
        needs: &[bool],
    ) -> InputGrads {
        let d = dims_of(inputs);
        let data = |k: usize| inputs[k].contiguous_data::<T>();
        let (x, w_ih, w_hh, h0) = (data(0), data(1), data(2), data(5));
        let c0 = if self.cell == CellKind::Lstm {
            data(6)
        } else {
            std::borrow::Cow::Borrowed(&[][..])
        };
        let gout = g.contiguous_data::<T>();
        let out = out.contiguous_data::<T>();
        let acts = self.acts.contiguous_data::<T>();
        let extra = self.extra.contiguous_data::<T>();
        let gr = backward_kernel::<T>(
            self.cell, d, needs, &x, &w_ih, &w_hh, &h0, &c0, &out, &acts, &extra, &gout,
        );
        let shape = |k: usize| inputs[k].shape().clone();
        let mut res: InputGrads = smallvec::smallvec![
            gr.x.map(|v| tensor_from(v, shape(0))),
            gr.w_ih.map(|v| tensor_from(v, shape(1))),
            gr.w_hh.map(|v| tensor_from(v, shape(2))),
            gr.b_ih.map(|v| tensor_from(v, shape(3))),
            gr.b_hh.map(|v| tensor_from(v, shape(4))),
            gr.h0.map(|v| tensor_from(v, shape(5))),
        ];
        if self.cell == CellKind::Lstm {
            res.push(gr.c0.map(|v| tensor_from(v, shape(6))));
        }
        res
    }
}

impl Op for Recurrent {
    fn name(&self) -> &str {
        self.cell.name()
    }

    fn vjp(&self, inputs: &[Tensor], out: &Tensor, g: &Tensor, needs: &[bool]) -> InputGrads {
        let mut watched: Vec<&Tensor> = inputs.iter().collect();
        watched.push(g);
        if !differentiated(&watched) {
            return with_dtype!(g.dtype(), self.fast_vjp::<T>(inputs, out, g, needs));
        }
        // The backward pass is being differentiated: use the differentiable recurrence.
        let cell = self.cell;
        let (_, pullback) = crate::vjp(|xs: &[Tensor]| reference(cell, xs), inputs);
        pullback(g)
            .into_iter()
            .zip(needs)
            .map(|(gk, &need)| need.then_some(gk))
            .collect()
    }

    fn jvp(&self, inputs: &[Tensor], tangents: &[Option<Tensor>]) -> Tensor {
        let ts: Vec<Tensor> = tangents
            .iter()
            .zip(inputs)
            .map(|(t, x)| t.clone().unwrap_or_else(|| x.zeros_like()))
            .collect();
        let cell = self.cell;
        crate::jvp(|xs: &[Tensor]| reference(cell, xs), inputs, &ts).1
    }
}

/// The recurrence written with differentiable tensor operations: the definition the fused kernels
/// implement, and the source of higher-order derivatives. Same inputs and output as [`recurrent`].
pub(crate) fn reference(cell: CellKind, inputs: &[Tensor]) -> Tensor {
    let (x, w_ih, w_hh, b_ih, b_hh) = (&inputs[0], &inputs[1], &inputs[2], &inputs[3], &inputs[4]);
    let (tn, bn, isz) = (x.dims()[0], x.dims()[1], x.dims()[2]);
    let h = w_hh.dims()[1];
    let g = cell.gates() * h;
    let xp = (x.reshape([tn * bn, isz]).matmul(&w_ih.t()) + b_ih).reshape([tn, bn, g]);
    let wt = w_hh.t();
    let mut hs = inputs[5].clone();
    let mut cs = inputs.get(6).cloned();
    let mut outs = Vec::with_capacity(tn + 1);
    for t in 0..tn {
        let xt = xp.select(0, t);
        let hp = hs.matmul(&wt) + b_hh;
        hs = match cell {
            CellKind::Lstm => {
                let pre = xt + hp;
                let i = pre.narrow(1, 0, h).sigmoid();
                let f = pre.narrow(1, h, h).sigmoid();
                let gg = pre.narrow(1, 2 * h, h).tanh();
                let o = pre.narrow(1, 3 * h, h).sigmoid();
                let c = f * cs.as_ref().expect("lstm: c0") + i * gg;
                let hv = o * c.tanh();
                cs = Some(c);
                hv
            }
            CellKind::Gru => {
                let r = (xt.narrow(1, 0, h) + hp.narrow(1, 0, h)).sigmoid();
                let z = (xt.narrow(1, h, h) + hp.narrow(1, h, h)).sigmoid();
                let n = (xt.narrow(1, 2 * h, h) + r * hp.narrow(1, 2 * h, h)).tanh();
                &n + z * (&hs - &n)
            }
            CellKind::RnnTanh => (xt + hp).tanh(),
            CellKind::RnnRelu => (xt + hp).relu(),
        };
        outs.push(hs.clone());
    }
    if cell == CellKind::Lstm {
        outs.push(cs.expect("lstm: c0"));
    }
    Tensor::stack(&outs, 0)
}

/// Runs one recurrent layer over a time-major sequence: see the module documentation for the
/// inputs and the output `[T + S - 1, B, H]`. `c0` is required for the LSTM and ignored otherwise.
///
/// # Panics
/// On inconsistent shapes or dtypes, naming the layer.
#[allow(clippy::too_many_arguments)]
pub(crate) fn recurrent(
    cell: CellKind,
    x: &Tensor,
    w_ih: &Tensor,
    w_hh: &Tensor,
    b_ih: &Tensor,
    b_hh: &Tensor,
    h0: &Tensor,
    c0: Option<&Tensor>,
) -> Tensor {
    let name = cell.name();
    if x.rank() != 3 || w_ih.rank() != 2 || w_hh.rank() != 2 {
        panic!(
            "{name}: expected x [T, B, I], w_ih [G·H, I], w_hh [G·H, H]; got {}, {}, {}",
            x.shape(),
            w_ih.shape(),
            w_hh.shape()
        );
    }
    let (tn, bn, isz) = (x.dims()[0], x.dims()[1], x.dims()[2]);
    let h = w_hh.dims()[1];
    let g = cell.gates() * h;
    if tn == 0 {
        panic!("{name}: the input sequence {} has no time steps", x.shape());
    }
    if w_ih.dims() != [g, isz] || w_hh.dims() != [g, h] {
        panic!(
            "{name}: input {} needs w_ih [{g}, {isz}] and w_hh [{g}, {h}], got {} and {}",
            x.shape(),
            w_ih.shape(),
            w_hh.shape()
        );
    }
    for (what, b) in [("b_ih", b_ih), ("b_hh", b_hh)] {
        if b.dims() != [g] {
            panic!("{name}: {what} must be [{g}], got {}", b.shape());
        }
    }
    let c0 = match (cell, c0) {
        (CellKind::Lstm, Some(c)) => Some(c),
        (CellKind::Lstm, None) => panic!("lstm: the cell state c0 is missing"),
        _ => None,
    };
    for (what, s) in std::iter::once(("h0", h0)).chain(c0.map(|c| ("c0", c))) {
        if s.dims() != [bn, h] {
            panic!("{name}: {what} must be [{bn}, {h}], got {}", s.shape());
        }
    }
    let mut inputs: Vec<&Tensor> = vec![x, w_ih, w_hh, b_ih, b_hh, h0];
    inputs.extend(c0);
    for t in &inputs[1..] {
        same_dtype(name, x, t);
    }
    let d = Dims {
        t: tn,
        b: bn,
        i: isz,
        h,
    };
    let (out, acts, extra) = with_dtype!(x.dtype(), {
        let data = |t: &Tensor| t.contiguous_data::<T>().into_owned();
        let c0d = c0.map(data).unwrap_or_default();
        let (o, a, e) = forward_kernel::<T>(
            cell,
            d,
            &x.contiguous_data::<T>(),
            &w_ih.contiguous_data::<T>(),
            &w_hh.contiguous_data::<T>(),
            &b_ih.contiguous_data::<T>(),
            &b_hh.contiguous_data::<T>(),
            &h0.contiguous_data::<T>(),
            &c0d,
        );
        let saved = |v: Arc<[T]>| {
            let n = v.len();
            Tensor::from_arc(v, Shape::from([n]))
        };
        (
            Tensor::from_arc(o, Shape::from([tn + cell.states() - 1, bn, h])),
            saved(a),
            saved(e),
        )
    });
    record(out, Recurrent { cell, acts, extra }, &inputs)
}
