//! Adaptive computation time (Graves 2016, "Adaptive Computation Time for Recurrent Neural
//! Networks"): a soft loop that decides for itself how many steps to take.
//!
//! Each step `n` updates a state `sₙ = step(sₙ₋₁, n)` and emits a halting probability `hₙ`. The
//! loop stops at the first `N` with `h₁ + … + h_N ≥ 1 - ε` (or at `max_steps`); the step weights
//! are `pₙ = hₙ` for `n < N` and the remainder `R = 1 - (h₁ + … + h_{N-1})` for `n = N`, and the
//! result is the weighted mean `Σ pₙ sₙ`. The ponder cost `N + R` (add it, scaled by a small `τ`,
//! to the loss) is differentiable through `R`, and the number of steps each example took is
//! returned too. `N` itself is discrete: gradients do not flow through the choice of when to stop,
//! exactly as in the paper. Each row of a batch halts on its own.

use crate::{DType, Tensor};

/// Options of [`adaptive_computation_time`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActOptions {
    /// `ε`: a row halts once its halting probabilities sum to `1 - ε` (the paper: 0.01).
    pub epsilon: f64,
    /// The most steps any row takes.
    pub max_steps: usize,
}

impl Default for ActOptions {
    fn default() -> ActOptions {
        ActOptions {
            epsilon: 0.01,
            max_steps: 100,
        }
    }
}

/// What [`adaptive_computation_time`] returns.
#[derive(Clone, Debug)]
pub struct ActOutput {
    /// `Σ pₙ sₙ`, the halting-weighted mean of the states, shaped like a state.
    pub state: Tensor,
    /// `N + R` per row, `[B]`.
    pub ponder_cost: Tensor,
    /// `N` per row.
    pub steps: Vec<usize>,
}

/// Runs the soft loop. See the module docs.
///
/// `state` is `[B, ...]`; `step(state, n)` (n counted from 0) returns the next state of the same
/// shape; `halt(state)` returns the halting probabilities `[B]` in (0, 1) (usually a sigmoid of a
/// linear read-out of the state). The step runs on the whole batch until every row has halted;
/// rows that have halted get weight 0.
///
/// # Panics
/// If `max_steps` is 0, `epsilon` is not in [0, 1), or a step or halting output has the wrong
/// shape.
///
/// ```
/// use nabla::nn::{ActOptions, adaptive_computation_time};
/// use nabla::Tensor;
/// // a state that doubles each step, halting with probability 0.4: N = 3, R = 0.2
/// let out = adaptive_computation_time(
///     &Tensor::from_vec(vec![1.0f64], [1, 1]),
///     |s, _| s * 2.0,
///     |s| s.select(1, 0).full_like(0.4),
///     ActOptions::default(),
/// );
/// assert_eq!(out.steps, vec![3]);
/// assert!((out.ponder_cost.item() - 3.2).abs() < 1e-12);
/// // 0.4·2 + 0.4·4 + 0.2·8
/// assert!((out.state.item() - 4.0).abs() < 1e-12);
/// ```
pub fn adaptive_computation_time<S, H>(
    state: &Tensor,
    mut step: S,
    mut halt: H,
    opts: ActOptions,
) -> ActOutput
where
    S: FnMut(&Tensor, usize) -> Tensor,
    H: FnMut(&Tensor) -> Tensor,
{
    if opts.max_steps == 0 || !(0.0..1.0).contains(&opts.epsilon) {
        panic!(
            "adaptive_computation_time: max_steps {} must be >= 1 and epsilon {} in [0, 1)",
            opts.max_steps, opts.epsilon
        );
    }
    if state.rank() == 0 {
        panic!("adaptive_computation_time: the state must be [B, ...], got a scalar");
    }
    let b = state.dims()[0];
    let dtype = state.dtype();
    // a [B] mask as a tensor that broadcasts against [B, ...]
    let rows = |v: &[bool], s: &Tensor| {
        let m: Vec<f64> = v.iter().map(|&x| if x { 1.0 } else { 0.0 }).collect();
        let mut dims = vec![1; s.rank()];
        dims[0] = b;
        Tensor::from_vec(m, dims).to_dtype(dtype)
    };
    let mut running = vec![true; b];
    let mut cum_values = vec![0.0f64; b];
    let mut cum = Tensor::zeros([b], dtype); // Σ hₙ over the steps that did not halt
    let mut remainder = Tensor::zeros([b], dtype);
    let mut steps = vec![0usize; b];
    let mut s = state.clone();
    let mut out: Option<Tensor> = None;
    for n in 0..opts.max_steps {
        s = step(&s, n);
        if s.dims() != state.dims() {
            panic!(
                "adaptive_computation_time: step {n} returned {} for a state {}",
                s.shape(),
                state.shape()
            );
        }
        let h = halt(&s);
        if h.dims() != [b] {
            panic!(
                "adaptive_computation_time: halt returned {} for a batch of {b} (need [{b}])",
                h.shape()
            );
        }
        let hv = h.to_dtype(DType::F64).to_vec::<f64>();
        let last = n + 1 == opts.max_steps;
        let stop: Vec<bool> = (0..b)
            .map(|i| running[i] && (last || cum_values[i] + hv[i] >= 1.0 - opts.epsilon))
            .collect();
        let cont: Vec<bool> = (0..b).map(|i| running[i] && !stop[i]).collect();
        let (stop_m, cont_m) = (rows(&stop, &h), rows(&cont, &h));
        let r = &stop_m * (1.0 - &cum);
        let p = &cont_m * &h + &r;
        let mut pd = vec![1; s.rank()];
        pd[0] = b;
        let weighted = p.reshape(pd) * &s;
        out = Some(match out {
            Some(o) => o + weighted,
            None => weighted,
        });
        remainder = remainder + r;
        cum = cum + &cont_m * &h;
        for i in 0..b {
            if stop[i] {
                steps[i] = n + 1;
            } else if cont[i] {
                cum_values[i] += hv[i];
            }
        }
        running = cont;
        if !running.iter().any(|&x| x) {
            break;
        }
    }
    let n = Tensor::from_vec(steps.iter().map(|&k| k as f64).collect::<Vec<_>>(), [b]);
    ActOutput {
        state: out.expect("at least one step"),
        ponder_cost: remainder + n.to_dtype(dtype),
        steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::check_grad;
    use rand::{SeedableRng, rngs::StdRng};

    /// A tiny recurrent cell with a sigmoid halting unit; returns the loss-like scalar
    /// `Σ state² + 0.1 Σ ponder` and the steps.
    fn run(p: &[Tensor]) -> (Tensor, Vec<usize>) {
        let (w, bias, v, c, s0) = (&p[0], &p[1], &p[2], &p[3], &p[4]);
        let out = adaptive_computation_time(
            s0,
            |s, _| (s.matmul(w) + bias).tanh(),
            |s| (s.matmul(v).squeeze(-1) + c).sigmoid(),
            ActOptions {
                epsilon: 0.01,
                max_steps: 6,
            },
        );
        let loss = (&out.state * &out.state).sum() + out.ponder_cost.sum() * 0.1;
        (loss, out.steps)
    }

    #[test]
    fn gradient_through_the_soft_loop() {
        // a configuration whose rows take different numbers of steps, so that the check covers
        // halting at different steps and the remainders
        let p = (0..100u64)
            .map(|seed| {
                let mut rng = StdRng::seed_from_u64(seed);
                vec![
                    Tensor::randn([3, 3], DType::F64, &mut rng),
                    Tensor::randn([3], DType::F64, &mut rng),
                    Tensor::randn([3, 1], DType::F64, &mut rng) * 3.0,
                    Tensor::from_vec(vec![-1.0f64], [1]),
                    Tensor::randn([4, 3], DType::F64, &mut rng) * 2.0,
                ]
            })
            .find(|p| {
                let steps = run(p).1;
                steps.iter().any(|&n| n != steps[0])
            })
            .expect("a batch whose rows halt at different steps");
        check_grad(|x: &[Tensor]| run(x).0, &p).unwrap();
    }

    #[test]
    fn max_steps_forces_a_halt_with_the_remainder() {
        let out = adaptive_computation_time(
            &Tensor::from_vec(vec![1.0f64, 1.0], [2, 1]),
            |s, _| s + 1.0,
            |s| s.select(1, 0).full_like(0.1),
            ActOptions {
                epsilon: 0.01,
                max_steps: 3,
            },
        );
        assert_eq!(out.steps, vec![3, 3]);
        // p = 0.1, 0.1, 0.8 on states 2, 3, 4
        let s = out.state.to_vec::<f64>();
        assert!((s[0] - (0.2 + 0.3 + 3.2)).abs() < 1e-12);
        assert!((out.ponder_cost.to_vec::<f64>()[1] - 3.8).abs() < 1e-12);
    }
}
