//! Neural-network building blocks: the [`Module`] system, layers (dense, recurrent), activations,
//! initialisers.
//!
//! A model is a plain Rust struct of layers with `#[derive(Module)]`; its parameters are variables
//! (see [`Tensor::variable`](crate::Tensor::variable)), so `loss.backward()` returns their gradients
//! and an [`optim`](crate::optim) optimiser updates them.

mod act;
mod activation;
mod arith;
mod attention;
mod conv;
pub mod dnc;
mod dropout;
pub mod init;
mod linear;
mod loss;
mod memnn;
mod module;
mod norm;
pub mod ntp;
mod recurrent;
mod rnn;

pub use act::{ActOptions, ActOutput, adaptive_computation_time};
pub use activation::{
    Elu, Flatten, Gelu, GeluTanh, LeakyRelu, Relu, Selu, Sigmoid, Silu, Softmax, Softplus, Tanh,
};
pub use arith::{Nac, NacMul, Nalu, log_space_product, nac_weight};
pub use attention::{MultiHeadAttention, scaled_dot_product_attention};
pub use conv::{AvgPool2d, Conv1d, Conv2d, Embedding, MaxPool2d};
pub use dropout::{AlphaDropout, Dropout};
pub use linear::Linear;
pub use loss::{
    ClassLossOpts, Reduction, accuracy, binary_cross_entropy_with_logits, cross_entropy,
    cross_entropy_with, huber_loss, l1_loss, mse_loss, nll_loss, nll_loss_with,
};
pub use memnn::{
    MemN2N, MemN2NConfig, MemoryBatch, embed_sentences, memory_hop, position_encoding, word_weights,
};
pub use module::{Forward, Layer, Module, ParamKind, Sequential, join};
pub use nabla_derive::Module;
pub use norm::{BatchNorm, BatchNorm1d, BatchNorm2d, LayerNorm};
pub use rnn::{
    Gru, GruCell, Lstm, LstmCell, RecurrentWeights, Rnn, RnnCell, RnnNonlinearity, RnnOptions,
};
