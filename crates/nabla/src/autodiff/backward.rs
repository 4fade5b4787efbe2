//! The reverse-mode engine: one pass over the recorded graph, newest node first.

use super::state;
use crate::tensor::Tensor;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

/// Working memory of a backward pass, kept per thread between passes. Training loops and
/// simulators differentiate graphs of the same size again and again; allocating these tables afresh
/// each time (megabytes for a graph of 50k nodes, too big for the allocator's caches) costs fresh
/// pages, zeroed by the kernel, on every call. A nested pass (higher-order gradients, checkpointed
/// blocks) finds the scratch taken and uses its own.
#[derive(Default)]
struct Scratch {
    slot_of: FxHashMap<u64, usize>,
    slot_pos: Vec<usize>,
    reaches: Vec<bool>,
    edge_start: Vec<usize>,
    edges: Vec<usize>,
    grads: Vec<Option<Tensor>>,
    /// Allocations of `order` and the DFS stack, which borrow the graph: stored empty, with the
    /// element type's lifetime erased (see [`reuse`]).
    order: Vec<usize>,
    stack: Vec<Frame<'static>>,
}

/// A DFS frame: the tensor, the next input to visit, its slot, and its inputs' slots (NONE for
/// untracked inputs), gathered as they are discovered so finishing needs no second lookup.
type Frame<'a> = (&'a Tensor, usize, usize, SmallVec<[usize; 2]>);

/// Largest graph (in nodes) whose scratch is kept for the next pass (bounds what a thread keeps
/// between passes to a few tens of MB).
const KEEP_SCRATCH_NODES: usize = 1 << 18;

thread_local! {
    static SCRATCH: std::cell::Cell<Option<Scratch>> = const { std::cell::Cell::new(None) };
}

/// The allocation of `v`, emptied, as a vector of another element type of the same size and
/// alignment (to keep the buffers of vectors whose elements borrow a graph across passes).
fn reuse<T, U>(mut v: Vec<T>) -> Vec<U> {
    const {
        assert!(std::mem::size_of::<T>() == std::mem::size_of::<U>());
        assert!(std::mem::align_of::<T>() == std::mem::align_of::<U>());
    }
    v.clear();
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: the vector is empty, and `T` and `U` have the same size and alignment, so the
    // allocation has the layout a `Vec<U>` of this capacity expects.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<U>(), 0, v.capacity()) }
}

/// Which nodes a backward pass reports gradients for.
pub(crate) enum Targets<'a> {
    /// These node ids (function transforms).
    Nodes(&'a [u64]),
    /// Every leaf variable reached ([`Tensor::backward`]).
    Leaves,
}

/// Runs reverse mode from `root`, seeded with `seed` (root's shape), and returns the gradient of each
/// target node that root depends on. With `create_graph`, the backward computation is itself recorded
/// so its result can be differentiated again.
pub(crate) fn run(
    root: &Tensor,
    seed: Tensor,
    targets: Targets<'_>,
    create_graph: bool,
) -> FxHashMap<u64, Tensor> {
    let mut results = FxHashMap::default();
    let Some(root_node) = root.0.node.as_ref() else {
        return results;
    };
    let is_target = |t: &Tensor| -> bool {
        let n = t.0.node.as_ref().expect("tracked");
        match targets {
            Targets::Nodes(ids) => ids.contains(&n.id),
            Targets::Leaves => n.inputs.is_empty(),
        }
    };

    // Topological order by iterative depth-first search (inputs before outputs). Each node gets a slot
    // when first discovered (one hash insert); when it finishes, its position in `order` is stored in
    // its slot, along with the positions of its inputs (NONE for untracked ones) and whether it
    // reaches a target.
    const NONE: usize = usize::MAX;
    let Scratch {
        mut slot_of,
        mut slot_pos,
        mut reaches,
        mut edge_start,
        mut edges,
        mut grads,
        order,
        stack,
    } = SCRATCH
        .try_with(|s| s.take())
        .ok()
        .flatten()
        .unwrap_or_default();
    // The graph is immutable and kept alive by `root`, so the traversal borrows its tensors.
    let mut order: Vec<&Tensor> = reuse(order);
    let mut stack: Vec<Frame<'_>> = reuse(stack);
    stack.push((root, 0, 0, SmallVec::new()));
    slot_of.insert(root_node.id, 0);
    slot_pos.push(NONE);
    while let Some(top) = stack.last_mut() {
        let node = top.0.0.node.as_ref().expect("tracked");
        if top.1 < node.inputs.len() {
            let input = &node.inputs[top.1];
            top.1 += 1;
            let Some(n) = input.0.node.as_ref() else {
                top.3.push(NONE);
                continue;
            };
            match slot_of.entry(n.id) {
                std::collections::hash_map::Entry::Occupied(e) => top.3.push(*e.get()),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let slot = slot_pos.len();
                    e.insert(slot);
                    slot_pos.push(NONE);
                    top.3.push(slot);
                    stack.push((input, 0, slot, SmallVec::new()));
                }
            }
        } else {
            let (t, _, slot, input_slots) = stack.pop().expect("non-empty");
            edge_start.push(edges.len());
            let mut r = is_target(t);
            for &s in &input_slots {
                if s == NONE {
                    edges.push(NONE);
                } else {
                    let p = slot_pos[s];
                    debug_assert_ne!(p, NONE, "graph cycle");
                    r |= reaches[p];
                    edges.push(p);
                }
            }
            slot_pos[slot] = order.len();
            reaches.push(r);
            order.push(t);
        }
    }
    edge_start.push(edges.len());

    let n = order.len();
    grads.resize(n, None);
    grads[n - 1] = Some(seed);
    let _mode = state::GradModeGuard::set(create_graph);
    let mut needs: SmallVec<[bool; 4]> = SmallVec::new();
    for i in (0..n).rev() {
        if !reaches[i] {
            continue;
        }
        let Some(g) = grads[i].take() else { continue };
        let t = order[i];
        let node = t.0.node.as_ref().expect("tracked");
        if is_target(t) {
            results.insert(node.id, g.clone());
        }
        let my_edges = &edges[edge_start[i]..edge_start[i + 1]];
        needs.clear();
        needs.extend(my_edges.iter().map(|&p| p != NONE && reaches[p]));
        if !needs.iter().any(|&b| b) {
            continue;
        }
        let input_grads = node.op.vjp(&node.inputs, t, &g, &needs);
        for (k, gk) in input_grads.into_iter().enumerate() {
            if !needs.get(k).copied().unwrap_or(false) {
                continue;
            }
            let Some(gk) = gk else { continue };
            let input = &node.inputs[k];
            if gk.shape() != input.shape() || gk.dtype() != input.dtype() {
                panic!(
                    "internal: {} backward rule gave a gradient of shape {} {} for input {k} of shape {} {}",
                    node.op.name(),
                    gk.shape(),
                    gk.dtype(),
                    input.shape(),
                    input.dtype()
                );
            }
            let p = my_edges[k];
            grads[p] = Some(match grads[p].take() {
                Some(prev) => &prev + &gk,
                None => gk,
            });
        }
    }
    // Hand the (emptied) scratch back for the next pass on this thread, unless the graph was huge.
    grads.clear();
    if n <= KEEP_SCRATCH_NODES {
        slot_of.clear();
        slot_pos.clear();
        reaches.clear();
        edge_start.clear();
        edges.clear();
        let scratch = Scratch {
            slot_of,
            slot_pos,
            reaches,
            edge_start,
            edges,
            grads,
            order: reuse(order),
            stack: reuse(stack),
        };
        let _ = SCRATCH.try_with(|s| s.set(Some(scratch)));
    }
    results
}

/// Gradients of a scalar with respect to the variables it depends on, from [`Tensor::backward`].
///
/// ```
/// use nabla::{DType, Tensor};
/// let w = Tensor::from_vec(vec![1.0f64, 2.0], [2]).variable();
/// let loss = (&w * &w).sum();
/// let grads = loss.backward();
/// assert_eq!(grads.get(&w).unwrap().to_vec::<f64>(), vec![2.0, 4.0]);
/// ```
#[derive(Clone, Default)]
pub struct Grads {
    pub(crate) map: FxHashMap<u64, Tensor>,
}

impl Grads {
    /// The gradient for variable `var`, or `None` when the loss does not depend on it.
    pub fn get(&self, var: &Tensor) -> Option<&Tensor> {
        var.0.node.as_ref().and_then(|n| self.map.get(&n.id))
    }
    /// The gradient for `var`, or zeros of its shape when the loss does not depend on it.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let (a, b) = (Tensor::scalar(2.0f64).variable(), Tensor::scalar(1.0f64).variable());
    /// let grads = (&a * &a).backward();
    /// assert_eq!(grads.get_or_zeros(&a).item(), 4.0);
    /// assert_eq!(grads.get_or_zeros(&b).item(), 0.0); // the loss does not use b
    /// assert_eq!(grads.len(), 1);
    /// ```
    pub fn get_or_zeros(&self, var: &Tensor) -> Tensor {
        self.get(var).cloned().unwrap_or_else(|| var.zeros_like())
    }
    /// Removes and returns the gradient for `var`.
    pub fn remove(&mut self, var: &Tensor) -> Option<Tensor> {
        var.0.node.as_ref().and_then(|n| self.map.remove(&n.id))
    }
    /// Sets the gradient for `var` (which must be a variable).
    ///
    /// ```
    /// use nabla::Tensor;
    /// let w = Tensor::scalar(3.0f64).variable();
    /// let mut grads = (&w * &w).backward();
    /// let g = grads.remove(&w).unwrap();      // 6
    /// grads.insert(&w, g.clamp(-1.0, 1.0));   // e.g. a hand-made clipping
    /// assert_eq!(grads.get(&w).unwrap().item(), 1.0);
    /// ```
    pub fn insert(&mut self, var: &Tensor, grad: Tensor) {
        let id = var
            .0
            .node
            .as_ref()
            .expect("Grads::insert: not a variable (call .variable())")
            .id;
        self.map.insert(id, grad);
    }
    /// Number of variables with a gradient.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// Whether no variable received a gradient.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
