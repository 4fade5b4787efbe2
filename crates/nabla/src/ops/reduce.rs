//! Reductions over axes or over everything: sum, mean, max, min, prod, var, std, logsumexp.
//! Axes may be negative; `keepdim` keeps reduced axes as size 1 (as in PyTorch).

use crate::autodiff::{InputGrads, Op, record};
use crate::backend::{self, ReduceOp};
use crate::tensor::Tensor;
#[allow(unused_imports)]
use crate::tensor::axes::{Axis, AxisSet};
use crate::tensor::shape::{Shape, norm_axes};
#[allow(unused_imports)]
use num_traits::{Float, One, Zero};
use smallvec::{SmallVec, smallvec};

type Axes = SmallVec<[usize; 4]>;

fn all_axes(rank: usize) -> Vec<isize> {
    (0..rank as isize).collect()
}

/// The shape with reduced axes kept as 1.
fn kept_shape(shape: &Shape, axes: &[usize]) -> Shape {
    let mut d = shape.to_vec();
    for &a in axes {
        d[a] = 1;
    }
    Shape::from(d)
}

fn reduced_shape(shape: &Shape, axes: &[usize], keepdim: bool) -> Shape {
    if keepdim {
        return kept_shape(shape, axes);
    }
    Shape::from(
        shape
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, d)| *d)
            .collect::<Vec<_>>(),
    )
}

struct Sum {
    axes: Axes,
    keepdim: bool,
    in_shape: Shape,
}

impl Op for Sum {
    fn name(&self) -> &str {
        "sum"
    }
    fn lower(&self) -> Option<crate::compile::Prim> {
        Some(if self.axes.len() == self.in_shape.rank() {
            crate::compile::Prim::SumAll
        } else {
            crate::compile::Prim::ReduceLinear
        })
    }
    fn vjp(&self, _: &[Tensor], _: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
        let g = if self.keepdim {
            g.clone()
        } else {
            g.reshape(kept_shape(&self.in_shape, &self.axes))
        };
        smallvec![Some(g.broadcast_to(&self.in_shape))]
    }
    fn jvp(&self, _: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        let axes: Vec<isize> = self.axes.iter().map(|&a| a as isize).collect();
        t[0].as_ref()
            .expect("tangent")
            .sum_axes(&axes, self.keepdim)
    }
}

/// Max or min over axes; the gradient is shared equally among tied maxima.
struct Extremum {
    axes: Axes,
    keepdim: bool,
    is_max: bool,
}

impl Extremum {
    /// Mask of the positions that attain the extremum, divided by how many do.
    fn weights(&self, x: &Tensor, out: &Tensor) -> Tensor {
        let kept = kept_shape(x.shape(), &self.axes);
        let m = out.detach().reshape(kept);
        let mask = x.detach().eq(&m);
        let axes: Vec<isize> = self.axes.iter().map(|&a| a as isize).collect();
        let count = mask.sum_axes(&axes, true);
        mask / count
    }
}

impl Op for Extremum {
    fn name(&self) -> &str {
        if self.is_max { "max" } else { "min" }
    }
    fn vjp(&self, i: &[Tensor], out: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
        let x = &i[0];
        let w = self.weights(x, out);
        let g = if self.keepdim {
            g.clone()
        } else {
            g.reshape(kept_shape(x.shape(), &self.axes))
        };
        smallvec![Some(&w * &g)]
    }
    fn jvp(&self, i: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        let x = &i[0];
        let axes: Vec<isize> = self.axes.iter().map(|&a| a as isize).collect();
        let out = x.detach().extremum(&axes, self.keepdim, self.is_max);
        let w = self.weights(x, &out);
        (t[0].as_ref().expect("tangent") * &w).sum_axes(&axes, self.keepdim)
    }
}

struct Prod {
    axes: Axes,
    keepdim: bool,
}

impl Op for Prod {
    fn name(&self) -> &str {
        "prod"
    }
    fn vjp(&self, i: &[Tensor], out: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
        let x = &i[0];
        let kept = kept_shape(x.shape(), &self.axes);
        let g = if self.keepdim {
            g.clone()
        } else {
            g.reshape(kept.clone())
        };
        smallvec![Some(&g * &self.others(x, out))]
    }
    fn jvp(&self, i: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        let x = &i[0];
        let axes: Vec<isize> = self.axes.iter().map(|&a| a as isize).collect();
        let out = x.prod_axes(&axes, self.keepdim);
        (t[0].as_ref().expect("tangent") * &self.others(x, &out)).sum_axes(&axes, self.keepdim)
    }
}

impl Prod {
    /// ∂ prod / ∂ x_i, the product of the other elements of x_i's group. Differentiable when no
    /// element is zero (`out / x`); with zeros it is computed directly (first order only).
    fn others(&self, x: &Tensor, out: &Tensor) -> Tensor {
        let kept = kept_shape(x.shape(), &self.axes);
        let has_zero = x.eq_scalar(0.0).sum().item() > 0.0;
        if !has_zero {
            return out.reshape(kept) / x;
        }
        backend::prod_others(&x.detach(), &self.axes)
    }
}

impl Tensor {
    /// Sum of all elements, as a 0-d tensor.
    ///
    /// ```
    /// use nabla::Tensor;
    /// assert_eq!(Tensor::from_vec(vec![1.0f32, 2.0, 3.0], [3]).sum().item(), 6.0);
    /// ```
    pub fn sum(&self) -> Tensor {
        if self.rank() == 0 {
            return self.clone();
        }
        let out = backend::sum_all(self);
        let axes: Axes = (0..self.rank()).collect();
        record(
            out,
            Sum {
                axes,
                keepdim: false,
                in_shape: self.shape().clone(),
            },
            &[self],
        )
    }

    /// Sum over the given axes.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], [2, 2]);
    /// assert_eq!(x.sum_axes(&[-1], false).to_vec::<f64>(), vec![3.0, 7.0]);
    /// assert_eq!(x.sum_axes(&[0], true).dims(), &[1, 2]);
    /// ```
    pub fn sum_axes(&self, axes: impl AxisSet, keepdim: bool) -> Tensor {
        let axes = &axes.axis_list(self.rank())[..];
        let ax = norm_axes("sum", axes, self.rank());
        if ax.is_empty() {
            return self.clone();
        }
        if ax.len() == self.rank() && !keepdim {
            return self.sum();
        }
        let kept = backend::reduce(ReduceOp::Sum, self, &ax);
        let out = kept.view_as(crate::tensor::layout::Layout::contiguous(reduced_shape(
            self.shape(),
            &ax,
            keepdim,
        )));
        record(
            out,
            Sum {
                axes: ax,
                keepdim,
                in_shape: self.shape().clone(),
            },
            &[self],
        )
    }

    /// Sum over one axis.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]);
    /// assert_eq!(x.sum_axis(0, false).to_vec::<f32>(), vec![5.0, 7.0, 9.0]);
    /// assert_eq!(x.sum_axis(-1, true).dims(), &[2, 1]);
    /// ```
    pub fn sum_axis(&self, axis: impl Axis, keepdim: bool) -> Tensor {
        let axis = axis.to_isize();
        self.sum_axes([axis], keepdim)
    }

    /// Sums broadcast dimensions away so the result has `shape` (the adjoint of
    /// [`broadcast_to`](Tensor::broadcast_to)).
    ///
    /// ```
    /// use nabla::{DType, Shape, Tensor};
    /// let g = Tensor::ones([4, 3], DType::F32);
    /// // the gradient of a [3] operand that was broadcast to [4, 3]
    /// assert_eq!(g.sum_to(&Shape::from([3])).to_vec::<f32>(), vec![4.0, 4.0, 4.0]);
    /// ```
    pub fn sum_to(&self, shape: &Shape) -> Tensor {
        if self.shape() == shape {
            return self.clone();
        }
        let lead = self.rank().checked_sub(shape.rank()).unwrap_or_else(|| {
            panic!(
                "sum_to: cannot reduce {} to the larger rank of {}",
                self.shape(),
                shape
            )
        });
        let mut axes: Vec<isize> = (0..lead as isize).collect();
        for (i, &d) in shape.iter().enumerate() {
            let s = self.dims()[i + lead];
            if d == 1 && s != 1 {
                axes.push((i + lead) as isize);
            } else if d != s {
                panic!("sum_to: cannot reduce {} to {}", self.shape(), shape);
            }
        }
        self.sum_axes(&axes, true).reshape(shape)
    }

    /// Mean of all elements.
    ///
    /// ```
    /// use nabla::Tensor;
    /// assert_eq!(Tensor::from_vec(vec![1.0f64, 2.0, 6.0], [3]).mean().item(), 3.0);
    /// ```
    pub fn mean(&self) -> Tensor {
        let n = self.numel();
        self.sum().scale(1.0 / n as f64)
    }

    /// Mean over the given axes.
    pub fn mean_axes(&self, axes: impl AxisSet, keepdim: bool) -> Tensor {
        let axes = &axes.axis_list(self.rank())[..];
        let ax = norm_axes("mean", axes, self.rank());
        let n: usize = ax.iter().map(|&a| self.dims()[a]).product();
        self.sum_axes(axes, keepdim).scale(1.0 / n as f64)
    }

    /// Mean over one axis.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]);
    /// assert_eq!(x.mean_axis(1, false).to_vec::<f32>(), vec![1.5, 3.5]);
    /// ```
    pub fn mean_axis(&self, axis: impl Axis, keepdim: bool) -> Tensor {
        let axis = axis.to_isize();
        self.mean_axes([axis], keepdim)
    }

    fn extremum(&self, axes: &[isize], keepdim: bool, is_max: bool) -> Tensor {
        let name = if is_max { "max" } else { "min" };
        let ax = norm_axes(name, axes, self.rank());
        if self.numel() == 0 {
            panic!(
                "{name}: reduction of an empty tensor of shape {}",
                self.shape()
            );
        }
        if ax.is_empty() {
            return self.clone();
        }
        let op = if is_max { ReduceOp::Max } else { ReduceOp::Min };
        let kept = backend::reduce(op, self, &ax);
        let out = kept.view_as(crate::tensor::layout::Layout::contiguous(reduced_shape(
            self.shape(),
            &ax,
            keepdim,
        )));
        record(
            out,
            Extremum {
                axes: ax,
                keepdim,
                is_max,
            },
            &[self],
        )
    }

    /// Largest element (NaN if any is NaN).
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f64, 5.0, -2.0], [3]);
    /// assert_eq!((x.max().item(), x.min().item()), (5.0, -2.0));
    /// ```
    pub fn max(&self) -> Tensor {
        self.extremum(&all_axes(self.rank()), false, true)
    }

    /// Smallest element.
    pub fn min(&self) -> Tensor {
        self.extremum(&all_axes(self.rank()), false, false)
    }

    /// Maximum over the given axes (like `torch.amax`: ties share the gradient).
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f64, 5.0, 3.0, 2.0], [2, 2]);
    /// assert_eq!(x.max_axes(&[1], false).to_vec::<f64>(), vec![5.0, 3.0]);
    /// ```
    pub fn max_axes(&self, axes: impl AxisSet, keepdim: bool) -> Tensor {
        let axes = &axes.axis_list(self.rank())[..];
        self.extremum(axes, keepdim, true)
    }

    /// Minimum over the given axes.
    pub fn min_axes(&self, axes: impl AxisSet, keepdim: bool) -> Tensor {
        let axes = &axes.axis_list(self.rank())[..];
        self.extremum(axes, keepdim, false)
    }

    /// Maximum over one axis.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 7.0, 3.0, 4.0], [2, 2]);
    /// assert_eq!(x.max_axis(1, false).to_vec::<f32>(), vec![7.0, 4.0]);
    /// assert_eq!(x.min_axis(0, false).to_vec::<f32>(), vec![1.0, 4.0]);
    /// ```
    pub fn max_axis(&self, axis: impl Axis, keepdim: bool) -> Tensor {
        let axis = axis.to_isize();
        self.extremum(&[axis], keepdim, true)
    }

    /// Minimum over one axis.
    pub fn min_axis(&self, axis: impl Axis, keepdim: bool) -> Tensor {
        let axis = axis.to_isize();
        self.extremum(&[axis], keepdim, false)
    }

    /// Product over the given axes.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], [2, 2]);
    /// assert_eq!(x.prod_axes(&[1], false).to_vec::<f64>(), vec![2.0, 12.0]);
    /// ```
    pub fn prod_axes(&self, axes: impl AxisSet, keepdim: bool) -> Tensor {
        let axes = &axes.axis_list(self.rank())[..];
        let ax = norm_axes("prod", axes, self.rank());
        if ax.is_empty() {
            return self.clone();
        }
        let kept = backend::reduce(ReduceOp::Prod, self, &ax);
        let out = kept.view_as(crate::tensor::layout::Layout::contiguous(reduced_shape(
            self.shape(),
            &ax,
            keepdim,
        )));
        record(out, Prod { axes: ax, keepdim }, &[self])
    }

    /// Product of all elements.
    ///
    /// ```
    /// use nabla::Tensor;
    /// assert_eq!(Tensor::from_vec(vec![2.0f64, 3.0, 4.0], [3]).prod().item(), 24.0);
    /// ```
    pub fn prod(&self) -> Tensor {
        self.prod_axes(all_axes(self.rank()), false)
    }

    /// Variance over the given axes with Bessel's `correction` (1 for the unbiased estimate, 0 for
    /// the population variance).
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], [4]);
    /// assert_eq!(x.var_axes(&[0], 0, false).item(), 1.25);
    /// ```
    pub fn var_axes(&self, axes: impl AxisSet, correction: usize, keepdim: bool) -> Tensor {
        let axes = &axes.axis_list(self.rank())[..];
        let ax = norm_axes("var", axes, self.rank());
        let n: usize = ax.iter().map(|&a| self.dims()[a]).product();
        if n <= correction {
            panic!(
                "var: {n} elements per group of {} is too few for correction {correction}",
                self.shape()
            );
        }
        let mu = self.mean_axes(axes, true);
        let d = self - &mu;
        d.square()
            .sum_axes(axes, keepdim)
            .scale(1.0 / (n - correction) as f64)
    }

    /// Variance of all elements (`correction` as in [`var_axes`](Tensor::var_axes)).
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], [4]);
    /// assert_eq!(x.var(0).item(), 1.25); // population variance
    /// assert!((x.var(1).item() - 5.0 / 3.0).abs() < 1e-12); // sample variance
    /// ```
    pub fn var(&self, correction: usize) -> Tensor {
        self.var_axes(all_axes(self.rank()), correction, false)
    }

    /// Standard deviation over the given axes.
    pub fn std_axes(&self, axes: impl AxisSet, correction: usize, keepdim: bool) -> Tensor {
        let axes = &axes.axis_list(self.rank())[..];
        self.var_axes(axes, correction, keepdim).sqrt()
    }

    /// `ln Σ exp(x)` over the given axes, computed stably.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec(vec![1000.0f64, 1000.0], [2]);
    /// assert!((x.logsumexp(&[0], false).item() - (1000.0 + 2f64.ln())).abs() < 1e-9);
    /// ```
    pub fn logsumexp(&self, axes: impl AxisSet, keepdim: bool) -> Tensor {
        let axes = &axes.axis_list(self.rank())[..];
        // Shift by the (constant) maximum; an infinite maximum would make the shift NaN, so use 0.
        let m = self.detach().max_axes(axes, true);
        let m = m.abs().lt_scalar(f64::INFINITY).where_(&m, &m.zeros_like());
        let s = (self - &m).exp().sum_axes(axes, true).ln() + &m;
        if keepdim {
            s
        } else {
            let ax = norm_axes("logsumexp", axes, self.rank());
            s.reshape(reduced_shape(self.shape(), &ax, false))
        }
    }

    /// Euclidean norm of all elements.
    ///
    /// ```
    /// use nabla::Tensor;
    /// assert_eq!(Tensor::from_vec(vec![3.0f64, 4.0], [2]).norm().item(), 5.0);
    /// ```
    pub fn norm(&self) -> Tensor {
        self.square().sum().sqrt()
    }
}
