//! The whole-sequence forward kernel of a recurrent layer.

use super::cells::*;
use super::*;

/// A worker's share of a forward pass: its units and the weights that feed them.
struct FwdWorker<T: RnnFloat> {
    r0: usize,
    u: usize,
    /// `[W_ih | W_hh]ᵀ` restricted to the worker's gate columns: `[I + H, blocks·u]`.
    w: Rhs<T>,
    /// This step's operand `[x_t | h_{t-1}]`: `[B, I + H]`.
    a: Vec<T>,
    /// Its product with `w`: `[B, blocks·u]`.
    pre: Vec<T>,
}

/// The forward pass: the output `[(T+S-1)·B, H]` (the hidden states in the order of `rows`, then
/// the last cell state `[B, H]` for the LSTM), the gate activations `[T·B, G·H]` (LSTM, GRU) and
/// the extra saved values (LSTM: c then tanh c, `[2, T·B, H]`; GRU: `W_hn h + b_hn`, `[T·B, H]`),
/// all in the order of `rows`.
///
/// Each step is one product `[x_t | h_{t-1}] [W_ih | W_hh]ᵀ` per worker (the input projection
/// rides along with the recurrent one, so the pre-activations are produced in the L1 cache of the
/// core that uses them), then one elementwise pass.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_kernel<T: RnnFloat>(
    cell: CellKind,
    d: Dims,
    rows: Rows,
    x: &XView<'_, T>,
    w_ih: &[T],
    w_hh: &[T],
    b_ih: &[T],
    b_hh: &[T],
    h0: &[T],
    c0: &[T],
) -> (Arc<storage::Buffer<T>>, Vec<T>, Vec<T>) {
    let Dims {
        t: tn,
        b: bn,
        i: isz,
        h,
    } = d;
    let gates = cell.gates();
    let g = gates * h;
    let (bh, n, k) = (bn * h, tn * bn, isz + h);
    let (gru, rnn) = (
        cell == CellKind::Gru,
        matches!(cell, CellKind::RnnTanh | CellKind::RnnRelu),
    );
    // Column blocks of the per-step product: the gates, the GRU's n gate in two parts.
    let blocks = if gru { 4 } else { gates };
    let mut out = storage::zeroed::<T>((tn + cell.states() - 1) * bh);
    // Every element of these is written below.
    let mut acts = take::<T>(if rnn { 0 } else { n * g });
    let mut extra = take::<T>(match cell {
        CellKind::Lstm => 2 * n * h,
        CellKind::Gru => n * h,
        _ => 0,
    });
    // The hidden state of the previous and of the current step, contiguous.
    let mut hbuf = take::<T>(2 * bh);
    let units = split_units(h, bn * g * k);
    {
        let o = Arc::get_mut(&mut out).expect("fresh");
        let (ab, e, hb) = (&mut acts[..], &mut extra[..], &mut hbuf[..]);
        in_pool(units.len() > 1, || {
            let bias: Vec<T> = b_ih.iter().zip(b_hh).map(|(&p, &q)| p + q).collect();
            let mut workers: Vec<FwdWorker<T>> = units
                .iter()
                .map(|&(r0, u)| {
                    // Row `c` of `w` is column `c` of the worker's product: [W_ih | W_hh] rows of
                    // its units, gate by gate (GRU: r, z, then n from x only, n from h only).
                    let mut w = take::<T>(blocks * u * k);
                    for blk in 0..blocks {
                        for j in 0..u {
                            let dst = &mut w[(blk * u + j) * k..(blk * u + j + 1) * k];
                            let q = blk.min(gates - 1);
                            let src = (q * h + r0 + j) * isz..(q * h + r0 + j + 1) * isz;
                            let srch = (q * h + r0 + j) * h..(q * h + r0 + j + 1) * h;
                            let (dx, dh) = dst.split_at_mut(isz);
                            if gru && blk == 3 {
                                dx.fill(T::zero());
                            } else {
                                dx.copy_from_slice(&w_ih[src]);
                            }
                            if gru && blk == 2 {
                                dh.fill(T::zero());
                            } else {
                                dh.copy_from_slice(&w_hh[srch]);
                            }
                        }
                    }
                    let rhs = Rhs::new(&w, (1, k), k, blocks * u);
                    give(w);
                    FwdWorker {
                        r0,
                        u,
                        w: rhs,
                        a: take(bn * k),
                        pre: take(bn * blocks * u),
                    }
                })
                .collect();
            let (os, xs, es, hs) = (
                Shared::new(o),
                Shared::new(ab),
                Shared::new(e),
                Shared::new(hb),
            );
            run_steps(&mut workers, tn, |t, wk| {
                let (r0, u, bu) = (wk.r0, wk.u, blocks * wk.u);
                // SAFETY (for every `get`/`get_mut` below): during step t the workers write
                // only their own units' columns of the rows of step t in `out`, `acts`,
                // `extra` and of the current half of `hbuf`, and read the other half of
                // `hbuf` and their own columns of step t-1 in `extra` (not written in this
                // step).
                let h_prev = if t == 0 {
                    h0
                } else {
                    unsafe { hs.get(((t - 1) % 2) * bh, bh) }
                };
                for b in 0..bn {
                    let dst = &mut wk.a[b * k..(b + 1) * k];
                    dst[..isz].copy_from_slice(x.row(t, b, isz));
                    dst[isz..].copy_from_slice(&h_prev[b * h..(b + 1) * h]);
                }
                wk.w.mul(bn, &wk.a, (k, 1), &mut wk.pre, bu, false, usize::MAX);
                for b in 0..bn {
                    let pre = &wk.pre[b * bu..(b + 1) * bu];
                    let r = rows.at(t, b);
                    let gate = |q: usize| r * g + q * h + r0;
                    let col = b * h + r0;
                    let hcur = unsafe { hs.get_mut((t % 2) * bh + col, u) };
                    match cell {
                        CellKind::Lstm => unsafe {
                            let c_prev = if t == 0 {
                                &c0[col..col + u]
                            } else {
                                es.get(rows.at(t - 1, b) * h + r0, u)
                            };
                            lstm_fwd::<T>(LstmFwd {
                                pre,
                                bias: [0, 1, 2, 3].map(|q| seg(&bias, q, h, r0, u)),
                                acts: [0, 1, 2, 3].map(|q| xs.get_mut(gate(q), u)),
                                c_prev,
                                c: es.get_mut(r * h + r0, u),
                                tc: es.get_mut((n + r) * h + r0, u),
                                h: &mut *hcur,
                            });
                        },
                        CellKind::Gru => unsafe {
                            gru_fwd::<T>(GruFwd {
                                pre,
                                b_ih: [0, 1, 2].map(|q| seg(b_ih, q, h, r0, u)),
                                b_hh: [0, 1, 2].map(|q| seg(b_hh, q, h, r0, u)),
                                acts: [0, 1, 2].map(|q| xs.get_mut(gate(q), u)),
                                h_prev: &h_prev[col..col + u],
                                hn: es.get_mut(r * h + r0, u),
                                h: &mut *hcur,
                            });
                        },
                        CellKind::RnnTanh | CellKind::RnnRelu => rnn_fwd::<T>(RnnFwd {
                            relu: cell == CellKind::RnnRelu,
                            pre,
                            bias: seg(&bias, 0, h, r0, u),
                            h: &mut *hcur,
                        }),
                    }
                    unsafe { os.get_mut(r * h + r0, u) }.copy_from_slice(hcur);
                }
            });
            for wk in workers {
                give(wk.a);
                give(wk.pre);
            }
        });
        if cell == CellKind::Lstm {
            for b in 0..bn {
                let r = rows.at(tn - 1, b);
                o[tn * bh + b * h..tn * bh + (b + 1) * h].copy_from_slice(&e[r * h..(r + 1) * h]);
            }
        }
    }
    give(hbuf);
    (out, acts, extra)
}
