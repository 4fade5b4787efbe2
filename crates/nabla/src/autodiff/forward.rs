//! Forward-mode tangent propagation.

use super::{Identity, Op, record, state};
use crate::tensor::{Shape, Tensor};
use smallvec::SmallVec;

/// A tensor's tangents at the levels it carries: usually one.
pub(crate) type TangentList = SmallVec<[(u64, Tensor); 1]>;

/// A tensor's forward-mode tangents, one per level, ordered by level. Usually absent, so it costs one
/// pointer in every tensor; when present, one heap block (for up to one level).
#[derive(Clone, Default)]
pub(crate) struct Tangents(Option<Box<TangentList>>);

impl Tangents {
    pub(crate) fn from_vec(v: TangentList) -> Tangents {
        Tangents(if v.is_empty() {
            None
        } else {
            Some(Box::new(v))
        })
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
    pub(crate) fn into_vec(self) -> TangentList {
        self.0.map(|b| *b).unwrap_or_default()
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
    let primals: SmallVec<[Tensor; 2]> = inputs.iter().map(|x| (*x).clone()).collect();
    let mut out = TangentList::new();
    for &(level, records) in &levels {
        let tans: SmallVec<[Option<Tensor>; 2]> =
            inputs.iter().map(|x| tangent_at(x, level)).collect();
        let t = {
            let _suspended = state::Suspend::from_level(level);
            let _unrecorded = (!records).then(|| state::GradModeGuard::set(false));
            op.jvp(&primals, &tans)
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
