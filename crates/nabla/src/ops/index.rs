//! Indexing: [`Indices`] (n-d arrays of integer positions) and the operations that read or write a
//! tensor at them, with PyTorch semantics.
//!
//! The differentiable operations come in adjoint pairs, so each one's reverse rule is the other
//! and both stay differentiable to any order:
//! - [`index_select`](Tensor::index_select) ↔ [`index_add`](Tensor::index_add) (whole slices along
//!   an axis, e.g. rows of an embedding table),
//! - [`gather`](Tensor::gather) ↔ [`scatter_add`](Tensor::scatter_add) (one element per index
//!   position, like `torch.gather` / `torch.scatter_add`),
//! - [`masked_fill`](Tensor::masked_fill) is its own adjoint (with the fill value 0).
//!
//! [`one_hot`](Tensor::one_hot), [`argmax`](Tensor::argmax) and [`argmin`](Tensor::argmin) produce
//! constants and are not differentiable.
//!
//! Every kernel runs in time linear in the sizes of its inputs and output, whatever the number of
//! repeated indices: repeated positions accumulate in `index_add` and `scatter_add`.

pub use super::indices::Indices;
use crate::autodiff::{InputGrads, Op, record};
use crate::backend;
use crate::dtype::DType;
#[allow(unused_imports)]
use crate::tensor::axes::{Axis, AxisSet};
use crate::tensor::shape::{broadcast_shapes, norm_axis};
use crate::tensor::{Shape, Tensor, same_dtype};
#[allow(unused_imports)]
use num_traits::{Float, One, Zero};
use smallvec::smallvec;

// ----- shared helpers ----------------------------------------------------------------------------

/// Panics, naming the op, the first index that is not below the size of dimension `axis` of `x`.
fn check_bounds(op: &str, index: &Indices, axis: usize, x: &Tensor) {
    let size = x.dims()[axis];
    if let Some(&bad) = index.iter().find(|&&i| i >= size) {
        panic!(
            "{op}: index {bad} is out of bounds for dimension {axis} of size {size} (tensor {})",
            x.shape()
        );
    }
}

fn check_1d(op: &str, index: &Indices) {
    if index.rank() != 1 {
        panic!(
            "{op}: index must be 1-d, got indices of shape {}",
            index.shape()
        );
    }
}

/// A zero tensor of `shape` that allocates one element (a broadcast view). The kernels below that
/// start from a copy of their `self` recognise it and skip the copy.
fn zeros_view(shape: &Shape, dtype: DType) -> Tensor {
    Tensor::zeros((), dtype).broadcast_to(shape)
}

// ----- index_select / index_add ------------------------------------------------------------------

struct IndexSelect {
    axis: usize,
    index: Indices,
    in_shape: Shape,
}

impl Op for IndexSelect {
    fn name(&self) -> &str {
        "index_select"
    }
    fn vjp(&self, _: &[Tensor], _: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
        let zeros = zeros_view(&self.in_shape, g.dtype());
        smallvec![Some(zeros.index_add(self.axis as isize, &self.index, g))]
    }
    fn jvp(&self, _: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        t[0].as_ref()
            .expect("tangent")
            .index_select(self.axis as isize, &self.index)
    }
}

struct IndexAdd {
    axis: usize,
    index: Indices,
}

impl Op for IndexAdd {
    fn name(&self) -> &str {
        "index_add"
    }
    fn vjp(&self, _: &[Tensor], _: &Tensor, g: &Tensor, needs: &[bool]) -> InputGrads {
        smallvec![
            needs[0].then(|| g.clone()),
            needs[1].then(|| g.index_select(self.axis as isize, &self.index)),
        ]
    }
    fn jvp(&self, i: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        match &t[1] {
            Some(ts) => {
                let base = t[0]
                    .clone()
                    .unwrap_or_else(|| zeros_view(i[0].shape(), i[0].dtype()));
                base.index_add(self.axis as isize, &self.index, ts)
            }
            None => t[0].clone().expect("tangent"),
        }
    }
}

// ----- gather / scatter_add ----------------------------------------------------------------------

struct Gather {
    axis: usize,
    index: Indices,
    in_shape: Shape,
}

impl Op for Gather {
    fn name(&self) -> &str {
        "gather"
    }
    fn vjp(&self, _: &[Tensor], _: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
        let zeros = zeros_view(&self.in_shape, g.dtype());
        smallvec![Some(zeros.scatter_add(self.axis as isize, &self.index, g))]
    }
    fn jvp(&self, _: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        t[0].as_ref()
            .expect("tangent")
            .gather(self.axis as isize, &self.index)
    }
}

/// Scatter-add of a `src` that has exactly the index's shape (the public method narrows it).
struct ScatterAdd {
    axis: usize,
    index: Indices,
}

impl Op for ScatterAdd {
    fn name(&self) -> &str {
        "scatter_add"
    }
    fn vjp(&self, _: &[Tensor], _: &Tensor, g: &Tensor, needs: &[bool]) -> InputGrads {
        smallvec![
            needs[0].then(|| g.clone()),
            needs[1].then(|| g.gather(self.axis as isize, &self.index)),
        ]
    }
    fn jvp(&self, i: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        match &t[1] {
            Some(ts) => {
                let base = t[0]
                    .clone()
                    .unwrap_or_else(|| zeros_view(i[0].shape(), i[0].dtype()));
                base.scatter_add(self.axis as isize, &self.index, ts)
            }
            None => t[0].clone().expect("tangent"),
        }
    }
}

// ----- masked_fill -------------------------------------------------------------------------------

struct MaskedFill {
    mask: Tensor,
}

impl Op for MaskedFill {
    fn name(&self) -> &str {
        "masked_fill"
    }
    fn vjp(&self, _: &[Tensor], _: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
        smallvec![Some(g.masked_fill(&self.mask, 0.0))]
    }
    fn jvp(&self, _: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        t[0].as_ref().expect("tangent").masked_fill(&self.mask, 0.0)
    }
}

// ----- argmax / argmin ---------------------------------------------------------------------------

impl Tensor {
    fn arg_extremum(&self, axis: isize, keepdim: bool, is_max: bool) -> Indices {
        let name = if is_max { "argmax" } else { "argmin" };
        crate::compile::guard_read(name, self);
        let a = norm_axis(name, axis, self.rank());
        if self.dims()[a] == 0 {
            panic!("{name}: dimension {a} of tensor {} is empty", self.shape());
        }
        let data = backend::arg_extremum(self, a, is_max);
        let mut dims = self.dims().to_vec();
        if keepdim {
            dims[a] = 1;
        } else {
            dims.remove(a);
        }
        Indices::new(data, dims)
    }

    fn arg_extremum_all(&self, is_max: bool) -> usize {
        crate::compile::guard_read("argmax_all", self);
        let name = if is_max { "argmax_all" } else { "argmin_all" };
        if self.numel() == 0 {
            panic!("{name}: tensor of shape {} is empty", self.shape());
        }
        let flat = self.detach().reshape([self.numel()]);
        let data = backend::arg_extremum(&flat, 0, is_max);
        data[0]
    }

    /// Positions of the largest values along `axis` (the first one on ties; a NaN counts as the
    /// largest), like `torch.argmax`. `keepdim` keeps the reduced axis with size 1. Not
    /// differentiable.
    ///
    /// # Panics
    /// If the axis is out of range or has size 0.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let logits = Tensor::from_vec(vec![0.1f32, 2.0, 2.0, 3.0, -1.0, 0.0], [2, 3]);
    /// assert_eq!(logits.argmax(1, false).to_vec(), vec![1, 0]);
    /// assert_eq!(logits.argmax(-1, true).dims(), &[2, 1]);
    /// assert_eq!(logits.argmax(0, false).to_vec(), vec![1, 0, 0]);
    /// ```
    pub fn argmax(&self, axis: impl Axis, keepdim: bool) -> Indices {
        let axis = axis.to_isize();
        self.arg_extremum(axis, keepdim, true)
    }

    /// Positions of the smallest values along `axis` (the first one on ties; a NaN counts as the
    /// smallest), like `torch.argmin`. Not differentiable.
    ///
    /// # Panics
    /// If the axis is out of range or has size 0.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec(vec![3.0f64, 1.0, 1.0, 0.0], [2, 2]);
    /// assert_eq!(x.argmin(1, false).to_vec(), vec![1, 1]);
    /// ```
    pub fn argmin(&self, axis: impl Axis, keepdim: bool) -> Indices {
        let axis = axis.to_isize();
        self.arg_extremum(axis, keepdim, false)
    }

    /// Row-major position of the largest element over the whole tensor (the first one on ties).
    ///
    /// # Panics
    /// If the tensor is empty.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec(vec![3.0f64, 7.0, 7.0, 0.0], [2, 2]);
    /// assert_eq!(x.argmax_all(), 1);
    /// ```
    pub fn argmax_all(&self) -> usize {
        self.arg_extremum_all(true)
    }

    /// Row-major position of the smallest element over the whole tensor (the first one on ties).
    ///
    /// # Panics
    /// If the tensor is empty.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec(vec![3.0f64, -1.0, 2.0, -1.0], [2, 2]);
    /// assert_eq!(x.argmin_all(), 1);
    /// ```
    pub fn argmin_all(&self) -> usize {
        self.arg_extremum_all(false)
    }

    /// The slices of `self` at positions `index` along `axis`, in order (repeats allowed), like
    /// `torch.index_select`: the result has `self`'s shape with dimension `axis` replaced by
    /// `index.len()`. Differentiable; the gradient adds back with
    /// [`index_add`](Tensor::index_add).
    ///
    /// # Panics
    /// If `index` is not 1-d, the axis is out of range or an index is out of bounds.
    ///
    /// ```
    /// use nabla::{DType, Indices, Tensor};
    /// // rows of an embedding table
    /// let table = Tensor::arange(0.0, 6.0, 1.0, DType::F32).reshape([3, 2]);
    /// let ids = Indices::from(vec![2, 0, 2]);
    /// let e = table.index_select(0, &ids);
    /// assert_eq!(e.to_vec::<f32>(), vec![4.0, 5.0, 0.0, 1.0, 4.0, 5.0]);
    /// ```
    pub fn index_select(&self, axis: impl Axis, index: &Indices) -> Tensor {
        let axis = axis.to_isize();
        let a = norm_axis("index_select", axis, self.rank());
        check_1d("index_select", index);
        check_bounds("index_select", index, a, self);
        let out = backend::index_select(self, a, index.as_slice());
        let op = IndexSelect {
            axis: a,
            index: index.clone(),
            in_shape: self.shape().clone(),
        };
        record(out, op, &[self])
    }

    /// `self` with the slices of `src` added at positions `index` along `axis`, out of place, like
    /// `torch.index_add`: slice `k` of `src` along `axis` is added to slice `index[k]` of `self`;
    /// repeated positions accumulate. `src` has `self`'s shape with dimension `axis` replaced by
    /// `index.len()`. Runs in time linear in the sizes of `self` and `src`. Differentiable in
    /// `self` and `src` (whose gradient is [`index_select`](Tensor::index_select)).
    ///
    /// # Panics
    /// If `index` is not 1-d, the axis is out of range, an index is out of bounds, the shape of
    /// `src` is wrong or the dtypes differ.
    ///
    /// ```
    /// use nabla::{DType, Indices, Tensor};
    /// let counts = Tensor::zeros([3], DType::F64);
    /// let ids = Indices::from(vec![2, 0, 2]);
    /// let out = counts.index_add(0, &ids, &Tensor::ones([3], DType::F64));
    /// assert_eq!(out.to_vec::<f64>(), vec![1.0, 0.0, 2.0]);
    /// ```
    pub fn index_add(&self, axis: impl Axis, index: &Indices, src: &Tensor) -> Tensor {
        let axis = axis.to_isize();
        let a = norm_axis("index_add", axis, self.rank());
        check_1d("index_add", index);
        same_dtype("index_add", self, src);
        let mut want = self.dims().to_vec();
        want[a] = index.len();
        if src.dims() != want.as_slice() {
            panic!(
                "index_add: src of shape {} must have shape {} (tensor {} with dimension {a} replaced by the index length {})",
                src.shape(),
                Shape::from(want),
                self.shape(),
                index.len()
            );
        }
        check_bounds("index_add", index, a, self);
        let out = backend::index_add(self, a, index.as_slice(), src);
        record(
            out,
            IndexAdd {
                axis: a,
                index: index.clone(),
            },
            &[self, src],
        )
    }

    /// Values picked along `axis` at the positions in `index`, like `torch.gather`: `index` has
    /// the rank of `self`, the result has `index`'s shape, and for `axis = 1` of a 3-d tensor
    /// `out[i][j][k] = self[i][index[i][j][k]][k]`. Outside `axis` the index may be smaller than
    /// `self` (not larger). Differentiable; the gradient adds back with
    /// [`scatter_add`](Tensor::scatter_add).
    ///
    /// # Panics
    /// If the ranks differ, the index does not fit `self` outside `axis`, or an index is out of
    /// bounds.
    ///
    /// ```
    /// use nabla::{Indices, Tensor};
    /// // the log-probability of each sample's label
    /// let logp = Tensor::from_vec(vec![-0.1f64, -2.0, -3.0, -1.5, -0.5, -2.5], [2, 3]);
    /// let labels = Indices::new(vec![0, 1], [2, 1]);
    /// assert_eq!(logp.gather(1, &labels).to_vec::<f64>(), vec![-0.1, -0.5]);
    /// ```
    pub fn gather(&self, axis: impl Axis, index: &Indices) -> Tensor {
        let axis = axis.to_isize();
        let a = norm_axis("gather", axis, self.rank());
        if index.rank() != self.rank() {
            panic!(
                "gather: index of shape {} must have the rank of the tensor {} ({})",
                index.shape(),
                self.shape(),
                self.rank()
            );
        }
        for d in (0..self.rank()).filter(|&d| d != a) {
            if index.dims()[d] > self.dims()[d] {
                panic!(
                    "gather: index of shape {} is larger than the tensor {} in dimension {d} ({} > {}); only dimension {a} (the axis) may be",
                    index.shape(),
                    self.shape(),
                    index.dims()[d],
                    self.dims()[d]
                );
            }
        }
        check_bounds("gather", index, a, self);
        let out = backend::gather(self, a, index);
        let op = Gather {
            axis: a,
            index: index.clone(),
            in_shape: self.shape().clone(),
        };
        record(out, op, &[self])
    }

    /// `self` with the values of `src` added at the positions in `index` along `axis`, out of
    /// place, like `torch.scatter_add`: for `axis = 1` of a 3-d tensor,
    /// `out[i][index[i][j][k]][k] += src[i][j][k]` for every position `(i, j, k)` of `index`;
    /// repeated positions accumulate. `index`, `src` and `self` have one rank; `index` may be
    /// smaller than `src` in any dimension (the rest of `src` is ignored) and than `self` outside
    /// `axis`. Differentiable in `self` and `src` (whose gradient is [`gather`](Tensor::gather)).
    ///
    /// # Panics
    /// If the ranks differ, the index does not fit, an index is out of bounds or the dtypes
    /// differ.
    ///
    /// ```
    /// use nabla::{DType, Indices, Tensor};
    /// // per-class sums of values
    /// let values = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], [4]);
    /// let class = Indices::from(vec![1, 0, 1, 1]);
    /// let sums = Tensor::zeros([2], DType::F64).scatter_add(0, &class, &values);
    /// assert_eq!(sums.to_vec::<f64>(), vec![2.0, 8.0]);
    /// ```
    pub fn scatter_add(&self, axis: impl Axis, index: &Indices, src: &Tensor) -> Tensor {
        let axis = axis.to_isize();
        let a = norm_axis("scatter_add", axis, self.rank());
        same_dtype("scatter_add", self, src);
        if index.rank() != self.rank() || src.rank() != self.rank() {
            panic!(
                "scatter_add: tensor {}, index of shape {} and src {} must have one rank",
                self.shape(),
                index.shape(),
                src.shape()
            );
        }
        for d in 0..self.rank() {
            let i = index.dims()[d];
            if i > src.dims()[d] || (d != a && i > self.dims()[d]) {
                panic!(
                    "scatter_add: index of shape {} is larger than src {} or the tensor {} in dimension {d} (the tensor may be smaller along the axis {a})",
                    index.shape(),
                    src.shape(),
                    self.shape()
                );
            }
        }
        check_bounds("scatter_add", index, a, self);
        let mut s = src.clone();
        for d in 0..self.rank() {
            if s.dims()[d] != index.dims()[d] {
                s = s.narrow(d as isize, 0, index.dims()[d]);
            }
        }
        let out = backend::scatter_add(self, a, index, &s);
        record(
            out,
            ScatterAdd {
                axis: a,
                index: index.clone(),
            },
            &[self, &s],
        )
    }

    /// One-hot encoding of class labels: a constant of shape `index.shape ++ [num_classes]` with
    /// 1 at each label's position and 0 elsewhere (like `torch.nn.functional.one_hot`).
    ///
    /// # Panics
    /// If a label is not below `num_classes`.
    ///
    /// ```
    /// use nabla::{DType, Indices, Tensor};
    /// let y = Tensor::one_hot(&Indices::from(vec![2, 0]), 3, DType::F32);
    /// assert_eq!(y.dims(), &[2, 3]);
    /// assert_eq!(y.to_vec::<f32>(), vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    /// ```
    pub fn one_hot(index: &Indices, num_classes: usize, dtype: DType) -> Tensor {
        if let Some(&bad) = index.iter().find(|&&i| i >= num_classes) {
            panic!(
                "one_hot: label {bad} is out of range for {num_classes} classes (labels of shape {})",
                index.shape()
            );
        }
        let mut dims = index.dims().to_vec();
        dims.push(num_classes);
        let shape = Shape::from(dims);
        backend::one_hot(index, num_classes, shape, dtype)
    }

    /// `self` with `value` wherever `mask` is non-zero, like `torch.masked_fill` (out of place).
    /// The mask (typically 0/1 from a comparison) broadcasts to `self`'s shape and is converted to
    /// its dtype if needed. Differentiable in `self` (masked positions get no gradient); the mask
    /// is a constant.
    ///
    /// # Panics
    /// If the mask does not broadcast to `self`'s shape.
    ///
    /// ```
    /// use nabla::Tensor;
    /// // a causal attention mask: position i may not look at j > i
    /// let scores = Tensor::from_vec(vec![0.5f32, 0.2, 0.1, 0.3], [2, 2]);
    /// let future = Tensor::from_vec(vec![0.0f32, 1.0, 0.0, 0.0], [2, 2]);
    /// let masked = scores.masked_fill(&future, f64::NEG_INFINITY);
    /// assert_eq!(masked.to_vec::<f32>(), vec![0.5, f32::NEG_INFINITY, 0.1, 0.3]);
    /// ```
    pub fn masked_fill(&self, mask: &Tensor, value: f64) -> Tensor {
        if &broadcast_shapes("masked_fill", self.shape(), mask.shape()) != self.shape() {
            panic!(
                "masked_fill: mask of shape {} cannot be broadcast to the tensor's shape {}",
                mask.shape(),
                self.shape()
            );
        }
        let mask = mask.detach().to_dtype(self.dtype());
        let out = crate::backend::masked_fill(self, &mask, value);
        record(out, MaskedFill { mask }, &[self])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{grad, jvp};

    fn t64(v: &[f64], shape: impl Into<Shape>) -> Tensor {
        Tensor::from_slice(v, shape)
    }

    #[test]
    fn indices_constructors_and_accessors() {
        let i = Indices::new(vec![1, 2, 3, 4, 5, 6], [2, 3]);
        assert_eq!(
            (i.dims(), i.rank(), i.len(), i.is_empty()),
            (&[2, 3][..], 2, 6, false)
        );
        assert_eq!(i.shape(), &Shape::from([2, 3]));
        assert_eq!(i.to_vec(), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(i.flatten().dims(), &[6]);
        assert_eq!(i.max(), Some(6));
        assert_eq!(Indices::from([1, 2]), Indices::from_slice(&[1, 2]));
        assert_eq!((0..3).collect::<Indices>(), Indices::from(vec![0, 1, 2]));
        assert_eq!(Indices::from(&[4usize][..]).dims(), &[1]);
        assert_eq!((&i).into_iter().sum::<usize>(), 21);
        let empty = Indices::from(Vec::new());
        assert!(empty.is_empty() && empty.max().is_none());
        assert_eq!(
            format!("{:?}", Indices::from_slice(&[1, 2])),
            "Indices(shape [2], [1, 2])"
        );
        let t = i.to_tensor(DType::F32);
        assert_eq!((t.dims(), t.dtype()), (&[2, 3][..], DType::F32));
        assert_eq!(Indices::from_tensor(&t), i);
    }

    #[test]
    #[should_panic(expected = "Indices::new: 5 values cannot have shape [2, 3] (6 elements)")]
    fn indices_length_mismatch_panics() {
        Indices::new(vec![0; 5], [2, 3]);
    }

    #[test]
    #[should_panic(expected = "Indices::from_tensor: value -1 of a tensor of shape [2]")]
    fn indices_from_negative_tensor_panics() {
        Indices::from_tensor(&t64(&[1.0, -1.0], [2]));
    }

    #[test]
    #[should_panic(expected = "Indices::reshape: cannot reshape [4] (4 elements) into [3]")]
    fn indices_reshape_mismatch_panics() {
        Indices::from_slice(&[0, 1, 2, 3]).reshape([3]);
    }

    #[test]
    fn index_select_values_on_each_axis() {
        let x = Tensor::arange(0.0, 24.0, 1.0, DType::F64).reshape([2, 3, 4]);
        let y = x.index_select(1, &Indices::from(vec![2, 2, 0]));
        assert_eq!(y.dims(), &[2, 3, 4]);
        assert_eq!(
            y.narrow(0, 0, 1).to_vec::<f64>(),
            vec![
                8.0, 9.0, 10.0, 11.0, 8.0, 9.0, 10.0, 11.0, 0.0, 1.0, 2.0, 3.0
            ]
        );
        let z = x.index_select(-1, &Indices::from(vec![3, 0]));
        assert_eq!(z.dims(), &[2, 3, 2]);
        assert_eq!(
            z.narrow(0, 1, 1).to_vec::<f64>(),
            vec![15.0, 12.0, 19.0, 16.0, 23.0, 20.0]
        );
        // a transposed (non-contiguous) input
        let m = t64(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]).t();
        assert_eq!(
            m.index_select(0, &Indices::from(vec![2, 0]))
                .to_vec::<f64>(),
            vec![3.0, 6.0, 1.0, 4.0]
        );
        // an empty index
        assert_eq!(
            x.index_select(0, &Indices::from(Vec::new())).dims(),
            &[0, 3, 4]
        );
    }

    #[test]
    fn index_select_large_parallel_matches_serial() {
        let n = 40_000;
        let x = Tensor::arange(0.0, (2 * n) as f64, 1.0, DType::F32).reshape([n, 2]);
        let ids: Indices = (0..n).rev().collect();
        let y = x.index_select(0, &ids);
        let v = y.to_vec::<f32>();
        assert_eq!(
            (v[0], v[1], v[2 * n - 2]),
            ((2 * n - 2) as f32, (2 * n - 1) as f32, 0.0)
        );
        let col = x.reshape([2, n]).index_select(1, &ids);
        assert_eq!(col.to_vec::<f32>()[0], (n - 1) as f32);
    }

    #[test]
    #[should_panic(
        expected = "index_select: index 7 is out of bounds for dimension 0 of size 5 (tensor [5, 3])"
    )]
    fn index_select_out_of_bounds_panics() {
        Tensor::zeros([5, 3], DType::F32).index_select(0, &Indices::from(vec![1, 7]));
    }

    #[test]
    #[should_panic(expected = "index_select: index must be 1-d, got indices of shape [1, 2]")]
    fn index_select_needs_1d_index() {
        Tensor::zeros([5, 3], DType::F32).index_select(0, &Indices::new(vec![1, 2], [1, 2]));
    }

    #[test]
    #[should_panic(expected = "index_select: axis 2 is out of range for a tensor of rank 2")]
    fn index_select_bad_axis_panics() {
        Tensor::zeros([5, 3], DType::F32).index_select(2, &Indices::from(vec![0]));
    }

    #[test]
    fn index_add_accumulates_duplicates() {
        let x = t64(&[1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [3, 2]);
        let src = t64(&[1.0, 2.0, 10.0, 20.0, 100.0, 200.0, 5.0, 5.0], [4, 2]);
        let y = x.index_add(0, &Indices::from(vec![2, 0, 2, 2]), &src);
        assert_eq!(y.to_vec::<f64>(), vec![11.0, 21.0, 1.0, 1.0, 107.0, 208.0]);
        let y1 = x.index_add(
            1,
            &Indices::from(vec![1, 1, 1]),
            &Tensor::ones([3, 3], DType::F64),
        );
        assert_eq!(y1.to_vec::<f64>(), vec![1.0, 4.0, 1.0, 4.0, 1.0, 4.0]);
        // f32, broadcast self
        let b = Tensor::scalar(2.0f32).broadcast_to([3]);
        let z = b.index_add(0, &Indices::from(vec![1]), &Tensor::ones([1], DType::F32));
        assert_eq!(z.to_vec::<f32>(), vec![2.0, 3.0, 2.0]);
    }

    #[test]
    #[should_panic(
        expected = "index_add: src of shape [3, 2] must have shape [2, 2] (tensor [3, 2] with dimension 0 replaced by the index length 2)"
    )]
    fn index_add_src_shape_panics() {
        let x = Tensor::zeros([3, 2], DType::F64);
        x.index_add(0, &Indices::from(vec![0, 1]), &x);
    }

    #[test]
    #[should_panic(
        expected = "index_add: index 3 is out of bounds for dimension 0 of size 3 (tensor [3, 2])"
    )]
    fn index_add_out_of_bounds_panics() {
        let x = Tensor::zeros([3, 2], DType::F64);
        x.index_add(
            0,
            &Indices::from(vec![3]),
            &Tensor::zeros([1, 2], DType::F64),
        );
    }

    #[test]
    #[should_panic(expected = "index_add: dtype mismatch")]
    fn index_add_dtype_mismatch_panics() {
        let x = Tensor::zeros([3, 2], DType::F64);
        x.index_add(
            0,
            &Indices::from(vec![0]),
            &Tensor::zeros([1, 2], DType::F32),
        );
    }

    #[test]
    fn embedding_backward_accumulates_rows() {
        let table = Tensor::arange(0.0, 8.0, 1.0, DType::F64).reshape([4, 2]);
        let ids = Indices::from(vec![3, 1, 3]);
        let g = grad(|w: &Tensor| {
            (w.index_select(0, &ids) * Tensor::from_vec(vec![1.0f64, 2.0], [2])).sum()
        });
        assert_eq!(
            g(&table).to_vec::<f64>(),
            vec![0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 2.0, 4.0]
        );
    }

    #[test]
    fn embedding_backward_over_many_rows_is_linear_time() {
        // 50k rows, 100k lookups: a quadratic rule would take minutes.
        let (rows, dim, n) = (50_000, 8, 100_000);
        let table = Tensor::zeros([rows, dim], DType::F32).variable();
        let ids: Indices = (0..n).map(|k| (k * 7919) % rows).collect();
        let start = std::time::Instant::now();
        let loss = table.index_select(0, &ids).sum();
        let g = loss.backward().get(&table).unwrap().clone();
        assert_eq!(g.sum().item(), (n * dim) as f64);
        assert!(
            start.elapsed().as_secs_f64() < 5.0,
            "took {:?}",
            start.elapsed()
        );
    }

    #[test]
    fn gather_values_like_torch() {
        // torch.gather(torch.arange(6).reshape(2, 3), 1, [[2, 0], [1, 1]]) = [[2, 0], [4, 4]]
        let x = Tensor::arange(0.0, 6.0, 1.0, DType::F32).reshape([2, 3]);
        let y = x.gather(1, &Indices::new(vec![2, 0, 1, 1], [2, 2]));
        assert_eq!(y.to_vec::<f32>(), vec![2.0, 0.0, 4.0, 4.0]);
        // axis 0, index with fewer columns than the tensor: [[1, 0]] -> [[3, 1]]
        let z = x.gather(0, &Indices::new(vec![1, 0], [1, 2]));
        assert_eq!(z.to_vec::<f32>(), vec![3.0, 1.0]);
        // 3-d, axis 1: out[i][j][k] = x[i][index[i][j][k]][k]
        let x3 = Tensor::arange(0.0, 12.0, 1.0, DType::F64).reshape([2, 3, 2]);
        let i3 = Indices::new(vec![2, 0, 0, 0, 1, 2, 1, 1], [2, 2, 2]);
        assert_eq!(
            x3.gather(1, &i3).to_vec::<f64>(),
            vec![4.0, 1.0, 0.0, 1.0, 8.0, 11.0, 8.0, 9.0]
        );
        // non-contiguous input
        let xt = x.t(); // [3, 2]: [[0, 3], [1, 4], [2, 5]]
        assert_eq!(
            xt.gather(1, &Indices::new(vec![1, 0, 1], [3, 1]))
                .to_vec::<f32>(),
            vec![3.0, 1.0, 5.0]
        );
    }

    #[test]
    #[should_panic(
        expected = "gather: index 3 is out of bounds for dimension 1 of size 3 (tensor [2, 3])"
    )]
    fn gather_out_of_bounds_panics() {
        Tensor::zeros([2, 3], DType::F32).gather(1, &Indices::new(vec![0, 3], [2, 1]));
    }

    #[test]
    #[should_panic(
        expected = "gather: index of shape [3] must have the rank of the tensor [2, 3] (2)"
    )]
    fn gather_rank_mismatch_panics() {
        Tensor::zeros([2, 3], DType::F32).gather(1, &Indices::from(vec![0, 1, 2]));
    }

    #[test]
    #[should_panic(
        expected = "gather: index of shape [3, 1] is larger than the tensor [2, 3] in dimension 0 (3 > 2)"
    )]
    fn gather_index_too_large_panics() {
        Tensor::zeros([2, 3], DType::F32).gather(1, &Indices::new(vec![0, 1, 2], [3, 1]));
    }

    #[test]
    fn scatter_add_values_like_torch() {
        // torch.zeros(2, 3).scatter_add(1, [[2, 2], [0, 1]], [[1, 2], [3, 4]]) = [[0, 0, 3], [3, 4, 0]]
        let x = Tensor::zeros([2, 3], DType::F64);
        let src = t64(&[1.0, 2.0, 3.0, 4.0], [2, 2]);
        let y = x.scatter_add(1, &Indices::new(vec![2, 2, 0, 1], [2, 2]), &src);
        assert_eq!(y.to_vec::<f64>(), vec![0.0, 0.0, 3.0, 3.0, 4.0, 0.0]);
        // src larger than index: only the top-left part is used
        let big = t64(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]);
        let z = Tensor::ones([3, 3], DType::F64).scatter_add(
            0,
            &Indices::new(vec![2, 2], [1, 2]),
            &big,
        );
        assert_eq!(
            z.to_vec::<f64>(),
            vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 3.0, 1.0]
        );
        // the gradient w.r.t. a larger src is zero outside the index
        let gsrc = grad(|s: &Tensor| {
            (Tensor::zeros([3, 3], DType::F64).scatter_add(0, &Indices::new(vec![2, 2], [1, 2]), s)
                * 3.0)
                .sum()
        })(&big);
        assert_eq!(gsrc.to_vec::<f64>(), vec![3.0, 3.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    #[should_panic(
        expected = "scatter_add: index 5 is out of bounds for dimension 0 of size 2 (tensor [2])"
    )]
    fn scatter_add_out_of_bounds_panics() {
        let x = Tensor::zeros([2], DType::F64);
        x.scatter_add(0, &Indices::from(vec![5]), &Tensor::ones([1], DType::F64));
    }

    #[test]
    #[should_panic(
        expected = "scatter_add: index of shape [3] is larger than src [2] or the tensor [4] in dimension 0"
    )]
    fn scatter_add_index_larger_than_src_panics() {
        let x = Tensor::zeros([4], DType::F64);
        x.scatter_add(
            0,
            &Indices::from(vec![0, 1, 2]),
            &Tensor::ones([2], DType::F64),
        );
    }

    #[test]
    #[should_panic(
        expected = "scatter_add: tensor [4], index of shape [1, 1] and src [2] must have one rank"
    )]
    fn scatter_add_rank_mismatch_panics() {
        let x = Tensor::zeros([4], DType::F64);
        x.scatter_add(
            0,
            &Indices::new(vec![0], [1, 1]),
            &Tensor::ones([2], DType::F64),
        );
    }

    #[test]
    fn one_hot_values() {
        let y = Tensor::one_hot(&Indices::new(vec![0, 2, 1, 1], [2, 2]), 3, DType::F64);
        assert_eq!(y.dims(), &[2, 2, 3]);
        assert_eq!(
            y.to_vec::<f64>(),
            vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0]
        );
        assert_eq!(
            Tensor::one_hot(&Indices::scalar(1), 2, DType::F32).to_vec::<f32>(),
            vec![0.0, 1.0]
        );
        assert_eq!(
            Tensor::one_hot(&Indices::from(Vec::new()), 4, DType::F32).dims(),
            &[0, 4]
        );
    }

    #[test]
    #[should_panic(
        expected = "one_hot: label 3 is out of range for 3 classes (labels of shape [2])"
    )]
    fn one_hot_bad_label_panics() {
        Tensor::one_hot(&Indices::from(vec![0, 3]), 3, DType::F32);
    }

    #[test]
    fn argmax_and_argmin_pick_first_on_ties() {
        let x = t64(&[1.0, 5.0, 5.0, 0.0, 0.0, -2.0, 7.0, -2.0], [2, 4]);
        assert_eq!(x.argmax(1, false).to_vec(), vec![1, 2]);
        assert_eq!(x.argmin(1, false).to_vec(), vec![3, 1]);
        assert_eq!(x.argmax(0, false).to_vec(), vec![0, 0, 1, 0]);
        assert_eq!(x.argmin(-2, true).dims(), &[1, 4]);
        assert_eq!(x.argmin(0, true).to_vec(), vec![1, 1, 0, 1]);
        assert_eq!((x.argmax_all(), x.argmin_all()), (6, 5));
        let v = t64(&[2.0, 3.0, 3.0], [3]);
        let a = v.argmax(0, false);
        assert_eq!((a.rank(), a.to_vec()), (0, vec![1]));
        // non-contiguous input
        assert_eq!(x.t().argmax(0, false).to_vec(), vec![1, 2]);
        // NaN wins, like torch
        let n = t64(&[1.0, f64::NAN, 3.0], [3]);
        assert_eq!(
            (n.argmax(0, false).to_vec(), n.argmin(0, false).to_vec()),
            (vec![1], vec![1])
        );
        // f32
        let f = Tensor::from_vec(vec![0.5f32, -1.0, 2.0], [3]);
        assert_eq!((f.argmax_all(), f.argmin_all()), (2, 1));
    }

    #[test]
    #[should_panic(expected = "argmax: dimension 1 of tensor [2, 0] is empty")]
    fn argmax_of_empty_axis_panics() {
        Tensor::zeros([2, 0], DType::F32).argmax(1, false);
    }

    #[test]
    #[should_panic(expected = "argmin_all: tensor of shape [0] is empty")]
    fn argmin_all_of_empty_panics() {
        Tensor::zeros([0], DType::F32).argmin_all();
    }

    #[test]
    fn masked_fill_values_and_gradient() {
        let x = t64(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]);
        let col = t64(&[0.0, 1.0, 0.0], [3]);
        assert_eq!(
            x.masked_fill(&col, -1.0).to_vec::<f64>(),
            vec![1.0, -1.0, 3.0, 4.0, -1.0, 6.0]
        );
        // an f32 mask on an f64 tensor is converted
        let row = Tensor::from_vec(vec![1.0f32, 0.0], [2, 1]);
        assert_eq!(
            x.masked_fill(&row, 0.0).to_vec::<f64>(),
            vec![0.0, 0.0, 0.0, 4.0, 5.0, 6.0]
        );
        let g = grad(|x: &Tensor| x.masked_fill(&col, 9.0).square().sum())(&x);
        assert_eq!(g.to_vec::<f64>(), vec![2.0, 0.0, 6.0, 8.0, 0.0, 12.0]);
        let (_, t) = jvp(
            |xs: &[Tensor]| xs[0].masked_fill(&col, 9.0),
            std::slice::from_ref(&x),
            &[x.ones_like()],
        );
        assert_eq!(t.to_vec::<f64>(), vec![1.0, 0.0, 1.0, 1.0, 0.0, 1.0]);
    }

    #[test]
    #[should_panic(
        expected = "masked_fill: mask of shape [2, 2, 3] cannot be broadcast to the tensor's shape [2, 3]"
    )]
    fn masked_fill_larger_mask_panics() {
        let x = Tensor::zeros([2, 3], DType::F32);
        x.masked_fill(&Tensor::zeros([2, 2, 3], DType::F32), 0.0);
    }

    #[test]
    fn forward_mode_of_index_ops() {
        let x = t64(&[1.0, 2.0, 3.0], [3]);
        let ids = Indices::from(vec![2, 2, 0]);
        let (y, t) = jvp(
            |xs: &[Tensor]| xs[0].index_select(0, &ids),
            std::slice::from_ref(&x),
            &[t64(&[10.0, 20.0, 30.0], [3])],
        );
        assert_eq!(
            (y.to_vec::<f64>(), t.to_vec::<f64>()),
            (vec![3.0, 3.0, 1.0], vec![30.0, 30.0, 10.0])
        );
        let src = t64(&[1.0, 1.0, 1.0], [3]);
        let (_, t) = jvp(
            |xs: &[Tensor]| x.index_add(0, &ids, &xs[0]),
            std::slice::from_ref(&src),
            &[t64(&[1.0, 2.0, 3.0], [3])],
        );
        assert_eq!(t.to_vec::<f64>(), vec![3.0, 0.0, 3.0]);
        let (_, t) = jvp(
            |xs: &[Tensor]| xs[0].scatter_add(0, &ids, &src),
            std::slice::from_ref(&x),
            std::slice::from_ref(&src),
        );
        assert_eq!(t.to_vec::<f64>(), vec![1.0, 1.0, 1.0]);
    }
}
