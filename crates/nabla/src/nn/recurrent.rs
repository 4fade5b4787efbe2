//! The fused primitive behind [`Rnn`](super::Rnn), [`Lstm`](super::Lstm), [`Gru`](super::Gru) and
//! their cells: one recorded operation runs one layer over a whole sequence. The kernels (forward,
//! and the fused first-order backpropagation through time) are the backend's
//! (`backend/cpu/rnn/`); this file holds the operation: its checks, its recording, and its rules.
//!
//! Inputs, in this order: `x [T, B, I]` (any layout), `w_ih [G·H, I]`, `w_hh [G·H, H]`,
//! `b_ih [G·H]`, `b_hh [G·H]`, `h0 [B, H]` and, for the LSTM, `c0 [B, H]` (missing biases and states
//! are passed as zeros). The output is `[(T + S - 1)·B, H]`: first the hidden states of every step,
//! in rows ordered `(b, t)` (batch-major) or `(t, b)` (time-major), then, for the LSTM (S = 2
//! states), the last cell state `[B, H]`. So the caller's sequence output is a contiguous view in
//! either layout.
//!
//! - Reverse rule, first order (when nothing records the backward pass): the backend's fused
//!   backward kernel, which reads the activations its forward kernel saved.
//! - When the backward pass is itself recorded or carries forward-mode tangents (grad of grad,
//!   Hessian-vector products), and for the forward rule, the derivatives are those of
//!   [`reference()`], the same recurrence written with differentiable tensor operations, recomputed
//!   from the inputs (as [`checkpoint`](crate::checkpoint) does): so every order of derivative is
//!   exact.

use crate::autodiff::{InputGrads, Op, record, state};
use crate::backend::{self, RnnSaved};
use crate::tensor::{Tensor, same_dtype};

pub(crate) use crate::backend::CellKind;

// ----- the recorded operation -------------------------------------------------------------------

struct Recurrent {
    cell: CellKind,
    /// Whether the hidden states are stored batch-major in the output.
    batch_major: bool,
    /// The gate activations and other values saved by the forward pass (the backend's reserve
    /// space): detached data, so no reference cycle.
    saved: RnnSaved,
}

/// Whether a computation on `ts` would be recorded (reverse mode) or carry tangents (forward mode).
fn differentiated(ts: &[&Tensor]) -> bool {
    (state::grad_enabled() && ts.iter().any(|t| t.requires_grad()))
        || (state::forward_active() && ts.iter().any(|t| !t.0.tangents.is_empty()))
}

impl Op for Recurrent {
    fn name(&self) -> &str {
        self.cell.name()
    }

    fn vjp(&self, inputs: &[Tensor], out: &Tensor, g: &Tensor, needs: &[bool]) -> InputGrads {
        let mut watched: Vec<&Tensor> = inputs.iter().collect();
        watched.push(g);
        if !differentiated(&watched) {
            return backend::rnn_backward(
                self.cell,
                self.batch_major,
                [inputs, &[out.clone(), g.clone()]],
                needs,
                &self.saved,
            );
        }
        // The backward pass is being differentiated: use the differentiable recurrence.
        let (cell, bm) = (self.cell, self.batch_major);
        let (_, pullback) = crate::vjp(|xs: &[Tensor]| reference(cell, bm, xs), inputs);
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
        let (cell, bm) = (self.cell, self.batch_major);
        crate::jvp(|xs: &[Tensor]| reference(cell, bm, xs), inputs, &ts).1
    }
}

/// The recurrence written with differentiable tensor operations: the definition the fused kernels
/// implement, and the source of higher-order derivatives. Same inputs and output as [`recurrent`].
pub(crate) fn reference(cell: CellKind, batch_major: bool, inputs: &[Tensor]) -> Tensor {
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
    let hseq = if batch_major {
        Tensor::stack(&outs, 1)
    } else {
        Tensor::stack(&outs, 0)
    }
    .reshape([tn * bn, h]);
    match cs {
        Some(c) if cell == CellKind::Lstm => Tensor::concat(&[hseq, c], 0),
        _ => hseq,
    }
}

/// Runs one recurrent layer over the sequence `x [T, B, I]` (any strides): see the module
/// documentation for the inputs and the output `[(T + S - 1)·B, H]`, whose hidden states are
/// stored batch-major when `batch_major`. `c0` is required for the LSTM and ignored otherwise.
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
    batch_major: bool,
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
    if tn == 0 || bn == 0 {
        panic!(
            "{name}: the input sequence {} has no time steps or an empty batch",
            x.shape()
        );
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
    let (out, saved) = backend::rnn_forward(cell, &inputs, batch_major);
    if !differentiated(&inputs) {
        // Nothing will ask for gradients: recycle the saved activations right away.
        drop(saved);
        return out;
    }
    let op = Recurrent {
        cell,
        batch_major,
        saved,
    };
    record(out, op, &inputs)
}

#[cfg(test)]
mod tests {
    use super::{CellKind, recurrent, reference};
    use crate::{DType, Tensor};
    use rand::SeedableRng;

    /// The fused kernels (forward and first-order backward) against the tensor-operation
    /// reference, at sizes whose steps are split over two workers, for both layouts; strided
    /// (batch-first) inputs are read in place.
    fn fused_matches_reference(cell: CellKind, dtype: DType, tol: f64) {
        let (t, b, i, h) = (3, 16, 8, 128);
        let g = cell.gates() * h;
        let mut rng = rand::rngs::StdRng::seed_from_u64(cell.gates() as u64);
        let mut r = |shape: &[usize], s: f64| {
            (Tensor::randn(shape.to_vec(), DType::F64, &mut rng) * s).to_dtype(dtype)
        };
        let x_bt = r(&[b, t, i], 1.0);
        let mut inputs = vec![
            x_bt.transpose(0, 1),
            r(&[g, i], 0.3),
            r(&[g, h], 0.1),
            r(&[g], 0.3),
            r(&[g], 0.3),
            r(&[b, h], 0.5),
        ];
        if cell == CellKind::Lstm {
            inputs.push(r(&[b, h], 0.5));
        }
        let rows = (t + cell.states() - 1) * b;
        let u = r(&[rows, h], 1.0);
        for batch_major in [false, true] {
            let fused = |xs: &[Tensor]| {
                let c0 = xs.get(6);
                recurrent(
                    cell,
                    &xs[0],
                    &xs[1],
                    &xs[2],
                    &xs[3],
                    &xs[4],
                    &xs[5],
                    c0,
                    batch_major,
                )
            };
            let (y1, pull1) = crate::vjp(fused, &inputs);
            let (y2, pull2) = crate::vjp(|xs: &[Tensor]| reference(cell, batch_major, xs), &inputs);
            let close = |what: &str, a: &Tensor, b: &Tensor| {
                assert_eq!(a.shape(), b.shape(), "{cell:?} {what}");
                let (a, b) = (a.to_vec::<f64>(), b.to_vec::<f64>());
                let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                for (k, (p, q)) in a.iter().zip(&b).enumerate() {
                    assert!(
                        (p - q).abs() <= tol * scale,
                        "{cell:?} {what}[{k}]: {p} vs {q}"
                    );
                }
            };
            close("output", &y1, &y2);
            let want = pull2(&u);
            for (k, (a, b)) in pull1(&u).iter().zip(&want).enumerate() {
                close(&format!("gradient {k} (batch-major {batch_major})"), a, b);
            }
            // Subsets of the inputs (the reverse rule computes only what is needed).
            let subsets: &[&[usize]] = &[&[1, 2], &[2], &[1, 4], &[0, 3], &[5], &[6]];
            for subset in subsets {
                if subset.iter().any(|&k| k >= inputs.len()) {
                    continue;
                }
                let vars: Vec<Tensor> = subset.iter().map(|&k| inputs[k].clone()).collect();
                let part = |vs: &[Tensor]| {
                    let mut all = inputs.clone();
                    for (&k, v) in subset.iter().zip(vs) {
                        all[k] = v.clone();
                    }
                    fused(&all)
                };
                let (_, pull) = crate::vjp(part, &vars);
                for (&k, got) in subset.iter().zip(&pull(&u)) {
                    close(&format!("gradient {k} alone {subset:?}"), got, &want[k]);
                }
            }
        }
    }

    #[test]
    fn fused_kernels_match_reference_on_two_workers() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("pool");
        pool.install(|| {
            assert!(crate::backend::cpu::rnn::split_units(128, 16 * 128 * 128).len() == 2);
            for cell in [
                CellKind::Lstm,
                CellKind::Gru,
                CellKind::RnnTanh,
                CellKind::RnnRelu,
            ] {
                fused_matches_reference(cell, DType::F64, 1e-12);
                fused_matches_reference(cell, DType::F32, 2e-5);
            }
        });
    }
}
