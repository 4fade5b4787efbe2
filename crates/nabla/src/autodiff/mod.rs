//! Automatic differentiation: the recorded graph, the reverse-mode engine, forward-mode tangents and
//! the function transforms built on them.
//!
//! Every operation's result passes through `record`. When an input depends on a variable being
//! differentiated, the result keeps a `Node`: the operation (its reverse and forward rules) and its
//! inputs. Rules are written with tensor operations, so they are themselves recorded when a
//! higher-order derivative is being taken: grad of grad needs no second system.
//!
//! Forward mode attaches tangents to tensors, one per active `jvp` level. When an operation computes
//! the tangent of its result for level `L`, its inputs are first stripped of tangents at `L` and above:
//! so the tangent's own dependence on outer levels is tracked, and nested transforms never confuse
//! their perturbations.

mod backward;
mod checkpoint;
mod custom;
pub(crate) mod forward;
mod hessian;
pub(crate) mod op_slot;
pub(crate) mod state;
mod tensor_api;
mod transforms;

use crate::tensor::Tensor;
use smallvec::SmallVec;

pub use backward::Grads;
pub(crate) use backward::{Targets, run as run_backward};
pub use checkpoint::checkpoint;
pub use custom::CustomOp;
pub use hessian::{HvpMode, hessian_vector_product, hvp, hvp_joint, hvp_with};
pub use transforms::{JvpOutput, NoGradGuard, grad, jacobian, jvp, no_grad, value_and_grad, vjp};

/// Gradients returned by a reverse rule, one per input (`None` for zero or not needed).
pub(crate) type InputGrads = SmallVec<[Option<Tensor>; 2]>;

/// A differentiable primitive: its reverse rule (vector-Jacobian product) and forward rule
/// (Jacobian-vector product). The forward computation itself runs before [`record`] is called.
pub(crate) trait Op: Send + Sync + 'static {
    fn name(&self) -> &str;

    /// Cotangents of the inputs given the cotangent `g` of the output. `out` is the output (with its
    /// node, so a rule that uses it stays differentiable). Only inputs with `needs[i]` must be
    /// returned; each returned gradient has its input's shape.
    fn vjp(&self, inputs: &[Tensor], out: &Tensor, g: &Tensor, needs: &[bool]) -> InputGrads;

    /// Tangent of the output given tangents of the inputs (`None` means zero; at least one is set).
    fn jvp(&self, inputs: &[Tensor], tangents: &[Option<Tensor>]) -> Tensor;

    /// The primitive of the compiled path ([`crate::compile`]) this operation lowers to, if any.
    fn lower(&self) -> Option<crate::compile::Prim> {
        None
    }

    /// Whether this is the operation of a node a lean compile trace lowered and cut from its
    /// inputs (see `compile::Lowered`).
    fn is_lowered(&self) -> bool {
        false
    }
}

/// How a tensor was computed.
pub(crate) struct Node {
    pub(crate) id: u64,
    pub(crate) op: op_slot::OpSlot,
    pub(crate) inputs: SmallVec<[Tensor; 2]>,
}

/// A variable with no inputs: the end of reverse traversal.
pub(crate) struct Leaf;

impl Op for Leaf {
    fn name(&self) -> &str {
        "leaf"
    }
    fn vjp(&self, _: &[Tensor], _: &Tensor, _: &Tensor, _: &[bool]) -> InputGrads {
        InputGrads::new()
    }
    fn jvp(&self, _: &[Tensor], _: &[Option<Tensor>]) -> Tensor {
        unreachable!("a leaf has no inputs")
    }
}

/// The identity, used to give a tensor a fresh identity in the graph.
pub(crate) struct Identity;

impl Op for Identity {
    fn name(&self) -> &str {
        "identity"
    }
    fn lower(&self) -> Option<crate::compile::Prim> {
        Some(crate::compile::Prim::Copy)
    }
    fn vjp(&self, _: &[Tensor], _: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
        smallvec::smallvec![Some(g.clone())]
    }
    fn jvp(&self, _: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        t[0].clone().expect("identity: tangent")
    }
}

/// Attaches to a freshly computed `out` what differentiation needs: a graph node when some input is
/// tracked and recording is on, and forward-mode tangents when some input carries them.
#[inline]
pub(crate) fn record<O: Op>(mut out: Tensor, op: O, inputs: &[&Tensor]) -> Tensor {
    let track = state::grad_enabled() && inputs.iter().any(|t| t.0.node.is_some());
    let fwd = state::forward_active() && inputs.iter().any(|t| !t.0.tangents.is_empty());
    if !track && !fwd {
        return out;
    }
    let tangents = if fwd {
        forward::output_tangents(&op, inputs, out.shape())
    } else {
        Default::default()
    };
    let node = track.then(|| {
        let id = state::next_id();
        // under a lean compile trace, the operation is lowered into the tape and keeps no inputs
        if crate::compile::lowered_lean(&out, id, &op, inputs) {
            Node {
                id,
                op: op_slot::OpSlot::new(crate::compile::Lowered),
                inputs: SmallVec::new(),
            }
        } else {
            Node {
                id,
                op: op_slot::OpSlot::new(op),
                inputs: inputs.iter().map(|t| (*t).clone()).collect(),
            }
        }
    });
    let inner = out.unique_mut().expect("record: output must be fresh");
    inner.node = node;
    inner.tangents = tangents;
    out
}

/// A tensor that shares `x`'s data but has its own graph node (an identity over `x` when `x` is
/// tracked, else a leaf), with `x`'s tangents. Used to name the variables a transform differentiates.
pub(crate) fn fresh_variable(x: &Tensor) -> Tensor {
    let _on = state::GradModeGuard::set(true);
    if x.0.node.is_some() {
        return record(x.view_as(x.layout().clone()), Identity, &[x]);
    }
    let mut v = x.view_as(x.layout().clone());
    let inner = std::sync::Arc::get_mut(&mut v.0).expect("fresh");
    inner.node = Some(Node {
        id: state::next_id(),
        op: op_slot::OpSlot::new(Leaf),
        inputs: SmallVec::new(),
    });
    inner.tangents = x.0.tangents.clone();
    crate::compile::recorded(&v);
    v
}
