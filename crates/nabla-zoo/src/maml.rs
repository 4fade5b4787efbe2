//! MAML (Finn et al. 2017) on sinusoid regression: the task family, the 1-40-40-1 ReLU network
//! with the tasks of a meta-batch as a leading batch dimension (one batched matmul per layer for
//! all tasks), adaptation by SGD on a task's support points, and the meta-loss.
//!
//! Parameters are six tensors with a leading task dimension: `[1, …]` for the shared
//! initialisation θ, `[T, …]` once adapted to `T` tasks.

use nabla::meta::{DiffOptimizer, DiffSgd, Order, inner_grad};
use nabla::rand::{Rng, RngExt};
use nabla::{DType, Tensor};

/// Amplitudes are drawn from `U[AMP.0, AMP.1]`.
pub const AMP: (f64, f64) = (0.1, 5.0);
/// Phases are drawn from `U[PHASE.0, PHASE.1]`.
pub const PHASE: (f64, f64) = (0.0, std::f64::consts::PI);
/// Inputs are drawn from `U[-X_MAX, X_MAX]`.
pub const X_MAX: f64 = 5.0;
/// Hidden units per layer.
pub const HIDDEN: usize = 40;

/// Sinusoids `y = a sin(x - φ)`, one per task.
#[derive(Clone, Debug)]
pub struct Tasks {
    /// Amplitudes.
    pub amp: Vec<f64>,
    /// Phases.
    pub phase: Vec<f64>,
}

impl Tasks {
    /// `n` tasks drawn from the family.
    pub fn sample<R: Rng + ?Sized>(n: usize, rng: &mut R) -> Tasks {
        let mut amp = Vec::with_capacity(n);
        let mut phase = Vec::with_capacity(n);
        for _ in 0..n {
            amp.push(rng.random_range(AMP.0..AMP.1));
            phase.push(rng.random_range(PHASE.0..PHASE.1));
        }
        Tasks { amp, phase }
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.amp.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.amp.is_empty()
    }

    /// `k` random points of each task: inputs and targets `[T, k, 1]` (f32).
    pub fn points<R: Rng + ?Sized>(&self, k: usize, rng: &mut R) -> (Tensor, Tensor) {
        let mut xs = Vec::with_capacity(self.len() * k);
        for _ in 0..self.len() * k {
            xs.push(rng.random_range(-X_MAX..X_MAX));
        }
        self.at(xs, k)
    }

    /// The tasks at the same `n` inputs evenly spaced over `[-5, 5]`.
    pub fn grid(&self, n: usize) -> (Tensor, Tensor) {
        let one: Vec<f64> = (0..n)
            .map(|i| -X_MAX + 2.0 * X_MAX * i as f64 / (n - 1).max(1) as f64)
            .collect();
        let xs: Vec<f64> = (0..self.len()).flat_map(|_| one.iter().copied()).collect();
        self.at(xs, n)
    }

    /// Inputs `xs` (`k` per task, task-major) and the targets there.
    pub fn at(&self, xs: Vec<f64>, k: usize) -> (Tensor, Tensor) {
        let ys: Vec<f64> = xs
            .iter()
            .enumerate()
            .map(|(i, x)| self.amp[i / k] * (x - self.phase[i / k]).sin())
            .collect();
        let t = self.len();
        (
            Tensor::from_vec(xs, [t, k, 1]).to_dtype(DType::F32),
            Tensor::from_vec(ys, [t, k, 1]).to_dtype(DType::F32),
        )
    }
}

/// The network's parameters `[w1 [1,1,40], b1 [1,1,40], w2 [1,40,40], b2 [1,1,40], w3 [1,40,1],
/// b3 [1,1,1]]`, initialised as PyTorch's `nn.Linear` (uniform in ±1/sqrt(fan-in)), f32.
pub fn init_params<R: Rng + ?Sized>(rng: &mut R) -> Vec<Tensor> {
    let layer = |fan_in: usize, fan_out: usize, rng: &mut R| {
        let s = 1.0 / (fan_in as f64).sqrt();
        (
            Tensor::uniform([1, fan_in, fan_out], -s, s, DType::F32, rng),
            Tensor::uniform([1, 1, fan_out], -s, s, DType::F32, rng),
        )
    };
    let (w1, b1) = layer(1, HIDDEN, rng);
    let (w2, b2) = layer(HIDDEN, HIDDEN, rng);
    let (w3, b3) = layer(HIDDEN, 1, rng);
    vec![w1, b1, w2, b2, w3, b3]
}

/// Predictions `[T, k, 1]` for inputs `[T, k, 1]`; the parameters' leading dimension is `T` or 1.
pub fn forward(p: &[Tensor], x: &Tensor) -> Tensor {
    let h = (x.matmul(&p[0]) + &p[1]).relu();
    let h = (h.matmul(&p[2]) + &p[3]).relu();
    h.matmul(&p[4]) + &p[5]
}

/// Mean squared error of each task, `[T]`.
pub fn task_mse(p: &[Tensor], x: &Tensor, y: &Tensor) -> Tensor {
    (forward(p, x) - y).square().mean_axes([1, 2], false)
}

/// The parameters adapted to each task of the support set `(x, y)` (`[T, k, 1]`) by `steps` SGD
/// steps of size `alpha` on the task's mean squared error. The shared θ (leading dimension 1) is
/// broadcast to the `T` tasks first; `order` decides whether the inner gradient is differentiated.
pub fn adapt(
    theta: &[Tensor],
    x: &Tensor,
    y: &Tensor,
    alpha: f64,
    steps: usize,
    order: Order,
) -> Vec<Tensor> {
    let t = x.dims()[0];
    let mut p: Vec<Tensor> = theta
        .iter()
        .map(|w| {
            let mut d = w.dims().to_vec();
            d[0] = t;
            w.expand(d)
        })
        .collect();
    let sgd = DiffSgd::new(Tensor::scalar(alpha as f32));
    let state = sgd.init(&[]);
    for _ in 0..steps {
        // the tasks' losses are independent, so the gradient of their sum w.r.t. the batched
        // parameters holds each task's own gradient
        let (_, g) = inner_grad(|q: &[Tensor]| task_mse(q, x, y).sum(), &p, order);
        p = sgd.update(&p, &g, &state).0;
    }
    p
}

/// The MAML meta-loss of a meta-batch: each task's query MSE after adapting θ on its support set,
/// averaged over tasks.
pub fn meta_loss(
    theta: &[Tensor],
    support: (&Tensor, &Tensor),
    query: (&Tensor, &Tensor),
    alpha: f64,
    order: Order,
) -> Tensor {
    let p = adapt(theta, support.0, support.1, alpha, 1, order);
    task_mse(&p, query.0, query.1).mean()
}
