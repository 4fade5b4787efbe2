//! Neural-network building blocks: the [`Module`] system, layers (dense, recurrent), activations,
//! initialisers.
//!
//! A model is a plain Rust struct of layers with `#[derive(Module)]`; its parameters are variables
//! (see [`Tensor::variable`](crate::Tensor::variable)), so `loss.backward()` returns their gradients
//! and an [`optim`](crate::optim) optimiser updates them.

mod activation;
mod dropout;
pub mod init;
mod linear;
mod module;
mod rnn;
mod rnn_kernel;
mod rnn_simd;

pub use activation::{
    Elu, Flatten, Gelu, LeakyRelu, Relu, Selu, Sigmoid, Silu, Softmax, Softplus, Tanh,
};
pub use dropout::{AlphaDropout, Dropout};
pub use linear::Linear;
pub use module::{Forward, Layer, Module, ParamKind, Sequential, join};
pub use nabla_derive::Module;
pub use rnn::{
    Gru, GruCell, Lstm, LstmCell, RecurrentWeights, Rnn, RnnCell, RnnNonlinearity, RnnOptions,
};
