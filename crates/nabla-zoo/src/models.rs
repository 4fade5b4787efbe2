//! Models shared by several experiments.

use nabla::Tensor;
use nabla::nn::{Dropout, Forward, Linear, Module};
use nabla::rand::Rng;

/// A multilayer perceptron: linear layers with ReLU between them and optional dropout after each
/// hidden activation. Inputs of any shape `[B, ...]` are flattened to `[B, features]`.
#[derive(Module)]
pub struct Mlp {
    /// The layers, input first.
    pub layers: Vec<Linear>,
    /// Dropout after hidden activations.
    pub dropout: Option<Dropout>,
}

impl Mlp {
    /// Layer sizes `[in, hidden…, out]`.
    pub fn new<R: Rng + ?Sized>(sizes: &[usize], dropout: f64, rng: &mut R) -> Mlp {
        let layers = sizes
            .windows(2)
            .map(|w| Linear::new(w[0], w[1], rng))
            .collect();
        let dropout = (dropout > 0.0).then(|| Dropout::new(dropout, rng));
        Mlp { layers, dropout }
    }
}

impl Forward for Mlp {
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = if x.rank() > 2 {
            x.flatten(1, -1)
        } else {
            x.clone()
        };
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            h = l.forward(&h);
            if i < last {
                h = h.relu();
                if let Some(d) = &self.dropout {
                    h = d.forward(&h);
                }
            }
        }
        h
    }
}
