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

/// A small convolutional network for 28×28 images: two blocks of conv 3×3 → batch norm → ReLU →
/// max-pool 2, then a hidden layer with dropout and a linear classifier.
#[derive(Module)]
pub struct Cnn {
    c1: nabla::nn::Conv2d,
    bn1: nabla::nn::BatchNorm,
    c2: nabla::nn::Conv2d,
    bn2: nabla::nn::BatchNorm,
    fc1: Linear,
    drop: Dropout,
    fc2: Linear,
}

impl Cnn {
    /// `channels` input channels, `width` filters in the first block (twice that in the second),
    /// `classes` outputs, for `side`×`side` images.
    pub fn new<R: Rng + ?Sized>(
        channels: usize,
        side: usize,
        width: usize,
        classes: usize,
        dropout: f64,
        rng: &mut R,
    ) -> Cnn {
        use nabla::nn::{BatchNorm, Conv2d};
        use nabla::{Conv2dOpts, DType};
        let pad = Conv2dOpts::default().padding(1);
        let flat = 2 * width * (side / 4) * (side / 4);
        Cnn {
            c1: Conv2d::new(channels, width, 3, pad, rng),
            bn1: BatchNorm::new(width, DType::F32),
            c2: Conv2d::new(width, 2 * width, 3, pad, rng),
            bn2: BatchNorm::new(2 * width, DType::F32),
            fc1: Linear::new(flat, 128, rng),
            drop: Dropout::new(dropout, rng),
            fc2: Linear::new(128, classes, rng),
        }
    }
}

impl Forward for Cnn {
    fn forward(&self, x: &Tensor) -> Tensor {
        let x = if x.rank() == 3 {
            x.unsqueeze(1)
        } else {
            x.clone()
        };
        let h = self
            .bn1
            .forward(&self.c1.forward(&x))
            .relu()
            .max_pool2d([2, 2], [2, 2], [0, 0]);
        let h = self
            .bn2
            .forward(&self.c2.forward(&h))
            .relu()
            .max_pool2d([2, 2], [2, 2], [0, 0]);
        let h = self.fc1.forward(&h.flatten(1, -1)).relu();
        self.fc2.forward(&self.drop.forward(&h))
    }
}

/// A small `f64` network for control policies: linear → tanh → linear, one output per
/// observation row (`[B, inputs]` to `[B]`).
#[derive(Module)]
pub struct PolicyNet {
    hidden: Linear,
    out: Linear,
}

impl PolicyNet {
    /// `inputs` observations, `hidden` tanh units, PyTorch's default initialisation in `f64`.
    pub fn new<R: Rng + ?Sized>(inputs: usize, hidden: usize, rng: &mut R) -> PolicyNet {
        use nabla::DType;
        PolicyNet {
            hidden: Linear::with_options(inputs, hidden, true, DType::F64, rng),
            out: Linear::with_options(hidden, 1, true, DType::F64, rng),
        }
    }
}

impl Forward for PolicyNet {
    fn forward(&self, obs: &Tensor) -> Tensor {
        let b = obs.dims()[0];
        self.out
            .forward(&self.hidden.forward(obs).tanh())
            .reshape([b])
    }
}
