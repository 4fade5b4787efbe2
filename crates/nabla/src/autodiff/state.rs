//! Per-thread autodiff state: whether recording is on, how deeply transforms are nested, and which
//! forward-mode levels are active. Reads are a thread-local `Cell` access: no locks, no hashing.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    static ACTIVE_LEVELS: Cell<u32> = const { Cell::new(0) };
    static LEVELS: RefCell<Vec<Level>> = const { RefCell::new(Vec::new()) };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh identifier, larger than every identifier handed out before it. Graph nodes and forward
/// levels draw from this one counter, so an operation's node always has a larger id than its inputs'.
#[inline]
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

#[inline]
pub(crate) fn grad_enabled() -> bool {
    GRAD_ENABLED.with(|c| c.get())
}

/// Sets whether operations record their inputs for reverse mode; returns the previous setting.
pub(crate) fn set_grad_enabled(on: bool) -> bool {
    GRAD_ENABLED.with(|c| c.replace(on))
}

/// Restores the recording flag when dropped.
pub(crate) struct GradModeGuard(bool);

impl GradModeGuard {
    pub(crate) fn set(on: bool) -> GradModeGuard {
        GradModeGuard(set_grad_enabled(on))
    }
}

impl Drop for GradModeGuard {
    fn drop(&mut self) {
        set_grad_enabled(self.0);
    }
}

/// How many reverse-mode transforms (`grad`, `vjp`, ...) are running on this thread.
#[inline]
pub(crate) fn depth() -> u32 {
    DEPTH.with(|c| c.get())
}

/// Marks a transform as running until dropped.
pub(crate) struct DepthGuard;

impl DepthGuard {
    pub(crate) fn enter() -> DepthGuard {
        DEPTH.with(|c| c.set(c.get() + 1));
        DepthGuard
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        DEPTH.with(|c| c.set(c.get() - 1));
    }
}

/// A forward-mode level on this thread's stack.
struct Level {
    id: u64,
    /// Whether the tangents of this level are recorded for reverse mode (see [`LevelGuard::enter`]).
    records: bool,
    /// Set while a tangent of this level or a lower one is being computed ([`Suspend`]).
    suspended: bool,
}

/// Whether some forward-mode level is active (entered and not suspended).
#[inline]
pub(crate) fn forward_active() -> bool {
    ACTIVE_LEVELS.with(|c| c.get()) > 0
}

/// For an active `level`, whether its tangents are recorded for reverse mode; `None` when the level
/// is not active.
#[inline]
pub(crate) fn level_records(level: u64) -> Option<bool> {
    LEVELS.with(|l| {
        l.borrow()
            .iter()
            .find(|x| x.id == level && !x.suspended)
            .map(|x| x.records)
    })
}

/// A forward-mode level, active until dropped.
pub(crate) struct LevelGuard(pub(crate) u64);

impl LevelGuard {
    /// Enters a new level. With `records`, the computations of its tangents are recorded for
    /// reverse mode (when recording is on), so that a reverse transform outside the level can
    /// differentiate them; without, they are computed unrecorded, which is all a reverse transform
    /// inside the level needs (it differentiates primal values only, never this level's tangents).
    pub(crate) fn enter(records: bool) -> LevelGuard {
        let id = next_id();
        LEVELS.with(|l| {
            l.borrow_mut().push(Level {
                id,
                records,
                suspended: false,
            })
        });
        ACTIVE_LEVELS.with(|c| c.set(c.get() + 1));
        LevelGuard(id)
    }
}

impl Drop for LevelGuard {
    fn drop(&mut self) {
        LEVELS.with(|l| {
            let mut l = l.borrow_mut();
            if let Some(p) = l.iter().rposition(|x| x.id == self.0) {
                if !l[p].suspended {
                    ACTIVE_LEVELS.with(|c| c.set(c.get() - 1));
                }
                l.remove(p);
            }
        });
    }
}

/// While alive, the levels from a given one up (those entered by then) are inactive: operations
/// ignore their tangents. A tangent of level `L` is computed under it, so that the rule's own
/// operations propagate only the tangents of lower levels (the tangent's dependence on outer
/// perturbations) and never mistake their inputs' level-`L` tangents for their own. Levels
/// entered while it is alive (a transform inside a rule) are active.
pub(crate) struct Suspend(smallvec::SmallVec<[u64; 2]>);

impl Suspend {
    pub(crate) fn from_level(level: u64) -> Suspend {
        let mut ids = smallvec::SmallVec::new();
        LEVELS.with(|l| {
            for x in l.borrow_mut().iter_mut() {
                if x.id >= level && !x.suspended {
                    x.suspended = true;
                    ids.push(x.id);
                }
            }
        });
        ACTIVE_LEVELS.with(|c| c.set(c.get() - ids.len() as u32));
        Suspend(ids)
    }
}

impl Drop for Suspend {
    fn drop(&mut self) {
        let mut back = 0u32;
        LEVELS.with(|l| {
            for x in l.borrow_mut().iter_mut() {
                if x.suspended && self.0.contains(&x.id) {
                    x.suspended = false;
                    back += 1;
                }
            }
        });
        ACTIVE_LEVELS.with(|c| c.set(c.get() + back));
    }
}
