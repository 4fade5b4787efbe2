//! The workloads of the side-by-side benchmarks (`/work/shared/BENCHMARKS-SPEC.md`, summarised in
//! `BENCHMARKS.md`), shared by the `nabla-bench` binary and the criterion benches, plus the small
//! timing helpers the binary uses.
//!
//! Every workload is written the way a user would write it, with the same sequence of tensor
//! operations as its PyTorch and JAX twins in `bench/reference/`, so the ratios compare like with like.

use nabla::{Tensor, no_grad, value_and_grad};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

pub mod dnc;
pub mod host;
pub mod inputs;
pub mod maml;
pub mod memn2n;
pub mod memory;
pub mod peak;

use inputs::{det_normal, det_permutation, det_uniform, seeds, set_det_params};

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

/// scalar-chain as a function of its inputs, for [`nabla::compile`].
fn scalar_chain_of(p: &[Tensor]) -> Tensor {
    scalar_chain(&p[0], &p[1])
}

/// A compiled function of the benchmarks: a plain function pointer under [`nabla::compile`].
pub type CompiledFn = nabla::Compiled<fn(&[Tensor]) -> Tensor>;

/// scalar-chain through the compiled path (`nabla::compile`): the first call traces, later calls
/// replay the tape.
pub fn scalar_chain_compiled() -> CompiledFn {
    nabla::compile(scalar_chain_of as fn(&[Tensor]) -> Tensor)
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
    let (th, om) = pendulum_rollout(params, Tensor::scalar(1.0f32), Tensor::scalar(0.0f32));
    &th * &th + &om * &om
}

/// The 1,000 RK4 steps of rk4-pendulum from the state `(θ₀, ω₀)`: the final `(θ, ω)`.
pub fn pendulum_rollout(params: &[Tensor], th0: Tensor, om0: Tensor) -> (Tensor, Tensor) {
    let (b, g, l) = (&params[0], &params[1], &params[2]);
    let f = |th: &Tensor, om: &Tensor| -> (Tensor, Tensor) {
        (om.clone(), -(g / l) * th.sin() - b * om)
    };
    let (h, dt) = (RK4_DT / 2.0, RK4_DT);
    let (mut th, mut om) = (th0, om0);
    for _ in 0..RK4_STEPS {
        let (k1t, k1o) = f(&th, &om);
        let (k2t, k2o) = f(&(&th + &k1t * h), &(&om + &k1o * h));
        let (k3t, k3o) = f(&(&th + &k2t * h), &(&om + &k2o * h));
        let (k4t, k4o) = f(&(&th + &k3t * dt), &(&om + &k3o * dt));
        th = &th + (&k1t + &k2t * 2.0 + &k3t * 2.0 + &k4t) * (dt / 6.0);
        om = &om + (&k1o + &k2o * 2.0 + &k3o * 2.0 + &k4o) * (dt / 6.0);
    }
    (th, om)
}

/// The loss and its gradient with respect to `(b, g, L)`.
pub fn pendulum_grad(params: &[Tensor]) -> (Tensor, Vec<Tensor>) {
    value_and_grad(pendulum_loss, params)
}

/// rk4-pendulum through the compiled path (`nabla::compile`): the first call traces the 1,000
/// steps into a tape, later calls replay it forward and backward.
pub fn pendulum_compiled() -> CompiledFn {
    nabla::compile(pendulum_loss as fn(&[Tensor]) -> Tensor)
}

/// The Hessian-vector product of the rk4-pendulum loss along `v = (1, 1, 1)`, in `mode`.
pub fn pendulum_hvp(params: &[Tensor], mode: nabla::HvpMode) -> Vec<Tensor> {
    let v: Vec<Tensor> = params.iter().map(Tensor::ones_like).collect();
    nabla::hvp_with(mode, pendulum_loss, params, &v)
}

/// The Hessian-vector product of the rk4-pendulum loss along `v = (1, 1, 1)` through the compiled
/// path ([`nabla::Compiled::hvp`]: forward over reverse on the tape).
pub fn pendulum_hvp_compiled(cf: &CompiledFn, params: &[Tensor]) -> Vec<Tensor> {
    let v: Vec<Tensor> = params.iter().map(Tensor::ones_like).collect();
    cf.hvp(params, &v)
}

// ----- rk4-pendulum-batch --------------------------------------------------------------------------

/// Parameter sets in rk4-pendulum-batch.
pub const PENDULUM_BATCH: usize = 1024;

/// The 1,024 parameter sets of rk4-pendulum-batch as `[1024]` f32 tensors `(b, g, L)`, computed in
/// f64 from the shared generator then rounded (as `pendulum_batch_params` in
/// `bench/reference/common.py`): `b = 0.1 + 0.05(2u − 1)`, `g = 9.81 + 0.981(2u − 1)`,
/// `L = 1 + 0.5(2u − 1)`, seeds 60, 61, 62.
pub fn pendulum_batch_params() -> [Tensor; 3] {
    let make = |k: u64, centre: f64, half: f64| {
        let v: Vec<f32> = inputs::det_unit(60 + k, PENDULUM_BATCH)
            .into_iter()
            .map(|u| (centre + half * (2.0 * u - 1.0)) as f32)
            .collect();
        Tensor::from_vec(v, [PENDULUM_BATCH])
    };
    [make(0, 0.1, 0.05), make(1, 9.81, 0.981), make(2, 1.0, 0.5)]
}

/// rk4-pendulum over a batch: the same 1,000 RK4 steps on `[1024]` tensors from `θ₀ = 1, ω₀ = 0`,
/// loss `Σ (θ_T² + ω_T²)` over the batch.
pub fn pendulum_batch_loss(params: &[Tensor]) -> Tensor {
    let (th0, om0) = (params[0].ones_like(), params[0].zeros_like());
    let (th, om) = pendulum_rollout(params, th0, om0);
    (&th * &th + &om * &om).sum()
}

/// The batched loss and its gradient with respect to `(b, g, L)` (eager).
pub fn pendulum_batch_grad(params: &[Tensor]) -> (Tensor, Vec<Tensor>) {
    value_and_grad(pendulum_batch_loss, params)
}

/// rk4-pendulum-batch through the compiled path.
pub fn pendulum_batch_compiled() -> CompiledFn {
    nabla::compile(pendulum_batch_loss as fn(&[Tensor]) -> Tensor)
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

// ----- trebuchet-grad ------------------------------------------------------------------------------

/// The shot of trebuchet-grad: counterweight 90 kg, release angle 45 degrees, wind 0 m/s (0-d f64).
pub fn trebuchet_inputs() -> [Tensor; 3] {
    [
        Tensor::scalar(90.0f64),
        Tensor::scalar(45.0f64),
        Tensor::scalar(0.0f64),
    ]
}

/// The solver options of trebuchet-grad: Tsitouras 5(4), rtol 1e-6, atol 1e-9 (nabla::ode's
/// defaults), the same on every side.
pub fn trebuchet_options() -> nabla::ode::Options {
    nabla_zoo::sim::trebuchet::shot_options(1e-6, 1e-9)
}

/// The landing distance of the trebuchet-grad shot at `p = (mass kg, angle degrees, wind m/s)`.
///
/// # Panics
/// If the shot fails (it does not at the benchmark's inputs).
pub fn trebuchet_distance(p: &[Tensor]) -> Tensor {
    use nabla_zoo::sim::trebuchet::{Design, shoot};
    let angle = &p[1] * (std::f64::consts::PI / 180.0);
    shoot(
        &Design::reference(),
        &p[0],
        &angle,
        &p[2],
        &trebuchet_options(),
        0.0,
    )
    .unwrap_or_else(|e| panic!("trebuchet-grad: {e}"))
    .distance
}

/// One trebuchet shot (three phases separated by events, `nabla_zoo::sim::trebuchet`) and the
/// gradient of its landing distance with respect to (mass kg, angle degrees, wind m/s); also the
/// accepted steps of each phase.
pub fn trebuchet_grad(p: &[Tensor]) -> Result<(f64, [f64; 3], [usize; 3]), String> {
    use nabla_zoo::sim::trebuchet::{Design, shoot};
    let vars: Vec<Tensor> = p.iter().map(Tensor::variable).collect();
    let angle = &vars[1] * (std::f64::consts::PI / 180.0);
    let shot = shoot(
        &Design::reference(),
        &vars[0],
        &angle,
        &vars[2],
        &trebuchet_options(),
        0.0,
    )
    .map_err(|e| e.to_string())?;
    let g = shot.distance.backward();
    let grad = [0, 1, 2].map(|i| g.get_or_zeros(&vars[i]).item());
    Ok((shot.distance.item(), grad, shot.steps))
}

// ----- matmul ---------------------------------------------------------------------------------------

/// Two `n×n` f32 matrices of standard normal samples, the shared inputs (`inputs::det_normal`).
pub fn matmul_inputs(n: usize) -> (Tensor, Tensor) {
    (
        det_normal(seeds::MATMUL, &[n, n]),
        det_normal(seeds::MATMUL + 1, &[n, n]),
    )
}

/// Floating-point operations of an `n×n @ n×n` product.
pub fn matmul_flops(n: usize) -> f64 {
    2.0 * (n as f64).powi(3)
}

// ----- conv2d ----------------------------------------------------------------------------------------

/// conv2d inputs (shared with the references): `x` 64×1×28×28 standard normal, `w1` 32×1×3×3 and
/// `w2` 64×32×3×3 uniform in ±1/√fan_in.
pub fn conv2d_inputs() -> [Tensor; 3] {
    [
        det_normal(seeds::CONV2D, &[64, 1, 28, 28]),
        det_uniform(seeds::CONV2D + 1, &[32, 1, 3, 3], 1.0 / 3.0),
        det_uniform(
            seeds::CONV2D + 2,
            &[64, 32, 3, 3],
            1.0 / (32.0f64 * 9.0).sqrt(),
        ),
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
use nabla::rand::{SeedableRng, rngs::StdRng};
use nabla::{Conv2dOpts, Indices};

/// MNIST training images in a fixed shuffled order (`inputs::det_permutation(seed)`, the same order
/// as the references'), served as consecutive batches (wrapping), like `Batches` in
/// `bench/reference/torch_bench.py`: a batch is a zero-copy view of a contiguous tensor.
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
        seed: u64,
    ) -> Result<MnistBatches, String> {
        let (train, _) = nabla::data::datasets::mnist(dir).map_err(|e| e.to_string())?;
        let order = det_permutation(seed, train.len());
        let n = order.len();
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

/// The MLP of mlp-step: 784-128-10 with ReLU, with the shared initial parameters.
pub fn mlp() -> Sequential {
    let mut rng = StdRng::seed_from_u64(0);
    let mut m = Sequential::new()
        .add(Linear::new(784, 128, &mut rng))
        .add(Relu)
        .add(Linear::new(128, 10, &mut rng));
    set_det_params(&mut m, seeds::MLP);
    m
}

/// MNIST batches of mlp-step / mlp-memory, in the shared order.
pub fn mlp_batches(dir: &std::path::Path, batch: usize) -> Result<MnistBatches, String> {
    MnistBatches::new(dir, batch, &[784], seeds::MLP + 1)
}

/// MNIST batches of cnn-step, in the shared order.
pub fn cnn_batches(dir: &std::path::Path, batch: usize) -> Result<MnistBatches, String> {
    MnistBatches::new(dir, batch, &[1, 28, 28], seeds::CNN + 1)
}

/// The LeNet-style CNN of cnn-step (unpadded convolutions: 28 → 26 → 13 → 11 → 5), with the shared
/// initial parameters.
pub fn cnn() -> Sequential {
    let mut rng = StdRng::seed_from_u64(0);
    let c = Conv2dOpts::default();
    let mut m = Sequential::new()
        .add(Conv2d::new(1, 32, 3, c, &mut rng))
        .add(Relu)
        .add(MaxPool2d::new(2))
        .add(Conv2d::new(32, 64, 3, c, &mut rng))
        .add(Relu)
        .add(MaxPool2d::new(2))
        .add(Flatten)
        .add(Linear::new(64 * 5 * 5, 128, &mut rng))
        .add(Relu)
        .add(Linear::new(128, 10, &mut rng));
    set_det_params(&mut m, seeds::CNN);
    m
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

/// The cross-check of a training benchmark: from the shared initial parameters and the first
/// batches, the loss and the gradient sums of step 1 and the loss of step 2 (after the first Adam
/// update), exactly as the references compute them.
pub fn step_check(mut model: Sequential, mut data: MnistBatches) -> [(&'static str, f64); 4] {
    let mut opt = Adam::new(1e-3);
    let (x, y) = data.next_batch();
    let loss = cross_entropy(&model.forward(&x), &y);
    let grads = loss.backward();
    let params = model.parameters();
    let (s, a) = inputs::sums(
        params
            .iter()
            .map(|p| grads.get(p).expect("every parameter has a gradient")),
    );
    opt.step(&mut model, &grads);
    let loss2 = training_step(&mut model, &mut opt, &mut data);
    [
        ("loss", loss.item()),
        ("grad_sum", s),
        ("grad_abs", a),
        ("loss_step2", loss2),
    ]
}

/// The LSTM of the lstm benchmark (input 32, hidden 128, time-first, the shared initial parameters)
/// and its input `[50, 16, 32]`.
pub fn lstm_inputs() -> (Lstm, Tensor) {
    let mut rng = StdRng::seed_from_u64(0);
    let mut lstm = Lstm::with_options(32, 128, RnnOptions::default().batch_first(false), &mut rng);
    set_det_params(&mut lstm, seeds::LSTM);
    let x = det_normal(seeds::LSTM + 1, &[50, 16, 32]);
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
    /// The first call (before warm-up).
    pub first: f64,
    /// Whether that first call was the first workload call of this process (only such first calls
    /// are compared between the sides).
    pub fresh: bool,
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

static MEASURED: AtomicBool = AtomicBool::new(false);

/// Times `f`: one first call, `warmup` untimed calls, then `repeats` timed calls. The result of each
/// call goes through [`black_box`] so it is computed and dropped inside the timed region.
pub fn measure<R>(warmup: usize, repeats: usize, mut f: impl FnMut() -> R) -> Samples {
    let fresh = !MEASURED.swap(true, Ordering::Relaxed);
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
        fresh,
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
