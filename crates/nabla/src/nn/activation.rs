//! Activation functions as layers (the functions themselves are methods on [`Tensor`]).

use super::{Forward, Module, ParamKind};
use crate::Tensor;

macro_rules! activation_layers {
    ($($(#[$doc:meta])* $name:ident => |$x:ident| $e:expr;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default)]
        pub struct $name;
        impl Forward for $name {
            fn forward(&self, $x: &Tensor) -> Tensor {
                $e
            }
        }
        impl Module for $name {
            fn visit(&self, _: &str, _: &mut dyn FnMut(&str, &Tensor, ParamKind)) {}
            fn visit_mut(&mut self, _: &str, _: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {}
        }
    )*};
}

activation_layers! {
    /// [`Tensor::relu`] as a layer.
    Relu => |x| x.relu();
    /// [`Tensor::sigmoid`] as a layer.
    Sigmoid => |x| x.sigmoid();
    /// [`Tensor::tanh`] as a layer.
    Tanh => |x| x.tanh();
    /// [`Tensor::gelu`] as a layer (exact erf form).
    Gelu => |x| x.gelu();
    /// [`Tensor::gelu_tanh`] as a layer (PyTorch's `GELU(approximate='tanh')`).
    GeluTanh => |x| x.gelu_tanh();
    /// [`Tensor::selu`] as a layer; pair with LeCun-normal init and [`AlphaDropout`](super::AlphaDropout).
    Selu => |x| x.selu();
    /// [`Tensor::silu`] as a layer.
    Silu => |x| x.silu();
    /// [`Tensor::elu`] as a layer.
    Elu => |x| x.elu();
    /// [`Tensor::softplus`] as a layer.
    Softplus => |x| x.softplus();
    /// Merges all dimensions after the first: `[N, …] -> [N, ∏…]`.
    Flatten => |x| if x.rank() <= 1 { x.clone() } else { x.flatten(1, -1) };
}

/// Softmax over an axis, as a layer.
#[derive(Clone, Copy, Debug)]
pub struct Softmax(pub isize);

impl Forward for Softmax {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.softmax(self.0)
    }
}

impl Module for Softmax {
    fn visit(&self, _: &str, _: &mut dyn FnMut(&str, &Tensor, ParamKind)) {}
    fn visit_mut(&mut self, _: &str, _: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {}
}

/// Leaky ReLU with a slope for negative inputs, as a layer.
#[derive(Clone, Copy, Debug)]
pub struct LeakyRelu(pub f64);

impl Forward for LeakyRelu {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.leaky_relu(self.0)
    }
}

impl Module for LeakyRelu {
    fn visit(&self, _: &str, _: &mut dyn FnMut(&str, &Tensor, ParamKind)) {}
    fn visit_mut(&mut self, _: &str, _: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {}
}
