//! Events: zero crossings of a differentiable function of the time and state.

use crate::Tensor;

/// Which sign changes of an event function count as a crossing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// From negative to non-negative.
    Rising,
    /// From positive to non-positive.
    Falling,
    /// Either way (the default).
    #[default]
    Either,
}

type EventFn<'a> = dyn Fn(&Tensor, &Tensor) -> Tensor + 'a;

/// An event: the time at which `g(t, y)` (a 0-d tensor) crosses zero.
///
/// A terminal event stops the solve; a non-terminal one is recorded in
/// [`Solution::events`](super::Solution) and the solve goes on. The crossing is located on the
/// step's interpolant to `tol` in time, and the reported time is differentiable (implicit
/// function rule, see the [module documentation](super)). A crossing is a sign change between
/// the ends of an accepted step, so `g` must be non-zero where it starts: an event whose `g` is
/// exactly zero at `t0` (a phase started at the previous phase's event) fires only once `g` has
/// left zero and come back. Two crossings inside one step cancel and are not seen.
///
/// ```
/// use nabla::ode::{Direction, Event};
/// use nabla::Tensor;
/// // the first component (a height) falls through zero
/// let ground = Event::new(|_t: &Tensor, y: &Tensor| y.select(0, 0)).direction(Direction::Falling);
/// assert!(ground.terminal);
/// ```
pub struct Event<'a> {
    pub(crate) g: Box<EventFn<'a>>,
    /// Which crossings count (default [`Direction::Either`]).
    pub direction: Direction,
    /// Whether the event stops the solve (default `true`).
    pub terminal: bool,
    /// Tolerance of the located crossing time (default `1e-12` relative to the step).
    pub tol: f64,
}

impl<'a> Event<'a> {
    /// A terminal event on the zero crossings of `g(t, y)` in either direction.
    pub fn new(g: impl Fn(&Tensor, &Tensor) -> Tensor + 'a) -> Event<'a> {
        Event {
            g: Box::new(g),
            direction: Direction::Either,
            terminal: true,
            tol: 1e-12,
        }
    }
    /// Sets the direction of the crossings that count.
    pub fn direction(mut self, direction: Direction) -> Event<'a> {
        self.direction = direction;
        self
    }
    /// Sets whether the event stops the solve (`false`: record it and go on).
    pub fn terminal(mut self, terminal: bool) -> Event<'a> {
        self.terminal = terminal;
        self
    }
    /// Sets the tolerance of the located time, as a fraction of the step that contains it.
    pub fn tol(mut self, tol: f64) -> Event<'a> {
        self.tol = tol;
        self
    }
    /// Evaluates the event function.
    pub(crate) fn eval(&self, t: &Tensor, y: &Tensor) -> Tensor {
        let g = (self.g)(t, y);
        if g.numel() != 1 {
            panic!(
                "ode event: g(t, y) must return one value (a 0-d tensor), got shape {}",
                g.shape()
            );
        }
        g
    }
}

impl std::fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("direction", &self.direction)
            .field("terminal", &self.terminal)
            .field("tol", &self.tol)
            .finish_non_exhaustive()
    }
}
