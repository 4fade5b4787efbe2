//! Learned local plasticity: a layer of model neurons whose synapses change only by a local rule
//! `Δw = f_θ(pre, post, w, m)`, with `f_θ` a small MLP shared by every synapse and `m` a
//! modulatory signal broadcast to each neuron (its error, target minus activity). There is no
//! backprop inside the learner: a synapse sees only its own presynaptic input, its neuron's
//! activity and modulator, and its own weight.
//!
//! The task family is few-shot regression on random linear maps `y = A x` (`A` with standard
//! normal entries scaled by `1/√inputs`, `x` standard normal): an episode shows the `K` support
//! pairs one at a time, in order, for a number of steps (cycling), starting from zero weights; the
//! score is the mean squared error on fresh query inputs of the same map. Every step is
//! vectorised over tasks and synapses: the rule runs once per step on a `[tasks · synapses, 4]`
//! tensor.

use nabla::rand::Rng;
use nabla::{DType, Tensor, no_grad, value_and_grad};

/// A batch of tasks: support `xs [B, K, I]`, `ys [B, K, O]`, query `xq [B, Q, I]`, `yq [B, Q, O]`.
pub struct Tasks {
    xs: Tensor,
    ys: Tensor,
    xq: Tensor,
    yq: Tensor,
}

impl Tasks {
    /// `b` random linear maps from `inputs` to `outputs`, `k` support and `q` query points each.
    pub fn sample<R: Rng + ?Sized>(
        b: usize,
        inputs: usize,
        outputs: usize,
        k: usize,
        q: usize,
        rng: &mut R,
    ) -> Tasks {
        let a =
            Tensor::randn([b, outputs, inputs], DType::F32, rng) * (1.0 / (inputs as f64).sqrt());
        let xs = Tensor::randn([b, k, inputs], DType::F32, rng);
        let xq = Tensor::randn([b, q, inputs], DType::F32, rng);
        let map = |x: &Tensor| x.matmul(&a.transpose(1, 2));
        Tasks {
            ys: map(&xs),
            yq: map(&xq),
            xs,
            xq,
        }
    }

    /// The same tasks in `dtype` (`f64` for gradient checks).
    pub fn to_dtype(&self, dtype: DType) -> Tasks {
        Tasks {
            xs: self.xs.to_dtype(dtype),
            ys: self.ys.to_dtype(dtype),
            xq: self.xq.to_dtype(dtype),
            yq: self.yq.to_dtype(dtype),
        }
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.xs.dims()[0]
    }

    /// Whether there are no tasks.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn dims(&self) -> (usize, usize, usize, usize) {
        let d = self.xs.dims();
        (d[0], d[1], d[2], self.ys.dims()[2])
    }

    /// The support pair shown at step `t`: `x [B, I]`, `y [B, O]`.
    fn example(&self, t: usize) -> (Tensor, Tensor) {
        let k = t % self.xs.dims()[1];
        (self.xs.select(1, k), self.ys.select(1, k))
    }

    /// The neurons' activity `post [B, O]` for inputs `x [B, I]` under weights `w [B, O, I]`.
    fn activity(w: &Tensor, x: &Tensor) -> Tensor {
        (w * x.unsqueeze(1)).sum_axis(-1, false)
    }

    /// Mean squared error of weights `w [B, O, I]` on the query points.
    pub fn query_loss(&self, w: &Tensor) -> Tensor {
        (self.xq.matmul(&w.transpose(1, 2)) - &self.yq)
            .square()
            .mean()
    }
}

/// How a synapse changes in one step.
pub enum Rule<'a> {
    /// The learned rule: an MLP `4 → hidden → 1` (tanh) whose parameters are the flat vector
    /// `θ` (see [`RuleNet`]).
    Learned(&'a RuleNet, &'a Tensor),
    /// Supervised Hebbian: `Δw = η · pre · post`, the neuron's activity clamped to its target.
    Hebbian(f64),
    /// Gradient descent on each example's squared error `½‖y − W x‖²` (its gradient by autodiff).
    Backprop(f64),
}

/// The shape of the learned rule's MLP and the scale of its output.
#[derive(Clone, Copy, Debug)]
pub struct RuleNet {
    /// Hidden tanh units.
    pub hidden: usize,
    /// The MLP's output is multiplied by this to give `Δw`.
    pub scale: f64,
}

/// Inputs of the rule per synapse: presynaptic activity, postsynaptic activity, weight, modulator.
pub const RULE_INPUTS: usize = 4;

impl RuleNet {
    /// Length of the flat parameter vector `θ`.
    pub fn num_params(&self) -> usize {
        RULE_INPUTS * self.hidden + self.hidden + self.hidden + 1
    }

    /// A random `θ`: weights `N(0, 1/fan_in)`, biases zero.
    pub fn init<R: Rng + ?Sized>(&self, rng: &mut R) -> Tensor {
        let h = self.hidden;
        Tensor::concat(
            &[
                Tensor::randn([RULE_INPUTS * h], DType::F32, rng)
                    * (1.0 / (RULE_INPUTS as f64).sqrt()),
                Tensor::zeros([h], DType::F32),
                Tensor::randn([h], DType::F32, rng) * (1.0 / (h as f64).sqrt()),
                Tensor::zeros([1], DType::F32),
            ],
            0,
        )
    }

    /// `Δw` for synapse features `[N, 4]` (pre, post, w, m): `[N]`.
    pub fn apply(&self, theta: &Tensor, feats: &Tensor) -> Tensor {
        if theta.dims() != [self.num_params()] {
            panic!(
                "RuleNet: θ must be [{}] for {} hidden units, got {}",
                self.num_params(),
                self.hidden,
                theta.shape()
            );
        }
        let h = self.hidden;
        let w1 = theta
            .narrow(0, 0, RULE_INPUTS * h)
            .reshape([h, RULE_INPUTS]);
        let b1 = theta.narrow(0, RULE_INPUTS * h, h);
        let w2 = theta.narrow(0, RULE_INPUTS * h + h, h);
        let b2 = theta.narrow(0, RULE_INPUTS * h + 2 * h, 1);
        let z = (feats.matmul(&w1.t()) + b1).tanh();
        (z.matmul(&w2) + b2) * self.scale
    }
}

/// Runs one inner learning episode on every task of `tasks` for `steps` steps from zero weights
/// and returns the final weights `[B, O, I]`. Recorded when `θ` is a variable (meta-training
/// by backprop through the episode).
pub fn episode(rule: &Rule<'_>, tasks: &Tasks, steps: usize) -> Tensor {
    let (b, _, i, o) = tasks.dims();
    let mut w = Tensor::zeros([b, o, i], tasks.xs.dtype());
    for t in 0..steps {
        let (x, y) = tasks.example(t);
        let post = Tasks::activity(&w, &x);
        let dw = match rule {
            Rule::Learned(net, theta) => {
                let m = &y - &post;
                let shape = [b, o, i];
                let feats = Tensor::stack(
                    &[
                        x.unsqueeze(1).expand(shape),
                        post.unsqueeze(2).expand(shape),
                        w.clone(),
                        m.unsqueeze(2).expand(shape),
                    ],
                    -1,
                )
                .reshape([b * o * i, RULE_INPUTS]);
                net.apply(theta, &feats).reshape(shape)
            }
            Rule::Hebbian(eta) => y.unsqueeze(2) * x.unsqueeze(1) * *eta,
            Rule::Backprop(lr) => {
                let (_, g) = value_and_grad(
                    |p: &[Tensor]| (&y - Tasks::activity(&p[0], &x)).square().sum() * 0.5,
                    std::slice::from_ref(&w),
                );
                g.into_iter().next().expect("one gradient").neg() * *lr
            }
        };
        w = w + dw;
    }
    w
}

/// The mean query loss after an episode, not recorded.
pub fn evaluate(rule: &Rule<'_>, tasks: &Tasks, steps: usize) -> f64 {
    no_grad(|| tasks.query_loss(&episode(rule, tasks, steps)).item())
}

/// The learning rates a hand-written rule is tuned over: `10^(k/8)` for `k = -24..=4`.
pub fn rate_grid() -> Vec<f64> {
    (-24..=4).map(|k| 10f64.powf(k as f64 / 8.0)).collect()
}

/// The rate on [`rate_grid`] with the lowest query loss of `make(rate)` on `tasks`, and that loss.
pub fn tune(make: impl Fn(f64) -> Rule<'static>, tasks: &Tasks, steps: usize) -> (f64, f64) {
    let mut best = (f64::NAN, f64::INFINITY);
    for r in rate_grid() {
        let l = evaluate(&make(r), tasks, steps);
        if l.is_finite() && l < best.1 {
            best = (r, l);
        }
    }
    best
}

/// `Δw` of the learned rule over a grid: `nx × ny` values, row-major from the lowest `y`, with
/// the features `(pre, post, w, m)` given by `at(x, y)`.
pub fn rule_grid(
    net: &RuleNet,
    theta: &Tensor,
    xs: &[f64],
    ys: &[f64],
    at: impl Fn(f64, f64) -> [f64; RULE_INPUTS],
) -> Vec<f64> {
    let mut feats = Vec::with_capacity(xs.len() * ys.len() * RULE_INPUTS);
    for &y in ys {
        for &x in xs {
            feats.extend(at(x, y).iter().map(|v| *v as f32));
        }
    }
    let f = Tensor::from_vec(feats, [xs.len() * ys.len(), RULE_INPUTS]);
    no_grad(|| {
        net.apply(&theta.detach(), &f)
            .to_dtype(DType::F64)
            .to_vec::<f64>()
    })
}
