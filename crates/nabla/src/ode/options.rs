//! What a solve is asked to do: the method, step sizes, tolerances, save times and gradient mode.

/// An explicit Runge–Kutta method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Forward Euler, order 1, fixed step.
    Euler,
    /// The explicit midpoint rule, order 2, fixed step.
    Midpoint,
    /// The classic fourth-order Runge–Kutta method, fixed step.
    Rk4,
    /// Tsitouras' 5(4) pair, adaptive (the default; diffrax's and DifferentialEquations.jl's
    /// recommended non-stiff method).
    Tsit5,
    /// The Dormand–Prince 5(4) pair, adaptive (`ode45`, `dopri5`).
    Dopri5,
}

impl Method {
    /// Whether the method controls its step size with an embedded error estimate.
    pub fn is_adaptive(self) -> bool {
        matches!(self, Method::Tsit5 | Method::Dopri5)
    }
}

/// How gradients flow through a solve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Gradient {
    /// Every step is recorded in the autodiff graph (fastest; memory grows with the step count).
    #[default]
    Record,
    /// The accepted steps are grouped into `segments` checkpointed blocks (`None`: about
    /// `sqrt(steps)`): only each block's starting state is kept, and a block is recomputed when the
    /// backward pass reaches it. Memory grows like `sqrt(steps)`; time about doubles (one
    /// step-size-planning pass plus one recomputation per block). Reverse mode only.
    Checkpoint {
        /// The number of blocks, or `None` for about `sqrt(steps)`.
        segments: Option<usize>,
    },
}

impl Gradient {
    /// Checkpointing with about `sqrt(steps)` blocks.
    pub fn checkpoint() -> Gradient {
        Gradient::Checkpoint { segments: None }
    }
}

/// Options of a solve. Build them with [`Options::default`] and the builder methods:
///
/// ```
/// use nabla::ode::{Method, Options};
/// let opts = Options::default().method(Method::Dopri5).rtol(1e-8).atol(1e-10).save_at(vec![0.5, 1.0]);
/// assert_eq!(opts.max_steps, 100_000);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The Runge–Kutta method (default [`Method::Tsit5`]).
    pub method: Method,
    /// The step size of a fixed-step method (required for those; the span is divided into
    /// `ceil(span / dt)` equal steps), or the first step of an adaptive one (default: chosen
    /// automatically, as in Hairer's `hinit`).
    pub dt: Option<f64>,
    /// Relative tolerance of the adaptive methods (default `1e-6`).
    pub rtol: f64,
    /// Absolute tolerance of the adaptive methods (default `1e-9`).
    pub atol: f64,
    /// The most steps (accepted plus rejected) before [`OdeError::MaxStepsReached`](super::OdeError)
    /// (default `100_000`).
    pub max_steps: usize,
    /// Times (increasing, inside the span) at which to report the solution, by dense output
    /// (default none).
    pub save_at: Vec<f64>,
    /// How gradients flow through the solve (default [`Gradient::Record`]).
    pub gradient: Gradient,
    /// Safety factor of the step-size controller (default `0.9`).
    pub safety: f64,
    /// Smallest factor by which one step may shrink the next (default `0.2`).
    pub min_factor: f64,
    /// Largest factor by which one step may grow the next (default `10.0`).
    pub max_factor: f64,
    /// Coefficients `(beta1, beta2)` of the PI step-size controller: after a step with error norm
    /// `e_n` (previous accepted: `e_(n-1)`), the next step is
    /// `h * clamp(safety * e_n^(-beta1) * e_(n-1)^(beta2), min_factor, max_factor)`.
    /// Default `(0.7/5, 0.4/5)` (Hairer's PI values for a fifth-order method); `(1/5, 0)` is
    /// the plain I controller.
    pub pi: (f64, f64),
}

impl Default for Options {
    fn default() -> Options {
        Options {
            method: Method::Tsit5,
            dt: None,
            rtol: 1e-6,
            atol: 1e-9,
            max_steps: 100_000,
            save_at: Vec::new(),
            gradient: Gradient::Record,
            safety: 0.9,
            min_factor: 0.2,
            max_factor: 10.0,
            pi: (0.7 / 5.0, 0.4 / 5.0),
        }
    }
}

impl Options {
    /// Sets the method.
    pub fn method(mut self, method: Method) -> Options {
        self.method = method;
        self
    }
    /// Sets the fixed step (or the first adaptive step).
    pub fn dt(mut self, dt: f64) -> Options {
        self.dt = Some(dt);
        self
    }
    /// Sets the relative tolerance.
    pub fn rtol(mut self, rtol: f64) -> Options {
        self.rtol = rtol;
        self
    }
    /// Sets the absolute tolerance.
    pub fn atol(mut self, atol: f64) -> Options {
        self.atol = atol;
        self
    }
    /// Sets the step budget.
    pub fn max_steps(mut self, max_steps: usize) -> Options {
        self.max_steps = max_steps;
        self
    }
    /// Sets the save times.
    pub fn save_at(mut self, times: Vec<f64>) -> Options {
        self.save_at = times;
        self
    }
    /// Sets the gradient mode.
    pub fn gradient(mut self, gradient: Gradient) -> Options {
        self.gradient = gradient;
        self
    }
    /// Sets the controller's safety factor and its smallest and largest step-change factors.
    pub fn controller(mut self, safety: f64, min_factor: f64, max_factor: f64) -> Options {
        self.safety = safety;
        self.min_factor = min_factor;
        self.max_factor = max_factor;
        self
    }
    /// Sets the PI coefficients `(beta1, beta2)`; `(0.2, 0.0)` is the I controller.
    pub fn pi(mut self, beta1: f64, beta2: f64) -> Options {
        self.pi = (beta1, beta2);
        self
    }
}
