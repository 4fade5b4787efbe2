//! Geometry descriptors shared by the operations and the kernels: plain sizes, no data.

use crate::tensor::Shape;

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
