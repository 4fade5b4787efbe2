//! The whole-sequence backward kernel of a recurrent layer: backpropagation through time.

use super::cells::*;
use super::*;

/// A worker's share of a backward pass: its units, their recurrent weights, the cotangents carried
/// between steps, and its rows of the weight and bias gradients, accumulated chunk by chunk.
struct BwdWorker<T: RnnFloat> {
    r0: usize,
    u: usize,
    /// The columns of `W_hh` of the worker's units: `[G·H, u]`.
    w: Rhs<T>,
    /// Cotangent of the worker's units of `h_t` coming from step t+1: `[B, u]`.
    dh: Vec<T>,
    /// Cotangent of `c_t` (LSTM): `[B, u]`.
    dc: Vec<T>,
    /// `z ⊙ dh` (GRU): `[B, u]`.
    direct: Vec<T>,
    /// The current chunk: the worker's columns of the input-side (`cx`) and, for the GRU,
    /// hidden-side (`ch`) pre-activation gradients, `[rows, G·u]`, and the matching rows
    /// `[x_t | h_{t-1}]`, `[rows, I + H]`.
    cx: Vec<T>,
    ch: Vec<T>,
    cb: Vec<T>,
    rows: usize,
    /// The worker's rows of `[dW_ih | dW_hh]`, `[G·u, I + H]`, and of the bias gradients.
    gw: Vec<T>,
    gb_ih: Vec<T>,
    gb_hh: Vec<T>,
}

impl<T: RnnFloat> BwdWorker<T> {
    /// `dh ← dhp_{t+1} W_hh[:, units]` (plus the direct term for the GRU).
    fn carry(&mut self, cell: CellKind, bn: usize, g: usize, dhp_next: &[T]) {
        let gru = cell == CellKind::Gru;
        if gru {
            self.dh.copy_from_slice(&self.direct);
        }
        self.w
            .mul(bn, dhp_next, (g, 1), &mut self.dh, self.u, gru, usize::MAX);
    }

    /// Adds the chunk's contribution to the weight and bias gradients and empties it:
    /// `gw += cxᵀ [X | H_prev]` (the GRU's hidden part from `ch`).
    fn flush(&mut self, gru: bool, gates: usize, isz: usize, h: usize, needs: Needs) {
        let (rows, gu, k) = (self.rows, gates * self.u, isz + h);
        if rows == 0 {
            return;
        }
        let (cx, cb) = (&self.cx[..rows * gu], &self.cb[..rows * k]);
        let chd = if gru { &self.ch[..rows * gu] } else { cx };
        if !gru && needs.w_ih && needs.w_hh {
            Rhs::new(cb, (k, 1), rows, k).mul(gu, cx, (1, gu), &mut self.gw, k, true, usize::MAX);
        } else {
            if needs.w_ih {
                Rhs::new(cb, (k, 1), rows, isz).mul(
                    gu,
                    cx,
                    (1, gu),
                    &mut self.gw,
                    k,
                    true,
                    usize::MAX,
                );
            }
            if needs.w_hh {
                Rhs::new(&cb[isz..], (k, 1), rows, h).mul(
                    gu,
                    chd,
                    (1, gu),
                    &mut self.gw[isz..],
                    k,
                    true,
                    usize::MAX,
                );
            }
        }
        let add_columns = |acc: &mut Vec<T>, m: &[T]| {
            for row in m.chunks_exact(gu) {
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a += v;
                }
            }
        };
        if needs.b_ih {
            add_columns(&mut self.gb_ih, cx);
        }
        if needs.b_hh {
            add_columns(&mut self.gb_hh, chd);
        }
        self.rows = 0;
    }
}

/// Backpropagation through time given the cotangent `gout` of the output.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward_kernel<T: RnnFloat>(
    cell: CellKind,
    d: Dims,
    rows: Rows,
    needs: &[bool],
    x: &XView<'_, T>,
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
    let gates = cell.gates();
    let g = gates * h;
    let (bh, bg, n, k) = (bn * h, bn * g, tn * bn, isz + h);
    let gru = cell == CellKind::Gru;
    let lstm = cell == CellKind::Lstm;
    let nd = Needs {
        x: needs[0],
        w_ih: needs[1],
        w_hh: needs[2],
        b_ih: needs[3],
        b_hh: needs[4],
        h0: needs[5],
        c0: lstm && needs.get(6).copied().unwrap_or(false),
    };
    // Steps per chunk of the weight-gradient products: about 64 rows.
    let chunk = (64 / bn).clamp(1, tn);
    let units = split_units(h, bn * g * (h + k));
    in_pool(units.len() > 1, || {
        // All the input-side gradients, for the input's gradient (only when asked for).
        let mut dxp = if nd.x { take::<T>(n * g) } else { Vec::new() };
        // The hidden-side gradients of the last two steps, contiguous: the next step's operand.
        let mut dbuf = take::<T>(2 * bg);
        let wrows = if nd.any_weight() { chunk * bn } else { 0 };
        let mut workers: Vec<BwdWorker<T>> = units
            .iter()
            .map(|&(r0, u)| BwdWorker {
                r0,
                u,
                w: Rhs::new(&w_hh[r0..], (h, 1), g, u),
                dh: vec![T::zero(); bn * u],
                dc: if lstm {
                    (0..bn)
                        .flat_map(|b| gout[tn * bh + b * h + r0..tn * bh + b * h + r0 + u].iter())
                        .copied()
                        .collect()
                } else {
                    Vec::new()
                },
                direct: if gru {
                    vec![T::zero(); bn * u]
                } else {
                    Vec::new()
                },
                cx: take(if gru { wrows.max(1) } else { wrows } * gates * u),
                ch: if gru {
                    take(wrows * gates * u)
                } else {
                    Vec::new()
                },
                cb: take(wrows * k),
                rows: 0,
                gw: if nd.w_ih || nd.w_hh {
                    vec![T::zero(); gates * u * k]
                } else {
                    Vec::new()
                },
                gb_ih: vec![T::zero(); if nd.b_ih { gates * u } else { 0 }],
                gb_hh: vec![T::zero(); if nd.b_hh { gates * u } else { 0 }],
            })
            .collect();
        {
            let (xs, ds) = (Shared::new(&mut dxp), Shared::new(&mut dbuf));
            run_steps(&mut workers, tn, |s, wk| {
                let t = tn - 1 - s;
                let (r0, u, gu) = (wk.r0, wk.u, gates * wk.u);
                // SAFETY (for every `get`/`get_mut` below): during step t the workers write
                // only their own units' columns of the rows of step t in `dxp` and of the
                // current half of `dbuf`, and read the other half of `dbuf` (complete, not
                // written in this step).
                if t + 1 < tn {
                    wk.carry(cell, bn, g, unsafe { ds.get(((t + 1) % 2) * bg, bg) });
                }
                for b in 0..bn {
                    let (r, col) = (rows.at(t, b), b * h + r0);
                    let gate = |q: usize| r * g + q * h + r0;
                    let next = |q: usize| (t % 2) * bg + b * g + q * h + r0;
                    let gh = &gout[r * h + r0..r * h + r0 + u];
                    let dh = &wk.dh[b * u..(b + 1) * u];
                    let act = |q: usize| &acts[gate(q)..gate(q) + u];
                    let h_prev = |c0: usize, len: usize| {
                        if t == 0 {
                            &h0[b * h + c0..b * h + c0 + len]
                        } else {
                            let o = rows.at(t - 1, b) * h + c0;
                            &out[o..o + len]
                        }
                    };
                    // This row of the weight-gradient chunk.
                    let cr = wk.rows + b;
                    match cell {
                        CellKind::Lstm => unsafe {
                            let c_prev = if t == 0 {
                                &c0[col..col + u]
                            } else {
                                let o = rows.at(t - 1, b) * h + r0;
                                &extra[o..o + u]
                            };
                            let tc = (n + r) * h + r0;
                            lstm_bwd::<T>(LstmBwd {
                                gh,
                                dh,
                                dc: &mut wk.dc[b * u..(b + 1) * u],
                                acts: [0, 1, 2, 3].map(act),
                                c_prev,
                                tc: &extra[tc..tc + u],
                                dpre: [0, 1, 2, 3].map(|q| ds.get_mut(next(q), u)),
                            });
                        },
                        CellKind::Gru => unsafe {
                            // The input-side gradients go straight to the chunk (row 0 as
                            // scratch when no weight gradient is needed).
                            let cr = if wrows > 0 { cr } else { 0 };
                            let (x0, rest) = wk.cx[cr * gu..(cr + 1) * gu].split_at_mut(u);
                            let (x1, x2) = rest.split_at_mut(u);
                            gru_bwd::<T>(GruBwd {
                                gh,
                                dh,
                                acts: [0, 1, 2].map(act),
                                hn: &extra[r * h + r0..r * h + r0 + u],
                                h_prev: h_prev(r0, u),
                                dxp: [x0, x1, x2],
                                dhp: [0, 1, 2].map(|q| ds.get_mut(next(q), u)),
                                direct: &mut wk.direct[b * u..(b + 1) * u],
                            });
                            if nd.x {
                                for q in 0..3 {
                                    let src = &wk.cx[cr * gu + q * u..cr * gu + (q + 1) * u];
                                    xs.get_mut(gate(q), u).copy_from_slice(src);
                                }
                            }
                        },
                        CellKind::RnnTanh | CellKind::RnnRelu => unsafe {
                            rnn_bwd::<T>(RnnBwd {
                                relu: cell == CellKind::RnnRelu,
                                gh,
                                dh,
                                hv: &out[r * h + r0..r * h + r0 + u],
                                dpre: ds.get_mut(next(0), u),
                            });
                        },
                    }
                    // SAFETY: own columns of the current half of `dbuf`.
                    let own_hidden = |q: usize| unsafe { ds.get(next(q), u) };
                    if !gru && nd.x {
                        for q in 0..gates {
                            unsafe { xs.get_mut(gate(q), u) }.copy_from_slice(own_hidden(q));
                        }
                    }
                    if wrows > 0 {
                        let dst = if gru { &mut wk.ch } else { &mut wk.cx };
                        for q in 0..gates {
                            dst[cr * gu + q * u..cr * gu + (q + 1) * u]
                                .copy_from_slice(own_hidden(q));
                        }
                        let cb = &mut wk.cb[cr * k..(cr + 1) * k];
                        cb[..isz].copy_from_slice(x.row(t, b, isz));
                        cb[isz..].copy_from_slice(h_prev(0, h));
                    }
                }
                if wrows > 0 {
                    wk.rows += bn;
                    if wk.rows == wrows || t == 0 {
                        wk.flush(gru, gates, isz, h, nd);
                    }
                }
            });
            // The cotangent of h0 (one more recurrent product).
            if nd.h0 {
                // SAFETY: no worker writes any more.
                let d0 = unsafe { ds.get(0, bg) };
                for_workers(&mut workers, |wk| wk.carry(cell, bn, g, d0));
            }
        }
        give(dbuf);
        // Gather the workers' parts.
        let gather = |part: fn(&BwdWorker<T>) -> &Vec<T>| {
            let mut full = vec![T::zero(); bh];
            for wk in &workers {
                for b in 0..bn {
                    full[b * h + wk.r0..b * h + wk.r0 + wk.u]
                        .copy_from_slice(&part(wk)[b * wk.u..(b + 1) * wk.u]);
                }
            }
            full
        };
        let h0_grad = nd.h0.then(|| gather(|w| &w.dh));
        let c0_grad = nd.c0.then(|| gather(|w| &w.dc));
        // Worker row `q·u + j` is row `q·H + r0 + j` of the weights.
        let weight_rows = |cols: std::ops::Range<usize>| {
            let width = cols.len();
            let mut full = vec![T::zero(); g * width];
            for wk in &workers {
                for q in 0..gates {
                    for j in 0..wk.u {
                        let src = &wk.gw[(q * wk.u + j) * k..(q * wk.u + j + 1) * k];
                        let dst = (q * h + wk.r0 + j) * width;
                        full[dst..dst + width].copy_from_slice(&src[cols.clone()]);
                    }
                }
            }
            full
        };
        let bias = |part: fn(&BwdWorker<T>) -> &Vec<T>| {
            let mut full = vec![T::zero(); g];
            for wk in &workers {
                for q in 0..gates {
                    full[q * h + wk.r0..q * h + wk.r0 + wk.u]
                        .copy_from_slice(&part(wk)[q * wk.u..(q + 1) * wk.u]);
                }
            }
            full
        };
        let grads = Grads {
            x: nd.x.then(|| {
                let mut gx = vec![T::zero(); n * isz];
                Rhs::new(w_ih, (isz, 1), g, isz).mul(
                    n,
                    &dxp,
                    (g, 1),
                    &mut gx,
                    isz,
                    false,
                    PARALLEL_FROM,
                );
                gx
            }),
            w_ih: nd.w_ih.then(|| weight_rows(0..isz)),
            w_hh: nd.w_hh.then(|| weight_rows(isz..k)),
            b_ih: nd.b_ih.then(|| bias(|w| &w.gb_ih)),
            b_hh: nd.b_hh.then(|| bias(|w| &w.gb_hh)),
            h0: h0_grad,
            c0: c0_grad,
        };
        for wk in workers {
            give(wk.cx);
            give(wk.ch);
            give(wk.cb);
        }
        give(dxp);
        grads
    })
}
