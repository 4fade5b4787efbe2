//! Gradient checkpointing: trade compute for memory by recomputing a block in the backward pass.

use super::backward::{self, Targets};
use super::{InputGrads, Op, fresh_variable, record, state};
use crate::tensor::Tensor;
use std::sync::Arc;

type BlockFn = dyn Fn(&[Tensor]) -> Tensor + Send + Sync;

/// Evaluates `f(inputs)` keeping only `inputs` for the backward pass: the graph inside `f` is not
/// stored, and is recomputed when gradients are needed (like `torch.utils.checkpoint`).
///
/// `f` must be a pure function of its inputs (parameters it uses should be passed as inputs, so
/// that they receive gradients).
///
/// ```
/// use nabla::{checkpoint, grad, Tensor};
/// let block = |xs: &[Tensor]| xs[0].sin().exp();
/// let g1 = grad(|x: &Tensor| block(&[x.clone()]).sum());
/// let g2 = grad(|x: &Tensor| checkpoint(block, &[x.clone()]).sum());
/// let x = Tensor::scalar(0.3f64);
/// assert!((g1(&x).item() - g2(&x).item()).abs() < 1e-12);
/// ```
pub fn checkpoint<F>(f: F, inputs: &[Tensor]) -> Tensor
where
    F: Fn(&[Tensor]) -> Tensor + Send + Sync + 'static,
{
    let f: Arc<BlockFn> = Arc::new(f);
    let plain: Vec<Tensor> = inputs.iter().map(|t| t.detach()).collect();
    let out = {
        let _off = state::GradModeGuard::set(false);
        f(&plain)
    };
    let out = out.detach().view_as(out.layout().clone());
    let refs: Vec<&Tensor> = inputs.iter().collect();
    record(out, Checkpoint(f), &refs)
}

struct Checkpoint(Arc<BlockFn>);

impl Op for Checkpoint {
    fn name(&self) -> &str {
        "checkpoint"
    }

    fn vjp(&self, inputs: &[Tensor], _out: &Tensor, g: &Tensor, needs: &[bool]) -> InputGrads {
        let create_graph = state::grad_enabled();
        let vars: Vec<Tensor> = inputs.iter().map(fresh_variable).collect();
        let y = {
            let _on = state::GradModeGuard::set(true);
            (self.0)(&vars)
        };
        let ids: Vec<u64> = vars
            .iter()
            .map(|v| v.0.node.as_ref().expect("var").id)
            .collect();
        let mut map = backward::run(&y, g.clone(), Targets::Nodes(&ids), create_graph);
        ids.iter()
            .zip(needs)
            .map(|(id, &need)| if need { map.remove(id) } else { None })
            .collect()
    }

    fn jvp(&self, inputs: &[Tensor], tangents: &[Option<Tensor>]) -> Tensor {
        let ts: Vec<Tensor> = tangents
            .iter()
            .zip(inputs)
            .map(|(t, x)| t.clone().unwrap_or_else(|| x.zeros_like()))
            .collect();
        super::jvp(|xs: &[Tensor]| (self.0)(xs), inputs, &ts).1
    }
}
