//! Learning-rate schedules: functions from the step number to a learning rate.

/// A learning rate per step (0-based). Apply with `opt.set_learning_rate(schedule.lr(step))`.
pub trait LrSchedule: Send + Sync {
    /// The learning rate at `step`.
    fn lr(&self, step: usize) -> f64;
}

/// The same rate at every step.
#[derive(Clone, Copy, Debug)]
pub struct ConstantLr(pub f64);

impl LrSchedule for ConstantLr {
    fn lr(&self, _: usize) -> f64 {
        self.0
    }
}

/// Multiplies the rate by `gamma` every `step_size` steps.
///
/// ```
/// use nabla::optim::{LrSchedule, StepLr};
/// let s = StepLr { base: 1.0, step_size: 10, gamma: 0.5 };
/// assert_eq!((s.lr(9), s.lr(10), s.lr(25)), (1.0, 0.5, 0.25));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct StepLr {
    /// Initial rate.
    pub base: f64,
    /// Steps between decays.
    pub step_size: usize,
    /// Decay factor.
    pub gamma: f64,
}

impl LrSchedule for StepLr {
    fn lr(&self, step: usize) -> f64 {
        self.base * self.gamma.powi((step / self.step_size.max(1)) as i32)
    }
}

/// `base · gamma^step`.
#[derive(Clone, Copy, Debug)]
pub struct ExponentialLr {
    /// Initial rate.
    pub base: f64,
    /// Decay per step.
    pub gamma: f64,
}

impl LrSchedule for ExponentialLr {
    fn lr(&self, step: usize) -> f64 {
        self.base * self.gamma.powi(step as i32)
    }
}

/// Cosine annealing from `base` to `min` over `total` steps (constant at `min` afterwards).
///
/// ```
/// use nabla::optim::{CosineLr, LrSchedule};
/// let s = CosineLr { base: 1.0, min: 0.0, total: 100 };
/// assert!((s.lr(50) - 0.5).abs() < 1e-12 && s.lr(100) == 0.0);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct CosineLr {
    /// Initial rate.
    pub base: f64,
    /// Final rate.
    pub min: f64,
    /// Length of the anneal.
    pub total: usize,
}

impl LrSchedule for CosineLr {
    fn lr(&self, step: usize) -> f64 {
        if step >= self.total {
            return self.min;
        }
        let t = step as f64 / self.total.max(1) as f64;
        self.min + 0.5 * (self.base - self.min) * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

/// Linear warm-up from 0 over `warmup` steps, then `after` (counted from the end of warm-up).
///
/// ```
/// use nabla::optim::{ConstantLr, LinearWarmup, LrSchedule};
/// let s = LinearWarmup::new(4, ConstantLr(1.0));
/// assert_eq!((s.lr(0), s.lr(1), s.lr(4)), (0.25, 0.5, 1.0));
/// ```
pub struct LinearWarmup {
    warmup: usize,
    after: Box<dyn LrSchedule>,
}

impl LinearWarmup {
    /// Warm-up of `warmup` steps before `after`.
    pub fn new(warmup: usize, after: impl LrSchedule + 'static) -> LinearWarmup {
        LinearWarmup {
            warmup,
            after: Box::new(after),
        }
    }
}

impl LrSchedule for LinearWarmup {
    fn lr(&self, step: usize) -> f64 {
        if step < self.warmup {
            self.after.lr(0) * (step + 1) as f64 / self.warmup as f64
        } else {
            self.after.lr(step - self.warmup)
        }
    }
}
