//! Differentiable ODE solvers: fixed-step and adaptive Runge–Kutta methods with dense output,
//! events and a memory-lean gradient mode.
//!
//! Everything is written over [`Tensor`] operations, so gradients with respect to the initial
//! state, the initial time and every tensor the right-hand side captures come from recording
//! through the solver (discretise-then-optimise), in `f32` or `f64`.
//!
//! - Methods ([`Method`]): Euler, midpoint and RK4 with a fixed step; Tsitouras 5(4) and
//!   Dormand–Prince 5(4) with error control: the error norm is the RMS over the state's elements
//!   of `err / (atol + rtol * max(|y0|, |y1|))`, and a PI controller (safety factor, smallest and
//!   largest step-change factors) picks the next step. Controller decisions read detached values:
//!   no gradient flows through the choice of step sizes.
//! - The state is a tensor of any shape: a batch of trajectories is one solve (one step-size
//!   sequence for the whole batch, controlled by the RMS norm over all elements).
//! - Dense output: [`Options::save_at`] times are interpolated within the step that contains them
//!   by the cubic Hermite interpolant through both ends' values and derivatives (differentiable).
//! - Events ([`Event`]): `g(t, y)` (a 0-d tensor) crossing zero, located on the step's
//!   interpolant by the Illinois method; a terminal event ends the solve. The event time is
//!   differentiable by the implicit-function rule: with `τ` the located time,
//!   `t* = τ - g(τ, y(τ)) / ġ` where `y(τ)` comes from a recorded step from the last accepted point
//!   and `ġ = ∂g/∂t + ∂g/∂y·f` is read as a constant, so `dt*/dp = -(dg/dp)/ġ`; the final state is
//!   `y(t*) = y(τ) + f(τ, y(τ)) (t* - τ)`, whose derivative is `dy(τ)/dp + f dt*/dp`.
//! - Failures are typed ([`OdeError`]): step-size underflow, non-finite values, exhausted step
//!   budget.
//! - The start time is a 0-d tensor (possibly carrying a gradient), so phases chain: start phase
//!   two at phase one's event time and state.
//! - [`Gradient::Checkpoint`] keeps memory growing like the square root of the step count.
//!
//! The right-hand side `f(t, y)` takes the time (0-d) and the state and returns the derivative
//! (the state's shape). It must be `Send + Sync + 'static` (a `move` closure owning clones of the
//! parameter tensors: clones are cheap handles and share the gradient), because checkpointed
//! solves call it again during the backward pass.
//!
//! ```
//! use nabla::ode::{solve_with_events, Direction, Event, Options};
//! use nabla::{grad, Tensor};
//!
//! // A body falls from height h under gravity: state (height, velocity). When does it land?
//! let landing_time = |h: &Tensor| {
//!     let f = |_t: &Tensor, y: &Tensor| {
//!         Tensor::stack(&[y.select(0, 1), Tensor::scalar(-9.81f64)], 0)
//!     };
//!     let y0 = Tensor::stack(&[h.clone(), Tensor::scalar(0.0f64)], 0);
//!     let ground = Event::new(|_t: &Tensor, y: &Tensor| y.select(0, 0)).direction(Direction::Falling);
//!     let sol = solve_with_events(f, &Tensor::scalar(0.0f64), 10.0, &y0, &[ground], &Options::default())
//!         .unwrap();
//!     assert_eq!(sol.event, Some(0));
//!     sol.t
//! };
//! let h = Tensor::scalar(5.0f64);
//! let t = landing_time(&h).item();
//! let dt_dh = grad(landing_time)(&h).item();
//! assert!((t - (2.0 * 5.0 / 9.81f64).sqrt()).abs() < 1e-8);
//! assert!((dt_dh - 1.0 / (2.0 * 9.81 * 5.0f64).sqrt()).abs() < 1e-8);
//! ```

mod error;
mod event;
mod integrate;
mod lincomb;
mod options;
mod segment;
mod solution;
mod step;
mod tableau;

pub use error::OdeError;
pub use event::{Direction, Event};
pub use options::{Gradient, Method, Options};
pub use solution::{EventRecord, Solution, Stats};

use crate::{NoGradGuard, Tensor};
use integrate::{Out, PlanStep, Solver};
use std::sync::Arc;

/// Solves `y' = f(t, y)` from `(t0, y0)` to `t1 >= t0`.
///
/// `t0` is a 0-d tensor of `y0`'s dtype (it may carry a gradient); `t1` is a plain number.
/// Returns the final state (and the states at `opts.save_at`), or an [`OdeError`].
///
/// ```
/// use nabla::ode::{solve, Options};
/// use nabla::Tensor;
/// // y' = -k y, y(0) = 1: y(1) = exp(-k)
/// let k = Tensor::scalar(0.5f64);
/// let kf = k.clone();
/// let sol = solve(move |_t, y| -(&kf * y), &Tensor::scalar(0.0f64), 1.0, &Tensor::scalar(1.0f64), &Options::default())
///     .unwrap();
/// assert!((sol.y.item() - (-0.5f64).exp()).abs() < 1e-6);
/// ```
pub fn solve<F>(
    f: F,
    t0: &Tensor,
    t1: f64,
    y0: &Tensor,
    opts: &Options,
) -> Result<Solution, OdeError>
where
    F: Fn(&Tensor, &Tensor) -> Tensor + Send + Sync + 'static,
{
    solve_with_events(f, t0, t1, y0, &[], opts)
}

/// Solves `y' = f(t, y)` from `(t0, y0)` to `t1`, or until a terminal event fires; records the
/// non-terminal events that fire on the way. See [`solve`] and [`Event`].
pub fn solve_with_events<F>(
    f: F,
    t0: &Tensor,
    t1: f64,
    y0: &Tensor,
    events: &[Event<'_>],
    opts: &Options,
) -> Result<Solution, OdeError>
where
    F: Fn(&Tensor, &Tensor) -> Tensor + Send + Sync + 'static,
{
    check_inputs(t0, t1, y0, opts)?;
    let t0f = t0.item();
    let mut solver = Solver {
        f: Arc::new(f),
        tab: opts.method.tableau(),
        opts,
        events,
        t1,
        one: Tensor::scalar_of(1.0, y0.dtype()),
        stats: Stats::default(),
    };
    if t1 == t0f {
        let mut out = Out::default();
        solver.save_start(&mut out, t0f, y0);
        return Ok(finish(t0.clone(), y0.clone(), out, solver.stats));
    }
    let (y, out) = match opts.gradient {
        Gradient::Record => solver.drive(t0, y0, None)?,
        Gradient::Checkpoint { segments } => {
            let mut plan: Vec<PlanStep> = Vec::new();
            {
                let _off = NoGradGuard::new();
                solver.drive(&t0.detach(), &y0.detach(), Some(&mut plan))?;
            }
            let plain = plan.iter().filter(|s| !s.special).count();
            let segments = segments
                .unwrap_or_else(|| (plain as f64).sqrt().ceil() as usize)
                .max(1);
            let seg_len = plain.div_ceil(segments).max(1);
            solver.replay(t0, y0, &plan, seg_len)?
        }
    };
    let t = match &out.terminal {
        Some((_, t, _)) => t.clone(),
        None => Tensor::scalar_of(t1, y0.dtype()),
    };
    Ok(finish(t, y, out, solver.stats))
}

fn finish(t: Tensor, y: Tensor, out: Out, stats: Stats) -> Solution {
    let (event, t, y) = match out.terminal {
        Some((i, t, y)) => (Some(i), t, y),
        None => (None, t, y),
    };
    Solution {
        t,
        y,
        ts: out.ts,
        ys: out.ys,
        event,
        events: out.events,
        stats,
    }
}

/// Programmer misuse (a non-scalar time, mixed dtypes) panics; bad numbers (which may come from a
/// configuration) are an [`OdeError::InvalidOptions`].
fn check_inputs(t0: &Tensor, t1: f64, y0: &Tensor, opts: &Options) -> Result<(), OdeError> {
    if t0.numel() != 1 || t0.dtype() != y0.dtype() {
        panic!(
            "ode::solve: t0 must be one {} value (the state's dtype), got shape {} {}",
            y0.dtype(),
            t0.shape(),
            t0.dtype()
        );
    }
    let bad = |m: String| Err(OdeError::InvalidOptions(m));
    let t0f = t0.item();
    if !t0f.is_finite() || !t1.is_finite() || t1 < t0f {
        return bad(format!(
            "the span must be finite with t1 >= t0, got t0 = {t0f}, t1 = {t1}"
        ));
    }
    if let Some(dt) = opts.dt {
        if !(dt > 0.0 && dt.is_finite()) {
            return bad(format!("dt must be positive and finite, got {dt}"));
        }
    } else if !opts.method.is_adaptive() {
        return bad(format!(
            "{:?} is a fixed-step method and needs dt",
            opts.method
        ));
    }
    if opts.method.is_adaptive() {
        let tol_ok = |v: f64| v >= 0.0 && v.is_finite();
        if !tol_ok(opts.rtol) || !tol_ok(opts.atol) || opts.rtol + opts.atol == 0.0 {
            return bad(format!(
                "rtol and atol must be non-negative, finite and not both zero, got {} and {}",
                opts.rtol, opts.atol
            ));
        }
        let c = (opts.safety, opts.min_factor, opts.max_factor);
        if !(c.0 > 0.0 && c.0 <= 1.0 && c.1 > 0.0 && c.1 < 1.0 && c.2 > 1.0 && c.2.is_finite()) {
            return bad(format!(
                "the controller needs 0 < safety <= 1, 0 < min_factor < 1 < max_factor, got {c:?}"
            ));
        }
        if !(opts.pi.0 > 0.0 && opts.pi.1 >= 0.0 && opts.pi.0.is_finite() && opts.pi.1.is_finite())
        {
            return bad(format!(
                "the PI coefficients must be beta1 > 0, beta2 >= 0, got {:?}",
                opts.pi
            ));
        }
    }
    if opts.max_steps == 0 {
        return bad("max_steps must be at least 1".into());
    }
    if let Gradient::Checkpoint { segments: Some(0) } = opts.gradient {
        return bad("checkpointing needs at least one segment".into());
    }
    let s = &opts.save_at;
    if s.iter().any(|&v| !(v >= t0f && v <= t1)) || s.windows(2).any(|w| w[1] < w[0]) {
        return bad(format!(
            "save_at must be increasing times within [{t0f}, {t1}]"
        ));
    }
    Ok(())
}
