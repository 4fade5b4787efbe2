//! 2-d pooling with PyTorch's semantics: `max_pool2d` (padding counts as −∞) and `avg_pool2d`
//! (padding counts as zeros in the average, `count_include_pad = true`); output sizes round down.
//!
//! Max pooling is a gather: the forward kernel also records, for each output, the position of its
//! maximum within its input plane (a detached index buffer). Its rules are the gather and its
//! adjoint, a scatter-add into the input's shape; each of the two is the other's reverse rule and
//! its own forward rule, so gradients compose to any order. Average pooling is linear, with its
//! adjoint (spreading each cotangent evenly over its window) as the reverse rule.

use crate::autodiff::{InputGrads, Op, record};
use crate::backend::{self, PoolGeom};
use crate::tensor::{Shape, Tensor};
use smallvec::smallvec;
use std::sync::Arc;

// ----- max pooling: a gather by recorded argmax positions -----------------------------------------

/// Per output element, the flat position of its source within its input plane.
struct PlaneIndex {
    idx: Arc<[u32]>,
    in_shape: Shape,
    out_shape: Shape,
    in_plane: usize,
    out_plane: usize,
}

/// `out[p, j] = x[p, idx[p, j]]` (recorded).
fn gather(x: &Tensor, ix: &Arc<PlaneIndex>) -> Tensor {
    let out = backend::plane_gather(
        x,
        &ix.idx,
        [ix.in_plane, ix.out_plane],
        ix.out_shape.clone(),
    );
    record(out, Gather(ix.clone()), &[x])
}

/// The adjoint of [`gather`]: `out[p, q] = Σ_{j : idx[p, j] = q} g[p, j]` (recorded).
fn scatter(g: &Tensor, ix: &Arc<PlaneIndex>) -> Tensor {
    let out = backend::plane_scatter(g, &ix.idx, [ix.in_plane, ix.out_plane], ix.in_shape.clone());
    record(out, Scatter(ix.clone()), &[g])
}

/// Selection of recorded positions (max pooling's derivative): linear, its adjoint is [`Scatter`].
struct Gather(Arc<PlaneIndex>);

impl Op for Gather {
    fn name(&self) -> &str {
        "max_pool2d"
    }
    fn vjp(&self, _: &[Tensor], _: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
        smallvec![Some(scatter(g, &self.0))]
    }
    fn jvp(&self, _: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        gather(t[0].as_ref().expect("max_pool2d: tangent"), &self.0)
    }
}

/// Scatter-add to recorded positions: linear, its adjoint is [`Gather`].
struct Scatter(Arc<PlaneIndex>);

impl Op for Scatter {
    fn name(&self) -> &str {
        "max_pool2d_backward"
    }
    fn vjp(&self, _: &[Tensor], _: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
        smallvec![Some(gather(g, &self.0))]
    }
    fn jvp(&self, _: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        scatter(
            t[0].as_ref().expect("max_pool2d_backward: tangent"),
            &self.0,
        )
    }
}

// ----- average pooling: linear, with its adjoint ---------------------------------------------------

/// Average pooling (`adjoint == false`) or its adjoint, which spreads each value evenly over its
/// window (`adjoint == true`). Each is the other's reverse rule and its own forward rule.
struct AvgPool {
    geom: PoolGeom,
    adjoint: bool,
    /// Whether padding counts in a window's divisor (PyTorch's `count_include_pad`).
    include_pad: bool,
}

/// Average pooling (or, with `adjoint`, its transpose) over the planes of `x`. Each window divides
/// by `kH·kW` when `include_pad`, else by the number of input elements it covers.
fn avg_map(x: &Tensor, geom: PoolGeom, adjoint: bool, include_pad: bool) -> Tensor {
    let out = backend::avg_pool2d(x, &geom, adjoint, include_pad);
    record(
        out,
        AvgPool {
            geom,
            adjoint,
            include_pad,
        },
        &[x],
    )
}

impl Op for AvgPool {
    fn name(&self) -> &str {
        if self.adjoint {
            "avg_pool2d_backward"
        } else {
            "avg_pool2d"
        }
    }
    fn vjp(&self, _: &[Tensor], _: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
        smallvec![Some(avg_map(g, self.geom, !self.adjoint, self.include_pad))]
    }
    fn jvp(&self, _: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        avg_map(
            t[0].as_ref().expect("avg_pool2d: tangent"),
            self.geom,
            self.adjoint,
            self.include_pad,
        )
    }
}

impl Tensor {
    /// 2-d max pooling over `[N, C, H, W]` with PyTorch's semantics: windows of `kernel` taken every
    /// `stride`, the input padded with −∞ by `padding` (at most half the kernel), output size
    /// `(H + 2·pad − k) / stride + 1` (rounded down). The gradient goes to the (first) maximum of
    /// each window; a NaN in a window is its maximum.
    ///
    /// # Panics
    /// When the input is not 4-d, a kernel size or stride is 0, the padding exceeds half the
    /// kernel, or the kernel does not fit the padded input.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec((0..16).map(|v| v as f32).collect(), [1, 1, 4, 4]);
    /// let y = x.max_pool2d([2, 2], [2, 2], [0, 0]);
    /// assert_eq!(y.to_vec::<f32>(), vec![5.0, 7.0, 13.0, 15.0]);
    ///
    /// let xv = x.to_dtype(nabla::DType::F64).variable();
    /// let g = xv.max_pool2d([2, 2], [2, 2], [0, 0]).sum().backward();
    /// assert_eq!(g.get(&xv).unwrap().to_vec::<f64>()[..8], [0., 0., 0., 0., 0., 1., 0., 1.]);
    /// ```
    pub fn max_pool2d(
        &self,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Tensor {
        let g = PoolGeom::new("max_pool2d", self, kernel, stride, padding);
        if g.h * g.w > u32::MAX as usize {
            panic!(
                "max_pool2d: input planes of {}x{} elements are too large",
                g.h, g.w
            );
        }
        let (out, idx) = backend::max_pool2d(self, &g);
        let ix = Arc::new(PlaneIndex {
            idx,
            in_shape: g.in_shape(),
            out_shape: g.out_shape(),
            in_plane: g.h * g.w,
            out_plane: g.ho * g.wo,
        });
        record(out, Gather(ix), &[self])
    }

    /// 2-d average pooling over `[N, C, H, W]` with PyTorch's defaults: windows of `kernel` taken
    /// every `stride`, zero `padding` (at most half the kernel) counted in the average
    /// (`count_include_pad = true`, so every window divides by `kH·kW`), output size
    /// `(H + 2·pad − k) / stride + 1` (rounded down). Linear, so differentiable to any order.
    ///
    /// # Panics
    /// As [`max_pool2d`](Tensor::max_pool2d).
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec((0..16).map(|v| v as f64).collect(), [1, 1, 4, 4]);
    /// let y = x.avg_pool2d([2, 2], [2, 2], [0, 0]);
    /// assert_eq!(y.to_vec::<f64>(), vec![2.5, 4.5, 10.5, 12.5]);
    /// // with padding, the zeros count: the window of output (0, 1) holds x[0, 1] = 1, x[0, 2] = 2
    /// // and two zeros of padding
    /// let y = x.avg_pool2d([2, 2], [2, 2], [1, 1]);
    /// assert_eq!(y.dims(), &[1, 1, 3, 3]);
    /// assert_eq!(y.to_vec::<f64>()[1], (1.0 + 2.0) / 4.0);
    /// ```
    pub fn avg_pool2d(
        &self,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Tensor {
        self.avg_pool2d_with(kernel, stride, padding, true)
    }

    /// [`avg_pool2d`](Tensor::avg_pool2d) with PyTorch's `count_include_pad` option: when false,
    /// each window divides by the number of input elements it covers, so padding does not dilute
    /// the border averages.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec((0..16).map(|v| v as f64).collect(), [1, 1, 4, 4]);
    /// let y = x.avg_pool2d_with([2, 2], [2, 2], [1, 1], false);
    /// // output (0, 1) covers x[0, 1] = 1 and x[0, 2] = 2 only
    /// assert_eq!(y.to_vec::<f64>()[1], (1.0 + 2.0) / 2.0);
    /// assert_eq!(y.to_vec::<f64>()[0], 0.0); // the corner covers x[0, 0] alone
    /// ```
    pub fn avg_pool2d_with(
        &self,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        count_include_pad: bool,
    ) -> Tensor {
        let g = PoolGeom::new("avg_pool2d", self, kernel, stride, padding);
        avg_map(self, g, false, count_include_pad)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{check_grad, check_grad2};
    use crate::{DType, Tensor};

    fn grid(h: usize, w: usize) -> Tensor {
        Tensor::from_vec((0..h * w).map(|v| v as f64).collect(), [1, 1, h, w])
    }

    #[test]
    fn max_pool_hand_checked() {
        // 3x3 input 0..9, kernel 2, stride 1, padding 1: windows clip at the border
        let y = grid(3, 3).max_pool2d([2, 2], [1, 1], [1, 1]);
        assert_eq!(y.dims(), &[1, 1, 4, 4]);
        #[rustfmt::skip]
        let want = vec![
            0.0, 1.0, 2.0, 2.0,
            3.0, 4.0, 5.0, 5.0,
            6.0, 7.0, 8.0, 8.0,
            6.0, 7.0, 8.0, 8.0,
        ];
        assert_eq!(y.to_vec::<f64>(), want);
        // odd size rounds down: 5x5, kernel 2, stride 2 -> 2x2
        let y = grid(5, 5).max_pool2d([2, 2], [2, 2], [0, 0]);
        assert_eq!(y.to_vec::<f64>(), vec![6.0, 8.0, 16.0, 18.0]);
        // negative values with padding: padding is -inf, not 0
        let y = grid(2, 2).neg().max_pool2d([3, 3], [1, 1], [1, 1]);
        assert_eq!(y.to_vec::<f64>(), vec![0.0; 4]);
        let y = (grid(2, 2) + 1.0).neg().max_pool2d([2, 2], [1, 1], [1, 1]);
        assert_eq!(
            y.to_vec::<f64>(),
            vec![-1.0, -1.0, -2.0, -1.0, -1.0, -2.0, -3.0, -3.0, -4.0]
        );
    }

    #[test]
    fn max_pool_gradient_overlapping_windows() {
        // kernel 3 stride 1 on a 1x1x3x4 ramp: the maxima repeat, gradients add up
        let x = grid(3, 4).variable();
        let g = x.max_pool2d([3, 3], [1, 1], [0, 0]).sum().backward();
        assert_eq!(
            g.get(&x).unwrap().to_vec::<f64>(),
            vec![0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 1., 1.]
        );
        let g = x.max_pool2d([3, 3], [1, 1], [1, 1]).sum().backward();
        // 3x4 output; each window's max is its bottom-right valid element
        let gv = g.get(&x).unwrap().to_vec::<f64>();
        assert_eq!(gv.iter().sum::<f64>(), 12.0);
        assert_eq!(gv, vec![0., 0., 0., 0., 0., 1., 1., 2., 0., 2., 2., 4.]);
    }

    #[test]
    fn max_pool_nan_and_ties() {
        let x = Tensor::from_vec(vec![1.0f64, f64::NAN, 3.0, 3.0], [1, 1, 2, 2]);
        assert!(x.max_pool2d([2, 2], [2, 2], [0, 0]).item().is_nan());
        let x = Tensor::from_vec(vec![3.0f64, 1.0, 3.0, 3.0], [1, 1, 2, 2]).variable();
        let g = x.max_pool2d([2, 2], [2, 2], [0, 0]).sum().backward();
        assert_eq!(g.get(&x).unwrap().to_vec::<f64>(), vec![1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn avg_pool_hand_checked() {
        // count_include_pad: the corner window of a 3x3 input with padding 1 and kernel 3 holds
        // four real values (0, 1, 3, 4) and five zeros
        let y = grid(3, 3).avg_pool2d([3, 3], [2, 2], [1, 1]);
        assert_eq!(y.dims(), &[1, 1, 2, 2]);
        let want = [
            (1 + 3 + 4) as f64 / 9.0,
            (1 + 2 + 4 + 5) as f64 / 9.0,
            (3 + 4 + 6 + 7) as f64 / 9.0,
            (4 + 5 + 7 + 8) as f64 / 9.0,
        ];
        for (a, b) in y.to_vec::<f64>().iter().zip(want) {
            assert!((a - b).abs() < 1e-12);
        }
        // gradient spreads evenly: the centre belongs to all four windows
        let x = grid(3, 3).variable();
        let g = x.avg_pool2d([3, 3], [2, 2], [1, 1]).sum().backward();
        let gv = g.get(&x).unwrap().to_vec::<f64>();
        assert!((gv[4] - 4.0 / 9.0).abs() < 1e-12 && (gv[0] - 1.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn pooling_gradients_and_second_order() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let x = Tensor::randn([2, 3, 5, 6], DType::F64, &mut rng);
        let f = |v: &[Tensor]| v[0].avg_pool2d([3, 2], [2, 1], [1, 1]);
        check_grad(f, std::slice::from_ref(&x)).unwrap();
        check_grad2(f, std::slice::from_ref(&x)).unwrap();
        // max pooling: random normal values have no ties; second order through (x * x)
        let f = |v: &[Tensor]| v[0].max_pool2d([2, 3], [1, 2], [1, 1]);
        check_grad(f, std::slice::from_ref(&x)).unwrap();
        let f = |v: &[Tensor]| (&v[0] * &v[0]).max_pool2d([2, 2], [2, 2], [0, 0]);
        check_grad2(f, &[x.abs() + 0.1]).unwrap();
    }

    #[test]
    fn large_inputs_use_threads_consistently() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let x = Tensor::randn([4, 16, 32, 32], DType::F32, &mut rng);
        let y = x.max_pool2d([2, 2], [2, 2], [0, 0]);
        let z = x
            .reshape([64, 16, 2, 16, 2])
            .max_axes([2, 4], false)
            .reshape([4, 16, 16, 16]);
        assert_eq!(y.to_vec::<f32>(), z.to_vec::<f32>());
        let a = x.avg_pool2d([2, 2], [2, 2], [0, 0]);
        let b = x
            .reshape([64, 16, 2, 16, 2])
            .mean_axes([2, 4], false)
            .reshape([4, 16, 16, 16]);
        for (p, q) in a.to_vec::<f32>().iter().zip(b.to_vec::<f32>()) {
            assert!((p - q).abs() < 1e-5);
        }
    }

    #[test]
    #[should_panic(expected = "max_pool2d: padding [2, 0] must be at most half the kernel [3, 3]")]
    fn padding_message() {
        let _ = Tensor::zeros([1, 1, 5, 5], DType::F32).max_pool2d([3, 3], [1, 1], [2, 0]);
    }

    #[test]
    #[should_panic(
        expected = "avg_pool2d: kernel [4, 4] does not fit input [1, 1, 3, 3] with padding [0, 0]"
    )]
    fn fit_message() {
        let _ = Tensor::zeros([1, 1, 3, 3], DType::F32).avg_pool2d([4, 4], [1, 1], [0, 0]);
    }

    #[test]
    #[should_panic(expected = "max_pool2d: input [3, 3] must have 4 dimensions [N, C, H, W]")]
    fn rank_message() {
        let _ = Tensor::zeros([3, 3], DType::F32).max_pool2d([2, 2], [2, 2], [0, 0]);
    }
}
