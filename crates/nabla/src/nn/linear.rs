//! Fully connected layer.

use super::{Forward, Module, ParamKind, init};
use crate::{DType, Tensor};
use rand::Rng;

/// `y = x Wᵀ + b`, with `W` of shape `[out, in]` (PyTorch's layout) and `b` of shape `[out]`.
/// Applies to the last dimension of inputs of any rank.
///
/// Initialised like PyTorch: `W, b ~ U(-1/√in, 1/√in)`.
///
/// ```
/// use nabla::nn::{Forward, Linear};
/// use nabla::{rand::SeedableRng, DType, Tensor};
/// let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(0);
/// let l = Linear::new(3, 2, &mut rng);
/// assert_eq!(l.forward(&Tensor::ones([4, 3], DType::F32)).dims(), &[4, 2]);
/// ```
pub struct Linear {
    /// `[out, in]`.
    pub weight: Tensor,
    /// `[out]`, when the layer has a bias.
    pub bias: Option<Tensor>,
}

impl Linear {
    /// A layer with bias, `f32`.
    pub fn new<R: Rng + ?Sized>(in_features: usize, out_features: usize, rng: &mut R) -> Linear {
        Linear::with_options(in_features, out_features, true, DType::F32, rng)
    }

    /// A layer with or without bias, of the given dtype.
    pub fn with_options<R: Rng + ?Sized>(
        in_features: usize,
        out_features: usize,
        bias: bool,
        dtype: DType,
        rng: &mut R,
    ) -> Linear {
        let bound = 1.0 / (in_features.max(1) as f64).sqrt();
        let weight = init::kaiming_uniform(
            [out_features, in_features],
            init::Nonlinearity::LeakyRelu(5f64.sqrt()),
            dtype,
            rng,
        )
        .variable();
        let bias =
            bias.then(|| Tensor::uniform([out_features], -bound, bound, dtype, rng).variable());
        Linear { weight, bias }
    }

    /// A layer from given weight `[out, in]` and optional bias `[out]` (made trainable).
    pub fn from_weights(weight: Tensor, bias: Option<Tensor>) -> Linear {
        if weight.rank() != 2 {
            panic!("Linear: weight must be [out, in], got {}", weight.shape());
        }
        if let Some(b) = &bias
            && b.dims() != [weight.dims()[0]]
        {
            panic!(
                "Linear: bias {} does not match weight {}",
                b.shape(),
                weight.shape()
            );
        }
        Linear {
            weight: weight.variable(),
            bias: bias.map(|b| b.variable()),
        }
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }
}

impl Forward for Linear {
    fn forward(&self, x: &Tensor) -> Tensor {
        if x.rank() == 0 || x.dim(-1) != self.in_features() {
            panic!(
                "Linear: input {} does not end in {} features (weight {})",
                x.shape(),
                self.in_features(),
                self.weight.shape()
            );
        }
        let y = x.matmul(&self.weight.t());
        match &self.bias {
            Some(b) => y + b,
            None => y,
        }
    }
}

impl Module for Linear {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
        f(
            &super::join(prefix, "weight"),
            &self.weight,
            ParamKind::Trainable,
        );
        if let Some(b) = &self.bias {
            f(&super::join(prefix, "bias"), b, ParamKind::Trainable);
        }
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
        f(
            &super::join(prefix, "weight"),
            &mut self.weight,
            ParamKind::Trainable,
        );
        if let Some(b) = &mut self.bias {
            f(&super::join(prefix, "bias"), b, ParamKind::Trainable);
        }
    }
}
