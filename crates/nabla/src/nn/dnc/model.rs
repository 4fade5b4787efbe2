//! The DNC as a layer: an LSTM controller, an interface to an `N x W` memory with `R` read heads
//! and one write head, and an output layer reading the controller state and the read vectors.

use super::addressing::{
    allocation_weighting, content_weighting, directional_weightings, link_matrix, oneplus,
    precedence, read_memory, read_weighting, retention, usage, write_memory, write_weighting,
};
use super::sparse::{
    SparseLinks, keep_top_k, sparse_allocation_weighting, sparse_content_weighting,
};
use crate::nn::{Linear, LstmCell, Module, ParamKind};
use crate::rand::Rng;
use crate::{DType, Tensor};

/// Sizes of a [`Dnc`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DncConfig {
    /// Features of each input step.
    pub input_size: usize,
    /// Features of each output step.
    pub output_size: usize,
    /// Hidden units of the LSTM controller.
    pub hidden_size: usize,
    /// Memory slots `N`.
    pub memory_size: usize,
    /// Word size `W`.
    pub word_size: usize,
    /// Read heads `R`.
    pub read_heads: usize,
    /// `Some(K)`: the sparse DNC, with top-K content lookup, K-sparse read weightings, allocation
    /// among the K least-used slots and at most K links per row and per column. `None`: the dense
    /// DNC.
    pub sparse: Option<usize>,
    /// Parameter and state dtype.
    pub dtype: DType,
}

impl DncConfig {
    /// Length of the interface vector: `W R + 3 W + 5 R + 3`.
    pub fn interface_size(&self) -> usize {
        let (w, r) = (self.word_size, self.read_heads);
        w * r + 3 * w + 5 * r + 3
    }
}

/// The temporal links: dense `[B, N, N]` or sparse.
#[derive(Clone)]
pub enum Links {
    /// The dense matrix `[B, N, N]`.
    Dense(Tensor),
    /// At most K entries per row and per column.
    Sparse(SparseLinks),
}

/// The recurrent state of a [`Dnc`] (batch `B`).
#[derive(Clone)]
pub struct DncState {
    /// Controller hidden state `[B, H]`.
    pub h: Tensor,
    /// Controller cell state `[B, H]`.
    pub c: Tensor,
    /// Memory `[B, N, W]`.
    pub memory: Tensor,
    /// Usage `[B, N]`.
    pub usage: Tensor,
    /// Last write weighting `[B, N]`.
    pub write_weights: Tensor,
    /// Last read weightings `[B, R, N]`.
    pub read_weights: Tensor,
    /// Precedence `[B, N]`.
    pub precedence: Tensor,
    /// Temporal links.
    pub links: Links,
    /// Last read vectors `[B, R, W]`.
    pub reads: Tensor,
}

/// The interface vector split into its parts (after their squashing functions).
pub struct Interface {
    /// Read keys `[B, R, W]`.
    pub read_keys: Tensor,
    /// Read strengths `[B, R]` (oneplus).
    pub read_strengths: Tensor,
    /// Write key `[B, 1, W]`.
    pub write_key: Tensor,
    /// Write strength `[B, 1]` (oneplus).
    pub write_strength: Tensor,
    /// Erase vector `[B, W]` (sigmoid).
    pub erase: Tensor,
    /// Write vector `[B, W]`.
    pub write_vector: Tensor,
    /// Free gates `[B, R]` (sigmoid).
    pub free_gates: Tensor,
    /// Allocation gate `[B, 1]` (sigmoid).
    pub alloc_gate: Tensor,
    /// Write gate `[B, 1]` (sigmoid).
    pub write_gate: Tensor,
    /// Read modes `[B, R, 3]` (softmax: backward, content, forward).
    pub read_modes: Tensor,
}

/// Splits a raw interface vector `[B, WR + 3W + 5R + 3]` for `R` heads of word size `W`.
pub fn split_interface(xi: &Tensor, read_heads: usize, word_size: usize) -> Interface {
    let (r, w) = (read_heads, word_size);
    let want = w * r + 3 * w + 5 * r + 3;
    if xi.rank() != 2 || xi.dims()[1] != want {
        panic!(
            "split_interface: interface of shape {} must be [B, {want}] for {r} read heads of word size {w}",
            xi.shape()
        );
    }
    let b = xi.dims()[0];
    let mut at = 0;
    let mut take = |len: usize| {
        let t = xi.narrow(1, at, len);
        at += len;
        t
    };
    Interface {
        read_keys: take(r * w).reshape([b, r, w]),
        read_strengths: oneplus(&take(r)),
        write_key: take(w).reshape([b, 1, w]),
        write_strength: oneplus(&take(1)),
        erase: take(w).sigmoid(),
        write_vector: take(w),
        free_gates: take(r).sigmoid(),
        alloc_gate: take(1).sigmoid(),
        write_gate: take(1).sigmoid(),
        read_modes: take(3 * r).reshape([b, r, 3]).softmax(2),
    }
}

/// One step of the memory: write with the interface, then read. Returns the new state without
/// the controller part (`h` and `c` are copied from `prev`).
pub fn memory_step(prev: &DncState, ifc: &Interface, sparse: Option<usize>) -> DncState {
    let psi = retention(&ifc.free_gates, &prev.read_weights);
    let u = usage(&prev.usage, &prev.write_weights, &psi);
    let (alloc, write_content) = match sparse {
        None => (
            allocation_weighting(&u),
            content_weighting(&prev.memory, &ifc.write_key, &ifc.write_strength),
        ),
        Some(k) => (
            sparse_allocation_weighting(&u, k),
            sparse_content_weighting(&prev.memory, &ifc.write_key, &ifc.write_strength, k),
        ),
    };
    let ww = write_weighting(
        &alloc,
        &write_content.squeeze(1),
        &ifc.alloc_gate,
        &ifc.write_gate,
    );
    let memory = write_memory(&prev.memory, &ww, &ifc.erase, &ifc.write_vector);
    let (links, (fwd, bwd)) = match &prev.links {
        Links::Dense(l) => {
            let l = link_matrix(l, &ww, &prev.precedence);
            let fb = directional_weightings(&l, &prev.read_weights);
            (Links::Dense(l), fb)
        }
        Links::Sparse(l) => {
            let l = l.update(&ww, &prev.precedence);
            let fb = l.directional_weightings(&prev.read_weights);
            (Links::Sparse(l), fb)
        }
    };
    let p = precedence(&prev.precedence, &ww);
    let read_content = match sparse {
        None => content_weighting(&memory, &ifc.read_keys, &ifc.read_strengths),
        Some(k) => sparse_content_weighting(&memory, &ifc.read_keys, &ifc.read_strengths, k),
    };
    let mut wr = read_weighting(&bwd, &read_content, &fwd, &ifc.read_modes);
    if let Some(k) = sparse {
        wr = keep_top_k(&wr, k);
    }
    let reads = read_memory(&memory, &wr);
    DncState {
        h: prev.h.clone(),
        c: prev.c.clone(),
        memory,
        usage: u,
        write_weights: ww,
        read_weights: wr,
        precedence: p,
        links,
        reads,
    }
}

/// The Differentiable Neural Computer (Graves et al. 2016): an LSTM controller reads the input and
/// the previous read vectors; a linear layer maps its output to the interface vector that drives
/// the memory; the output is a linear map of the controller output and the new read vectors.
///
/// ```
/// use nabla::nn::dnc::{Dnc, DncConfig};
/// use nabla::{rand::SeedableRng, DType, Tensor};
/// let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(0);
/// let cfg = DncConfig { input_size: 3, output_size: 2, hidden_size: 8, memory_size: 6,
///     word_size: 4, read_heads: 2, sparse: None, dtype: DType::F32 };
/// let dnc = Dnc::new(cfg, &mut rng);
/// let x = Tensor::randn([5, 7, 3], DType::F32, &mut rng); // [B, T, I]
/// let (y, states) = dnc.forward_sequence(&x, None);
/// assert_eq!(y.dims(), &[5, 7, 2]);
/// assert_eq!(states.last().unwrap().read_weights.dims(), &[5, 2, 6]);
/// ```
pub struct Dnc {
    /// The LSTM controller (input: step input and previous reads).
    pub controller: LstmCell,
    /// Controller output to interface vector.
    pub interface: Linear,
    /// Controller output and read vectors to the output.
    pub output: Linear,
    config: DncConfig,
}

impl Module for Dnc {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
        self.controller
            .visit(&crate::nn::join(prefix, "controller"), f);
        self.interface
            .visit(&crate::nn::join(prefix, "interface"), f);
        self.output.visit(&crate::nn::join(prefix, "output"), f);
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
        self.controller
            .visit_mut(&crate::nn::join(prefix, "controller"), f);
        self.interface
            .visit_mut(&crate::nn::join(prefix, "interface"), f);
        self.output.visit_mut(&crate::nn::join(prefix, "output"), f);
    }
}

impl Dnc {
    /// A freshly initialised DNC.
    ///
    /// # Panics
    /// If a size is zero, or the sparse K is not below the memory size.
    pub fn new<R: Rng + ?Sized>(config: DncConfig, rng: &mut R) -> Dnc {
        let c = config;
        if [
            c.input_size,
            c.output_size,
            c.hidden_size,
            c.memory_size,
            c.word_size,
            c.read_heads,
        ]
        .contains(&0)
        {
            panic!("Dnc: every size must be positive, got {c:?}");
        }
        if let Some(k) = c.sparse
            && (k == 0 || k >= c.memory_size)
        {
            panic!(
                "Dnc: sparse K = {k} must be in 1..{} (the memory size)",
                c.memory_size
            );
        }
        let rw = c.read_heads * c.word_size;
        Dnc {
            controller: LstmCell::with_options(
                c.input_size + rw,
                c.hidden_size,
                true,
                c.dtype,
                rng,
            ),
            interface: Linear::with_options(c.hidden_size, c.interface_size(), true, c.dtype, rng),
            output: Linear::with_options(c.hidden_size + rw, c.output_size, true, c.dtype, rng),
            config: c,
        }
    }

    /// The sizes.
    pub fn config(&self) -> DncConfig {
        self.config
    }

    /// The initial state for a batch: zero memory, usage, weightings, links and reads.
    pub fn initial_state(&self, batch: usize) -> DncState {
        let c = self.config;
        let (n, w, r, dt) = (c.memory_size, c.word_size, c.read_heads, c.dtype);
        DncState {
            h: Tensor::zeros([batch, c.hidden_size], dt),
            c: Tensor::zeros([batch, c.hidden_size], dt),
            memory: Tensor::zeros([batch, n, w], dt),
            usage: Tensor::zeros([batch, n], dt),
            write_weights: Tensor::zeros([batch, n], dt),
            read_weights: Tensor::zeros([batch, r, n], dt),
            precedence: Tensor::zeros([batch, n], dt),
            links: match c.sparse {
                None => Links::Dense(Tensor::zeros([batch, n, n], dt)),
                Some(k) => Links::Sparse(SparseLinks::empty(batch, n, k, dt)),
            },
            reads: Tensor::zeros([batch, r, w], dt),
        }
    }

    /// One step: input `[B, I]` and the state -> output `[B, O]` and the new state.
    pub fn step(&self, x: &Tensor, state: &DncState) -> (Tensor, DncState) {
        let c = self.config;
        if x.rank() != 2 || x.dims()[1] != c.input_size {
            panic!(
                "Dnc::step: input of shape {} must be [B, {}]",
                x.shape(),
                c.input_size
            );
        }
        let b = x.dims()[0];
        let rw = c.read_heads * c.word_size;
        let inp = Tensor::concat(&[x.clone(), state.reads.reshape([b, rw])], 1);
        let (h, cell) = self
            .controller
            .forward_with_state(&inp, Some((&state.h, &state.c)));
        let ifc = split_interface(
            &crate::nn::Forward::forward(&self.interface, &h),
            c.read_heads,
            c.word_size,
        );
        let mut next = memory_step(state, &ifc, c.sparse);
        next.h = h;
        next.c = cell;
        let y = crate::nn::Forward::forward(
            &self.output,
            &Tensor::concat(&[next.h.clone(), next.reads.reshape([b, rw])], 1),
        );
        (y, next)
    }

    /// Runs a sequence `[B, T, I]` from `state` (the initial state when `None`): outputs
    /// `[B, T, O]` and the state after each step.
    pub fn forward_sequence(&self, x: &Tensor, state: Option<DncState>) -> (Tensor, Vec<DncState>) {
        if x.rank() != 3 {
            panic!(
                "Dnc::forward_sequence: input of shape {} must be [B, T, I]",
                x.shape()
            );
        }
        let (b, t) = (x.dims()[0], x.dims()[1]);
        let mut s = state.unwrap_or_else(|| self.initial_state(b));
        let mut ys = Vec::with_capacity(t);
        let mut states = Vec::with_capacity(t);
        for i in 0..t {
            let (y, next) = self.step(&x.select(1, i), &s);
            ys.push(y);
            states.push(next.clone());
            s = next;
        }
        (Tensor::stack(&ys, 1), states)
    }
}
