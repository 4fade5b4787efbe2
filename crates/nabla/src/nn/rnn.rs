//! Recurrent layers: [`Rnn`], [`Lstm`], [`Gru`] over whole sequences, and the single-step cells
//! [`RnnCell`], [`LstmCell`], [`GruCell`].
//!
//! Semantics, parameter names and layouts follow PyTorch (`torch.nn.LSTM` and friends), so weights
//! can be exchanged with it in either direction: layer `k` of a stack has `weight_ih_l{k}
//! [G·H, I_k]`, `weight_hh_l{k} [G·H, H]`, `bias_ih_l{k} [G·H]` and `bias_hh_l{k} [G·H]`, with the
//! gate blocks in PyTorch's order (LSTM: i, f, g, o; GRU: r, z, n; G = 1 for the plain RNN), and
//! [`Module::named_parameters`] lists them in PyTorch's order. Every parameter is initialised from
//! `U(-1/√H, 1/√H)`.
//!
//! One difference from PyTorch: sequences are **batch-first** (`[B, T, I]`) by default; set
//! [`RnnOptions::batch_first`] to `false` for time-first `[T, B, I]`. Unbatched sequences `[T, I]`
//! are accepted too. States are always `[num_layers, B, H]` (or `[num_layers, H]` unbatched).
//!
//! Each layer runs as one fused, differentiable operation (see the notes in `recurrent.rs` and `backend/cpu/rnn/`): per
//! time step one matrix product and one fused elementwise pass, split over two threads for large
//! layers, and a fused backpropagation through time that accumulates the weight gradients as it
//! goes. Derivatives of every order and forward mode are supported (higher orders through the
//! same recurrence written with tensor operations).

use super::recurrent::{CellKind, recurrent};
use super::{Forward, Module, ParamKind, join};
use crate::{DType, Tensor};
use rand::Rng;

/// The nonlinearity of an [`Rnn`] or [`RnnCell`] (PyTorch's `nonlinearity="tanh" | "relu"`).
///
/// ```
/// use nabla::nn::{RnnCell, RnnNonlinearity};
/// use nabla::{rand::SeedableRng, DType, Tensor};
/// let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(0);
/// let cell = RnnCell::with_options(2, 3, RnnNonlinearity::Relu, true, DType::F64, &mut rng);
/// let h = cell.forward_with_state(&Tensor::ones([4, 2], DType::F64), None);
/// assert!(h.to_vec::<f64>().iter().all(|&v| v >= 0.0));
/// assert_eq!(cell.nonlinearity(), RnnNonlinearity::Relu);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RnnNonlinearity {
    /// `tanh` (the default).
    #[default]
    Tanh,
    /// `max(x, 0)`.
    Relu,
}

impl RnnNonlinearity {
    fn cell(self) -> CellKind {
        match self {
            RnnNonlinearity::Tanh => CellKind::RnnTanh,
            RnnNonlinearity::Relu => CellKind::RnnRelu,
        }
    }
}

/// Construction options of [`Rnn`], [`Lstm`] and [`Gru`].
///
/// ```
/// use nabla::nn::{Lstm, RnnOptions};
/// use nabla::{rand::SeedableRng, DType};
/// let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(0);
/// let opts = RnnOptions::default().num_layers(2).batch_first(false).dtype(DType::F64);
/// let lstm = Lstm::with_options(3, 5, opts, &mut rng);
/// assert_eq!((lstm.num_layers(), lstm.batch_first()), (2, false));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RnnOptions {
    /// Number of stacked layers (default 1); layer `k > 0` reads the hidden states of layer `k - 1`.
    pub num_layers: usize,
    /// Whether the layers have the biases `bias_ih` and `bias_hh` (default true).
    pub bias: bool,
    /// Inputs and outputs are `[B, T, ·]` when true (the default), `[T, B, ·]` when false.
    pub batch_first: bool,
    /// Element type of the parameters (default `f32`).
    pub dtype: DType,
}

impl Default for RnnOptions {
    fn default() -> Self {
        RnnOptions {
            num_layers: 1,
            bias: true,
            batch_first: true,
            dtype: DType::F32,
        }
    }
}

impl RnnOptions {
    /// Sets the number of layers.
    pub fn num_layers(mut self, num_layers: usize) -> Self {
        self.num_layers = num_layers;
        self
    }
    /// Sets whether the layers have biases.
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }
    /// Sets the sequence layout: `[B, T, ·]` when true, `[T, B, ·]` when false.
    pub fn batch_first(mut self, batch_first: bool) -> Self {
        self.batch_first = batch_first;
        self
    }
    /// Sets the parameters' element type.
    pub fn dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }
}

/// The parameters of one recurrent layer or cell, in PyTorch's layout.
///
/// ```
/// use nabla::nn::Gru;
/// use nabla::rand::SeedableRng;
/// let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(0);
/// let gru = Gru::new(4, 6, &mut rng);
/// let w = &gru.layers[0];
/// assert_eq!((w.weight_ih.dims(), w.weight_hh.dims()), (&[18, 4][..], &[18, 6][..]));
/// ```
pub struct RecurrentWeights {
    /// `[G·H, I]`: the gate blocks stacked (LSTM i, f, g, o; GRU r, z, n).
    pub weight_ih: Tensor,
    /// `[G·H, H]`.
    pub weight_hh: Tensor,
    /// `[G·H]`, when the layer has biases.
    pub bias_ih: Option<Tensor>,
    /// `[G·H]`, when the layer has biases.
    pub bias_hh: Option<Tensor>,
}

impl RecurrentWeights {
    /// PyTorch's initialisation: every parameter from `U(-1/√H, 1/√H)`, drawn in the order
    /// `weight_ih, weight_hh, bias_ih, bias_hh`.
    fn init<R: Rng + ?Sized>(
        gates: usize,
        input_size: usize,
        hidden_size: usize,
        bias: bool,
        dtype: DType,
        rng: &mut R,
    ) -> RecurrentWeights {
        let k = 1.0 / (hidden_size.max(1) as f64).sqrt();
        let g = gates * hidden_size;
        let mut u = |shape: Vec<usize>| Tensor::uniform(shape, -k, k, dtype, rng).variable();
        let weight_ih = u(vec![g, input_size]);
        let weight_hh = u(vec![g, hidden_size]);
        let (bias_ih, bias_hh) = if bias {
            (Some(u(vec![g])), Some(u(vec![g])))
        } else {
            (None, None)
        };
        RecurrentWeights {
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
        }
    }

    fn hidden_size(&self) -> usize {
        self.weight_hh.dims()[1]
    }

    /// Runs the recurrence over `x [T, B, I]` (any strides): the output `[(T + S - 1)·B, H]` of
    /// [`recurrent`], hidden states batch-major when `batch_major`.
    fn run(
        &self,
        cell: CellKind,
        x: &Tensor,
        h0: &Tensor,
        c0: Option<&Tensor>,
        batch_major: bool,
    ) -> Tensor {
        let g = self.weight_hh.dims()[0];
        let zero_bias = || Tensor::zeros([g], self.weight_hh.dtype());
        let b_ih = self.bias_ih.clone().unwrap_or_else(zero_bias);
        let b_hh = self.bias_hh.clone().unwrap_or_else(zero_bias);
        recurrent(
            cell,
            x,
            &self.weight_ih,
            &self.weight_hh,
            &b_ih,
            &b_hh,
            h0,
            c0,
            batch_major,
        )
    }

    /// One step of a cell: `x [B, I]` or `[I]`, states of the matching shape; returns `(h, c)`.
    fn step(
        &self,
        cell: CellKind,
        name: &str,
        x: &Tensor,
        h: Option<&Tensor>,
        c: Option<&Tensor>,
    ) -> (Tensor, Option<Tensor>) {
        let hs = self.hidden_size();
        let unbatched = x.rank() == 1;
        if x.rank() != 1 && x.rank() != 2 {
            panic!(
                "{name}: input must be [B, I] or [I], got {} (weight_ih {})",
                x.shape(),
                self.weight_ih.shape()
            );
        }
        let x2 = if unbatched { x.unsqueeze(0) } else { x.clone() };
        let bn = x2.dims()[0];
        let state = |s: Option<&Tensor>, what: &str| -> Tensor {
            match s {
                None => Tensor::zeros([bn, hs], x.dtype()),
                Some(s) => {
                    let want: &[usize] = if unbatched { &[hs] } else { &[bn, hs] };
                    if s.dims() != want {
                        panic!(
                            "{name}: {what} must be {want:?} for input {}, got {}",
                            x.shape(),
                            s.shape()
                        );
                    }
                    s.reshape([bn, hs])
                }
            }
        };
        let h0 = state(h, "h");
        let c0 = (cell == CellKind::Lstm).then(|| state(c, "c"));
        let out = self.run(cell, &x2.unsqueeze(0), &h0, c0.as_ref(), false);
        let fix = |t: Tensor| if unbatched { t.reshape([hs]) } else { t };
        let h1 = fix(out.narrow(0, 0, bn));
        let c1 = (cell == CellKind::Lstm).then(|| fix(out.narrow(0, bn, bn)));
        (h1, c1)
    }

    fn visit(&self, prefix: &str, suffix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
        let name = |n: &str| join(prefix, &format!("{n}{suffix}"));
        f(&name("weight_ih"), &self.weight_ih, ParamKind::Trainable);
        f(&name("weight_hh"), &self.weight_hh, ParamKind::Trainable);
        if let Some(b) = &self.bias_ih {
            f(&name("bias_ih"), b, ParamKind::Trainable);
        }
        if let Some(b) = &self.bias_hh {
            f(&name("bias_hh"), b, ParamKind::Trainable);
        }
    }

    fn visit_mut(
        &mut self,
        prefix: &str,
        suffix: &str,
        f: &mut dyn FnMut(&str, &mut Tensor, ParamKind),
    ) {
        let name = |n: &str| join(prefix, &format!("{n}{suffix}"));
        f(
            &name("weight_ih"),
            &mut self.weight_ih,
            ParamKind::Trainable,
        );
        f(
            &name("weight_hh"),
            &mut self.weight_hh,
            ParamKind::Trainable,
        );
        if let Some(b) = &mut self.bias_ih {
            f(&name("bias_ih"), b, ParamKind::Trainable);
        }
        if let Some(b) = &mut self.bias_hh {
            f(&name("bias_hh"), b, ParamKind::Trainable);
        }
    }
}

/// Runs a stack of layers. Returns the output sequence and the final states `[L, B, H]` (the cell
/// states only for the LSTM), with unbatched and batch-first layouts handled.
fn run_stack(
    cell: CellKind,
    name: &str,
    layers: &[RecurrentWeights],
    batch_first: bool,
    x: &Tensor,
    h0: Option<&Tensor>,
    c0: Option<&Tensor>,
) -> (Tensor, Tensor, Option<Tensor>) {
    let nl = layers.len();
    if nl == 0 {
        panic!("{name}: the network has no layers");
    }
    let hs = layers[0].hidden_size();
    let isz = layers[0].weight_ih.dims()[1];
    let unbatched = x.rank() == 2;
    if !(x.rank() == 2 || x.rank() == 3) || x.dim(-1) != isz {
        let layout = if batch_first {
            "[B, T, I]"
        } else {
            "[T, B, I]"
        };
        panic!(
            "{name}: input must be {layout} or unbatched [T, I] with I = {isz}, got {}",
            x.shape()
        );
    }
    let xs = if unbatched {
        x.unsqueeze(1)
    } else if batch_first {
        x.transpose(0, 1)
    } else {
        x.clone()
    };
    let (tn, bn) = (xs.dims()[0], xs.dims()[1]);
    let state = |s: Option<&Tensor>, what: &str| -> Option<Tensor> {
        s.map(|s| {
            let want: &[usize] = if unbatched { &[nl, hs] } else { &[nl, bn, hs] };
            if s.dims() != want {
                panic!(
                    "{name}: {what} must be {want:?} for input {}, got {}",
                    x.shape(),
                    s.shape()
                );
            }
            s.reshape([nl, bn, hs])
        })
    };
    let (h0, c0) = (state(h0, "h0"), state(c0, "c0"));
    let zeros = Tensor::zeros([bn, hs], x.dtype());
    let layer_state = |s: &Option<Tensor>, k: usize| match s {
        Some(s) => s.select(0, k),
        None => zeros.clone(),
    };
    // Batch-first networks keep each layer's hidden states batch-major, so the output is a
    // contiguous [B, T, H] (and the next layer reads it in place through a transposed view).
    let batch_major = batch_first && !unbatched;
    let mut input = xs;
    let mut seq = None;
    let (mut hn, mut cn) = (Vec::with_capacity(nl), Vec::with_capacity(nl));
    for (k, layer) in layers.iter().enumerate() {
        let h0k = layer_state(&h0, k);
        let c0k = (cell == CellKind::Lstm).then(|| layer_state(&c0, k));
        let out = layer.run(cell, &input, &h0k, c0k.as_ref(), batch_major);
        let hseq = out.narrow(0, 0, tn * bn);
        let s = if batch_major {
            let s = hseq.reshape([bn, tn, hs]);
            input = s.transpose(0, 1);
            hn.push(s.select(1, tn - 1));
            s
        } else {
            let s = hseq.reshape([tn, bn, hs]);
            input = s.clone();
            hn.push(s.select(0, tn - 1));
            s
        };
        seq = Some(s);
        if cell == CellKind::Lstm {
            cn.push(out.narrow(0, tn * bn, bn));
        }
    }
    let seq = seq.expect("at least one layer");
    let finish = |parts: Vec<Tensor>| {
        let s = Tensor::stack(&parts, 0);
        if unbatched { s.squeeze(1) } else { s }
    };
    let out = if unbatched { seq.squeeze(1) } else { seq };
    let c_n = (cell == CellKind::Lstm).then(|| finish(cn));
    (out, finish(hn), c_n)
}

macro_rules! stacked_layer {
    ($(#[$doc:meta])* $Name:ident, $gates:expr) => {
        $(#[$doc])*
        pub struct $Name {
            /// The layers' parameters, layer 0 first.
            pub layers: Vec<RecurrentWeights>,
            batch_first: bool,
            #[allow(dead_code)]
            nonlinearity: RnnNonlinearity,
        }

        impl $Name {
            /// Input features.
            pub fn input_size(&self) -> usize {
                self.layers[0].weight_ih.dims()[1]
            }
            /// Hidden features per layer.
            pub fn hidden_size(&self) -> usize {
                self.layers[0].hidden_size()
            }
            /// Number of stacked layers.
            pub fn num_layers(&self) -> usize {
                self.layers.len()
            }
            /// Whether sequences are `[B, T, ·]` (else `[T, B, ·]`).
            pub fn batch_first(&self) -> bool {
                self.batch_first
            }

            fn build<R: Rng + ?Sized>(
                input_size: usize,
                hidden_size: usize,
                nonlinearity: RnnNonlinearity,
                options: RnnOptions,
                rng: &mut R,
            ) -> $Name {
                if options.num_layers == 0 {
                    panic!(concat!(stringify!($Name), ": num_layers must be at least 1"));
                }
                let layers = (0..options.num_layers)
                    .map(|k| {
                        let i = if k == 0 { input_size } else { hidden_size };
                        RecurrentWeights::init($gates, i, hidden_size, options.bias, options.dtype, rng)
                    })
                    .collect();
                $Name {
                    layers,
                    batch_first: options.batch_first,
                    nonlinearity,
                }
            }
        }

        impl Module for $Name {
            fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
                for (k, l) in self.layers.iter().enumerate() {
                    l.visit(prefix, &format!("_l{k}"), f);
                }
            }
            fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
                for (k, l) in self.layers.iter_mut().enumerate() {
                    l.visit_mut(prefix, &format!("_l{k}"), f);
                }
            }
        }
    };
}

stacked_layer!(
    /// A multi-layer Elman RNN, `h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)` with `act` tanh
    /// or relu, like `torch.nn.RNN`. Parameters per layer `k`: `weight_ih_l{k} [H, I]`,
    /// `weight_hh_l{k} [H, H]`, `bias_ih_l{k} [H]`, `bias_hh_l{k} [H]`.
    ///
    /// ```
    /// use nabla::nn::{Forward, Rnn, RnnNonlinearity, RnnOptions};
    /// use nabla::{rand::SeedableRng, DType, Tensor};
    /// let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(0);
    /// let rnn = Rnn::with_options(3, 8, RnnNonlinearity::Relu, RnnOptions::default().num_layers(2), &mut rng);
    /// let x = Tensor::randn([4, 10, 3], DType::F32, &mut rng); // [B, T, I]
    /// let (out, h_n) = rnn.forward_with_state(&x, None);
    /// assert_eq!((out.dims(), h_n.dims()), (&[4, 10, 8][..], &[2, 4, 8][..]));
    /// assert_eq!(rnn.forward(&x).dims(), &[4, 10, 8]);
    /// ```
    Rnn, 1
);

stacked_layer!(
    /// A multi-layer long short-term memory network, like `torch.nn.LSTM`:
    ///
    /// ```text
    /// i, f, g, o = σ, σ, tanh, σ  of  W_ih x_t + b_ih + W_hh h_{t-1} + b_hh  (4 blocks of H)
    /// c_t = f ⊙ c_{t-1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)
    /// ```
    ///
    /// Parameters per layer `k`: `weight_ih_l{k} [4H, I]`, `weight_hh_l{k} [4H, H]`,
    /// `bias_ih_l{k} [4H]`, `bias_hh_l{k} [4H]` (gate order i, f, g, o).
    ///
    /// ```
    /// use nabla::nn::{Forward, Lstm, Module};
    /// use nabla::{rand::SeedableRng, DType, Tensor};
    /// let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(0);
    /// let lstm = Lstm::new(3, 8, &mut rng);
    /// let x = Tensor::randn([4, 10, 3], DType::F32, &mut rng); // [B, T, I]
    /// let (out, (h_n, c_n)) = lstm.forward_with_state(&x, None);
    /// assert_eq!(out.dims(), &[4, 10, 8]);
    /// assert_eq!((h_n.dims(), c_n.dims()), (&[1, 4, 8][..], &[1, 4, 8][..]));
    /// // continue from the final state
    /// let (out2, _) = lstm.forward_with_state(&x, Some((&h_n, &c_n)));
    /// // gradients of every weight
    /// let grads = lstm.forward(&x).sum().backward();
    /// assert!(lstm.parameters().iter().all(|p| grads.get(p).is_some()));
    /// let names: Vec<String> = lstm.named_parameters().into_iter().map(|(n, _)| n).collect();
    /// assert_eq!(names, ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]);
    /// # assert_eq!(out2.dims(), &[4, 10, 8]);
    /// ```
    Lstm, 4
);

stacked_layer!(
    /// A multi-layer gated recurrent unit network, like `torch.nn.GRU`:
    ///
    /// ```text
    /// r = σ(W_ir x + b_ir + W_hr h + b_hr),   z = σ(W_iz x + b_iz + W_hz h + b_hz)
    /// n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),   h' = (1 - z) ⊙ n + z ⊙ h
    /// ```
    ///
    /// Parameters per layer `k`: `weight_ih_l{k} [3H, I]`, `weight_hh_l{k} [3H, H]`,
    /// `bias_ih_l{k} [3H]`, `bias_hh_l{k} [3H]` (gate order r, z, n).
    ///
    /// ```
    /// use nabla::nn::{Gru, RnnOptions};
    /// use nabla::{rand::SeedableRng, DType, Tensor};
    /// let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(0);
    /// let gru = Gru::with_options(3, 8, RnnOptions::default().batch_first(false), &mut rng);
    /// let x = Tensor::randn([10, 4, 3], DType::F32, &mut rng); // [T, B, I]
    /// let h0 = Tensor::zeros([1, 4, 8], DType::F32);
    /// let (out, h_n) = gru.forward_with_state(&x, Some(&h0));
    /// assert_eq!((out.dims(), h_n.dims()), (&[10, 4, 8][..], &[1, 4, 8][..]));
    /// ```
    Gru, 3
);

impl Rnn {
    /// A one-layer tanh RNN, batch-first, with biases, `f32`.
    pub fn new<R: Rng + ?Sized>(input_size: usize, hidden_size: usize, rng: &mut R) -> Rnn {
        Rnn::build(
            input_size,
            hidden_size,
            RnnNonlinearity::Tanh,
            RnnOptions::default(),
            rng,
        )
    }

    /// An RNN with the given nonlinearity and options.
    pub fn with_options<R: Rng + ?Sized>(
        input_size: usize,
        hidden_size: usize,
        nonlinearity: RnnNonlinearity,
        options: RnnOptions,
        rng: &mut R,
    ) -> Rnn {
        Rnn::build(input_size, hidden_size, nonlinearity, options, rng)
    }

    /// The nonlinearity.
    pub fn nonlinearity(&self) -> RnnNonlinearity {
        self.nonlinearity
    }

    /// Runs the network over `x` (`[B, T, I]` batch-first, `[T, B, I]` otherwise, or `[T, I]`)
    /// from the initial state `h0 [L, B, H]` (zeros when `None`). Returns the last layer's hidden
    /// states for every step (`[B, T, H]`, `[T, B, H]` or `[T, H]`) and the final state of every
    /// layer, `h_n [L, B, H]`.
    pub fn forward_with_state(&self, x: &Tensor, h0: Option<&Tensor>) -> (Tensor, Tensor) {
        let (out, h_n, _) = run_stack(
            self.nonlinearity.cell(),
            "Rnn",
            &self.layers,
            self.batch_first,
            x,
            h0,
            None,
        );
        (out, h_n)
    }
}

impl Lstm {
    /// A one-layer LSTM, batch-first, with biases, `f32`.
    pub fn new<R: Rng + ?Sized>(input_size: usize, hidden_size: usize, rng: &mut R) -> Lstm {
        Lstm::build(
            input_size,
            hidden_size,
            RnnNonlinearity::Tanh,
            RnnOptions::default(),
            rng,
        )
    }

    /// An LSTM with the given options.
    pub fn with_options<R: Rng + ?Sized>(
        input_size: usize,
        hidden_size: usize,
        options: RnnOptions,
        rng: &mut R,
    ) -> Lstm {
        Lstm::build(input_size, hidden_size, RnnNonlinearity::Tanh, options, rng)
    }

    /// Runs the network over `x` (`[B, T, I]` batch-first, `[T, B, I]` otherwise, or `[T, I]`)
    /// from the initial state `(h0, c0)`, each `[L, B, H]` (zeros when `None`). Returns the last
    /// layer's hidden states for every step (`[B, T, H]`, `[T, B, H]` or `[T, H]`) and the final
    /// states of every layer, `(h_n, c_n)`, each `[L, B, H]`.
    pub fn forward_with_state(
        &self,
        x: &Tensor,
        state: Option<(&Tensor, &Tensor)>,
    ) -> (Tensor, (Tensor, Tensor)) {
        let (out, h_n, c_n) = run_stack(
            CellKind::Lstm,
            "Lstm",
            &self.layers,
            self.batch_first,
            x,
            state.map(|s| s.0),
            state.map(|s| s.1),
        );
        (out, (h_n, c_n.expect("lstm: cell state")))
    }
}

impl Gru {
    /// A one-layer GRU, batch-first, with biases, `f32`.
    pub fn new<R: Rng + ?Sized>(input_size: usize, hidden_size: usize, rng: &mut R) -> Gru {
        Gru::build(
            input_size,
            hidden_size,
            RnnNonlinearity::Tanh,
            RnnOptions::default(),
            rng,
        )
    }

    /// A GRU with the given options.
    pub fn with_options<R: Rng + ?Sized>(
        input_size: usize,
        hidden_size: usize,
        options: RnnOptions,
        rng: &mut R,
    ) -> Gru {
        Gru::build(input_size, hidden_size, RnnNonlinearity::Tanh, options, rng)
    }

    /// Runs the network over `x` (`[B, T, I]` batch-first, `[T, B, I]` otherwise, or `[T, I]`)
    /// from the initial state `h0 [L, B, H]` (zeros when `None`). Returns the last layer's hidden
    /// states for every step and the final state of every layer, `h_n [L, B, H]`.
    pub fn forward_with_state(&self, x: &Tensor, h0: Option<&Tensor>) -> (Tensor, Tensor) {
        let (out, h_n, _) = run_stack(
            CellKind::Gru,
            "Gru",
            &self.layers,
            self.batch_first,
            x,
            h0,
            None,
        );
        (out, h_n)
    }
}

impl Forward for Rnn {
    /// The hidden states of the last layer for every step, from a zero initial state.
    fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_with_state(x, None).0
    }
}

impl Forward for Lstm {
    /// The hidden states of the last layer for every step, from a zero initial state.
    fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_with_state(x, None).0
    }
}

impl Forward for Gru {
    /// The hidden states of the last layer for every step, from a zero initial state.
    fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_with_state(x, None).0
    }
}

// ----- cells ----------------------------------------------------------------------------------------

macro_rules! cell {
    ($(#[$doc:meta])* $Name:ident, $gates:expr) => {
        $(#[$doc])*
        pub struct $Name {
            /// The parameters (`weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`).
            pub weights: RecurrentWeights,
            #[allow(dead_code)]
            nonlinearity: RnnNonlinearity,
        }

        impl $Name {
            fn build<R: Rng + ?Sized>(
                input_size: usize,
                hidden_size: usize,
                nonlinearity: RnnNonlinearity,
                bias: bool,
                dtype: DType,
                rng: &mut R,
            ) -> $Name {
                $Name {
                    weights: RecurrentWeights::init($gates, input_size, hidden_size, bias, dtype, rng),
                    nonlinearity,
                }
            }
            /// Input features.
            pub fn input_size(&self) -> usize {
                self.weights.weight_ih.dims()[1]
            }
            /// Hidden features.
            pub fn hidden_size(&self) -> usize {
                self.weights.hidden_size()
            }
        }

        impl Module for $Name {
            fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
                self.weights.visit(prefix, "", f);
            }
            fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
                self.weights.visit_mut(prefix, "", f);
            }
        }
    };
}

cell!(
    /// One step of an Elman RNN, like `torch.nn.RNNCell`: `h' = act(W_ih x + b_ih + W_hh h + b_hh)`.
    /// Parameters `weight_ih [H, I]`, `weight_hh [H, H]`, `bias_ih [H]`, `bias_hh [H]`.
    ///
    /// ```
    /// use nabla::nn::RnnCell;
    /// use nabla::{rand::SeedableRng, DType, Tensor};
    /// let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(0);
    /// let cell = RnnCell::new(3, 5, &mut rng);
    /// let mut h = Tensor::zeros([2, 5], DType::F32);
    /// for _ in 0..4 {
    ///     let x = Tensor::randn([2, 3], DType::F32, &mut rng);
    ///     h = cell.forward_with_state(&x, Some(&h));
    /// }
    /// assert_eq!(h.dims(), &[2, 5]);
    /// ```
    RnnCell, 1
);

cell!(
    /// One step of an LSTM, like `torch.nn.LSTMCell`. Parameters `weight_ih [4H, I]`,
    /// `weight_hh [4H, H]`, `bias_ih [4H]`, `bias_hh [4H]` (gate order i, f, g, o); see [`Lstm`] for
    /// the equations.
    ///
    /// ```
    /// use nabla::nn::{LstmCell, Module};
    /// use nabla::{rand::SeedableRng, DType, Tensor};
    /// let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(0);
    /// let cell = LstmCell::new(3, 5, &mut rng);
    /// let x = Tensor::randn([2, 3], DType::F32, &mut rng);
    /// let (h, c) = cell.forward_with_state(&x, None);
    /// let (h, c) = cell.forward_with_state(&x, Some((&h, &c)));
    /// assert_eq!((h.dims(), c.dims()), (&[2, 5][..], &[2, 5][..]));
    /// let names: Vec<String> = cell.named_parameters().into_iter().map(|(n, _)| n).collect();
    /// assert_eq!(names, ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]);
    /// ```
    LstmCell, 4
);

cell!(
    /// One step of a GRU, like `torch.nn.GRUCell`. Parameters `weight_ih [3H, I]`,
    /// `weight_hh [3H, H]`, `bias_ih [3H]`, `bias_hh [3H]` (gate order r, z, n); see [`Gru`] for the
    /// equations.
    ///
    /// ```
    /// use nabla::nn::GruCell;
    /// use nabla::{rand::SeedableRng, DType, Tensor};
    /// let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(0);
    /// let cell = GruCell::new(3, 5, &mut rng);
    /// let h = cell.forward_with_state(&Tensor::randn([3], DType::F32, &mut rng), None); // unbatched
    /// assert_eq!(h.dims(), &[5]);
    /// ```
    GruCell, 3
);

impl RnnCell {
    /// A tanh cell with biases, `f32`.
    pub fn new<R: Rng + ?Sized>(input_size: usize, hidden_size: usize, rng: &mut R) -> RnnCell {
        RnnCell::build(
            input_size,
            hidden_size,
            RnnNonlinearity::Tanh,
            true,
            DType::F32,
            rng,
        )
    }

    /// A cell with the given nonlinearity, biases or not, and dtype.
    pub fn with_options<R: Rng + ?Sized>(
        input_size: usize,
        hidden_size: usize,
        nonlinearity: RnnNonlinearity,
        bias: bool,
        dtype: DType,
        rng: &mut R,
    ) -> RnnCell {
        RnnCell::build(input_size, hidden_size, nonlinearity, bias, dtype, rng)
    }

    /// The nonlinearity.
    pub fn nonlinearity(&self) -> RnnNonlinearity {
        self.nonlinearity
    }

    /// One step from `x` (`[B, I]` or unbatched `[I]`) and the state `h` (`[B, H]` or `[H]`; zeros
    /// when `None`): the next state.
    pub fn forward_with_state(&self, x: &Tensor, h: Option<&Tensor>) -> Tensor {
        self.weights
            .step(self.nonlinearity.cell(), "RnnCell", x, h, None)
            .0
    }
}

impl LstmCell {
    /// A cell with biases, `f32`.
    pub fn new<R: Rng + ?Sized>(input_size: usize, hidden_size: usize, rng: &mut R) -> LstmCell {
        LstmCell::build(
            input_size,
            hidden_size,
            RnnNonlinearity::Tanh,
            true,
            DType::F32,
            rng,
        )
    }

    /// A cell with or without biases, of the given dtype.
    pub fn with_options<R: Rng + ?Sized>(
        input_size: usize,
        hidden_size: usize,
        bias: bool,
        dtype: DType,
        rng: &mut R,
    ) -> LstmCell {
        LstmCell::build(
            input_size,
            hidden_size,
            RnnNonlinearity::Tanh,
            bias,
            dtype,
            rng,
        )
    }

    /// One step from `x` (`[B, I]` or unbatched `[I]`) and the state `(h, c)` (each `[B, H]` or
    /// `[H]`; zeros when `None`): the next state `(h', c')`.
    pub fn forward_with_state(
        &self,
        x: &Tensor,
        state: Option<(&Tensor, &Tensor)>,
    ) -> (Tensor, Tensor) {
        let (h, c) = self.weights.step(
            CellKind::Lstm,
            "LstmCell",
            x,
            state.map(|s| s.0),
            state.map(|s| s.1),
        );
        (h, c.expect("lstm: cell state"))
    }
}

impl GruCell {
    /// A cell with biases, `f32`.
    pub fn new<R: Rng + ?Sized>(input_size: usize, hidden_size: usize, rng: &mut R) -> GruCell {
        GruCell::build(
            input_size,
            hidden_size,
            RnnNonlinearity::Tanh,
            true,
            DType::F32,
            rng,
        )
    }

    /// A cell with or without biases, of the given dtype.
    pub fn with_options<R: Rng + ?Sized>(
        input_size: usize,
        hidden_size: usize,
        bias: bool,
        dtype: DType,
        rng: &mut R,
    ) -> GruCell {
        GruCell::build(
            input_size,
            hidden_size,
            RnnNonlinearity::Tanh,
            bias,
            dtype,
            rng,
        )
    }

    /// One step from `x` (`[B, I]` or unbatched `[I]`) and the state `h` (`[B, H]` or `[H]`; zeros
    /// when `None`): the next state.
    pub fn forward_with_state(&self, x: &Tensor, h: Option<&Tensor>) -> Tensor {
        self.weights.step(CellKind::Gru, "GruCell", x, h, None).0
    }
}

impl Forward for RnnCell {
    /// One step from a zero state.
    fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_with_state(x, None)
    }
}

impl Forward for LstmCell {
    /// One step from a zero state: the new hidden state.
    fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_with_state(x, None).0
    }
}

impl Forward for GruCell {
    /// One step from a zero state.
    fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_with_state(x, None)
    }
}
