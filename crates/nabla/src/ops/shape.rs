//! Shape operations. Views (reshape of compatible layouts, permute, narrow, broadcast_to, squeeze,
//! unsqueeze) share the buffer; concat and non-view reshapes copy. Each op's rules are its adjoint
//! view: permute ↔ inverse permute, broadcast ↔ sum, narrow ↔ concat with zeros.

use crate::autodiff::{Identity, InputGrads, Op, record};
use crate::backend;
use crate::dtype::DType;
#[allow(unused_imports)]
use crate::tensor::axes::{Axis, AxisSet};
use crate::tensor::layout::Layout;
use crate::tensor::shape::{Shape, broadcast_shapes, norm_axis};
use crate::tensor::{Tensor, same_dtype};
use smallvec::{SmallVec, smallvec};

struct Reshape {
    from: Shape,
    to: Shape,
}

impl Op for Reshape {
    fn name(&self) -> &str {
        "reshape"
    }
    fn lower(&self) -> Option<crate::compile::Prim> {
        Some(crate::compile::Prim::Copy)
    }
    fn vjp(&self, _: &[Tensor], _: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
        smallvec![Some(g.reshape(&self.from))]
    }
    fn jvp(&self, _: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        t[0].as_ref().expect("tangent").reshape(&self.to)
    }
}

struct Permute {
    perm: SmallVec<[usize; 4]>,
}

impl Op for Permute {
    fn name(&self) -> &str {
        "permute"
    }
    fn lower(&self) -> Option<crate::compile::Prim> {
        Some(crate::compile::Prim::Linear)
    }
    fn vjp(&self, _: &[Tensor], _: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
        let mut inv: SmallVec<[usize; 4]> = smallvec![0; self.perm.len()];
        for (i, &p) in self.perm.iter().enumerate() {
            inv[p] = i;
        }
        smallvec![Some(g.permute(&inv))]
    }
    fn jvp(&self, _: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        t[0].as_ref().expect("tangent").permute(&self.perm)
    }
}

struct BroadcastTo {
    from: Shape,
    to: Shape,
}

impl Op for BroadcastTo {
    fn name(&self) -> &str {
        "broadcast_to"
    }
    fn lower(&self) -> Option<crate::compile::Prim> {
        Some(crate::compile::Prim::Linear)
    }
    fn vjp(&self, _: &[Tensor], _: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
        smallvec![Some(g.sum_to(&self.from))]
    }
    fn jvp(&self, _: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        t[0].as_ref().expect("tangent").broadcast_to(&self.to)
    }
}

struct Narrow {
    axis: usize,
    start: usize,
    len: usize,
}

/// `g` (a slab of `len` rows along `axis` starting at `start`) padded with zeros along `axis` to
/// `full` rows: the adjoint of narrow.
fn pad_rows(g: &Tensor, axis: usize, start: usize, full: usize) -> Tensor {
    let len = g.dims()[axis];
    let mut parts: SmallVec<[Tensor; 3]> = SmallVec::new();
    let zeros = |n: usize| {
        let mut d = g.dims().to_vec();
        d[axis] = n;
        Tensor::zeros(d, g.dtype())
    };
    if start > 0 {
        parts.push(zeros(start));
    }
    parts.push(g.clone());
    if start + len < full {
        parts.push(zeros(full - start - len));
    }
    Tensor::concat(&parts, axis as isize)
}

impl Op for Narrow {
    fn name(&self) -> &str {
        "narrow"
    }
    fn lower(&self) -> Option<crate::compile::Prim> {
        Some(crate::compile::Prim::Linear)
    }
    fn vjp(&self, i: &[Tensor], _: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
        smallvec![Some(pad_rows(
            g,
            self.axis,
            self.start,
            i[0].dims()[self.axis]
        ))]
    }
    fn jvp(&self, _: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        t[0].as_ref()
            .expect("tangent")
            .narrow(self.axis as isize, self.start, self.len)
    }
}

/// `x[start:end:step]` along an axis; the reverse rule scatters the cotangent back into zeros.
#[derive(Clone, Copy)]
struct Slice {
    axis: usize,
    start: usize,
    len: usize,
    step: usize,
}

impl Op for Slice {
    fn name(&self) -> &str {
        "slice"
    }
    fn lower(&self) -> Option<crate::compile::Prim> {
        Some(crate::compile::Prim::Linear)
    }
    fn vjp(&self, i: &[Tensor], _: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
        let positions: Vec<usize> = (0..self.len).map(|k| self.start + k * self.step).collect();
        let zeros = Tensor::zeros(i[0].shape().clone(), g.dtype());
        let index = crate::Indices::from_slice(&positions);
        smallvec![Some(zeros.index_add(self.axis as isize, &index, g))]
    }
    fn jvp(&self, _: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        let t = t[0].as_ref().expect("tangent");
        let out = t.view_as(
            t.layout()
                .stepped(self.axis, self.start, self.len, self.step),
        );
        record(out, *self, &[t])
    }
}

struct Select {
    axis: usize,
    index: usize,
}

impl Op for Select {
    fn name(&self) -> &str {
        "select"
    }
    fn lower(&self) -> Option<crate::compile::Prim> {
        Some(crate::compile::Prim::Linear)
    }
    fn vjp(&self, i: &[Tensor], _: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
        let g = g.unsqueeze(self.axis as isize);
        smallvec![Some(pad_rows(
            &g,
            self.axis,
            self.index,
            i[0].dims()[self.axis]
        ))]
    }
    fn jvp(&self, _: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        t[0].as_ref()
            .expect("tangent")
            .select(self.axis as isize, self.index)
    }
}

struct Stack {
    axis: usize,
}

impl Op for Stack {
    fn name(&self) -> &str {
        "stack"
    }
    fn vjp(&self, i: &[Tensor], _: &Tensor, g: &Tensor, needs: &[bool]) -> InputGrads {
        (0..i.len())
            .zip(needs)
            .map(|(k, &need)| need.then(|| g.select(self.axis as isize, k)))
            .collect()
    }
    fn jvp(&self, i: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        let ts: Vec<Tensor> = t
            .iter()
            .zip(i)
            .map(|(t, x)| t.clone().unwrap_or_else(|| x.zeros_like()))
            .collect();
        Tensor::stack(&ts, self.axis as isize)
    }
}

struct Concat {
    axis: usize,
}

impl Op for Concat {
    fn name(&self) -> &str {
        "concat"
    }
    fn vjp(&self, i: &[Tensor], _: &Tensor, g: &Tensor, needs: &[bool]) -> InputGrads {
        let mut start = 0;
        i.iter()
            .zip(needs)
            .map(|(x, &need)| {
                let len = x.dims()[self.axis];
                let r = need.then(|| g.narrow(self.axis as isize, start, len));
                start += len;
                r
            })
            .collect()
    }
    fn jvp(&self, i: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        let ts: Vec<Tensor> = t
            .iter()
            .zip(i)
            .map(|(t, x)| t.clone().unwrap_or_else(|| x.zeros_like()))
            .collect();
        Tensor::concat(&ts, self.axis as isize)
    }
}

struct Cast {
    from: DType,
    to: DType,
}

impl Op for Cast {
    fn name(&self) -> &str {
        "to_dtype"
    }
    fn vjp(&self, _: &[Tensor], _: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
        smallvec![Some(g.to_dtype(self.from))]
    }
    fn jvp(&self, _: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        t[0].as_ref().expect("tangent").to_dtype(self.to)
    }
}

impl Tensor {
    /// The same elements in a new shape with as many elements. Shares the buffer when the layout
    /// allows (always for contiguous tensors), copies otherwise.
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// let x = Tensor::arange(0.0, 6.0, 1.0, DType::F32).reshape([2, 3]);
    /// assert_eq!(x.dims(), &[2, 3]);
    /// ```
    pub fn reshape(&self, shape: impl Into<Shape>) -> Tensor {
        let to = shape.into();
        if to.numel() != self.numel() {
            panic!(
                "reshape: cannot reshape {} ({} elements) into {} ({} elements)",
                self.shape(),
                self.numel(),
                to,
                to.numel()
            );
        }
        if &to == self.shape() {
            return self.clone();
        }
        let out = match self.layout().reshaped(&to) {
            Some(l) => self.view_as(l),
            None => {
                let c = backend::copy_strided(self, self.layout());
                c.view_as(Layout::contiguous(to.clone()))
            }
        };
        record(
            out,
            Reshape {
                from: self.shape().clone(),
                to,
            },
            &[self],
        )
    }

    /// Reorders the dimensions (a view): result dim `i` is input dim `perm[i]`. Axes may be of any
    /// integer type and negative (counted from the end).
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// let x = Tensor::zeros([2, 3, 4], DType::F32);
    /// assert_eq!(x.permute(&[2, 0, 1]).dims(), &[4, 2, 3]);
    /// assert_eq!(x.permute([-1, 0, 1]).dims(), &[4, 2, 3]);
    /// ```
    pub fn permute(&self, perm: impl AxisSet) -> Tensor {
        let r = self.rank();
        let given = perm.axis_list(r);
        let mut seen = vec![false; r];
        let normal = |p: isize| if p < 0 { p + r as isize } else { p };
        if given.len() != r
            || given.iter().any(|&p| {
                let q = normal(p);
                q < 0 || q >= r as isize || std::mem::replace(&mut seen[q as usize], true)
            })
        {
            panic!(
                "permute: {given:?} is not a permutation of the {r} dimensions of {}",
                self.shape()
            );
        }
        let perm: SmallVec<[usize; 4]> = given.iter().map(|&p| normal(p) as usize).collect();
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return self.clone();
        }
        let out = self.view_as(self.layout().permuted(&perm));
        record(out, Permute { perm }, &[self])
    }

    /// Swaps two dimensions (a view).
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// let x = Tensor::zeros([2, 3, 4], DType::F32);
    /// assert_eq!(x.transpose(0, -1).dims(), &[4, 3, 2]);
    /// ```
    pub fn transpose(&self, a: impl Axis, b: impl Axis) -> Tensor {
        let a = a.to_isize();
        let b = b.to_isize();
        let r = self.rank();
        let (a, b) = (norm_axis("transpose", a, r), norm_axis("transpose", b, r));
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Swaps the last two dimensions (the matrix transpose, batched); a no-op below rank 2.
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// assert_eq!(Tensor::zeros([5, 2, 3], DType::F32).t().dims(), &[5, 3, 2]);
    /// ```
    pub fn t(&self) -> Tensor {
        if self.rank() < 2 {
            return self.clone();
        }
        self.transpose(-2, -1)
    }

    /// A view with size-1 (or missing leading) dimensions repeated to `shape`, by NumPy rules.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f64, 2.0], [2, 1]);
    /// assert_eq!(x.broadcast_to([2, 3]).to_vec::<f64>(), vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    /// ```
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Tensor {
        let to = shape.into();
        if &to == self.shape() {
            return self.clone();
        }
        if broadcast_shapes("broadcast_to", self.shape(), &to) != to {
            panic!("broadcast_to: cannot broadcast {} to {}", self.shape(), to);
        }
        let l = self.layout();
        let layout = Layout {
            strides: l.broadcast_strides(&to),
            shape: to.clone(),
            offset: l.offset,
        };
        let out = self.view_as(layout);
        record(
            out,
            BroadcastTo {
                from: self.shape().clone(),
                to,
            },
            &[self],
        )
    }

    /// Alias of [`broadcast_to`](Tensor::broadcast_to) (PyTorch's name).
    pub fn expand(&self, shape: impl Into<Shape>) -> Tensor {
        self.broadcast_to(shape)
    }

    /// Removes dimension `axis`, which must have size 1.
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// let x = Tensor::zeros([2, 1, 3], DType::F32);
    /// assert_eq!(x.squeeze(1).dims(), &[2, 3]);
    /// assert_eq!(x.squeeze(1).unsqueeze(0).dims(), &[1, 2, 3]);
    /// ```
    pub fn squeeze(&self, axis: impl Axis) -> Tensor {
        let axis = axis.to_isize();
        let a = norm_axis("squeeze", axis, self.rank());
        if self.dims()[a] != 1 {
            panic!(
                "squeeze: dimension {a} of {} has size {}, not 1",
                self.shape(),
                self.dims()[a]
            );
        }
        let mut d = self.dims().to_vec();
        d.remove(a);
        self.reshape(d)
    }

    /// Removes every size-1 dimension.
    pub fn squeeze_all(&self) -> Tensor {
        let d: Vec<usize> = self.dims().iter().copied().filter(|&d| d != 1).collect();
        self.reshape(d)
    }

    /// Inserts a size-1 dimension at `axis` (`-1` appends).
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// assert_eq!(Tensor::zeros([3], DType::F32).unsqueeze(0).dims(), &[1, 3]);
    /// assert_eq!(Tensor::zeros([3], DType::F32).unsqueeze(-1).dims(), &[3, 1]);
    /// ```
    pub fn unsqueeze(&self, axis: impl Axis) -> Tensor {
        let axis = axis.to_isize();
        let a = norm_axis("unsqueeze", axis, self.rank() + 1);
        let mut d = self.dims().to_vec();
        d.insert(a, 1);
        self.reshape(d)
    }

    /// Merges dimensions `start..=end` into one.
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// let x = Tensor::zeros([8, 1, 28, 28], DType::F32);
    /// assert_eq!(x.flatten(1, -1).dims(), &[8, 784]);
    /// ```
    pub fn flatten(&self, start: impl Axis, end: impl Axis) -> Tensor {
        let start = start.to_isize();
        let end = end.to_isize();
        if self.rank() == 0 {
            return self.reshape([1]);
        }
        let (s, e) = (
            norm_axis("flatten", start, self.rank()),
            norm_axis("flatten", end, self.rank()),
        );
        if s > e {
            panic!("flatten: start axis {s} is after end axis {e}");
        }
        let d = self.dims();
        let mut nd: Vec<usize> = d[..s].to_vec();
        nd.push(d[s..=e].iter().product());
        nd.extend_from_slice(&d[e + 1..]);
        self.reshape(nd)
    }

    /// The elements `start..start+len` along `axis` (a view).
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// let x = Tensor::arange(0.0, 5.0, 1.0, DType::F64);
    /// assert_eq!(x.narrow(0, 1, 3).to_vec::<f64>(), vec![1.0, 2.0, 3.0]);
    /// ```
    pub fn narrow(&self, axis: impl Axis, start: usize, len: usize) -> Tensor {
        let axis = axis.to_isize();
        let a = norm_axis("narrow", axis, self.rank());
        let size = self.dims()[a];
        if start + len > size {
            panic!(
                "narrow: range {start}..{} is out of bounds for dimension {a} of {} (size {size})",
                start + len,
                self.shape()
            );
        }
        if start == 0 && len == size {
            return self.clone();
        }
        let out = self.view_as(self.layout().narrowed(a, start, len));
        record(
            out,
            Narrow {
                axis: a,
                start,
                len,
            },
            &[self],
        )
    }

    /// Every `step`-th element of `start..end` along `axis`, like Python's `x[start:end:step]` (a
    /// view). `start` and `end` count from the end when negative and are clamped to the dimension,
    /// as in Python; `step` must be positive. The gradient scatters back into the taken positions.
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// let x = Tensor::arange(0.0, 10.0, 1.0, DType::F64);
    /// assert_eq!(x.slice(0, 1, 8, 3).to_vec::<f64>(), vec![1.0, 4.0, 7.0]);
    /// assert_eq!(x.slice(0, -4, 10, 2).to_vec::<f64>(), vec![6.0, 8.0]);
    /// let m = Tensor::arange(0.0, 6.0, 1.0, DType::F64).reshape([2, 3]);
    /// assert_eq!(m.slice(-1, 0, 3, 2).to_vec::<f64>(), vec![0.0, 2.0, 3.0, 5.0]);
    /// ```
    pub fn slice(&self, axis: impl Axis, start: isize, end: isize, step: usize) -> Tensor {
        let axis = axis.to_isize();
        let a = norm_axis("slice", axis, self.rank());
        if step == 0 {
            panic!(
                "slice: step must be positive, got 0 (axis {a} of {})",
                self.shape()
            );
        }
        let size = self.dims()[a] as isize;
        let clamp = |i: isize| (if i < 0 { i + size } else { i }).clamp(0, size) as usize;
        let (s, e) = (clamp(start), clamp(end));
        let len = if e > s { (e - s).div_ceil(step) } else { 0 };
        if step == 1 {
            return self.narrow(axis, s, len);
        }
        let out = self.view_as(self.layout().stepped(a, s, len, step));
        record(
            out,
            Slice {
                axis: a,
                start: s,
                len,
                step,
            },
            &[self],
        )
    }

    /// Row `index` along `axis`, with that dimension removed (`x.select(0, i)` is `x[i]`).
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]);
    /// assert_eq!(x.select(0, 1).to_vec::<f32>(), vec![4.0, 5.0, 6.0]);
    /// assert_eq!(x.select(1, 2).to_vec::<f32>(), vec![3.0, 6.0]);
    /// ```
    pub fn select(&self, axis: impl Axis, index: usize) -> Tensor {
        let axis = axis.to_isize();
        let a = norm_axis("select", axis, self.rank());
        let size = self.dims()[a];
        if index >= size {
            panic!(
                "select: index {index} is out of bounds for dimension {a} of {} (size {size})",
                self.shape()
            );
        }
        let mut layout = self.layout().narrowed(a, index, 1);
        layout.shape.0.remove(a);
        layout.strides.remove(a);
        record(self.view_as(layout), Select { axis: a, index }, &[self])
    }

    /// A contiguous copy, or the tensor itself when it already is contiguous.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]).t();
    /// assert!(!x.is_contiguous());
    /// let c = x.contiguous();
    /// assert!(c.is_contiguous());
    /// assert_eq!(c.to_vec::<f32>(), vec![1.0, 3.0, 2.0, 4.0]);
    /// ```
    pub fn contiguous(&self) -> Tensor {
        if self.is_contiguous() {
            return self.clone();
        }
        let out = backend::copy_strided(self, self.layout());
        record(out, Identity, &[self])
    }

    /// Converts the elements to another dtype (differentiable: gradients are converted back).
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// assert_eq!(Tensor::scalar(1.5f32).to_dtype(DType::F64).dtype(), DType::F64);
    /// ```
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        let from = self.dtype();
        if from == dtype {
            return self.clone();
        }
        let out = backend::cast(self, dtype);
        record(out, Cast { from, to: dtype }, &[self])
    }

    /// Joins tensors along an existing axis; all other dimensions must agree.
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// let a = Tensor::zeros([2, 3], DType::F32);
    /// let b = Tensor::ones([1, 3], DType::F32);
    /// assert_eq!(Tensor::concat(&[a, b], 0).dims(), &[3, 3]);
    /// ```
    pub fn concat(tensors: &[Tensor], axis: impl Axis) -> Tensor {
        let axis = axis.to_isize();
        let first = tensors
            .first()
            .unwrap_or_else(|| panic!("concat: no tensors given"));
        let a = norm_axis("concat", axis, first.rank());
        let mut total = 0;
        for t in tensors {
            same_dtype("concat", first, t);
            if t.rank() != first.rank()
                || t.dims()
                    .iter()
                    .zip(first.dims())
                    .enumerate()
                    .any(|(i, (x, y))| i != a && x != y)
            {
                let shapes: Vec<String> = tensors.iter().map(|t| t.shape().to_string()).collect();
                panic!(
                    "concat: shapes {} differ outside axis {a}",
                    shapes.join(", ")
                );
            }
            total += t.dims()[a];
        }
        if tensors.len() == 1 {
            return first.clone();
        }
        let mut out_dims = first.dims().to_vec();
        out_dims[a] = total;
        let out = backend::concat(tensors, a, Shape::from(out_dims));
        let refs: Vec<&Tensor> = tensors.iter().collect();
        record(out, Concat { axis: a }, &refs)
    }

    /// Joins tensors of one shape along a new axis.
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// let a = Tensor::zeros([3], DType::F32);
    /// assert_eq!(Tensor::stack(&[a.clone(), a], 0).dims(), &[2, 3]);
    /// ```
    pub fn stack(tensors: &[Tensor], axis: impl Axis) -> Tensor {
        let axis = axis.to_isize();
        let first = tensors
            .first()
            .unwrap_or_else(|| panic!("stack: no tensors given"));
        for t in tensors {
            if t.shape() != first.shape() {
                panic!("stack: shapes {} and {} differ", first.shape(), t.shape());
            }
        }
        for t in tensors {
            same_dtype("stack", first, t);
        }
        let a = norm_axis("stack", axis, first.rank() + 1);
        let mut out_dims = first.dims().to_vec();
        out_dims.insert(a, tensors.len());
        let out = backend::concat(tensors, a, Shape::from(out_dims));
        let refs: SmallVec<[&Tensor; 8]> = tensors.iter().collect();
        record(out, Stack { axis: a }, &refs)
    }

    /// Splits along `axis` into pieces of the given sizes (which must add up to the dimension).
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0], [5]);
    /// let parts = x.split(&[2, 3], 0);
    /// assert_eq!(parts[1].to_vec::<f32>(), vec![3.0, 4.0, 5.0]);
    /// ```
    pub fn split(&self, sizes: &[usize], axis: impl Axis) -> Vec<Tensor> {
        let axis = axis.to_isize();
        let a = norm_axis("split", axis, self.rank());
        if sizes.iter().sum::<usize>() != self.dims()[a] {
            panic!(
                "split: sizes {sizes:?} do not add up to dimension {a} of {} ({})",
                self.shape(),
                self.dims()[a]
            );
        }
        let mut start = 0;
        sizes
            .iter()
            .map(|&len| {
                let t = self.narrow(a as isize, start, len);
                start += len;
                t
            })
            .collect()
    }

    /// Splits along `axis` into `n` pieces of equal size (the last may be smaller), like
    /// `torch.chunk`.
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// let x = Tensor::zeros([7, 2], DType::F32);
    /// let sizes: Vec<usize> = x.chunk(3, 0).iter().map(|c| c.dims()[0]).collect();
    /// assert_eq!(sizes, [3, 3, 1]);
    /// ```
    pub fn chunk(&self, n: usize, axis: impl Axis) -> Vec<Tensor> {
        let axis = axis.to_isize();
        let a = norm_axis("chunk", axis, self.rank());
        if n == 0 {
            panic!("chunk: cannot split into 0 pieces");
        }
        let size = self.dims()[a];
        let step = size.div_ceil(n).max(1);
        let mut sizes = vec![];
        let mut left = size;
        while left > 0 {
            let s = step.min(left);
            sizes.push(s);
            left -= s;
        }
        self.split(&sizes, a as isize)
    }
}
