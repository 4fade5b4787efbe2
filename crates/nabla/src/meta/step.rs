//! Optimiser steps as pure, differentiable tensor functions with tensor hyperparameters.

use crate::tensor::Tensor;

/// An optimiser's per-parameter buffers and its step count. `buffers` holds
/// [`DiffOptimizer::slots`] tensors per parameter, parameter by parameter.
#[derive(Clone, Debug)]
pub struct OptState {
    /// Number of updates taken so far.
    pub step: usize,
    /// The buffers (momentum, moments), `slots` per parameter in parameter order.
    pub buffers: Vec<Tensor>,
}

impl OptState {
    /// The same state cut off from differentiation (for truncated backpropagation).
    pub fn detach(&self) -> OptState {
        OptState {
            step: self.step,
            buffers: self.buffers.iter().map(Tensor::detach).collect(),
        }
    }
}

/// An optimiser step written with tensor operations: `(params, grads, state) → (params', state')`.
///
/// Nothing is mutated, so the step can sit inside any transform; every input (parameters,
/// gradients, buffers, the hyperparameter tensors) receives gradients when it is tracked.
/// Hyperparameters are tensors of the parameters' dtype that broadcast against every parameter
/// (scalars, usually).
pub trait DiffOptimizer: Clone + Send + Sync + 'static {
    /// Buffers kept per parameter.
    fn slots(&self) -> usize;
    /// The hyperparameter tensors, in a fixed order (see [`with_hyper`](Self::with_hyper)).
    fn hyper(&self) -> Vec<Tensor>;
    /// The same optimiser with these hyperparameter tensors (same order as [`hyper`](Self::hyper)).
    fn with_hyper(&self, hyper: &[Tensor]) -> Self;
    /// One update of every parameter.
    fn update(
        &self,
        params: &[Tensor],
        grads: &[Tensor],
        state: &OptState,
    ) -> (Vec<Tensor>, OptState);
    /// A fresh state for these parameters: zero buffers, step 0.
    fn init(&self, params: &[Tensor]) -> OptState {
        OptState {
            step: 0,
            buffers: params
                .iter()
                .flat_map(|p| (0..self.slots()).map(|_| p.detach().zeros_like()))
                .collect(),
        }
    }
}

fn check(op: &str, params: &[Tensor], grads: &[Tensor], state: &OptState, slots: usize) {
    if params.len() != grads.len() || state.buffers.len() != params.len() * slots {
        panic!(
            "{op}: {} parameters, {} gradients and {} state buffers (expected {} per parameter)",
            params.len(),
            grads.len(),
            state.buffers.len(),
            slots
        );
    }
    for (p, g) in params.iter().zip(grads) {
        if p.shape() != g.shape() || p.dtype() != g.dtype() {
            panic!(
                "{op}: gradient {} {} does not match parameter {} {}",
                g.shape(),
                g.dtype(),
                p.shape(),
                p.dtype()
            );
        }
    }
}

fn check_hyper(op: &str, hyper: &[Tensor], n: usize) {
    if hyper.len() != n {
        panic!(
            "{op}: expected {n} hyperparameter tensors, got {}",
            hyper.len()
        );
    }
}

/// Plain SGD: `p ← p - lr · g`.
///
/// ```
/// use nabla::meta::{DiffOptimizer, DiffSgd};
/// use nabla::Tensor;
/// let opt = DiffSgd::new(Tensor::scalar(0.5f64));
/// let p = vec![Tensor::scalar(1.0f64)];
/// let (p2, _) = opt.update(&p, &[Tensor::scalar(2.0f64)], &opt.init(&p));
/// assert_eq!(p2[0].item(), 0.0);
/// ```
#[derive(Clone, Debug)]
pub struct DiffSgd {
    /// Learning rate.
    pub lr: Tensor,
}

impl DiffSgd {
    /// SGD with learning rate `lr` (a tensor: make it a variable to learn it).
    pub fn new(lr: Tensor) -> DiffSgd {
        DiffSgd { lr }
    }
}

impl DiffOptimizer for DiffSgd {
    fn slots(&self) -> usize {
        0
    }
    fn hyper(&self) -> Vec<Tensor> {
        vec![self.lr.clone()]
    }
    fn with_hyper(&self, hyper: &[Tensor]) -> Self {
        check_hyper("DiffSgd", hyper, 1);
        DiffSgd::new(hyper[0].clone())
    }
    fn update(
        &self,
        params: &[Tensor],
        grads: &[Tensor],
        state: &OptState,
    ) -> (Vec<Tensor>, OptState) {
        check("DiffSgd::update", params, grads, state, 0);
        let next = params
            .iter()
            .zip(grads)
            .map(|(p, g)| p - &(&self.lr * g))
            .collect();
        (
            next,
            OptState {
                step: state.step + 1,
                buffers: Vec::new(),
            },
        )
    }
}

/// SGD with heavy-ball momentum, as `torch.optim.SGD`: `b ← μ b + g`, `p ← p - lr · b`.
///
/// ```
/// use nabla::meta::{DiffMomentum, DiffOptimizer};
/// use nabla::Tensor;
/// let opt = DiffMomentum::new(Tensor::scalar(0.1f64), Tensor::scalar(0.9f64));
/// let p = vec![Tensor::scalar(0.0f64)];
/// let g = [Tensor::scalar(1.0f64)];
/// let (p1, s1) = opt.update(&p, &g, &opt.init(&p));
/// let (p2, _) = opt.update(&p1, &g, &s1);
/// assert!((p2[0].item() + 0.29).abs() < 1e-12); // -0.1, then -0.1 - 0.1·(0.9 + 1)
/// ```
#[derive(Clone, Debug)]
pub struct DiffMomentum {
    /// Learning rate.
    pub lr: Tensor,
    /// Momentum coefficient μ.
    pub momentum: Tensor,
}

impl DiffMomentum {
    /// Momentum SGD with learning rate `lr` and coefficient `momentum` (tensors).
    pub fn new(lr: Tensor, momentum: Tensor) -> DiffMomentum {
        DiffMomentum { lr, momentum }
    }
}

impl DiffOptimizer for DiffMomentum {
    fn slots(&self) -> usize {
        1
    }
    fn hyper(&self) -> Vec<Tensor> {
        vec![self.lr.clone(), self.momentum.clone()]
    }
    fn with_hyper(&self, hyper: &[Tensor]) -> Self {
        check_hyper("DiffMomentum", hyper, 2);
        DiffMomentum::new(hyper[0].clone(), hyper[1].clone())
    }
    fn update(
        &self,
        params: &[Tensor],
        grads: &[Tensor],
        state: &OptState,
    ) -> (Vec<Tensor>, OptState) {
        check("DiffMomentum::update", params, grads, state, 1);
        let mut next = Vec::with_capacity(params.len());
        let mut bufs = Vec::with_capacity(params.len());
        for ((p, g), b) in params.iter().zip(grads).zip(&state.buffers) {
            let b = &(&self.momentum * b) + g;
            next.push(p - &(&self.lr * &b));
            bufs.push(b);
        }
        (
            next,
            OptState {
                step: state.step + 1,
                buffers: bufs,
            },
        )
    }
}

/// Adam (Kingma & Ba) with bias correction:
/// `m ← β₁m + (1-β₁)g`, `v ← β₂v + (1-β₂)g²`, `p ← p - lr · m̂ / sqrt(v̂ + ε²)`.
///
/// ε sits inside the square root (rather than `sqrt(v̂) + ε`) so that the update stays
/// differentiable where a gradient is exactly zero: the derivative of `sqrt` at 0 is infinite.
/// For `|g| ≫ ε` the two forms agree.
///
/// ```
/// use nabla::meta::{DiffAdam, DiffOptimizer};
/// use nabla::Tensor;
/// let opt = DiffAdam::new(Tensor::scalar(0.1f64));
/// let p = vec![Tensor::scalar(1.0f64)];
/// let (p1, _) = opt.update(&p, &[Tensor::scalar(3.0f64)], &opt.init(&p));
/// assert!((p1[0].item() - 0.9).abs() < 1e-9); // the first step has size lr
/// ```
#[derive(Clone, Debug)]
pub struct DiffAdam {
    /// Learning rate.
    pub lr: Tensor,
    /// First-moment decay β₁.
    pub beta1: Tensor,
    /// Second-moment decay β₂.
    pub beta2: Tensor,
    /// ε (a constant).
    pub eps: f64,
}

impl DiffAdam {
    /// Adam with learning rate `lr`, β₁ = 0.9, β₂ = 0.999, ε = 1e-8 (of `lr`'s dtype).
    pub fn new(lr: Tensor) -> DiffAdam {
        let beta1 = lr.detach().full_like(0.9);
        let beta2 = lr.detach().full_like(0.999);
        DiffAdam {
            lr,
            beta1,
            beta2,
            eps: 1e-8,
        }
    }
    /// Sets β₁ and β₂ (tensors: make them variables to learn them).
    pub fn betas(mut self, beta1: Tensor, beta2: Tensor) -> DiffAdam {
        self.beta1 = beta1;
        self.beta2 = beta2;
        self
    }
    /// Sets ε.
    pub fn eps(mut self, eps: f64) -> DiffAdam {
        self.eps = eps;
        self
    }
}

impl DiffOptimizer for DiffAdam {
    fn slots(&self) -> usize {
        2
    }
    fn hyper(&self) -> Vec<Tensor> {
        vec![self.lr.clone(), self.beta1.clone(), self.beta2.clone()]
    }
    fn with_hyper(&self, hyper: &[Tensor]) -> Self {
        check_hyper("DiffAdam", hyper, 3);
        DiffAdam {
            lr: hyper[0].clone(),
            beta1: hyper[1].clone(),
            beta2: hyper[2].clone(),
            eps: self.eps,
        }
    }
    fn update(
        &self,
        params: &[Tensor],
        grads: &[Tensor],
        state: &OptState,
    ) -> (Vec<Tensor>, OptState) {
        check("DiffAdam::update", params, grads, state, 2);
        let t = (state.step + 1) as f64;
        // 1 - β^t, differentiable in β
        let c1 = (-self.beta1.powf(t)) + 1.0;
        let c2 = (-self.beta2.powf(t)) + 1.0;
        let one_m_b1 = (-&self.beta1) + 1.0;
        let one_m_b2 = (-&self.beta2) + 1.0;
        let eps2 = self.eps * self.eps;
        let mut next = Vec::with_capacity(params.len());
        let mut bufs = Vec::with_capacity(2 * params.len());
        for (i, (p, g)) in params.iter().zip(grads).enumerate() {
            let m = &(&self.beta1 * &state.buffers[2 * i]) + &(&one_m_b1 * g);
            let v = &(&self.beta2 * &state.buffers[2 * i + 1]) + &(&one_m_b2 * &g.square());
            let mhat = &m / &c1;
            let vhat = &v / &c2;
            let step = &(&self.lr * &mhat) / &(vhat + eps2).sqrt();
            next.push(p - &step);
            bufs.push(m);
            bufs.push(v);
        }
        (
            next,
            OptState {
                step: state.step + 1,
                buffers: bufs,
            },
        )
    }
}
