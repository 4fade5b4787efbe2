//! The typed failures of a solve.

/// Why a solve stopped without reaching its end time or a terminal event.
///
/// Every variant is returned promptly: the solver never loops without progress.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OdeError {
    /// The adaptive controller asked for a step too small to advance the time in floating point
    /// (a stiff problem, or a singularity such as the blow-up of `y' = y²`).
    #[error("ode: step size {h:e} underflowed at t = {t} (stiff problem or singularity?)")]
    StepSizeUnderflow {
        /// The time reached.
        t: f64,
        /// The step size that was too small.
        h: f64,
    },
    /// The state, its derivative or the step size became NaN or infinite.
    #[error("ode: the solution became non-finite (NaN or infinity) at t = {t}")]
    NonFinite {
        /// The time reached.
        t: f64,
    },
    /// `max_steps` steps (accepted and rejected) were taken before reaching the end time.
    #[error("ode: the step budget of {max_steps} steps was exhausted at t = {t}")]
    MaxStepsReached {
        /// The time reached.
        t: f64,
        /// The budget.
        max_steps: usize,
    },
    /// An event function's time derivative vanished where it crossed zero (a tangential
    /// crossing), so the event time has no derivative.
    #[error(
        "ode: event {index} crossed zero tangentially at t = {t}; its time is not differentiable"
    )]
    DegenerateEvent {
        /// Which event.
        index: usize,
        /// The located crossing time.
        t: f64,
    },
    /// The options or the time span are invalid (for example a fixed-step method without `dt`).
    #[error("ode: invalid options: {0}")]
    InvalidOptions(String),
}
