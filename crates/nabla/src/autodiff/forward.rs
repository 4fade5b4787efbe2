//! Forward-mode tangent propagation.

use super::{Identity, Op, record, state};
use crate::tensor::{Shape, Tensor};
use smallvec::SmallVec;

/// A tensor's tangents at the levels it carries: usually one.
pub(crate) type TangentList = SmallVec<[(u64, Tensor); 1]>;

/// A tensor's forward-mode tangents, one per level, ordered by level. Usually absent, so it costs one
/// pointer in every tensor; when present, one heap block (for up to one level), taken from and given
/// back to a per-thread stock of spare blocks ([`SPARE`]).
#[derive(Default)]
pub(crate) struct Tangents(Option<Box<TangentList>>);

/// Spare tangent-list blocks kept per thread for reuse (at most this many).
const SPARE_MAX: usize = 1 << 16;

thread_local! {
    /// Emptied tangent-list blocks of this thread. A forward-over-reverse pass creates a list for
    /// every value and every step of the gradient computation, and frees them all at the end:
    /// through the allocator, those small blocks interleaved with the tensors (a few tens of bytes
    /// beside a few hundred) fragment glibc's heap, and the next pass and every later computation
    /// allocate more slowly (measured: rk4-pendulum, a gradient after an hvp 3.4 -> 10.5 ms of
    /// forward pass). Reused here, they never return to the allocator.
    // The blocks themselves are what is kept (so boxed inside the vector).
    #[allow(clippy::vec_box)]
    static SPARE: std::cell::RefCell<Vec<Box<TangentList>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A block holding `v`: a spare one when there is one.
fn block(v: TangentList) -> Box<TangentList> {
    let spare = SPARE
        .try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.pop()))
        .ok()
        .flatten();
    match spare {
        Some(mut b) => {
            *b = v;
            b
        }
        None => Box::new(v),
    }
}

/// The list held by `b`, with the emptied block kept as a spare (or freed when there are enough).
fn unblock(mut b: Box<TangentList>) -> TangentList {
    let v = std::mem::take(&mut *b);
    let _ = SPARE.try_with(|s| {
        if let Ok(mut s) = s.try_borrow_mut()
            && s.len() < SPARE_MAX
        {
            s.push(b);
        }
    });
    v
}

impl Tangents {
    pub(crate) fn from_vec(v: TangentList) -> Tangents {
        Tangents(if v.is_empty() { None } else { Some(block(v)) })
    }
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, (u64, Tensor)> {
        match &self.0 {
            Some(v) => v.iter(),
            None => [].iter(),
        }
    }
    pub(crate) fn into_vec(mut self) -> TangentList {
        self.0.take().map(unblock).unwrap_or_default()
    }
}

impl Clone for Tangents {
    fn clone(&self) -> Tangents {
        Tangents(self.0.as_ref().map(|b| block((**b).clone())))
    }
}

impl Drop for Tangents {
    fn drop(&mut self) {
        if let Some(b) = self.0.take() {
            // the tensors are dropped after the block is back with the spares
            drop(unblock(b));
        }
    }
}

/// The tangents of an operation's output, one per active level that some input carries.
///
/// The tangent of level `L` is the operation's forward rule applied to the inputs and their
/// level-`L` tangents, with the levels from `L` up suspended ([`state::Suspend`]) so that the
/// rule's own operations carry only lower levels' tangents; a level whose tangents need not be
/// recorded for reverse mode ([`state::LevelGuard::enter`]) computes them with recording off.
pub(crate) fn output_tangents(op: &dyn Op, inputs: &[&Tensor], out_shape: &Shape) -> Tangents {
    let mut levels: SmallVec<[(u64, bool); 2]> = SmallVec::new();
    for x in inputs {
        for (l, _) in x.0.tangents.iter() {
            if levels.iter().any(|(m, _)| m == l) {
                continue;
            }
            if let Some(records) = state::level_records(*l) {
                levels.push((*l, records));
            }
        }
    }
    if levels.is_empty() {
        return Tangents::default();
    }
    levels.sort_unstable_by_key(|&(l, _)| l);
    // The rule takes the inputs as a slice of tensors: borrowed handles, not clones (no reference
    // count traffic for every operation of a forward-mode pass).
    let primals = Borrowed::new(inputs.iter().copied());
    let mut out = TangentList::new();
    for &(level, records) in &levels {
        let mut tans: SmallVec<[Option<Tensor>; 2]> = SmallVec::new();
        for x in inputs {
            tans.push(tangent_at(x, level));
        }
        let t = {
            let _suspended = state::Suspend::from_level(level);
            let _unrecorded = (!records).then(|| state::GradModeGuard::set(false));
            op.jvp(primals.as_slice(), &tans)
        };
        if t.shape() != out_shape {
            panic!(
                "internal: {} forward rule gave a tangent of shape {} for an output of shape {}",
                op.name(),
                t.shape(),
                out_shape
            );
        }
        out.push((level, t));
    }
    Tangents::from_vec(out)
}

/// Tensors borrowed as a `&[Tensor]`: bitwise copies of the handles, never dropped, so that a
/// function taking a slice of tensors can be given tensors held elsewhere without touching their
/// reference counts. The tensors must outlive it (its lifetime ties it to their borrow).
struct Borrowed<'a> {
    copies: SmallVec<[Tensor; 2]>,
    _borrow: std::marker::PhantomData<&'a Tensor>,
}

impl<'a> Borrowed<'a> {
    fn new(xs: impl Iterator<Item = &'a Tensor>) -> Borrowed<'a> {
        let mut copies = SmallVec::new();
        for x in xs {
            // SAFETY: a bitwise copy of the handle shares `x`'s reference; it is never dropped
            // (see `Drop`), and `x` outlives `self`, so the count stays right and the data alive.
            copies.push(unsafe { std::ptr::read(x) });
        }
        Borrowed {
            copies,
            _borrow: std::marker::PhantomData,
        }
    }
    fn as_slice(&self) -> &[Tensor] {
        &self.copies
    }
}

impl Drop for Borrowed<'_> {
    fn drop(&mut self) {
        // SAFETY: forget the copies without dropping them (they own no reference of their own);
        // the buffer, if spilled, is freed by the vector's own drop.
        unsafe { self.copies.set_len(0) };
    }
}

/// The tangent of `x` at `level`, if it has one.
pub(crate) fn tangent_at(x: &Tensor, level: u64) -> Option<Tensor> {
    x.0.tangents
        .iter()
        .find(|(l, _)| *l == level)
        .map(|(_, t)| t.clone())
}

/// `x` without its tangents at `level` and above: the same data, the same reverse-mode dependence.
pub(crate) fn strip_from(x: &Tensor, level: u64) -> Tensor {
    if x.0.tangents.iter().all(|(l, _)| *l < level) {
        return x.clone();
    }
    let keep: TangentList =
        x.0.tangents
            .iter()
            .filter(|(l, _)| *l < level)
            .cloned()
            .collect();
    let view = x.view_as(x.layout().clone());
    // An identity node keeps the reverse-mode link to x (record propagates no tangents here:
    // the view has none and x's are deliberately not copied).
    let mut y = if x.0.node.is_some() && state::grad_enabled() {
        let node = super::Node {
            id: state::next_id(),
            op: super::op_slot::OpSlot::new(Identity),
            inputs: smallvec::smallvec![x.clone()],
        };
        let mut v = view;
        std::sync::Arc::get_mut(&mut v.0).expect("fresh").node = Some(node);
        crate::compile::recorded(&v);
        v
    } else {
        view
    };
    std::sync::Arc::get_mut(&mut y.0).expect("fresh").tangents = Tangents::from_vec(keep);
    y
}

/// `x` cut from the reverse-mode graph but keeping its forward-mode tangents: what a transform
/// returns as a value that is not recorded (the value of `value_and_grad` at top level), so that
/// an enclosing `jvp` still sees how it depends on its primals.
pub(crate) fn without_node(x: &Tensor) -> Tensor {
    // a constant cut from a traced value cannot be replayed (as `detach`)
    crate::compile::guard_read("detach", x);
    if x.0.node.is_none() {
        return x.clone();
    }
    let mut y = x.view_as(x.layout().clone());
    std::sync::Arc::get_mut(&mut y.0).expect("fresh").tangents = x.0.tangents.clone();
    y
}

/// `x` carrying `tangent` at `level` in addition to its own tangents.
pub(crate) fn with_tangent(x: &Tensor, level: u64, tangent: Tensor) -> Tensor {
    let mut y = if x.0.node.is_some() && state::grad_enabled() {
        record(x.view_as(x.layout().clone()), Identity, &[x])
    } else {
        x.view_as(x.layout().clone())
    };
    let inner = std::sync::Arc::get_mut(&mut y.0).expect("fresh");
    let mut ts: TangentList =
        x.0.tangents
            .iter()
            .filter(|(l, _)| *l != level)
            .cloned()
            .collect();
    ts.push((level, tangent));
    ts.sort_by_key(|(l, _)| *l);
    inner.tangents = Tangents::from_vec(ts);
    y
}

/// The value of a one-element tensor held inline, as `f64` (exact for both element types).
#[inline]
fn one_value(x: &Tensor) -> Option<f64> {
    use crate::tensor::storage::Storage;
    match x.0.storage {
        Storage::F32One(v) => Some(v as f64),
        Storage::F64One(v) => Some(v),
        _ => None,
    }
}

/// A tangent computed in one step, when it needs no derivatives of its own and its operands are
/// one-element tensors: `f` of their values (`None` for an absent tangent), as a tensor of `like`'s
/// shape and dtype. A forward rule tries it before its tensor operations, which stay the general
/// case (they make the tangent differentiable again: nested `jvp`, reverse over forward).
///
/// A tangent needs no derivatives when nothing is being recorded and no other forward level is
/// active while it is computed: the case of forward over reverse (`jvp` of a gradient), whose
/// tangents are only read at the end, on simulators made of scalar operations. There one step
/// instead of two to six recorded operations per tangent is most of its cost.
#[inline]
pub(crate) fn scalar_rule<const N: usize>(
    like: &Tensor,
    xs: [Option<&Tensor>; N],
    f: impl FnOnce([Option<f64>; N]) -> f64,
) -> Option<Tensor> {
    if state::forward_active() || state::grad_enabled() {
        return None;
    }
    let mut v = [None; N];
    for (k, x) in xs.iter().enumerate() {
        if let Some(x) = x {
            v[k] = Some(one_value(x)?);
        }
    }
    if like.numel() != 1 {
        return None;
    }
    let r = f(v);
    Some(match like.dtype() {
        crate::DType::F32 => Tensor::from_one(r as f32, like.shape().clone()),
        crate::DType::F64 => Tensor::from_one(r, like.shape().clone()),
    })
}
