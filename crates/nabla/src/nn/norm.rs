//! Normalisation layers: batch norm (Ioffe & Szegedy) with running statistics, layer norm (Ba et al.).

use super::{Forward, Module, ParamKind, join};
use crate::{DType, Tensor, no_grad};
use std::sync::Mutex;

/// Batch normalisation over the channel dimension 1 of `[N, C]`, `[N, C, L]` or `[N, C, H, W]`
/// inputs, as `torch.nn.BatchNorm1d/2d`: in training mode it normalises with the batch's statistics
/// (biased variance) and updates running estimates (`running = (1 - m)·running + m·batch`, unbiased
/// variance, m = 0.1); in evaluation mode it uses the running estimates.
///
/// ```
/// use nabla::nn::{BatchNorm, Forward, Module};
/// use nabla::{rand::SeedableRng, DType, Tensor};
/// let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(0);
/// let bn = BatchNorm::new(3, DType::F64);
/// let x = Tensor::randn([64, 3, 4, 4], DType::F64, &mut rng) * 5.0 + 2.0;
/// let y = bn.forward(&x);
/// assert!(y.mean().item().abs() < 1e-9);
/// assert_eq!(bn.named_tensors().len(), 4); // weight, bias, running_mean, running_var
/// ```
pub struct BatchNorm {
    /// Scale γ, `[C]`.
    pub weight: Tensor,
    /// Shift β, `[C]`.
    pub bias: Tensor,
    running_mean: Mutex<Tensor>,
    running_var: Mutex<Tensor>,
    momentum: f64,
    eps: f64,
    training: bool,
}

/// `BatchNorm` over `[N, C]` or `[N, C, L]` (PyTorch's name).
pub type BatchNorm1d = BatchNorm;
/// `BatchNorm` over `[N, C, H, W]` (PyTorch's name).
pub type BatchNorm2d = BatchNorm;

impl BatchNorm {
    /// For `channels` channels, γ = 1, β = 0, momentum 0.1, ε = 1e-5.
    pub fn new(channels: usize, dtype: DType) -> BatchNorm {
        BatchNorm {
            weight: Tensor::ones([channels], dtype).variable(),
            bias: Tensor::zeros([channels], dtype).variable(),
            running_mean: Mutex::new(Tensor::zeros([channels], dtype)),
            running_var: Mutex::new(Tensor::ones([channels], dtype)),
            momentum: 0.1,
            eps: 1e-5,
            training: true,
        }
    }

    /// Sets the running-statistics momentum.
    pub fn momentum(mut self, m: f64) -> BatchNorm {
        self.momentum = m;
        self
    }

    /// Sets ε.
    pub fn eps(mut self, eps: f64) -> BatchNorm {
        self.eps = eps;
        self
    }

    /// The running mean (a copy).
    pub fn running_mean(&self) -> Tensor {
        self.running_mean.lock().expect("batch norm state").clone()
    }

    /// The running variance (a copy).
    pub fn running_var(&self) -> Tensor {
        self.running_var.lock().expect("batch norm state").clone()
    }
}

impl Forward for BatchNorm {
    fn forward(&self, x: &Tensor) -> Tensor {
        let c = self.weight.numel();
        if x.rank() < 2 || x.dims()[1] != c {
            panic!(
                "BatchNorm: input {} does not have {c} channels in dimension 1",
                x.shape()
            );
        }
        // statistics over every axis but 1; parameters broadcast as [1, C, 1, ...]
        let axes: Vec<isize> = (0..x.rank() as isize).filter(|&a| a != 1).collect();
        let mut bshape = vec![1usize; x.rank()];
        bshape[1] = c;
        let (mean, var) = if self.training {
            let n = x.numel() / c;
            if n < 2 {
                panic!(
                    "BatchNorm: training needs more than one value per channel, got input {}",
                    x.shape()
                );
            }
            let mean = x.mean_axes(&axes, true);
            let var = (x - &mean).square().mean_axes(&axes, true);
            no_grad(|| {
                let m = self.momentum;
                let mut rm = self.running_mean.lock().expect("batch norm state");
                let mut rv = self.running_var.lock().expect("batch norm state");
                *rm = rm.scale(1.0 - m) + mean.detach().reshape([c]).scale(m);
                let unbiased = var.detach().reshape([c]).scale(n as f64 / (n - 1) as f64);
                *rv = rv.scale(1.0 - m) + unbiased.scale(m);
            });
            (mean, var)
        } else {
            (
                self.running_mean().reshape(bshape.clone()),
                self.running_var().reshape(bshape.clone()),
            )
        };
        let xhat = (x - &mean) / (var + self.eps).sqrt();
        xhat * self.weight.reshape(bshape.clone()) + self.bias.reshape(bshape)
    }
}

impl Module for BatchNorm {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
        f(&join(prefix, "weight"), &self.weight, ParamKind::Trainable);
        f(&join(prefix, "bias"), &self.bias, ParamKind::Trainable);
        f(
            &join(prefix, "running_mean"),
            &self.running_mean.lock().expect("state"),
            ParamKind::Buffer,
        );
        f(
            &join(prefix, "running_var"),
            &self.running_var.lock().expect("state"),
            ParamKind::Buffer,
        );
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
        f(
            &join(prefix, "weight"),
            &mut self.weight,
            ParamKind::Trainable,
        );
        f(&join(prefix, "bias"), &mut self.bias, ParamKind::Trainable);
        f(
            &join(prefix, "running_mean"),
            self.running_mean.get_mut().expect("state"),
            ParamKind::Buffer,
        );
        f(
            &join(prefix, "running_var"),
            self.running_var.get_mut().expect("state"),
            ParamKind::Buffer,
        );
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

/// Layer normalisation over the last dimensions (`normalized_shape`), as `torch.nn.LayerNorm`:
/// `(x - mean) / √(var + ε) · γ + β` with statistics per sample.
///
/// ```
/// use nabla::nn::{Forward, LayerNorm};
/// use nabla::{DType, Tensor};
/// let ln = LayerNorm::new(&[4], DType::F64);
/// let y = ln.forward(&Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], [1, 4]));
/// assert!(y.mean().item().abs() < 1e-12);
/// ```
pub struct LayerNorm {
    /// Scale γ, shaped like `normalized_shape` (absent without elementwise affine).
    pub weight: Option<Tensor>,
    /// Shift β.
    pub bias: Option<Tensor>,
    normalized: Vec<usize>,
    eps: f64,
}

impl LayerNorm {
    /// Over the trailing dimensions `normalized_shape`, with γ = 1, β = 0, ε = 1e-5.
    pub fn new(normalized_shape: &[usize], dtype: DType) -> LayerNorm {
        LayerNorm {
            weight: Some(Tensor::ones(normalized_shape, dtype).variable()),
            bias: Some(Tensor::zeros(normalized_shape, dtype).variable()),
            normalized: normalized_shape.to_vec(),
            eps: 1e-5,
        }
    }

    /// Without learnable γ and β.
    pub fn without_affine(normalized_shape: &[usize]) -> LayerNorm {
        LayerNorm {
            weight: None,
            bias: None,
            normalized: normalized_shape.to_vec(),
            eps: 1e-5,
        }
    }

    /// Sets ε.
    pub fn eps(mut self, eps: f64) -> LayerNorm {
        self.eps = eps;
        self
    }
}

impl Forward for LayerNorm {
    fn forward(&self, x: &Tensor) -> Tensor {
        let k = self.normalized.len();
        if x.rank() < k || x.dims()[x.rank() - k..] != self.normalized[..] {
            panic!(
                "LayerNorm: input {} does not end in {:?}",
                x.shape(),
                self.normalized
            );
        }
        let axes: Vec<isize> = (1..=k as isize).map(|i| -i).collect();
        let mean = x.mean_axes(&axes, true);
        let var = (x - &mean).square().mean_axes(&axes, true);
        let mut y = (x - &mean) / (var + self.eps).sqrt();
        if let Some(w) = &self.weight {
            y = y * w;
        }
        if let Some(b) = &self.bias {
            y = y + b;
        }
        y
    }
}

impl Module for LayerNorm {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
        if let Some(w) = &self.weight {
            f(&join(prefix, "weight"), w, ParamKind::Trainable);
        }
        if let Some(b) = &self.bias {
            f(&join(prefix, "bias"), b, ParamKind::Trainable);
        }
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
        if let Some(w) = &mut self.weight {
            f(&join(prefix, "weight"), w, ParamKind::Trainable);
        }
        if let Some(b) = &mut self.bias {
            f(&join(prefix, "bias"), b, ParamKind::Trainable);
        }
    }
}
