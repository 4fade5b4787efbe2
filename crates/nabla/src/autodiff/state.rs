//! Per-thread autodiff state: whether recording is on, how deeply transforms are nested, and which
//! forward-mode levels are active. Reads are a thread-local `Cell` access: no locks, no hashing.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    static ACTIVE_LEVELS: Cell<u32> = const { Cell::new(0) };
    static LEVELS: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
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

#[inline]
pub(crate) fn forward_active() -> bool {
    ACTIVE_LEVELS.with(|c| c.get()) > 0
}

/// Whether forward-mode `level` is active.
#[inline]
pub(crate) fn level_active(level: u64) -> bool {
    LEVELS.with(|l| l.borrow().contains(&level))
}

/// A forward-mode level, active until dropped.
pub(crate) struct LevelGuard(pub(crate) u64);

impl LevelGuard {
    pub(crate) fn enter() -> LevelGuard {
        let id = next_id();
        LEVELS.with(|l| l.borrow_mut().push(id));
        ACTIVE_LEVELS.with(|c| c.set(c.get() + 1));
        LevelGuard(id)
    }
}

impl Drop for LevelGuard {
    fn drop(&mut self) {
        LEVELS.with(|l| {
            let mut l = l.borrow_mut();
            if let Some(p) = l.iter().rposition(|&x| x == self.0) {
                l.remove(p);
            }
        });
        ACTIVE_LEVELS.with(|c| c.set(c.get() - 1));
    }
}
