//! What a solve returns.

use crate::Tensor;

/// Counters of a solve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Accepted steps.
    pub steps: usize,
    /// Rejected steps (adaptive methods).
    pub rejected: usize,
    /// Evaluations of the right-hand side (including event location and, in checkpoint mode,
    /// the forward recomputation; not the backward pass).
    pub rhs_evals: usize,
}

/// A non-terminal event that fired during a solve.
#[derive(Debug, Clone)]
pub struct EventRecord {
    /// Which event (its index in the slice given to [`solve_with_events`](super::solve_with_events)).
    pub index: usize,
    /// The crossing time (0-d, differentiable).
    pub t: Tensor,
    /// The state at the crossing (differentiable).
    pub y: Tensor,
}

/// The result of a solve. Every tensor in it is differentiable with respect to the initial time,
/// the initial state and whatever the right-hand side and event functions captured.
#[derive(Debug, Clone)]
pub struct Solution {
    /// The final time (0-d): the end of the span, or the time of the terminal event that fired.
    pub t: Tensor,
    /// The state at the final time.
    pub y: Tensor,
    /// The save times reached (those of `Options::save_at` up to the final time).
    pub ts: Vec<f64>,
    /// The state at each time of `ts`.
    pub ys: Vec<Tensor>,
    /// The terminal event that stopped the solve, if any (its index).
    pub event: Option<usize>,
    /// The non-terminal events that fired, in time order.
    pub events: Vec<EventRecord>,
    /// Counters.
    pub stats: Stats,
}
