//! Convolution, pooling and embedding layers.

use super::{Forward, Module, ParamKind, init, join};
use crate::{Conv1dOpts, Conv2dOpts, DType, Indices, Tensor};
use rand::Rng;

fn conv_params<R: Rng + ?Sized>(
    weight_shape: Vec<usize>,
    out: usize,
    bias: bool,
    dtype: DType,
    rng: &mut R,
) -> (Tensor, Option<Tensor>) {
    // PyTorch's default: kaiming_uniform(a = √5) = U(-1/√fan_in, 1/√fan_in), bias likewise.
    let (fan_in, _) = init::fans(&weight_shape.clone().into());
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    let w = Tensor::uniform(weight_shape, -bound, bound, dtype, rng).variable();
    let b = bias.then(|| Tensor::uniform([out], -bound, bound, dtype, rng).variable());
    (w, b)
}

fn visit_wb(
    w: &Tensor,
    b: &Option<Tensor>,
    prefix: &str,
    f: &mut dyn FnMut(&str, &Tensor, ParamKind),
) {
    f(&join(prefix, "weight"), w, ParamKind::Trainable);
    if let Some(b) = b {
        f(&join(prefix, "bias"), b, ParamKind::Trainable);
    }
}

fn visit_wb_mut(
    w: &mut Tensor,
    b: &mut Option<Tensor>,
    prefix: &str,
    f: &mut dyn FnMut(&str, &mut Tensor, ParamKind),
) {
    f(&join(prefix, "weight"), w, ParamKind::Trainable);
    if let Some(b) = b {
        f(&join(prefix, "bias"), b, ParamKind::Trainable);
    }
}

/// 2-d convolution over `[N, C_in, H, W]`, as `torch.nn.Conv2d`: weight `[C_out, C_in/groups, kH, kW]`,
/// bias `[C_out]`.
///
/// ```
/// use nabla::nn::{Conv2d, Forward};
/// use nabla::{rand::SeedableRng, Conv2dOpts, DType, Tensor};
/// let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(0);
/// let conv = Conv2d::new(1, 8, 3, Conv2dOpts::default().padding(1), &mut rng);
/// assert_eq!(conv.forward(&Tensor::zeros([2, 1, 28, 28], DType::F32)).dims(), &[2, 8, 28, 28]);
/// ```
pub struct Conv2d {
    /// `[C_out, C_in/groups, kH, kW]`.
    pub weight: Tensor,
    /// `[C_out]`.
    pub bias: Option<Tensor>,
    /// Stride, padding, dilation, groups.
    pub opts: Conv2dOpts,
}

impl Conv2d {
    /// A square `kernel`×`kernel` convolution with bias, `f32`.
    pub fn new<R: Rng + ?Sized>(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        opts: Conv2dOpts,
        rng: &mut R,
    ) -> Conv2d {
        Conv2d::with_options(
            in_channels,
            out_channels,
            [kernel, kernel],
            opts,
            true,
            DType::F32,
            rng,
        )
    }

    /// Any kernel size, with or without bias, any dtype.
    pub fn with_options<R: Rng + ?Sized>(
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; 2],
        opts: Conv2dOpts,
        bias: bool,
        dtype: DType,
        rng: &mut R,
    ) -> Conv2d {
        if opts.groups == 0
            || !in_channels.is_multiple_of(opts.groups)
            || !out_channels.is_multiple_of(opts.groups)
        {
            panic!(
                "Conv2d: {in_channels} input and {out_channels} output channels are not divisible by {} groups",
                opts.groups
            );
        }
        let shape = vec![
            out_channels,
            in_channels / opts.groups,
            kernel[0],
            kernel[1],
        ];
        let (weight, bias) = conv_params(shape, out_channels, bias, dtype, rng);
        Conv2d { weight, bias, opts }
    }
}

impl Forward for Conv2d {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(&self.weight, self.bias.as_ref(), self.opts)
    }
}

impl Module for Conv2d {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
        visit_wb(&self.weight, &self.bias, prefix, f);
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
        visit_wb_mut(&mut self.weight, &mut self.bias, prefix, f);
    }
}

/// 1-d convolution over `[N, C_in, L]`, as `torch.nn.Conv1d`: weight `[C_out, C_in/groups, k]`.
///
/// ```
/// use nabla::nn::{Conv1d, Forward};
/// use nabla::{rand::SeedableRng, Conv1dOpts, DType, Tensor};
/// let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(0);
/// let conv = Conv1d::new(4, 6, 5, Conv1dOpts::default().padding(2), &mut rng);
/// assert_eq!(conv.forward(&Tensor::zeros([3, 4, 10], DType::F32)).dims(), &[3, 6, 10]);
/// ```
pub struct Conv1d {
    /// `[C_out, C_in/groups, k]`.
    pub weight: Tensor,
    /// `[C_out]`.
    pub bias: Option<Tensor>,
    /// Stride, padding, dilation, groups.
    pub opts: Conv1dOpts,
}

impl Conv1d {
    /// A convolution of width `kernel` with bias, `f32`.
    pub fn new<R: Rng + ?Sized>(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        opts: Conv1dOpts,
        rng: &mut R,
    ) -> Conv1d {
        Conv1d::with_options(
            in_channels,
            out_channels,
            kernel,
            opts,
            true,
            DType::F32,
            rng,
        )
    }

    /// With or without bias, any dtype.
    pub fn with_options<R: Rng + ?Sized>(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        opts: Conv1dOpts,
        bias: bool,
        dtype: DType,
        rng: &mut R,
    ) -> Conv1d {
        if opts.groups == 0
            || !in_channels.is_multiple_of(opts.groups)
            || !out_channels.is_multiple_of(opts.groups)
        {
            panic!(
                "Conv1d: {in_channels} input and {out_channels} output channels are not divisible by {} groups",
                opts.groups
            );
        }
        let (weight, bias) = conv_params(
            vec![out_channels, in_channels / opts.groups, kernel],
            out_channels,
            bias,
            dtype,
            rng,
        );
        Conv1d { weight, bias, opts }
    }
}

impl Forward for Conv1d {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.conv1d(&self.weight, self.bias.as_ref(), self.opts)
    }
}

impl Module for Conv1d {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
        visit_wb(&self.weight, &self.bias, prefix, f);
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
        visit_wb_mut(&mut self.weight, &mut self.bias, prefix, f);
    }
}

/// Max pooling over `[N, C, H, W]`, as `torch.nn.MaxPool2d` (stride defaults to the kernel).
///
/// ```
/// use nabla::nn::{Forward, MaxPool2d};
/// use nabla::{DType, Tensor};
/// assert_eq!(MaxPool2d::new(2).forward(&Tensor::zeros([1, 3, 28, 28], DType::F32)).dims(), &[1, 3, 14, 14]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct MaxPool2d {
    /// Window size.
    pub kernel: [usize; 2],
    /// Step between windows.
    pub stride: [usize; 2],
    /// Implicit −∞ padding.
    pub padding: [usize; 2],
}

impl MaxPool2d {
    /// A `k`×`k` window with stride `k`.
    pub fn new(k: usize) -> MaxPool2d {
        MaxPool2d {
            kernel: [k, k],
            stride: [k, k],
            padding: [0, 0],
        }
    }
}

impl Forward for MaxPool2d {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.max_pool2d(self.kernel, self.stride, self.padding)
    }
}

impl Module for MaxPool2d {
    fn visit(&self, _: &str, _: &mut dyn FnMut(&str, &Tensor, ParamKind)) {}
    fn visit_mut(&mut self, _: &str, _: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {}
}

/// Average pooling over `[N, C, H, W]`, as `torch.nn.AvgPool2d` (padding counted in the average).
#[derive(Clone, Copy, Debug)]
pub struct AvgPool2d {
    /// Window size.
    pub kernel: [usize; 2],
    /// Step between windows.
    pub stride: [usize; 2],
    /// Implicit zero padding.
    pub padding: [usize; 2],
}

impl AvgPool2d {
    /// A `k`×`k` window with stride `k`.
    pub fn new(k: usize) -> AvgPool2d {
        AvgPool2d {
            kernel: [k, k],
            stride: [k, k],
            padding: [0, 0],
        }
    }
}

impl Forward for AvgPool2d {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.avg_pool2d(self.kernel, self.stride, self.padding)
    }
}

impl Module for AvgPool2d {
    fn visit(&self, _: &str, _: &mut dyn FnMut(&str, &Tensor, ParamKind)) {}
    fn visit_mut(&mut self, _: &str, _: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {}
}

/// A lookup table of `num` vectors of size `dim`, as `torch.nn.Embedding` (initialised N(0, 1)).
///
/// ```
/// use nabla::nn::Embedding;
/// use nabla::{rand::SeedableRng, DType, Indices};
/// let mut rng = nabla::rand::rngs::StdRng::seed_from_u64(0);
/// let emb = Embedding::new(100, 16, DType::F32, &mut rng);
/// let ids = Indices::new(vec![3, 1, 4, 1, 5, 9], [2, 3]);
/// assert_eq!(emb.forward(&ids).dims(), &[2, 3, 16]);
/// ```
pub struct Embedding {
    /// `[num, dim]`.
    pub weight: Tensor,
}

impl Embedding {
    /// A table of `num` vectors of size `dim`.
    pub fn new<R: Rng + ?Sized>(num: usize, dim: usize, dtype: DType, rng: &mut R) -> Embedding {
        Embedding {
            weight: Tensor::randn([num, dim], dtype, rng).variable(),
        }
    }

    /// The vectors of `ids` (any shape): result shape `ids.shape ++ [dim]`.
    pub fn forward(&self, ids: &Indices) -> Tensor {
        let dim = self.weight.dims()[1];
        let mut shape = ids.dims().to_vec();
        shape.push(dim);
        self.weight.index_select(0, &ids.flatten()).reshape(shape)
    }
}

impl Module for Embedding {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, ParamKind)) {
        f(&join(prefix, "weight"), &self.weight, ParamKind::Trainable);
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor, ParamKind)) {
        f(
            &join(prefix, "weight"),
            &mut self.weight,
            ParamKind::Trainable,
        );
    }
}
