//! The PyTorch-style face of autodiff on [`Tensor`]: variables, `backward`, `detach`.

use super::backward::{self, Grads, Targets};
use super::{Leaf, Node, state};
use crate::tensor::Tensor;
use smallvec::SmallVec;

impl Tensor {
    /// This value as a new differentiable variable (a leaf of the graph), for
    /// [`backward`](Tensor::backward). The data is shared, not copied.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let w = Tensor::scalar(3.0f64).variable();
    /// let g = (&w * &w).backward();
    /// assert_eq!(g.get(&w).unwrap().item(), 6.0);
    /// ```
    pub fn variable(&self) -> Tensor {
        let mut v = self.view_as(self.layout().clone());
        std::sync::Arc::get_mut(&mut v.0).expect("fresh").node = Some(Node {
            id: state::next_id(),
            op: super::op_slot::OpSlot::new(Leaf),
            inputs: SmallVec::new(),
        });
        crate::compile::recorded(&v);
        v
    }

    /// Whether this tensor is part of a recorded computation (a variable, or computed from one while
    /// recording was on).
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// let x = Tensor::ones([2], DType::F32);
    /// assert!(!x.requires_grad());
    /// assert!(x.variable().requires_grad());
    /// ```
    pub fn requires_grad(&self) -> bool {
        self.0.node.is_some()
    }

    /// Bytes of the distinct data buffers held by the recorded graph behind this tensor: its own
    /// data and that of every recorded input reachable from it, each buffer counted once (views
    /// share their buffer). This is the memory a backward pass from here keeps alive, apart from
    /// small constants held by the operations themselves (one-element tensors held inline count as
    /// one element each).
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// let x = Tensor::ones([1000], DType::F64).variable();
    /// let y = (&x * 2.0).exp();
    /// assert_eq!(y.graph_bytes(), 3 * 8000);
    /// ```
    pub fn graph_bytes(&self) -> usize {
        use crate::tensor::storage::Storage;
        let mut seen_nodes = std::collections::HashSet::new();
        let mut seen_buffers = std::collections::HashSet::new();
        let mut stack = vec![self.clone()];
        let mut bytes = 0;
        while let Some(t) = stack.pop() {
            let (key, size) = match &t.0.storage {
                Storage::F32(b) => (std::sync::Arc::as_ptr(b) as *const u8 as usize, b.len() * 4),
                Storage::F64(b) => (std::sync::Arc::as_ptr(b) as *const u8 as usize, b.len() * 8),
                Storage::F32One(_) => (std::sync::Arc::as_ptr(&t.0) as usize, 4),
                Storage::F64One(_) => (std::sync::Arc::as_ptr(&t.0) as usize, 8),
            };
            if seen_buffers.insert(key) {
                bytes += size;
            }
            if let Some(node) = &t.0.node
                && seen_nodes.insert(node.id)
            {
                stack.extend(node.inputs.iter().cloned());
            }
        }
        bytes
    }

    /// Whether this tensor is a leaf variable (created by [`variable`](Tensor::variable)).
    ///
    /// ```
    /// use nabla::Tensor;
    /// let w = Tensor::scalar(2.0f64).variable();
    /// let y = &w * 3.0;
    /// assert!(w.is_leaf() && !y.is_leaf());
    /// ```
    pub fn is_leaf(&self) -> bool {
        self.0
            .node
            .as_ref()
            .is_some_and(|n| n.inputs.is_empty() && !n.op.is_lowered())
    }

    /// The same values cut off from differentiation: no graph link, no forward-mode tangents.
    /// Gradients do not flow through the result (like `torch.Tensor.detach` and
    /// `jax.lax.stop_gradient`).
    ///
    /// ```
    /// use nabla::{grad, Tensor};
    /// let f = grad(|x: &Tensor| (x * &x.detach()).sum());
    /// assert_eq!(f(&Tensor::scalar(3.0f64)).item(), 3.0);
    /// ```
    pub fn detach(&self) -> Tensor {
        crate::compile::guard_read("detach", self);
        if self.0.node.is_none() && self.0.tangents.is_empty() {
            return self.clone();
        }
        self.view_as(self.layout().clone())
    }

    /// Alias of [`detach`](Tensor::detach), in JAX's words.
    ///
    /// ```
    /// use nabla::{grad, Tensor};
    /// let f = grad(|x: &Tensor| (x * x.stop_gradient()).sum());
    /// assert_eq!(f(&Tensor::scalar(5.0f64)).item(), 5.0);
    /// ```
    pub fn stop_gradient(&self) -> Tensor {
        self.detach()
    }

    /// Reverse mode from this scalar: the gradient with respect to every variable it depends on.
    ///
    /// Inside a function transform (so that the result can be differentiated again) the backward
    /// computation is recorded; at top level it is not.
    ///
    /// # Panics
    /// If the tensor has more than one element.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let w = Tensor::from_vec(vec![1.0f64, 2.0], [2]).variable();
    /// let b = Tensor::scalar(0.5f64).variable();
    /// let x = Tensor::from_vec(vec![3.0f64, 4.0], [2]); // a constant: no gradient
    /// let loss = ((&w * &x).sum() + &b).square();      // (w·x + b)² = 11.5²
    /// let grads = loss.backward();
    /// assert_eq!(grads.get(&w).unwrap().to_vec::<f64>(), vec![69.0, 92.0]); // 2·11.5·x
    /// assert_eq!(grads.get(&b).unwrap().item(), 23.0);
    /// assert!(grads.get(&x).is_none());
    /// ```
    pub fn backward(&self) -> Grads {
        if self.numel() != 1 {
            panic!(
                "backward: needs a one-element loss, got shape {} (reduce it first, or use backward_with)",
                self.shape()
            );
        }
        self.backward_with(&self.ones_like())
    }

    /// Reverse mode seeded with the cotangent `seed` (same shape as this tensor).
    ///
    /// ```
    /// use nabla::Tensor;
    /// let w = Tensor::from_vec(vec![1.0f64, 2.0], [2]).variable();
    /// let y = &w * &w; // not a scalar
    /// let grads = y.backward_with(&Tensor::from_vec(vec![1.0f64, 10.0], [2]));
    /// assert_eq!(grads.get(&w).unwrap().to_vec::<f64>(), vec![2.0, 40.0]);
    /// ```
    pub fn backward_with(&self, seed: &Tensor) -> Grads {
        if seed.shape() != self.shape() {
            panic!(
                "backward_with: seed shape {} differs from output shape {}",
                seed.shape(),
                self.shape()
            );
        }
        let create_graph = state::depth() > 0 || seed.requires_grad();
        Grads {
            map: backward::run(self, seed.clone(), Targets::Leaves, create_graph),
        }
    }
}
