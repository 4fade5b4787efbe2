//! The fused elementwise pass of one step of each cell, forward and backward, for one batch row of
//! one worker's units; each compiled for AVX2 + FMA when the CPU has them.

use super::*;

/// Defines `$name`, which runs the `#[inline(always)]` body `$body` compiled for AVX2 + FMA when the
/// CPU has them, and for the baseline target otherwise.
macro_rules! multiversion {
    ($name:ident, $avx:ident, $body:ident, $Seg:ident) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $avx<T: RnnFloat>(s: $Seg<'_, T>) {
            $body::<T>(s)
        }

        pub(super) fn $name<T: RnnFloat>(s: $Seg<'_, T>) {
            #[cfg(target_arch = "x86_64")]
            if simd::available() {
                // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
                return unsafe { $avx::<T>(s) };
            }
            $body::<T>(s)
        }
    };
}

/// One batch row of one worker's units in an LSTM step. Gate blocks are `[i, f, g, o]`, each of
/// the worker's `u` units.
pub(super) struct LstmFwd<'a, T> {
    /// `[x_t | h_{t-1}] [W_ih | W_hh]ᵀ` for the worker's columns: 4 blocks of `u`.
    pub(super) pre: &'a [T],
    pub(super) bias: [&'a [T]; 4],
    /// Receive the gate activations.
    pub(super) acts: [&'a mut [T]; 4],
    pub(super) c_prev: &'a [T],
    pub(super) c: &'a mut [T],
    pub(super) tc: &'a mut [T],
    pub(super) h: &'a mut [T],
}

#[inline(always)]
fn lstm_fwd_body<T: RnnFloat>(s: LstmFwd<'_, T>) {
    let u = s.c.len();
    let [ai, af, ag, ao] = s.acts;
    for (q, a) in [&mut *ai, &mut *af, &mut *ag, &mut *ao]
        .into_iter()
        .enumerate()
    {
        for ((a, &p), &b) in a.iter_mut().zip(&s.pre[q * u..(q + 1) * u]).zip(s.bias[q]) {
            *a = p + b;
        }
    }
    T::sigmoid_slice(ai);
    T::sigmoid_slice(af);
    T::tanh_slice(ag);
    T::sigmoid_slice(ao);
    for j in 0..u {
        let cv = af[j] * s.c_prev[j] + ai[j] * ag[j];
        s.c[j] = cv;
        s.tc[j] = cv;
    }
    T::tanh_slice(s.tc);
    for ((h, &o), &tc) in s.h.iter_mut().zip(&*ao).zip(&*s.tc) {
        *h = o * tc;
    }
}
multiversion!(lstm_fwd, lstm_fwd_avx2, lstm_fwd_body, LstmFwd);

/// One batch row of one worker's units in an LSTM step backwards.
pub(super) struct LstmBwd<'a, T> {
    /// Cotangent of `h_t` from the output.
    pub(super) gh: &'a [T],
    /// Cotangent of `h_t` from step t+1.
    pub(super) dh: &'a [T],
    /// Cotangent of `c_t`; becomes that of `c_{t-1}`.
    pub(super) dc: &'a mut [T],
    pub(super) acts: [&'a [T]; 4],
    pub(super) c_prev: &'a [T],
    pub(super) tc: &'a [T],
    /// Gradients of the gate pre-activations.
    pub(super) dpre: [&'a mut [T]; 4],
}

#[inline(always)]
fn lstm_bwd_body<T: RnnFloat>(s: LstmBwd<'_, T>) {
    let one = T::one();
    let [i, f, gg, o] = s.acts;
    let [di, df, dg, dpo] = s.dpre;
    for j in 0..s.dc.len() {
        let dhv = s.gh[j] + s.dh[j];
        let t = s.tc[j];
        let dcv = s.dc[j] + dhv * o[j] * (one - t * t);
        dpo[j] = dhv * t * o[j] * (one - o[j]);
        di[j] = dcv * gg[j] * i[j] * (one - i[j]);
        df[j] = dcv * s.c_prev[j] * f[j] * (one - f[j]);
        dg[j] = dcv * i[j] * (one - gg[j] * gg[j]);
        s.dc[j] = dcv * f[j];
    }
}
multiversion!(lstm_bwd, lstm_bwd_avx2, lstm_bwd_body, LstmBwd);

/// One batch row of one worker's units in a GRU step. Gate blocks are `[r, z, n]`.
pub(super) struct GruFwd<'a, T> {
    /// `[x_t | h_{t-1}]` times the worker's weight columns: 4 blocks of `u`, `r` and `z` (input
    /// and hidden parts summed), then `W_in x_t` and `W_hn h_{t-1}` apart.
    pub(super) pre: &'a [T],
    pub(super) b_ih: [&'a [T]; 3],
    pub(super) b_hh: [&'a [T]; 3],
    /// Receive the gate activations.
    pub(super) acts: [&'a mut [T]; 3],
    pub(super) h_prev: &'a [T],
    /// Receives `W_hn h_{t-1} + b_hn`.
    pub(super) hn: &'a mut [T],
    pub(super) h: &'a mut [T],
}

#[inline(always)]
fn gru_fwd_body<T: RnnFloat>(s: GruFwd<'_, T>) {
    let u = s.h.len();
    let [ar, az, an] = s.acts;
    for (q, a) in [&mut *ar, &mut *az].into_iter().enumerate() {
        let (p, bi, bh) = (&s.pre[q * u..(q + 1) * u], s.b_ih[q], s.b_hh[q]);
        for j in 0..u {
            a[j] = p[j] + bi[j] + bh[j];
        }
        T::sigmoid_slice(a);
    }
    let (px, ph) = (&s.pre[2 * u..3 * u], &s.pre[3 * u..4 * u]);
    for j in 0..u {
        let hnv = ph[j] + s.b_hh[2][j];
        s.hn[j] = hnv;
        an[j] = px[j] + s.b_ih[2][j] + ar[j] * hnv;
    }
    T::tanh_slice(an);
    for j in 0..u {
        s.h[j] = an[j] + az[j] * (s.h_prev[j] - an[j]);
    }
}
multiversion!(gru_fwd, gru_fwd_avx2, gru_fwd_body, GruFwd);

/// One batch row of one worker's units in a GRU step backwards.
pub(super) struct GruBwd<'a, T> {
    pub(super) gh: &'a [T],
    pub(super) dh: &'a [T],
    pub(super) acts: [&'a [T]; 3],
    pub(super) hn: &'a [T],
    pub(super) h_prev: &'a [T],
    /// Gradients of the input-side pre-activations.
    pub(super) dxp: [&'a mut [T]; 3],
    /// Gradients of the hidden-side pre-activations (they differ in the n gate: `r ⊙ dn`).
    pub(super) dhp: [&'a mut [T]; 3],
    /// Receives `z ⊙ dh`, the direct part of the cotangent of `h_{t-1}`.
    pub(super) direct: &'a mut [T],
}

#[inline(always)]
fn gru_bwd_body<T: RnnFloat>(s: GruBwd<'_, T>) {
    let one = T::one();
    let [r, z, n] = s.acts;
    let [xr, xz, xn] = s.dxp;
    let [hr, hz, hn] = s.dhp;
    for j in 0..s.direct.len() {
        let dhv = s.gh[j] + s.dh[j];
        let dn = dhv * (one - z[j]) * (one - n[j] * n[j]);
        let dz = dhv * (s.h_prev[j] - n[j]) * z[j] * (one - z[j]);
        let dr = dn * s.hn[j] * r[j] * (one - r[j]);
        xr[j] = dr;
        xz[j] = dz;
        xn[j] = dn;
        hr[j] = dr;
        hz[j] = dz;
        hn[j] = dn * r[j];
        s.direct[j] = dhv * z[j];
    }
}
multiversion!(gru_bwd, gru_bwd_avx2, gru_bwd_body, GruBwd);

/// One batch row of one worker's units in an Elman step.
pub(super) struct RnnFwd<'a, T> {
    pub(super) relu: bool,
    /// `[x_t | h_{t-1}] [W_ih | W_hh]ᵀ` for the worker's units.
    pub(super) pre: &'a [T],
    pub(super) bias: &'a [T],
    /// The new state.
    pub(super) h: &'a mut [T],
}

#[inline(always)]
fn rnn_fwd_body<T: RnnFloat>(s: RnnFwd<'_, T>) {
    for ((h, &p), &b) in s.h.iter_mut().zip(s.pre).zip(s.bias) {
        let v = p + b;
        *h = if s.relu { v.max(T::zero()) } else { v };
    }
    if !s.relu {
        T::tanh_slice(s.h);
    }
}
multiversion!(rnn_fwd, rnn_fwd_avx2, rnn_fwd_body, RnnFwd);

/// One batch row of one worker's units in an Elman step backwards, from the step's output `hv`
/// (the derivative of tanh is `1 - h²`, of relu `h > 0`).
pub(super) struct RnnBwd<'a, T> {
    pub(super) relu: bool,
    pub(super) gh: &'a [T],
    pub(super) dh: &'a [T],
    pub(super) hv: &'a [T],
    pub(super) dpre: &'a mut [T],
}

#[inline(always)]
fn rnn_bwd_body<T: RnnFloat>(s: RnnBwd<'_, T>) {
    for j in 0..s.dpre.len() {
        let y = s.hv[j];
        let deriv = if s.relu {
            if y > T::zero() { T::one() } else { T::zero() }
        } else {
            T::one() - y * y
        };
        s.dpre[j] = (s.gh[j] + s.dh[j]) * deriv;
    }
}
multiversion!(rnn_bwd, rnn_bwd_avx2, rnn_bwd_body, RnnBwd);
