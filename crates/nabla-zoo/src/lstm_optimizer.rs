//! A learned optimiser (Andrychowicz et al. 2016, "Learning to learn by gradient descent by
//! gradient descent"): a two-layer LSTM applied to every coordinate of the parameters separately,
//! with weights shared across coordinates, reading the gradient and writing the update. The
//! coordinates are the rows of one batch, so a step over `N` parameters is one LSTM step on
//! `[N, features]` (tensor ops, no per-scalar loop).
//!
//! Unrolled optimisation ([`unroll`]) records the whole trajectory so that the sum of the
//! optimisee's losses can be differentiated with respect to the LSTM's weights, either through the
//! optimisee's gradient (second order: the optimisee's Hessian enters the meta-gradient) or with
//! that gradient detached (first order).

use nabla::meta::{DiffAdam, DiffOptimizer, DiffSgd, OptState, Order, inner_grad};
use nabla::nn::{Forward, Linear, LstmCell, Module};
use nabla::rand::Rng;
use nabla::{Tensor, no_grad};

/// The paper's preprocessing constant `p`: gradients of magnitude at least `e^-p` are read as
/// `(log|g| / p, sign g)`, smaller ones as `(-1, e^p g)`.
pub const PREPROCESS_P: f64 = 10.0;

/// The coordinate-wise LSTM optimiser.
#[derive(Module)]
pub struct LstmOptimizer {
    /// First LSTM layer (reads the two preprocessed gradient features).
    pub l1: LstmCell,
    /// Second LSTM layer.
    pub l2: LstmCell,
    /// Linear read-out of one update per coordinate.
    pub out: Linear,
    /// The read-out is multiplied by this (the paper's output scaling, 0.1).
    #[module(skip)]
    pub scale: f64,
}

/// The LSTM's state for every coordinate: `(h, c)` of both layers, each `[N, hidden]`.
#[derive(Clone)]
pub struct LstmState {
    h1: Tensor,
    c1: Tensor,
    h2: Tensor,
    c2: Tensor,
}

impl LstmState {
    /// The same state cut off from the graph (the truncation point of truncated backprop).
    pub fn detach(&self) -> LstmState {
        LstmState {
            h1: self.h1.detach(),
            c1: self.c1.detach(),
            h2: self.h2.detach(),
            c2: self.c2.detach(),
        }
    }
}

/// The paper's gradient preprocessing, coordinate-wise: `g` of any shape to `[N, 2]`.
pub fn preprocess(g: &Tensor) -> Tensor {
    let g = g.reshape([g.numel()]);
    let floor = (-PREPROCESS_P).exp();
    let a = g.abs();
    let big = a.ge_scalar(floor);
    // the clamp keeps log finite (and its derivative zero) where the other branch is taken
    let log_part = a.clamp_min(floor).ln() * (1.0 / PREPROCESS_P);
    let minus_one = Tensor::full([1], -1.0, g.dtype());
    let f1 = big.where_(&log_part, &minus_one);
    let f2 = big.where_(&g.sign(), &(&g * PREPROCESS_P.exp()));
    Tensor::stack(&[f1, f2], 1)
}

impl LstmOptimizer {
    /// Two LSTM layers of `hidden` units and a linear read-out, `f32`, output scaled by `scale`.
    pub fn new<R: Rng + ?Sized>(hidden: usize, scale: f64, rng: &mut R) -> LstmOptimizer {
        LstmOptimizer {
            l1: LstmCell::new(2, hidden, rng),
            l2: LstmCell::new(hidden, hidden, rng),
            out: Linear::new(hidden, 1, rng),
            scale,
        }
    }

    /// The zero state for `n` coordinates (of the weights' dtype).
    pub fn zero_state(&self, n: usize) -> LstmState {
        let z = Tensor::zeros([n, self.l1.hidden_size()], self.out.weight.dtype());
        LstmState {
            h1: z.clone(),
            c1: z.clone(),
            h2: z.clone(),
            c2: z,
        }
    }

    /// One step: the update for gradient `g` (any shape; the same shape comes back) and the next
    /// state.
    pub fn update(&self, g: &Tensor, s: &LstmState) -> (Tensor, LstmState) {
        let x = preprocess(g);
        let (h1, c1) = self.l1.forward_with_state(&x, Some((&s.h1, &s.c1)));
        let (h2, c2) = self.l2.forward_with_state(&h1, Some((&s.h2, &s.c2)));
        let u = self.out.forward(&h2) * self.scale;
        (u.reshape(g.dims().to_vec()), LstmState { h1, c1, h2, c2 })
    }
}

/// An optimisee: the scalar loss at step `t` (the step picks a minibatch; a fixed problem
/// ignores it) of the parameters.
pub type Objective<'a> = &'a dyn Fn(usize, &Tensor) -> Tensor;

/// One recorded stretch of optimisation: `steps` updates of `theta` by `net` from `state`,
/// starting at step `t0` of the run.
///
/// Returns the meta-loss (the sum of the objective at the `steps` new iterates; it is recorded,
/// so its gradient reaches `net`), the final iterate and state, and the objective's value before
/// each update. With [`Order::First`] the optimisee's gradient enters the LSTM as a constant, so
/// no second derivative of the objective is taken.
pub fn unroll(
    net: &LstmOptimizer,
    theta: &Tensor,
    state: &LstmState,
    t0: usize,
    steps: usize,
    f: Objective<'_>,
    order: Order,
) -> (Tensor, Tensor, LstmState, Vec<f64>) {
    let mut theta = theta.clone();
    let mut state = state.clone();
    let mut meta = Tensor::scalar(0.0f64).to_dtype(theta.dtype());
    let mut seen = Vec::with_capacity(steps);
    for k in 0..steps {
        let t = t0 + k;
        let (loss, g) = inner_grad(
            |p: &[Tensor]| f(t, &p[0]),
            std::slice::from_ref(&theta),
            order,
        );
        seen.push(loss.item());
        if k > 0 {
            // first order returns the loss as a constant: the meta-loss needs it recorded
            meta = meta
                + match order {
                    Order::Second => loss,
                    Order::First => f(t, &theta),
                };
        }
        let g = g.into_iter().next().expect("one gradient");
        let (u, s) = net.update(&g, &state);
        theta = theta + u;
        state = s;
    }
    meta = meta + f(t0 + steps, &theta);
    (meta, theta, state, seen)
}

/// A hand-written optimiser to compare with (the differentiable steps of [`nabla::meta`], run
/// without recording).
#[derive(Clone, Copy, Debug)]
pub enum Baseline {
    /// Plain gradient descent with this learning rate.
    Sgd(f64),
    /// Adam (β = 0.9, 0.999, ε = 1e-8) with this learning rate.
    Adam(f64),
}

/// An optimiser to run on an objective without meta-training.
pub enum Method<'a> {
    /// The LSTM optimiser.
    Learned(&'a LstmOptimizer),
    /// A baseline.
    Baseline(Baseline),
}

/// Runs `method` on `f` from `theta0` for `steps` updates without recording anything for
/// meta-gradients. Returns `eval` of every iterate, `θ_0` to `θ_steps` (`steps + 1` values).
pub fn optimise(
    method: &Method<'_>,
    theta0: &Tensor,
    steps: usize,
    f: Objective<'_>,
    eval: &dyn Fn(&Tensor) -> f64,
) -> Vec<f64> {
    let mut theta = theta0.detach();
    let mut out = Vec::with_capacity(steps + 1);
    out.push(eval(&theta));
    let lr = |v: f64| Tensor::scalar(v).to_dtype(theta0.dtype());
    let (sgd, adam) = match method {
        Method::Baseline(Baseline::Sgd(v)) => (Some(DiffSgd::new(lr(*v))), None),
        Method::Baseline(Baseline::Adam(v)) => (None, Some(DiffAdam::new(lr(*v)))),
        Method::Learned(_) => (None, None),
    };
    let mut opt_state = match (&sgd, &adam) {
        (Some(o), _) => o.init(std::slice::from_ref(&theta)),
        (_, Some(o)) => o.init(std::slice::from_ref(&theta)),
        _ => OptState {
            step: 0,
            buffers: vec![],
        },
    };
    let mut state = match method {
        Method::Learned(net) => Some(net.zero_state(theta.numel())),
        Method::Baseline(_) => None,
    };
    for t in 0..steps {
        let (_, g) = inner_grad(
            |p: &[Tensor]| f(t, &p[0]),
            std::slice::from_ref(&theta),
            Order::First,
        );
        theta = no_grad(|| {
            if let Method::Learned(net) = method {
                let (u, s) = net.update(&g[0], state.as_ref().expect("state"));
                state = Some(s);
                return &theta + u;
            }
            let params = std::slice::from_ref(&theta);
            let (p, s) = match (&sgd, &adam) {
                (Some(o), _) => o.update(params, &g, &opt_state),
                (_, Some(o)) => o.update(params, &g, &opt_state),
                _ => unreachable!("a baseline has its optimiser"),
            };
            opt_state = s;
            p.into_iter().next().expect("one parameter")
        });
        out.push(eval(&theta));
    }
    out
}

/// The learning rates a baseline is tuned over: `10^(k/4)` for `k = -20..=2` (1e-5 to about 3).
pub fn lr_grid() -> Vec<f64> {
    (-20..=2).map(|k| 10f64.powf(k as f64 / 4.0)).collect()
}

/// The learning rate of `make(lr)` on the grid with the lowest final `eval` (a non-finite result
/// counts as worst), and that value.
pub fn tune(
    make: impl Fn(f64) -> Baseline,
    theta0: &Tensor,
    steps: usize,
    f: Objective<'_>,
    eval: &dyn Fn(&Tensor) -> f64,
) -> (f64, f64) {
    let mut best = (f64::NAN, f64::INFINITY);
    for lr in lr_grid() {
        let last = *optimise(&Method::Baseline(make(lr)), theta0, steps, f, eval)
            .last()
            .expect("at least the start");
        if last.is_finite() && last < best.1 {
            best = (lr, last);
        }
    }
    best
}
