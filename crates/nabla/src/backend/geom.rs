//! Descriptors shared by the operations and the kernels: sizes and kinds, no data.

use crate::tensor::{Shape, Tensor};

/// Sizes of one convolution: input `[n, c_in, h, w]`, weight `[c_out, c_in / groups, kh, kw]`,
/// output `[n, c_out, ho, wo]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvGeom {
    pub n: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub ho: usize,
    pub wo: usize,
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub dil: [usize; 2],
    pub groups: usize,
}

impl ConvGeom {
    pub(crate) fn cg_in(&self) -> usize {
        self.c_in / self.groups
    }
    pub(crate) fn cg_out(&self) -> usize {
        self.c_out / self.groups
    }
    /// Rows of one group's column matrix: `c_in / groups · kh · kw`.
    pub(crate) fn k(&self) -> usize {
        self.cg_in() * self.kh * self.kw
    }
    /// Output positions per channel.
    pub(crate) fn l(&self) -> usize {
        self.ho * self.wo
    }
    /// A 1×1 kernel with unit stride and no padding: the input itself is the column matrix.
    pub(crate) fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == [1, 1] && self.pad == [0, 0]
    }
    pub(crate) fn flops(&self) -> usize {
        2 * self.n * self.c_out * self.k() * self.l()
    }
    pub(crate) fn input_shape(&self) -> Shape {
        Shape::from([self.n, self.c_in, self.h, self.w])
    }
    pub(crate) fn weight_shape(&self) -> Shape {
        Shape::from([self.c_out, self.cg_in(), self.kh, self.kw])
    }
    pub(crate) fn output_shape(&self) -> Shape {
        Shape::from([self.n, self.c_out, self.ho, self.wo])
    }
}

/// Sizes of one pooling: input `[n, c, h, w]`, output `[n, c, ho, wo]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PoolGeom {
    pub(crate) n: usize,
    pub(crate) c: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) k: [usize; 2],
    pub(crate) stride: [usize; 2],
    pub(crate) pad: [usize; 2],
    pub(crate) ho: usize,
    pub(crate) wo: usize,
}

impl PoolGeom {
    pub(crate) fn new(
        op: &str,
        x: &Tensor,
        k: [usize; 2],
        stride: [usize; 2],
        pad: [usize; 2],
    ) -> PoolGeom {
        if x.rank() != 4 {
            panic!(
                "{op}: input {} must have 4 dimensions [N, C, H, W]",
                x.shape()
            );
        }
        if k.contains(&0) || stride.contains(&0) {
            panic!("{op}: kernel {k:?} and stride {stride:?} must be positive");
        }
        if pad[0] > k[0] / 2 || pad[1] > k[1] / 2 {
            panic!("{op}: padding {pad:?} must be at most half the kernel {k:?}");
        }
        let d = x.dims();
        let (h, w) = (d[2], d[3]);
        if h + 2 * pad[0] < k[0] || w + 2 * pad[1] < k[1] {
            panic!(
                "{op}: kernel {k:?} does not fit input {} with padding {pad:?}",
                x.shape()
            );
        }
        let ho = (h + 2 * pad[0] - k[0]) / stride[0] + 1;
        let wo = (w + 2 * pad[1] - k[1]) / stride[1] + 1;
        PoolGeom {
            n: d[0],
            c: d[1],
            h,
            w,
            k,
            stride,
            pad,
            ho,
            wo,
        }
    }
    pub(crate) fn planes(&self) -> usize {
        self.n * self.c
    }
    pub(crate) fn in_shape(&self) -> Shape {
        Shape::from([self.n, self.c, self.h, self.w])
    }
    pub(crate) fn out_shape(&self) -> Shape {
        Shape::from([self.n, self.c, self.ho, self.wo])
    }
    /// The input rows (or columns, for `axis` 1) of output row `o`'s window, clipped to the input.
    #[inline]
    pub(crate) fn window(&self, axis: usize, o: usize) -> std::ops::Range<usize> {
        let len = if axis == 0 { self.h } else { self.w };
        let start = (o * self.stride[axis]).saturating_sub(self.pad[axis]);
        let end = (o * self.stride[axis] + self.k[axis])
            .saturating_sub(self.pad[axis])
            .min(len);
        start..end
    }
}

/// Which recurrence a layer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CellKind {
    /// Gates i, f, g, o; states (h, c).
    Lstm,
    /// Gates r, z, n.
    Gru,
    /// `h = tanh(W_ih x + b_ih + W_hh h + b_hh)`.
    RnnTanh,
    /// `h = relu(W_ih x + b_ih + W_hh h + b_hh)`.
    RnnRelu,
}

impl CellKind {
    /// Number of gate blocks G (weights have G·H rows).
    pub(crate) fn gates(self) -> usize {
        match self {
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
            CellKind::RnnTanh | CellKind::RnnRelu => 1,
        }
    }

    /// Number of state tensors S (2 for the LSTM's h and c).
    pub(crate) fn states(self) -> usize {
        if self == CellKind::Lstm { 2 } else { 1 }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            CellKind::Lstm => "lstm",
            CellKind::Gru => "gru",
            CellKind::RnnTanh => "rnn_tanh",
            CellKind::RnnRelu => "rnn_relu",
        }
    }
}
