//! The workloads of the side-by-side benchmarks (`/work/shared/BENCHMARKS-SPEC.md`, summarised in
//! `BENCHMARKS.md`), shared by the `nabla-bench` binary and the criterion benches, plus the small
//! timing helpers the binary uses.
//!
//! Every workload is written the way a user would write it, with the same sequence of tensor
//! operations as its PyTorch and JAX twins in `bench/reference/`, so the ratios compare like with like.

use nabla::{DType, Tensor, no_grad, value_and_grad};
use std::hint::black_box;
use std::time::Instant;

// ----- scalar-chain --------------------------------------------------------------------------------

/// Number of (multiply, add) pairs in scalar-chain: 10,000 recorded operations.
pub const CHAIN_STEPS: usize = 5_000;

/// `y = x; repeat 5,000 times: y = y·w; y = y + 0.001`.
pub fn scalar_chain(x: &Tensor, w: &Tensor) -> Tensor {
    let mut y = x.clone();
    for _ in 0..CHAIN_STEPS {
        y = &y * w;
        y = &y + 0.001;
    }
    y
}

/// The inputs of scalar-chain: `x = 1.0`, `w = 0.999`, 0-d f32.
pub fn scalar_chain_inputs() -> [Tensor; 2] {
    [Tensor::scalar(1.0f32), Tensor::scalar(0.999f32)]
}

/// scalar-chain with recording: the value and the gradient with respect to `x` and `w`.
pub fn scalar_chain_grad(inputs: &[Tensor]) -> (Tensor, Vec<Tensor>) {
    value_and_grad(|p: &[Tensor]| scalar_chain(&p[0], &p[1]), inputs)
}

/// scalar-chain without recording (forward only, under [`no_grad`]).
pub fn scalar_chain_no_grad(inputs: &[Tensor]) -> Tensor {
    no_grad(|| scalar_chain(&inputs[0], &inputs[1]))
}

// ----- rk4-pendulum --------------------------------------------------------------------------------

/// RK4 steps in rk4-pendulum.
pub const RK4_STEPS: usize = 1_000;
/// RK4 step size.
pub const RK4_DT: f64 = 0.01;

/// The parameters `(b, g, L) = (0.1, 9.81, 1.0)` as 0-d f32 tensors.
pub fn pendulum_params() -> [Tensor; 3] {
    [
        Tensor::scalar(0.1f32),
        Tensor::scalar(9.81f32),
        Tensor::scalar(1.0f32),
    ]
}

/// Damped pendulum `θ'' = −(g/L)·sin θ − b·θ'` integrated by 1,000 classic RK4 steps of `dt = 0.01`
/// from `θ₀ = 1, ω₀ = 0` as a plain loop over tensors; returns `θ_T² + ω_T²`.
///
/// Operation sequence (shared with `bench/reference/*.py`): per derivative evaluation `div, neg, sin,
/// mul, mul, sub`; per stage update `θ + k·(dt/2)` (scalar multiply, add); per step the weighted sum
/// `(k1 + k2·2 + k3·2 + k4)·(dt/6)` added to the state. 50 operations per step.
pub fn pendulum_loss(params: &[Tensor]) -> Tensor {
    let (b, g, l) = (&params[0], &params[1], &params[2]);
    let f = |th: &Tensor, om: &Tensor| -> (Tensor, Tensor) {
        (om.clone(), -(g / l) * th.sin() - b * om)
    };
    let (h, dt) = (RK4_DT / 2.0, RK4_DT);
    let mut th = Tensor::scalar(1.0f32);
    let mut om = Tensor::scalar(0.0f32);
    for _ in 0..RK4_STEPS {
        let (k1t, k1o) = f(&th, &om);
        let (k2t, k2o) = f(&(&th + &k1t * h), &(&om + &k1o * h));
        let (k3t, k3o) = f(&(&th + &k2t * h), &(&om + &k2o * h));
        let (k4t, k4o) = f(&(&th + &k3t * dt), &(&om + &k3o * dt));
        th = &th + (&k1t + &k2t * 2.0 + &k3t * 2.0 + &k4t) * (dt / 6.0);
        om = &om + (&k1o + &k2o * 2.0 + &k3o * 2.0 + &k4o) * (dt / 6.0);
    }
    &th * &th + &om * &om
}

/// The loss and its gradient with respect to `(b, g, L)`.
pub fn pendulum_grad(params: &[Tensor]) -> (Tensor, Vec<Tensor>) {
    value_and_grad(pendulum_loss, params)
}

/// The figures the spec gives for rk4-pendulum in f32: loss and gradient w.r.t. (b, g, L).
pub const PENDULUM_EXPECTED: (f64, [f64; 3]) = (3.18, [-39.25, -2.07, 20.33]);

/// Checks a computed loss and gradient against [`PENDULUM_EXPECTED`] (1% relative tolerance, the
/// figures being given to 3-4 digits); returns a description of the first mismatch.
pub fn check_pendulum(loss: f64, grad: &[f64]) -> Result<(), String> {
    let (want_loss, want_grad) = PENDULUM_EXPECTED;
    let close = |got: f64, want: f64| (got - want).abs() <= 0.01 * want.abs().max(0.1);
    if !close(loss, want_loss) {
        return Err(format!(
            "rk4-pendulum: loss {loss} differs from the expected {want_loss}"
        ));
    }
    for (i, (&got, &want)) in grad.iter().zip(&want_grad).enumerate() {
        if !close(got, want) {
            return Err(format!(
                "rk4-pendulum: gradient[{i}] = {got} differs from the expected {want}"
            ));
        }
    }
    Ok(())
}

// ----- matmul ---------------------------------------------------------------------------------------

/// Two `n×n` f32 matrices of standard normal samples (seeded).
pub fn matmul_inputs(n: usize, seed: u64) -> (Tensor, Tensor) {
    use nabla::rand::SeedableRng;
    let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(seed);
    (
        Tensor::randn([n, n], DType::F32, &mut rng),
        Tensor::randn([n, n], DType::F32, &mut rng),
    )
}

/// Floating-point operations of an `n×n @ n×n` product.
pub fn matmul_flops(n: usize) -> f64 {
    2.0 * (n as f64).powi(3)
}

// ----- conv2d ----------------------------------------------------------------------------------------

/// conv2d inputs: `x` 64×1×28×28, `w1` 32×1×3×3, `w2` 64×32×3×3, all standard normal (weights scaled
/// by 1/√fan_in so the activations stay O(1)).
pub fn conv2d_inputs(seed: u64) -> [Tensor; 3] {
    use nabla::rand::SeedableRng;
    let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(seed);
    [
        Tensor::randn([64, 1, 28, 28], DType::F32, &mut rng),
        Tensor::randn([32, 1, 3, 3], DType::F32, &mut rng) * (1.0 / 3.0),
        Tensor::randn([64, 32, 3, 3], DType::F32, &mut rng) * (1.0 / (32.0f64 * 9.0).sqrt()),
    ]
}

/// conv 1→32 3×3 padding 1, ReLU, conv 32→64 3×3 padding 1, sum of the outputs.
pub fn conv2d_loss(p: &[Tensor]) -> Tensor {
    use nabla::Conv2dOpts;
    let h = p[0]
        .conv2d(&p[1], None, Conv2dOpts::default().padding(1))
        .relu();
    h.conv2d(&p[2], None, Conv2dOpts::default().padding(1))
        .sum()
}

/// Forward + backward of conv2d w.r.t. the input and both weights.
pub fn conv2d_grad(p: &[Tensor]) -> (Tensor, Vec<Tensor>) {
    value_and_grad(conv2d_loss, p)
}

// ----- mlp-step, cnn-step, lstm, mlp-memory ---------------------------------------------------------

use nabla::nn::{
    Conv2d, Flatten, Forward, Linear, Lstm, MaxPool2d, Module, Relu, RnnOptions, Sequential,
    cross_entropy,
};
use nabla::optim::{Adam, Optimizer};
use nabla::rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};
use nabla::{Conv2dOpts, Indices};

/// MNIST training images in a fixed shuffled order, served as consecutive batches (wrapping), like
/// `Batches` in `bench/reference/torch_bench.py`: a batch is a zero-copy view of a contiguous tensor.
pub struct MnistBatches {
    x: Tensor,
    y: Vec<usize>,
    batch: usize,
    pos: usize,
}

impl MnistBatches {
    /// Batches of `batch` images shaped `[batch, image_shape...]` from the MNIST training set in `dir`.
    pub fn new(
        dir: &std::path::Path,
        batch: usize,
        image_shape: &[usize],
    ) -> Result<MnistBatches, String> {
        let (train, _) = nabla::data::datasets::mnist(dir).map_err(|e| e.to_string())?;
        let n = train.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut StdRng::seed_from_u64(0));
        let (x, t) = train.get(&order);
        let mut shape = vec![n];
        shape.extend_from_slice(image_shape);
        let y = t.labels().ok_or("MNIST without labels")?.to_vec();
        Ok(MnistBatches {
            x: x.reshape(shape).contiguous(),
            y,
            batch,
            pos: 0,
        })
    }

    /// The next batch: images and labels.
    pub fn next_batch(&mut self) -> (Tensor, Indices) {
        if self.pos + self.batch > self.y.len() {
            self.pos = 0;
        }
        let i = self.pos;
        self.pos += self.batch;
        (
            self.x.narrow(0, i, self.batch),
            Indices::from_slice(&self.y[i..i + self.batch]),
        )
    }
}

/// The MLP of mlp-step: 784-128-10 with ReLU.
pub fn mlp(seed: u64) -> Sequential {
    let mut rng = StdRng::seed_from_u64(seed);
    Sequential::new()
        .add(Linear::new(784, 128, &mut rng))
        .add(Relu)
        .add(Linear::new(128, 10, &mut rng))
}

/// The LeNet-style CNN of cnn-step (unpadded convolutions: 28 → 26 → 13 → 11 → 5).
pub fn cnn(seed: u64) -> Sequential {
    let mut rng = StdRng::seed_from_u64(seed);
    let c = Conv2dOpts::default();
    Sequential::new()
        .add(Conv2d::new(1, 32, 3, c, &mut rng))
        .add(Relu)
        .add(MaxPool2d::new(2))
        .add(Conv2d::new(32, 64, 3, c, &mut rng))
        .add(Relu)
        .add(MaxPool2d::new(2))
        .add(Flatten)
        .add(Linear::new(64 * 5 * 5, 128, &mut rng))
        .add(Relu)
        .add(Linear::new(128, 10, &mut rng))
}

/// One training step: forward, cross-entropy from logits, backward, Adam update (zeroing gradients
/// has no counterpart: `backward` returns fresh gradients). Returns the loss.
pub fn training_step(model: &mut Sequential, opt: &mut Adam, data: &mut MnistBatches) -> f64 {
    let (x, y) = data.next_batch();
    let loss = cross_entropy(&model.forward(&x), &y);
    let grads = loss.backward();
    opt.step(model, &grads);
    loss.item()
}

/// The LSTM of the lstm benchmark (input 32, hidden 128, time-first) and its input `[50, 16, 32]`.
pub fn lstm_inputs(seed: u64) -> (Lstm, Tensor) {
    let mut rng = StdRng::seed_from_u64(seed);
    let lstm = Lstm::with_options(32, 128, RnnOptions::default().batch_first(false), &mut rng);
    let x = Tensor::randn([50, 16, 32], DType::F32, &mut rng);
    (lstm, x)
}

/// Forward and backward of the lstm benchmark: loss = sum of all hidden outputs, gradients with
/// respect to every weight.
pub fn lstm_grad(lstm: &Lstm, x: &Tensor) -> (Tensor, nabla::Grads) {
    let loss = lstm.forward(x).sum();
    let grads = loss.backward();
    assert_eq!(grads.len(), lstm.parameters().len());
    (loss, grads)
}

/// Resident memory of this process in bytes (Linux `/proc/self/statm`).
pub fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(1) as u64)
}

/// The bundled MNIST folder of this repository.
pub fn default_mnist_dir() -> std::path::PathBuf {
    nabla::data::datasets::bundled_data_dir().join("mnist")
}

// ----- timing ----------------------------------------------------------------------------------------

/// Wall-clock samples of a workload, in seconds.
#[derive(Clone, Debug)]
pub struct Samples {
    /// The first call in this process (before warm-up).
    pub first: f64,
    /// One sample per timed repeat, after warm-up.
    pub times: Vec<f64>,
    /// Process CPU time (all threads) of each timed repeat: unlike wall-clock time it does not count
    /// the time this process waited while other processes ran (on a shared machine).
    pub cpu_times: Vec<f64>,
}

impl Samples {
    /// Median of the timed repeats.
    pub fn median(&self) -> f64 {
        median(&self.times)
    }
    /// Median process CPU time of the timed repeats.
    pub fn cpu_median(&self) -> f64 {
        median(&self.cpu_times)
    }
    /// Fastest timed repeat.
    pub fn min(&self) -> f64 {
        self.times.iter().copied().fold(f64::INFINITY, f64::min)
    }
}

/// Median of a non-empty list of numbers.
pub fn median(xs: &[f64]) -> f64 {
    assert!(!xs.is_empty(), "median of nothing");
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Times `f`: one first call, `warmup` untimed calls, then `repeats` timed calls. The result of each
/// call goes through [`black_box`] so it is computed and dropped inside the timed region.
pub fn measure<R>(warmup: usize, repeats: usize, mut f: impl FnMut() -> R) -> Samples {
    let t = Instant::now();
    black_box(f());
    let first = t.elapsed().as_secs_f64();
    for _ in 0..warmup {
        black_box(f());
    }
    let (mut times, mut cpu_times) = (Vec::new(), Vec::new());
    for _ in 0..repeats.max(1) {
        let c = cpu_time();
        let t = Instant::now();
        black_box(f());
        times.push(t.elapsed().as_secs_f64());
        cpu_times.push(cpu_time() - c);
    }
    Samples {
        first,
        times,
        cpu_times,
    }
}

/// CPU time consumed by this process so far (all threads), in seconds.
pub fn cpu_time() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_PROCESS_CPUTIME_ID is supported on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_chain_gradient() {
        let (y, g) = scalar_chain_grad(&scalar_chain_inputs());
        // y = x wⁿ + 0.001 (1 - wⁿ)/(1 - w); dy/dx = wⁿ.
        let wn = 0.999f64.powi(CHAIN_STEPS as i32);
        assert!((y.item() - (wn + (1.0 - wn))).abs() < 1e-3, "{}", y.item());
        assert!((g[0].item() - wn).abs() < 1e-4, "{}", g[0].item());
        // dy/dw = n x wⁿ⁻¹ + 0.001 Σₖ k wᵏ⁻¹ (k < n)
        let w = 0.999f64;
        let n = CHAIN_STEPS as i32;
        let dw = n as f64 * w.powi(n - 1)
            + 0.001 * (1..n).map(|k| k as f64 * w.powi(k - 1)).sum::<f64>();
        assert!(
            (g[1].item() - dw).abs() < 1e-3 * dw,
            "{} vs {dw}",
            g[1].item()
        );
        let y0 = scalar_chain_no_grad(&scalar_chain_inputs());
        assert_eq!(y0.item(), y.item());
    }

    #[test]
    fn pendulum_matches_the_spec() {
        let (loss, g) = pendulum_grad(&pendulum_params());
        let g: Vec<f64> = g.iter().map(Tensor::item).collect();
        check_pendulum(loss.item(), &g).unwrap();
    }

    #[test]
    fn median_and_measure() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let s = measure(1, 3, || 1 + 1);
        assert_eq!(s.times.len(), 3);
        assert!(s.cpu_median() >= 0.0);
        assert!(s.median() >= 0.0 && s.min() <= s.median());
    }
}
