//! Convolutions: `conv2d` and `conv1d` (a `conv2d` of height 1), with stride, padding, dilation and
//! groups, as in PyTorch (cross-correlation, no kernel flip).
//!
//! One primitive covers every derivative. The convolution is a trilinear form
//! `T(x, w, ḡ) = Σ ḡ[n,o,p] · w[o,c,k] · x[n,c,p·s + k·d − pad]`, and its three bilinear maps are the
//! forward pass `y = ∂T/∂ḡ`, the input gradient `x̄ = ∂T/∂x` and the weight gradient `w̄ = ∂T/∂w`.
//! The reverse and forward rules of each map are again those maps (see [`Conv`]), so gradients of
//! any order, in either mode, need nothing else. The kernels (`backend/cpu/conv.rs`) unfold one batch
//! element at a time into a cache-sized column buffer and call gemm, so the full column matrix of a
//! batch is never materialised.

use crate::autodiff::{InputGrads, Op, record};
use crate::backend::{self, ConvGeom, ConvKind as Kind};
use crate::tensor::{Tensor, same_dtype};
use smallvec::smallvec;

/// Options of [`Tensor::conv2d`]: stride, zero padding and dilation per spatial dimension (height,
/// width), and the number of channel groups.
///
/// The builder methods set both dimensions at once; set the fields for different values.
///
/// ```
/// use nabla::Conv2dOpts;
/// let o = Conv2dOpts::default().stride(2).padding(1);
/// assert_eq!(o, Conv2dOpts { stride: [2, 2], padding: [1, 1], dilation: [1, 1], groups: 1 });
/// let o = Conv2dOpts { padding: [0, 2], ..Conv2dOpts::default() };
/// assert_eq!(o.padding, [0, 2]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dOpts {
    /// Step between output positions, `[height, width]`.
    pub stride: [usize; 2],
    /// Zeros added on both sides of the input, `[height, width]`.
    pub padding: [usize; 2],
    /// Spacing between kernel taps, `[height, width]`.
    pub dilation: [usize; 2],
    /// Channel groups: input and output channels are split into this many groups, each convolved
    /// with its own filters (`groups == C_in` is a depthwise convolution).
    pub groups: usize,
}

impl Default for Conv2dOpts {
    fn default() -> Self {
        Conv2dOpts {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

impl Conv2dOpts {
    /// Sets the stride of both dimensions.
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = [s, s];
        self
    }
    /// Sets the zero padding of both dimensions.
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = [p, p];
        self
    }
    /// Sets the dilation of both dimensions.
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = [d, d];
        self
    }
    /// Sets the number of channel groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
}

/// Options of [`Tensor::conv1d`]: stride, zero padding, dilation and channel groups.
///
/// ```
/// use nabla::Conv1dOpts;
/// let o = Conv1dOpts::default().stride(2).padding(1).dilation(1).groups(1);
/// assert_eq!(o, Conv1dOpts { stride: 2, padding: 1, dilation: 1, groups: 1 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv1dOpts {
    /// Step between output positions.
    pub stride: usize,
    /// Zeros added on both sides of the input.
    pub padding: usize,
    /// Spacing between kernel taps.
    pub dilation: usize,
    /// Channel groups (see [`Conv2dOpts::groups`]).
    pub groups: usize,
}

impl Default for Conv1dOpts {
    fn default() -> Self {
        Conv1dOpts {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
        }
    }
}

impl Conv1dOpts {
    /// Sets the stride.
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = s;
        self
    }
    /// Sets the zero padding.
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = p;
        self
    }
    /// Sets the dilation.
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = d;
        self
    }
    /// Sets the number of channel groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
}

/// A node of one of the three maps. With `⟨ḡ, conv(x, w)⟩ = ⟨x, input_grad(ḡ, w)⟩ =
/// ⟨w, weight_grad(x, ḡ)⟩`, the cotangent `z` of each map's output gives
///
/// - `conv(x, w)`: `x̄ = input_grad(z, w)`, `w̄ = weight_grad(x, z)`, `b̄ = Σ_{n,h,w} z`;
/// - `input_grad(ḡ, w)`: `ḡ̄ = conv(z, w)`, `w̄ = weight_grad(z, ḡ)`;
/// - `weight_grad(x, ḡ)`: `x̄ = input_grad(ḡ, z)`, `ḡ̄ = conv(x, z)`;
///
/// and, each map being bilinear, its tangent is `f(ta, b) + f(a, tb)`.
struct Conv {
    geom: ConvGeom,
    kind: Kind,
}

/// Computes one map on `a`, `b` (and the bias of a forward convolution) and records it.
fn conv_map(kind: Kind, geom: ConvGeom, a: &Tensor, b: &Tensor, bias: Option<&Tensor>) -> Tensor {
    let out = backend::conv2d(kind, &geom, a, b, bias);
    let op = Conv { geom, kind };
    match bias {
        Some(bias) => record(out, op, &[a, b, bias]),
        None => record(out, op, &[a, b]),
    }
}

impl Op for Conv {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Forward => "conv2d",
            Kind::InputGrad => "conv2d_input_grad",
            Kind::WeightGrad => "conv2d_weight_grad",
        }
    }

    fn vjp(&self, i: &[Tensor], _: &Tensor, z: &Tensor, needs: &[bool]) -> InputGrads {
        let g = self.geom;
        let (a, b) = (&i[0], &i[1]);
        let mut out: InputGrads = match self.kind {
            Kind::Forward => smallvec![
                needs[0].then(|| conv_map(Kind::InputGrad, g, z, b, None)),
                needs[1].then(|| conv_map(Kind::WeightGrad, g, a, z, None)),
            ],
            Kind::InputGrad => smallvec![
                needs[0].then(|| conv_map(Kind::Forward, g, z, b, None)),
                needs[1].then(|| conv_map(Kind::WeightGrad, g, z, a, None)),
            ],
            Kind::WeightGrad => smallvec![
                needs[0].then(|| conv_map(Kind::InputGrad, g, b, z, None)),
                needs[1].then(|| conv_map(Kind::Forward, g, a, z, None)),
            ],
        };
        if i.len() == 3 {
            out.push(needs[2].then(|| z.sum_axes([0, 2, 3], false)));
        }
        out
    }

    fn jvp(&self, i: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        let g = self.geom;
        let (a, b) = (&i[0], &i[1]);
        let mut acc: Option<Tensor> = None;
        let mut add = |x: Tensor| {
            acc = Some(match acc.take() {
                Some(s) => s + x,
                None => x,
            })
        };
        if let Some(ta) = &t[0] {
            add(conv_map(self.kind, g, ta, b, None));
        }
        if let Some(tb) = &t[1] {
            add(conv_map(self.kind, g, a, tb, None));
        }
        if let Some(Some(tbias)) = t.get(2) {
            add(tbias
                .reshape([1, g.c_out, 1, 1])
                .broadcast_to(g.output_shape()));
        }
        acc.expect("conv2d: jvp without tangents")
    }
}

/// Output length of one spatial dimension, or `None` when the dilated kernel does not fit.
fn out_len(len: usize, k: usize, stride: usize, pad: usize, dil: usize) -> Option<usize> {
    let span = dil * (k - 1) + 1;
    (len + 2 * pad).checked_sub(span).map(|r| r / stride + 1)
}

impl Tensor {
    /// 2-d convolution (cross-correlation, as in PyTorch's `conv2d`): input `[N, C_in, H, W]`,
    /// weight `[C_out, C_in / groups, kH, kW]`, optional bias `[C_out]`; the result is
    /// `[N, C_out, H_out, W_out]` with `H_out = (H + 2·pad − dil·(kH − 1) − 1) / stride + 1` (and
    /// likewise for the width). Differentiable in the input, the weight and the bias, to any order.
    ///
    /// # Panics
    /// When the shapes do not fit together, e.g.
    /// `conv2d: weight [8, 3, 3, 3] expects 3 input channels (groups 1), input [2, 4, 5, 5] has 4`,
    /// when a stride, a dilation or `groups` is 0, when `groups` does not divide the channels, or
    /// when the (dilated) kernel is larger than the padded input.
    ///
    /// ```
    /// use nabla::{Conv2dOpts, DType, Tensor};
    /// // a 3×3 box filter over a 4×4 image of ones, with one pixel of zero padding
    /// let x = Tensor::ones([1, 1, 4, 4], DType::F32);
    /// let w = Tensor::ones([1, 1, 3, 3], DType::F32);
    /// let y = x.conv2d(&w, None, Conv2dOpts::default().padding(1));
    /// assert_eq!(y.dims(), &[1, 1, 4, 4]);
    /// assert_eq!(&y.to_vec::<f32>()[..4], &[4.0, 6.0, 6.0, 4.0]);
    ///
    /// // stride 2 with a bias: [2, 3, 8, 8] -> [2, 5, 4, 4]
    /// let x = Tensor::ones([2, 3, 8, 8], DType::F64);
    /// let w = Tensor::ones([5, 3, 3, 3], DType::F64);
    /// let b = Tensor::full([5], 0.5, DType::F64);
    /// let y = x.conv2d(&w, Some(&b), Conv2dOpts::default().stride(2).padding(1));
    /// assert_eq!(y.dims(), &[2, 5, 4, 4]);
    /// assert_eq!(y.to_vec::<f64>()[5], 27.5);
    /// ```
    pub fn conv2d(&self, weight: &Tensor, bias: Option<&Tensor>, opts: Conv2dOpts) -> Tensor {
        let (x, w) = (self, weight);
        same_dtype("conv2d", x, w);
        if x.rank() != 4 {
            panic!(
                "conv2d: input {} must have 4 dimensions [N, C_in, H, W]",
                x.shape()
            );
        }
        if w.rank() != 4 {
            panic!(
                "conv2d: weight {} must have 4 dimensions [C_out, C_in/groups, kH, kW]",
                w.shape()
            );
        }
        let Conv2dOpts {
            stride,
            padding,
            dilation,
            groups,
        } = opts;
        if groups == 0 || stride.contains(&0) || dilation.contains(&0) {
            panic!(
                "conv2d: stride {stride:?}, dilation {dilation:?} and groups {groups} must be positive"
            );
        }
        let (xd, wd) = (x.dims(), w.dims());
        let (n, c_in, h, wi) = (xd[0], xd[1], xd[2], xd[3]);
        let (c_out, kh, kw) = (wd[0], wd[2], wd[3]);
        if c_out % groups != 0 {
            panic!(
                "conv2d: weight {} has {c_out} output channels, which groups {groups} does not divide",
                w.shape()
            );
        }
        if wd[1] * groups != c_in {
            panic!(
                "conv2d: weight {} expects {} input channels (groups {groups}), input {} has {c_in}",
                w.shape(),
                wd[1] * groups,
                x.shape()
            );
        }
        if let Some(b) = bias {
            same_dtype("conv2d", x, b);
            if b.dims() != [c_out] {
                panic!(
                    "conv2d: bias {} must have shape [{c_out}] for weight {}",
                    b.shape(),
                    w.shape()
                );
            }
        }
        if kh == 0 || kw == 0 {
            panic!("conv2d: weight {} has an empty kernel", w.shape());
        }
        let (ho, wo) = match (
            out_len(h, kh, stride[0], padding[0], dilation[0]),
            out_len(wi, kw, stride[1], padding[1], dilation[1]),
        ) {
            (Some(ho), Some(wo)) => (ho, wo),
            _ => panic!(
                "conv2d: kernel {kh}x{kw} (dilation {dilation:?}) does not fit input {} with padding {padding:?}",
                x.shape()
            ),
        };
        let geom = ConvGeom {
            n,
            c_in,
            h,
            w: wi,
            c_out,
            kh,
            kw,
            ho,
            wo,
            stride,
            pad: padding,
            dil: dilation,
            groups,
        };
        conv_map(Kind::Forward, geom, x, w, bias)
    }

    /// 1-d convolution (cross-correlation, as in PyTorch's `conv1d`): input `[N, C_in, L]`, weight
    /// `[C_out, C_in / groups, k]`, optional bias `[C_out]`; the result is `[N, C_out, L_out]` with
    /// `L_out = (L + 2·pad − dil·(k − 1) − 1) / stride + 1`. It is a [`conv2d`](Tensor::conv2d) of
    /// height 1.
    ///
    /// # Panics
    /// As [`conv2d`](Tensor::conv2d), with messages naming `conv1d` and its 3-d shapes.
    ///
    /// ```
    /// use nabla::{Conv1dOpts, Tensor};
    /// // a moving difference x[i + 1] - x[i]
    /// let x = Tensor::from_vec(vec![1.0f64, 4.0, 9.0, 16.0], [1, 1, 4]);
    /// let w = Tensor::from_vec(vec![-1.0f64, 1.0], [1, 1, 2]);
    /// let y = x.conv1d(&w, None, Conv1dOpts::default());
    /// assert_eq!(y.to_vec::<f64>(), vec![3.0, 5.0, 7.0]);
    /// ```
    pub fn conv1d(&self, weight: &Tensor, bias: Option<&Tensor>, opts: Conv1dOpts) -> Tensor {
        let (x, w) = (self, weight);
        same_dtype("conv1d", x, w);
        if x.rank() != 3 {
            panic!(
                "conv1d: input {} must have 3 dimensions [N, C_in, L]",
                x.shape()
            );
        }
        if w.rank() != 3 {
            panic!(
                "conv1d: weight {} must have 3 dimensions [C_out, C_in/groups, k]",
                w.shape()
            );
        }
        let Conv1dOpts {
            stride,
            padding,
            dilation,
            groups,
        } = opts;
        if groups == 0 || stride == 0 || dilation == 0 {
            panic!(
                "conv1d: stride {stride}, dilation {dilation} and groups {groups} must be positive"
            );
        }
        let (c_in, len, c_out, k) = (x.dims()[1], x.dims()[2], w.dims()[0], w.dims()[2]);
        if c_out % groups != 0 {
            panic!(
                "conv1d: weight {} has {c_out} output channels, which groups {groups} does not divide",
                w.shape()
            );
        }
        if w.dims()[1] * groups != c_in {
            panic!(
                "conv1d: weight {} expects {} input channels (groups {groups}), input {} has {c_in}",
                w.shape(),
                w.dims()[1] * groups,
                x.shape()
            );
        }
        if let Some(b) = bias {
            same_dtype("conv1d", x, b);
            if b.dims() != [c_out] {
                panic!(
                    "conv1d: bias {} must have shape [{c_out}] for weight {}",
                    b.shape(),
                    w.shape()
                );
            }
        }
        if k == 0 || out_len(len, k, stride, padding, dilation).is_none() {
            panic!(
                "conv1d: kernel {k} (dilation {dilation}) does not fit input {} with padding {padding}",
                x.shape()
            );
        }
        let opts2 = Conv2dOpts {
            stride: [1, stride],
            padding: [0, padding],
            dilation: [1, dilation],
            groups,
        };
        x.unsqueeze(2)
            .conv2d(&w.unsqueeze(2), bias, opts2)
            .squeeze(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;
    use rand::{RngExt, SeedableRng};

    /// Direct convolution by loops, in f64.
    #[allow(clippy::too_many_arguments)]
    fn naive_conv2d(
        x: &[f64],
        xd: [usize; 4],
        w: &[f64],
        wd: [usize; 4],
        b: Option<&[f64]>,
        o: Conv2dOpts,
    ) -> (Vec<f64>, [usize; 4]) {
        let [n, c_in, h, wi] = xd;
        let [c_out, cg, kh, kw] = wd;
        let g = o.groups;
        let ho = (h + 2 * o.padding[0] - o.dilation[0] * (kh - 1) - 1) / o.stride[0] + 1;
        let wo = (wi + 2 * o.padding[1] - o.dilation[1] * (kw - 1) - 1) / o.stride[1] + 1;
        let og = c_out / g;
        let mut y = vec![0.0; n * c_out * ho * wo];
        for ni in 0..n {
            for oc in 0..c_out {
                let grp = oc / og;
                for oh in 0..ho {
                    for ow in 0..wo {
                        let mut acc = b.map_or(0.0, |b| b[oc]);
                        for ci in 0..cg {
                            let c = grp * cg + ci;
                            for ki in 0..kh {
                                for kj in 0..kw {
                                    let ih = (oh * o.stride[0] + ki * o.dilation[0]) as isize
                                        - o.padding[0] as isize;
                                    let iw = (ow * o.stride[1] + kj * o.dilation[1]) as isize
                                        - o.padding[1] as isize;
                                    if ih < 0 || iw < 0 || ih >= h as isize || iw >= wi as isize {
                                        continue;
                                    }
                                    acc += w[((oc * cg + ci) * kh + ki) * kw + kj]
                                        * x[((ni * c_in + c) * h + ih as usize) * wi + iw as usize];
                                }
                            }
                        }
                        y[((ni * c_out + oc) * ho + oh) * wo + ow] = acc;
                    }
                }
            }
        }
        (y, [n, c_out, ho, wo])
    }

    fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
    }

    #[test]
    fn matches_naive_on_random_shapes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for case in 0..60 {
            let g = [1, 1, 2, 3][case % 4];
            let cg_in = rng.random_range(1..4);
            let cg_out = rng.random_range(1..4);
            let (kh, kw) = (rng.random_range(1..4), rng.random_range(1..4));
            let o = Conv2dOpts {
                stride: [rng.random_range(1..4), rng.random_range(1..4)],
                padding: [rng.random_range(0..3), rng.random_range(0..3)],
                dilation: [rng.random_range(1..3), rng.random_range(1..3)],
                groups: g,
            };
            let n = rng.random_range(1..4);
            let h = o.dilation[0] * (kh - 1) + 1 + rng.random_range(0..5);
            let wi = o.dilation[1] * (kw - 1) + 1 + rng.random_range(0..5);
            let xd = [n, cg_in * g, h, wi];
            let wd = [cg_out * g, cg_in, kh, kw];
            let x = Tensor::randn(xd, DType::F64, &mut rng);
            let w = Tensor::randn(wd, DType::F64, &mut rng);
            let b = Tensor::randn([wd[0]], DType::F64, &mut rng);
            let use_b = case % 3 == 0;
            let y = x.conv2d(&w, use_b.then_some(&b), o);
            let bv = b.to_vec::<f64>();
            let (want, yd) = naive_conv2d(
                &x.to_vec(),
                xd,
                &w.to_vec(),
                wd,
                use_b.then_some(&bv[..]),
                o,
            );
            assert_eq!(y.dims(), &yd, "case {case}: {o:?}");
            assert!(
                close(&y.to_vec::<f64>(), &want, 1e-12),
                "case {case}: {o:?} x {xd:?} w {wd:?}"
            );
            // f32 as well
            let y32 = x.to_dtype(DType::F32).conv2d(
                &w.to_dtype(DType::F32),
                use_b.then(|| b.to_dtype(DType::F32)).as_ref(),
                o,
            );
            assert!(close(&y32.to_vec::<f64>(), &want, 1e-4), "f32 case {case}");
        }
    }

    #[test]
    fn large_batch_and_pointwise_match_naive() {
        // exercises the threaded paths (over the batch, and inside gemm for one element) and the
        // 1x1 direct path, with strided (permuted) inputs
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for &(n, c_in, c_out, k, pad, hw) in &[
            (8, 6, 10, 3, 1, 12),
            (1, 16, 24, 3, 1, 20),
            (5, 12, 8, 1, 0, 9),
            (1, 32, 16, 1, 0, 30),
        ] {
            let xd = [n, c_in, hw, hw];
            let wd = [c_out, c_in, k, k];
            let x = Tensor::randn([n, hw, hw, c_in], DType::F64, &mut rng).permute([0, 3, 1, 2]);
            let w = Tensor::randn(wd, DType::F64, &mut rng);
            let o = Conv2dOpts::default().padding(pad);
            let (want, _) = naive_conv2d(&x.to_vec(), xd, &w.to_vec(), wd, None, o);
            let y = x.conv2d(&w, None, o);
            assert!(close(&y.to_vec::<f64>(), &want, 1e-10), "{xd:?} {wd:?}");
            let y = x.contiguous().conv2d(&w, None, o);
            assert!(close(&y.to_vec::<f64>(), &want, 1e-10), "{xd:?} {wd:?}");
            // gradients of sum(y * r) against naive adjoints computed via the identity
            // <r, conv(x, w)> = <x, x̄> = <w, w̄>
            let r = Tensor::randn(y.shape(), DType::F64, &mut rng);
            let (xv, wv) = (x.variable(), w.variable());
            let gs = (xv.conv2d(&wv, None, o) * &r).sum().backward();
            let (gx, gw) = (gs.get(&xv).unwrap(), gs.get(&wv).unwrap());
            let lhs = (&y * &r).sum().item();
            assert!((lhs - (gx * &x).sum().item()).abs() < 1e-8 * (1.0 + lhs.abs()));
            assert!((lhs - (gw * &w).sum().item()).abs() < 1e-8 * (1.0 + lhs.abs()));
        }
    }

    #[test]
    fn gradients_against_finite_differences() {
        use crate::testing::{check_grad, check_grad2};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let x = Tensor::randn([2, 4, 5, 4], DType::F64, &mut rng);
        let w = Tensor::randn([6, 2, 2, 3], DType::F64, &mut rng);
        let b = Tensor::randn([6], DType::F64, &mut rng);
        let o = Conv2dOpts {
            stride: [2, 1],
            padding: [1, 2],
            dilation: [1, 2],
            groups: 2,
        };
        let f = |v: &[Tensor]| v[0].conv2d(&v[1], Some(&v[2]), o);
        check_grad(f, &[x.clone(), w.clone(), b.clone()]).unwrap();
        check_grad2(f, &[x, w, b]).unwrap();
    }

    #[test]
    fn empty_batch_and_channels() {
        let o = Conv2dOpts::default().padding(1);
        let x = Tensor::zeros([0, 2, 4, 4], DType::F32).variable();
        let w = Tensor::ones([3, 2, 3, 3], DType::F32).variable();
        let y = x.conv2d(&w, None, o);
        assert_eq!(y.dims(), &[0, 3, 4, 4]);
        let g = y.sum().backward();
        assert_eq!(g.get(&w).unwrap().to_vec::<f32>(), vec![0.0; 54]);
        assert_eq!(g.get(&x).unwrap().dims(), &[0, 2, 4, 4]);
        // no input channels: the output is the bias
        let x = Tensor::zeros([1, 0, 2, 2], DType::F64);
        let b = Tensor::from_vec(vec![1.5f64, -2.0], [2]);
        let y = x.conv2d(
            &Tensor::zeros([2, 0, 1, 1], DType::F64),
            Some(&b),
            Conv2dOpts::default(),
        );
        assert_eq!(
            y.to_vec::<f64>(),
            vec![1.5, 1.5, 1.5, 1.5, -2.0, -2.0, -2.0, -2.0]
        );
    }

    #[test]
    fn conv1d_matches_naive() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let x = Tensor::randn([3, 4, 11], DType::F64, &mut rng);
        let w = Tensor::randn([6, 2, 3], DType::F64, &mut rng);
        let b = Tensor::randn([6], DType::F64, &mut rng);
        let o = Conv1dOpts::default()
            .stride(2)
            .padding(2)
            .dilation(2)
            .groups(2);
        let y = x.conv1d(&w, Some(&b), o);
        let o2 = Conv2dOpts {
            stride: [1, 2],
            padding: [0, 2],
            dilation: [1, 2],
            groups: 2,
        };
        let bv = b.to_vec::<f64>();
        let (want, yd) = naive_conv2d(
            &x.to_vec(),
            [3, 4, 1, 11],
            &w.to_vec(),
            [6, 2, 1, 3],
            Some(&bv),
            o2,
        );
        assert_eq!(y.dims(), &[yd[0], yd[1], yd[3]]);
        assert!(close(&y.to_vec::<f64>(), &want, 1e-12));
    }

    #[test]
    #[should_panic(
        expected = "conv2d: weight [8, 3, 3, 3] expects 3 input channels (groups 1), input [2, 4, 5, 5] has 4"
    )]
    fn channel_mismatch_message() {
        let _ = Tensor::zeros([2, 4, 5, 5], DType::F32).conv2d(
            &Tensor::zeros([8, 3, 3, 3], DType::F32),
            None,
            Conv2dOpts::default(),
        );
    }

    #[test]
    #[should_panic(
        expected = "conv2d: weight [6, 2, 3, 3] expects 6 input channels (groups 3), input [1, 4, 5, 5] has 4"
    )]
    fn group_channel_mismatch_message() {
        let _ = Tensor::zeros([1, 4, 5, 5], DType::F32).conv2d(
            &Tensor::zeros([6, 2, 3, 3], DType::F32),
            None,
            Conv2dOpts::default().groups(3),
        );
    }

    #[test]
    #[should_panic(
        expected = "conv2d: weight [5, 2, 3, 3] has 5 output channels, which groups 2 does not divide"
    )]
    fn groups_must_divide_outputs() {
        let _ = Tensor::zeros([1, 4, 5, 5], DType::F32).conv2d(
            &Tensor::zeros([5, 2, 3, 3], DType::F32),
            None,
            Conv2dOpts::default().groups(2),
        );
    }

    #[test]
    #[should_panic(
        expected = "conv2d: kernel 3x3 (dilation [2, 2]) does not fit input [1, 1, 4, 4] with padding [0, 0]"
    )]
    fn kernel_too_large_message() {
        let _ = Tensor::zeros([1, 1, 4, 4], DType::F32).conv2d(
            &Tensor::zeros([1, 1, 3, 3], DType::F32),
            None,
            Conv2dOpts::default().dilation(2),
        );
    }

    #[test]
    #[should_panic(expected = "conv2d: bias [3] must have shape [2] for weight [2, 1, 1, 1]")]
    fn bias_shape_message() {
        let _ = Tensor::zeros([1, 1, 4, 4], DType::F32).conv2d(
            &Tensor::zeros([2, 1, 1, 1], DType::F32),
            Some(&Tensor::zeros([3], DType::F32)),
            Conv2dOpts::default(),
        );
    }

    #[test]
    #[should_panic(expected = "conv2d: input [4, 5, 5] must have 4 dimensions [N, C_in, H, W]")]
    fn rank_message() {
        let _ = Tensor::zeros([4, 5, 5], DType::F32).conv2d(
            &Tensor::zeros([2, 4, 1, 1], DType::F32),
            None,
            Conv2dOpts::default(),
        );
    }

    #[test]
    #[should_panic(
        expected = "conv1d: weight [2, 3, 3] expects 3 input channels (groups 1), input [1, 2, 9] has 2"
    )]
    fn conv1d_channel_message() {
        let _ = Tensor::zeros([1, 2, 9], DType::F32).conv1d(
            &Tensor::zeros([2, 3, 3], DType::F32),
            None,
            Conv1dOpts::default(),
        );
    }

    #[test]
    #[should_panic(expected = "conv2d: dtype mismatch")]
    fn dtype_message() {
        let _ = Tensor::zeros([1, 1, 3, 3], DType::F32).conv2d(
            &Tensor::zeros([1, 1, 1, 1], DType::F64),
            None,
            Conv2dOpts::default(),
        );
    }
}
