//! Forward-mode tangent propagation.

use super::{record, state, Identity, Op};
use crate::tensor::{Shape, Tensor};
use smallvec::SmallVec;

/// The tangents of an operation's output, one per active level that some input carries.
pub(crate) fn output_tangents(
    op: &dyn Op,
    inputs: &[&Tensor],
    out_shape: &Shape,
) -> Vec<(u64, Tensor)> {
    let active = state::active_levels();
    let mut levels: SmallVec<[u64; 2]> = inputs
        .iter()
        .flat_map(|t| t.0.tangents.iter().map(|(l, _)| *l))
        .filter(|l| active.contains(l))
        .collect();
    levels.sort_unstable();
    levels.dedup();
    let mut out = Vec::with_capacity(levels.len());
    for &level in &levels {
        let stripped: SmallVec<[Tensor; 2]> = inputs.iter().map(|x| strip_from(x, level)).collect();
        let tans: SmallVec<[Option<Tensor>; 2]> =
            inputs.iter().map(|x| tangent_at(x, level)).collect();
        let t = op.jvp(&stripped, &tans);
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
    out
}

/// The tangent of `x` at `level`, if it has one.
pub(crate) fn tangent_at(x: &Tensor, level: u64) -> Option<Tensor> {
    x.0.tangents.iter().find(|(l, _)| *l == level).map(|(_, t)| t.clone())
}

/// `x` without its tangents at `level` and above: the same data, the same reverse-mode dependence.
pub(crate) fn strip_from(x: &Tensor, level: u64) -> Tensor {
    if x.0.tangents.iter().all(|(l, _)| *l < level) {
        return x.clone();
    }
    let keep: Vec<(u64, Tensor)> =
        x.0.tangents.iter().filter(|(l, _)| *l < level).cloned().collect();
    let view = x.view_as(x.layout().clone());
    // An identity node keeps the reverse-mode link to x (record propagates no tangents here:
    // the view has none and x's are deliberately not copied).
    let mut y = if x.0.node.is_some() && state::grad_enabled() {
        let node = super::Node {
            id: state::next_id(),
            op: Box::new(Identity),
            inputs: smallvec::smallvec![x.clone()],
        };
        let mut v = view;
        std::sync::Arc::get_mut(&mut v.0).expect("fresh").node = Some(node);
        v
    } else {
        view
    };
    std::sync::Arc::get_mut(&mut y.0).expect("fresh").tangents = keep;
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
    if inner.tangents.is_empty() {
        inner.tangents = x.0.tangents.clone();
    }
    inner.tangents.retain(|(l, _)| *l != level);
    inner.tangents.push((level, tangent));
    inner.tangents.sort_by_key(|(l, _)| *l);
    y
}
