//! The reverse-mode engine: one pass over the recorded graph, newest node first.

use super::state;
use crate::backend;
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
    /// Per node, by position in `order`: whether it is a target, whether it reaches one, where its
    /// edges start in `edges`, and its gradient so far.
    target: Vec<bool>,
    reaches: Vec<bool>,
    edge_start: Vec<u32>,
    grads: Vec<Option<Tensor>>,
    /// Per input of every node (in order): the input's slot, then (once the traversal is done) its
    /// position in `order`; NONE for inputs that are not tracked or cannot reach a target.
    edges: Vec<u32>,
    /// Per slot (nodes are numbered in the order they are discovered): the node's position.
    slot_pos: Vec<u32>,
    /// The slots of the nodes in the heap, by id: only the nodes discovered and not yet taken out,
    /// so the table stays small (a few entries for a chain) and in cache.
    pending: FxHashMap<u64, u32>,
    /// Allocations of `order` and the heap, which borrow the graph: stored empty, with the element
    /// type's lifetime erased (see [`reuse`]).
    order: Vec<usize>,
    heap: Vec<Pending<'static>>,
}

/// A node waiting in the heap of the traversal: its id, its slot, and the tensor.
struct Pending<'a> {
    id: u64,
    slot: u32,
    t: &'a Tensor,
}

impl PartialEq for Pending<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for Pending<'_> {}
impl PartialOrd for Pending<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.id.cmp(&other.id)
    }
}

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
///
/// Node ids grow with creation (a node's id is larger than its inputs'), so newest-first is a
/// topological order of the graph. The traversal pops nodes from a max-heap of ids: each node comes
/// out after all the nodes that use it, in the reverse of the order the program created them, so it
/// walks the graph's memory mostly downwards instead of jumping along chains the way a depth-first
/// search does, and the table that recognises nodes met again holds only the nodes discovered and
/// not yet taken out (the frontier), not the whole graph. Nodes older than every target are not
/// entered: they cannot reach one.
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
    // Ids below `min_id` are neither targets nor reach one.
    let mut sorted_ids: SmallVec<[u64; 8]> = SmallVec::new();
    let min_id = match targets {
        Targets::Nodes(ids) => {
            sorted_ids.extend_from_slice(ids);
            sorted_ids.sort_unstable();
            match sorted_ids.first() {
                Some(&m) => m,
                None => return results,
            }
        }
        Targets::Leaves => 0,
    };
    if root_node.id < min_id {
        return results;
    }
    let is_target = |n: &super::Node| -> bool {
        match targets {
            Targets::Nodes(_) => sorted_ids.binary_search(&n.id).is_ok(),
            Targets::Leaves => n.inputs.is_empty(),
        }
    };

    const NONE: u32 = u32::MAX;
    let Scratch {
        mut target,
        mut reaches,
        mut edge_start,
        mut grads,
        mut edges,
        mut slot_pos,
        mut pending,
        order,
        heap,
    } = SCRATCH
        .try_with(|s| s.take())
        .ok()
        .flatten()
        .unwrap_or_default();
    // The graph is immutable and kept alive by `root`, so the traversal borrows its tensors.
    let mut order: Vec<&Tensor> = reuse(order);
    let mut heap = std::collections::BinaryHeap::from(reuse::<_, Pending<'_>>(heap));
    heap.push(Pending {
        id: root_node.id,
        slot: 0,
        t: root,
    });
    slot_pos.push(NONE);
    while let Some(Pending { id, slot, t }) = heap.pop() {
        pending.remove(&id);
        let node = t.0.node.as_ref().expect("tracked");
        if node.inputs.is_empty() && node.op.is_lowered() {
            // a node of a lean compile trace: the trace restarts with the full graph
            crate::compile::needs_graph();
        }
        slot_pos[slot as usize] = order.len() as u32;
        order.push(t);
        target.push(is_target(node));
        edge_start.push(edges.len() as u32);
        for input in &node.inputs {
            let s = match input.0.node.as_ref() {
                Some(n) if n.id >= min_id => *pending.entry(n.id).or_insert_with(|| {
                    let s = slot_pos.len() as u32;
                    assert!(s < NONE, "backward: graph too large");
                    slot_pos.push(NONE);
                    heap.push(Pending {
                        id: n.id,
                        slot: s,
                        t: input,
                    });
                    s
                }),
                _ => NONE,
            };
            edges.push(s);
        }
    }
    let n = order.len();
    edge_start.push(edges.len() as u32);
    for e in edges.iter_mut() {
        if *e != NONE {
            *e = slot_pos[*e as usize];
        }
    }
    // Whether each node reaches a target: its inputs come later in `order`.
    reaches.resize(n, false);
    for i in (0..n).rev() {
        let mine = &edges[edge_start[i] as usize..edge_start[i + 1] as usize];
        reaches[i] = target[i] || mine.iter().any(|&p| p != NONE && reaches[p as usize]);
    }

    grads.resize(n, None);
    grads[0] = Some(seed);
    let _mode = state::GradModeGuard::set(create_graph);
    let mut needs: SmallVec<[bool; 4]> = SmallVec::new();
    for i in 0..n {
        // The graph is usually far larger than the caches: fetch a node a few steps ahead.
        if let Some(ahead) = order.get(i + PREFETCH_AHEAD) {
            prefetch(ahead);
        }
        if !reaches[i] {
            continue;
        }
        let Some(g) = grads[i].take() else { continue };
        let t = order[i];
        let node = t.0.node.as_ref().expect("tracked");
        if target[i] {
            results.insert(node.id, g.clone());
        }
        let my_edges = &edges[edge_start[i] as usize..edge_start[i + 1] as usize];
        needs.clear();
        needs.extend(my_edges.iter().map(|&p| p != NONE && reaches[p as usize]));
        if !needs.iter().any(|&b| b) {
            continue;
        }
        let input_grads = node.op.vjp(&node.inputs, t, &g, &needs);
        drop(g);
        for (k, gk) in input_grads.into_iter().enumerate() {
            if !needs.get(k).copied().unwrap_or(false) {
                continue;
            }
            let Some(gk) = gk else { continue };
            // Built-in rules are tested to give gradients of their inputs' shapes (user rules are
            // checked by `CustomOp`); checking here in release builds would read every input again.
            #[cfg(debug_assertions)]
            {
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
            }
            let p = my_edges[k] as usize;
            grads[p] = Some(match grads[p].take() {
                Some(prev) => accumulate(prev, gk),
                None => gk,
            });
        }
    }
    // Hand the (emptied) scratch back for the next pass on this thread, unless the graph was huge.
    grads.clear();
    if n <= KEEP_SCRATCH_NODES {
        target.clear();
        reaches.clear();
        edge_start.clear();
        edges.clear();
        slot_pos.clear();
        pending.clear();
        let scratch = Scratch {
            target,
            reaches,
            edge_start,
            grads,
            edges,
            slot_pos,
            pending,
            order: reuse(order),
            heap: reuse(heap.into_vec()),
        };
        let _ = SCRATCH.try_with(|s| s.set(Some(scratch)));
    }
    results
}

/// How many nodes ahead of the one being differentiated the backward loop prefetches.
const PREFETCH_AHEAD: usize = 6;

/// Asks the CPU to bring `t`'s fields (a tensor is 168 bytes: three cache lines) into the cache.
#[inline(always)]
fn prefetch(t: &Tensor) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let p = std::sync::Arc::as_ptr(&t.0).cast::<i8>();
        // SAFETY: a prefetch is a hint that never faults, whatever the address.
        unsafe {
            _mm_prefetch(p, _MM_HINT_T0);
            _mm_prefetch(p.wrapping_add(64), _MM_HINT_T0);
            _mm_prefetch(p.wrapping_add(128), _MM_HINT_T0);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = t;
}

/// `acc + g` for two gradients of the same input. When `acc` is a plain value (not recorded, no
/// tangents) that nothing else holds, and `g` is plain too, `g` is added into `acc`'s buffer: no
/// new tensor, the same sums as `acc + g`. Otherwise (a recorded backward pass, a shared or
/// strided `acc`) the addition is an ordinary operation.
fn accumulate(mut acc: Tensor, g: Tensor) -> Tensor {
    fn plain(t: &Tensor) -> bool {
        t.0.node.is_none() && t.0.tangents.is_empty()
    }
    if plain(&acc) && plain(&g) && backend::add_assign(&mut acc, &g) {
        return acc;
    }
    &acc + &g
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

#[cfg(test)]
mod tests {
    use crate::{Tensor, grad, value_and_grad};

    /// An input used several times gets the sum of its gradients (added in place once the sum is
    /// a fresh tensor), and a seed the caller still holds is never written.
    #[test]
    fn repeated_uses_sum_without_writing_held_tensors() {
        let x = Tensor::from_vec(vec![1.0f64, 2.0], [2]).variable();
        // the adds hand the seed itself to both of their inputs
        let y = &(&(&x + &x) + &(&x * 3.0)) + &x;
        let seed = Tensor::from_vec(vec![1.0f64, 10.0], [2]);
        let g = y.backward_with(&seed);
        assert_eq!(g.get(&x).unwrap().to_vec::<f64>(), vec![6.0, 60.0]);
        assert_eq!(seed.to_vec::<f64>(), vec![1.0, 10.0]);
        // the same through a recorded backward pass (grad of grad): no in-place sums there
        let d = grad(|x: &Tensor| grad(|x: &Tensor| (x * x * x + x * x).sum())(x).sum());
        assert_eq!(
            d(&Tensor::from_vec(vec![1.0f64, 2.0], [2])).to_vec::<f64>(),
            vec![8.0, 14.0]
        );
    }

    /// Values recorded before a transform's variables are constants to it (the traversal does not
    /// enter them), and stay differentiable on their own.
    #[test]
    fn older_recorded_values_are_constants_to_an_inner_transform() {
        let w = Tensor::scalar(3.0f64).variable();
        let c = &w * &w;
        let (v, g) = value_and_grad(
            |p: &[Tensor]| &(&p[0] * &c) + &p[0].sin(),
            &[Tensor::scalar(0.5f64)],
        );
        assert!((v.item() - (4.5 + 0.5f64.sin())).abs() < 1e-12);
        assert!((g[0].item() - (9.0 + 0.5f64.cos())).abs() < 1e-12);
        assert_eq!(c.backward().get(&w).unwrap().item(), 6.0);
    }
}
