//! A checkpointed run of steps: one graph node whose backward rule recomputes the steps.
//!
//! The right-hand side captures its parameters, so the segment cannot be told its inputs. It finds
//! them: the forward pass runs the steps once with recording on, from fresh variables, and walks
//! the graph back to the tensors that existed before it started (node ids only grow); those are
//! the parameters, and become the segment's inputs besides the state and the time. Only the
//! segment's output is kept. The backward rule runs the steps again with recording and
//! back-propagates to the fresh variables and the parameters. First order, reverse mode only.

use super::step::{Rhs, eval_rhs, rk_step, shifted};
use super::tableau::Tableau;
use crate::Tensor;
use crate::autodiff::{InputGrads, Op, Targets, record, run_backward, state};
use rustc_hash::FxHashSet;
use std::sync::Arc;

/// Runs the steps `(start time, size)` from `(t, y)`; `t`'s value is the first step's start.
fn run_steps(
    f: &Rhs,
    tab: &Tableau,
    steps: &[(f64, f64)],
    y: &Tensor,
    t: &Tensor,
    evals: &mut usize,
) -> Tensor {
    let one = Tensor::scalar_of(1.0, y.dtype());
    let tf0 = steps[0].0;
    let mut y = y.clone();
    let mut k1: Option<Tensor> = None;
    for &(tf, hf) in steps {
        let ti = shifted(t, tf0, tf - tf0);
        let k = match k1.take() {
            Some(k) => k,
            None => eval_rhs(f, &ti, &y, evals),
        };
        let h = Tensor::scalar_of(hf, y.dtype());
        let st = rk_step(f, tab, &one, (&ti, tf), &y, &k, (&h, hf), evals);
        k1 = st.f_new;
        y = st.y;
    }
    y
}

/// `steps` steps of `tab` from `(t, y)` as one checkpointed node (see the module docs).
pub(crate) fn segment(
    f: &Arc<Rhs>,
    tab: &'static Tableau,
    steps: Vec<(f64, f64)>,
    y: &Tensor,
    t: &Tensor,
    evals: &mut usize,
) -> Tensor {
    if !state::grad_enabled() {
        return run_steps(&**f, tab, &steps, y, t, evals);
    }
    let yv = y.detach().variable();
    let tv = t.detach().variable();
    let own = [node_id(&yv), node_id(&tv)];
    let start = state::next_id();
    let out = run_steps(&**f, tab, &steps, &yv, &tv, evals);
    let params = external_inputs(&out, start, &own);
    let value = out.detach();
    drop(out);
    let mut inputs: Vec<&Tensor> = vec![y, t];
    inputs.extend(params.iter());
    record(
        value,
        Segment {
            f: f.clone(),
            tab,
            steps,
        },
        &inputs,
    )
}

fn node_id(x: &Tensor) -> u64 {
    x.0.node.as_ref().expect("tracked").id
}

/// The tensors that `out`'s graph reaches which were created before id `start` (except `own`).
fn external_inputs(out: &Tensor, start: u64, own: &[u64]) -> Vec<Tensor> {
    let mut found = Vec::new();
    let mut seen: FxHashSet<u64> = FxHashSet::default();
    let mut stack: Vec<&Tensor> = vec![out];
    while let Some(x) = stack.pop() {
        let Some(node) = x.0.node.as_ref() else {
            continue;
        };
        if node.inputs.is_empty() && node.op.is_lowered() {
            // a node of a lean compile trace: the trace restarts with the full graph
            crate::compile::needs_graph();
        }
        for input in &node.inputs {
            let Some(n) = input.0.node.as_ref() else {
                continue;
            };
            if !seen.insert(n.id) {
                continue;
            }
            if n.id >= start {
                stack.push(input);
            } else if !own.contains(&n.id) {
                found.push(input.clone());
            }
        }
    }
    found
}

struct Segment {
    f: Arc<Rhs>,
    tab: &'static Tableau,
    steps: Vec<(f64, f64)>,
}

impl Op for Segment {
    fn name(&self) -> &str {
        "ode_segment"
    }

    fn vjp(&self, inputs: &[Tensor], _out: &Tensor, g: &Tensor, needs: &[bool]) -> InputGrads {
        if state::grad_enabled() {
            panic!(
                "ode: higher-order derivatives through a solve with Gradient::Checkpoint are not \
                 supported; use Gradient::Record"
            );
        }
        // Fresh leaves, not identities over the inputs: the parameters are targets too, and the
        // inputs depend on them through earlier segments, which must not be walked into here.
        let yv = inputs[0].detach().variable();
        let tv = inputs[1].detach().variable();
        let out = {
            let _on = state::GradModeGuard::set(true);
            run_steps(&*self.f, self.tab, &self.steps, &yv, &tv, &mut 0)
        };
        let mut ids = vec![node_id(&yv), node_id(&tv)];
        ids.extend(inputs[2..].iter().map(node_id));
        let mut map = run_backward(&out, g.clone(), Targets::Nodes(&ids), false);
        ids.iter()
            .zip(needs)
            .map(|(id, &need)| if need { map.remove(id) } else { None })
            .collect()
    }

    fn jvp(&self, _inputs: &[Tensor], _tangents: &[Option<Tensor>]) -> Tensor {
        panic!(
            "ode: forward mode (jvp) through a solve with Gradient::Checkpoint is not supported; \
             use Gradient::Record"
        )
    }
}
