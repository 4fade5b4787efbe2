//! The [`Tensor`] type: an immutable n-d array of `f32` or `f64`, shared by reference counting, that
//! remembers how it was computed when it depends on something being differentiated.

pub(crate) mod axes;
pub(crate) mod cpu;
mod display;
pub(crate) mod layout;
mod random;
pub(crate) mod shape;
pub(crate) mod storage;

use crate::autodiff::Node;
use crate::device::Device;
use crate::dtype::{DType, Element};
pub use axes::{AllAxes, Axis, AxisSet};
use layout::Layout;
pub use shape::Shape;
use std::sync::Arc;
use storage::Storage;

/// An n-dimensional array of `f32` or `f64` on a [`Device`], with automatic differentiation.
///
/// A `Tensor` is a cheap handle: cloning it copies a pointer. Values are immutable; every operation
/// returns a new tensor, and views (`reshape` of contiguous data, `transpose`, `narrow`,
/// `broadcast_to`, `squeeze`) share the underlying buffer without copying.
///
/// When a tensor depends on a variable being differentiated (see [`grad`](crate::grad),
/// [`Tensor::variable`]), it also holds a link to the operation that produced it, so gradients can be
/// taken through any Rust program that computed it.
///
/// ```
/// use nabla::Tensor;
/// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], [2, 2]);
/// let y = (&x * &x).sum();
/// assert_eq!(y.item(), 30.0);
/// ```
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) storage: Storage,
    pub(crate) layout: Layout,
    /// The operation that produced this tensor, when it is part of a recorded computation.
    pub(crate) node: Option<Node>,
    /// Forward-mode tangents, one per active `jvp` level, ordered by level.
    pub(crate) tangents: crate::autodiff::forward::Tangents,
}

/// A drop that frees at least this many graph nodes gives the free memory of glibc's heap back to
/// the kernel (see [`trim_heap`]).
const TRIM_AFTER_NODES: usize = 500_000;

/// After a large graph is freed, returns the free pages inside glibc's heap to the kernel
/// (`malloc_trim(0)`): glibc cannot shrink a heap whose top is still in use, so without it the
/// resident memory of a dropped million-node graph (~220 MiB) stays with the process. It costs a
/// few tens of milliseconds per million freed nodes (a few percent of building and differentiating
/// them). No-op with other C libraries; with another global allocator it only trims glibc's heap.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: malloc_trim has no preconditions; it only releases free memory.
        unsafe {
            malloc_trim(0);
        }
    }
}

impl Drop for Inner {
    /// Frees long graphs iteratively: a chain of a million recorded operations must not overflow the
    /// stack when its last tensor is dropped. Very large graphs then trim the heap ([`trim_heap`]).
    fn drop(&mut self) {
        if self.node.is_none() && self.tangents.is_empty() {
            return;
        }
        // Only tensors that we own alone (and that own a graph in turn) can cascade; drop the rest
        // right away and walk the others with an explicit stack.
        let cascades = |t: &Tensor| {
            Arc::strong_count(&t.0) == 1 && (t.0.node.is_some() || !t.0.tangents.is_empty())
        };
        let mut stack: Vec<Tensor> = Vec::new();
        if let Some(node) = self.node.take() {
            stack.extend(node.inputs.into_iter().filter(cascades));
        }
        stack.extend(
            std::mem::take(&mut self.tangents)
                .into_vec()
                .into_iter()
                .map(|(_, t)| t)
                .filter(cascades),
        );
        let mut freed = 0usize;
        while let Some(mut t) = stack.pop() {
            // Empty the tensor in place (no move of the whole `Inner` out of its block); dropping
            // `t` then frees it without recursing.
            if let Some(inner) = t.unique_mut() {
                if let Some(node) = inner.node.take() {
                    freed += 1;
                    stack.extend(node.inputs);
                }
                if !inner.tangents.is_empty() {
                    stack.extend(
                        std::mem::take(&mut inner.tangents)
                            .into_vec()
                            .into_iter()
                            .map(|(_, t)| t),
                    );
                }
            }
        }
        if freed >= TRIM_AFTER_NODES {
            trim_heap();
        }
    }
}

impl Tensor {
    // ----- construction -----------------------------------------------------------------------

    #[inline]
    pub(crate) fn from_parts(storage: Storage, layout: Layout) -> Tensor {
        // Allocate first, then write the fields straight into the block (no temporary `Inner`
        // on the stack copied into it: this runs for every tensor created).
        let block = Arc::<Inner>::new_uninit();
        // SAFETY: the block is fresh, so this is its only handle and nothing reads it while it is
        // written (`Arc::get_mut` would say so too, at the cost of an atomic read-modify-write).
        unsafe {
            Arc::as_ptr(&block)
                .cast_mut()
                .write(std::mem::MaybeUninit::new(Inner {
                    storage,
                    layout,
                    node: None,
                    tangents: Default::default(),
                }));
            // Initialised just above.
            Tensor(block.assume_init())
        }
    }

    /// This tensor's fields for writing when this handle is its only owner, else `None`: what
    /// `Arc::get_mut` gives, with two loads instead of its atomic read-modify-write (which costs a
    /// noticeable part of a recorded scalar operation). Sound because the crate never makes a
    /// `Weak` of a tensor: with one strong count and no weak one, `&mut self` is the only way to
    /// reach the fields, and no other handle can appear (a clone needs a handle).
    #[inline]
    pub(crate) fn unique_mut(&mut self) -> Option<&mut Inner> {
        if Arc::strong_count(&self.0) == 1 && Arc::weak_count(&self.0) == 0 {
            // Pairs with the release decrement of a handle dropped on another thread, as
            // `Arc::get_mut` does.
            std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
            // SAFETY: this handle is the only one (see above), and it is borrowed mutably for the
            // lifetime of the result.
            Some(unsafe { &mut *Arc::as_ptr(&self.0).cast_mut() })
        } else {
            None
        }
    }

    pub(crate) fn from_arc<T: Element>(data: Arc<storage::Buffer<T>>, shape: Shape) -> Tensor {
        debug_assert_eq!(data.len(), shape.numel());
        Tensor::from_parts(T::wrap(data), Layout::contiguous(shape))
    }

    /// A one-element tensor of the given shape, held inline (no buffer allocation).
    #[inline]
    pub(crate) fn from_one<T: Element>(value: T, shape: Shape) -> Tensor {
        debug_assert_eq!(shape.numel(), 1);
        Tensor::from_parts(T::wrap_one(value), Layout::contiguous(shape))
    }

    /// A new tensor that shares this one's buffer under another layout (no graph, no tangents).
    pub(crate) fn view_as(&self, layout: Layout) -> Tensor {
        Tensor::from_parts(self.0.storage.clone(), layout)
    }

    /// A tensor that owns `data`, laid out row-major in `shape`.
    ///
    /// # Panics
    /// If `data.len()` is not the number of elements of `shape`.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]);
    /// assert_eq!(t.dims(), &[2, 3]);
    /// ```
    pub fn from_vec<T: Element>(data: Vec<T>, shape: impl Into<Shape>) -> Tensor {
        let shape = shape.into();
        if data.len() != shape.numel() {
            panic!(
                "from_vec: {} elements cannot have shape {shape} ({} elements)",
                data.len(),
                shape.numel()
            );
        }
        Tensor::from_arc(Arc::new(storage::Buffer::from_vec(data)), shape)
    }

    /// A tensor that copies `data`, laid out row-major in `shape`.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let t = Tensor::from_slice(&[1.0f64, 2.0], [2, 1]);
    /// assert_eq!(t.to_vec::<f64>(), vec![1.0, 2.0]);
    /// ```
    pub fn from_slice<T: Element>(data: &[T], shape: impl Into<Shape>) -> Tensor {
        let shape = shape.into();
        if data.len() != shape.numel() {
            panic!(
                "from_slice: {} elements cannot have shape {shape} ({} elements)",
                data.len(),
                shape.numel()
            );
        }
        Tensor::from_arc(Arc::new(storage::Buffer::from_vec(data.to_vec())), shape)
    }

    /// A 0-d tensor holding one value; its dtype follows the Rust type (`f32` or `f64`).
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// let x = Tensor::scalar(2.5f64);
    /// assert_eq!((x.rank(), x.dtype(), x.item()), (0, DType::F64, 2.5));
    /// ```
    pub fn scalar<T: Element>(value: T) -> Tensor {
        Tensor::from_one(value, Shape::scalar())
    }

    /// A 0-d tensor of the given dtype.
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// assert_eq!(Tensor::scalar_of(1.5, DType::F32).dtype(), DType::F32);
    /// ```
    pub fn scalar_of(value: f64, dtype: DType) -> Tensor {
        Tensor::full((), value, dtype)
    }

    /// A tensor filled with `value`.
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// assert_eq!(Tensor::full([2], 7.0, DType::F32).to_vec::<f32>(), vec![7.0, 7.0]);
    /// ```
    pub fn full(shape: impl Into<Shape>, value: f64, dtype: DType) -> Tensor {
        let shape = shape.into();
        let n = shape.numel();
        match dtype {
            DType::F32 => Tensor::from_arc(
                storage::build(n, |o: &mut [f32]| o.fill(value as f32)),
                shape,
            ),
            DType::F64 => Tensor::from_arc(storage::build(n, |o: &mut [f64]| o.fill(value)), shape),
        }
    }

    /// A tensor of zeros.
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// assert_eq!(Tensor::zeros([3], DType::F64).to_vec::<f64>(), vec![0.0; 3]);
    /// ```
    pub fn zeros(shape: impl Into<Shape>, dtype: DType) -> Tensor {
        let shape = shape.into();
        let n = shape.numel();
        match dtype {
            DType::F32 => Tensor::from_arc(storage::zeroed::<f32>(n), shape),
            DType::F64 => Tensor::from_arc(storage::zeroed::<f64>(n), shape),
        }
    }

    /// A tensor of ones.
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// assert_eq!(Tensor::ones([2, 2], DType::F32).sum().item(), 4.0);
    /// ```
    pub fn ones(shape: impl Into<Shape>, dtype: DType) -> Tensor {
        Tensor::full(shape, 1.0, dtype)
    }

    /// Zeros with this tensor's shape and dtype.
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// let x = Tensor::ones([2, 3], DType::F64);
    /// let z = x.zeros_like();
    /// assert_eq!((z.dims(), z.dtype(), z.sum().item()), (&[2, 3][..], DType::F64, 0.0));
    /// ```
    pub fn zeros_like(&self) -> Tensor {
        Tensor::zeros(self.shape(), self.dtype())
    }

    /// Ones with this tensor's shape and dtype.
    pub fn ones_like(&self) -> Tensor {
        Tensor::ones(self.shape(), self.dtype())
    }

    /// `value` with this tensor's shape and dtype.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0], [2]);
    /// assert_eq!(x.full_like(7.0).to_vec::<f32>(), vec![7.0, 7.0]);
    /// ```
    pub fn full_like(&self, value: f64) -> Tensor {
        Tensor::full(self.shape(), value, self.dtype())
    }

    /// Values `start, start + step, …` below `end` (above it for a negative step), as in NumPy.
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// assert_eq!(Tensor::arange(0.0, 5.0, 2.0, DType::F64).to_vec::<f64>(), vec![0.0, 2.0, 4.0]);
    /// ```
    pub fn arange(start: f64, end: f64, step: f64, dtype: DType) -> Tensor {
        if step == 0.0 || !step.is_finite() {
            panic!("arange: step must be finite and non-zero, got {step}");
        }
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        let v: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
        Tensor::from_vec(v, [n]).to_dtype(dtype)
    }

    /// `steps` evenly spaced values from `start` to `end` inclusive.
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// assert_eq!(Tensor::linspace(0.0, 1.0, 3, DType::F64).to_vec::<f64>(), vec![0.0, 0.5, 1.0]);
    /// ```
    pub fn linspace(start: f64, end: f64, steps: usize, dtype: DType) -> Tensor {
        let v: Vec<f64> = match steps {
            0 => vec![],
            1 => vec![start],
            _ => (0..steps)
                .map(|i| start + (end - start) * i as f64 / (steps - 1) as f64)
                .collect(),
        };
        Tensor::from_vec(v, [steps]).to_dtype(dtype)
    }

    /// The `n`×`n` identity matrix.
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// assert_eq!(Tensor::eye(2, DType::F32).to_vec::<f32>(), vec![1.0, 0.0, 0.0, 1.0]);
    /// ```
    pub fn eye(n: usize, dtype: DType) -> Tensor {
        let mut v = vec![0.0f64; n * n];
        for i in 0..n {
            v[i * n + i] = 1.0;
        }
        Tensor::from_vec(v, [n, n]).to_dtype(dtype)
    }

    // ----- metadata ---------------------------------------------------------------------------

    /// The shape.
    ///
    /// ```
    /// use nabla::{DType, Shape, Tensor};
    /// let x = Tensor::zeros([2, 3], DType::F32);
    /// assert_eq!(x.shape(), &Shape::from([2, 3]));
    /// assert_eq!(x.shape().to_string(), "[2, 3]");
    /// ```
    pub fn shape(&self) -> &Shape {
        &self.0.layout.shape
    }
    /// The dimensions as a slice.
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// let x = Tensor::zeros([2, 3, 4], DType::F32);
    /// assert_eq!((x.dims(), x.rank(), x.numel()), (&[2, 3, 4][..], 3, 24));
    /// ```
    pub fn dims(&self) -> &[usize] {
        &self.0.layout.shape.0
    }
    /// Size of one dimension (negative counts from the end).
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// assert_eq!(Tensor::zeros([2, 5], DType::F32).dim(-1), 5);
    /// ```
    pub fn dim(&self, axis: impl Axis) -> usize {
        let axis = axis.to_isize();
        self.dims()[shape::norm_axis("dim", axis, self.rank())]
    }
    /// Number of dimensions (0 for a scalar).
    pub fn rank(&self) -> usize {
        self.0.layout.shape.rank()
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.0.layout.numel()
    }
    /// Element type.
    pub fn dtype(&self) -> DType {
        self.0.storage.dtype()
    }
    /// Where the data lives.
    pub fn device(&self) -> Device {
        self.0.storage.device()
    }
    /// Whether the elements are dense and row-major (views may not be).
    pub fn is_contiguous(&self) -> bool {
        self.0.layout.is_contiguous()
    }
    /// The strides in elements (a view's strides may be 0 on broadcast dimensions).
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// let x = Tensor::zeros([2, 3], DType::F32);
    /// assert_eq!(x.strides(), &[3, 1]);
    /// let t = x.t(); // a view: no copy, swapped strides
    /// assert_eq!((t.strides(), t.is_contiguous()), (&[1, 3][..], false));
    /// ```
    pub fn strides(&self) -> &[usize] {
        &self.0.layout.strides
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.0.layout
    }

    /// Moves the tensor to `device` (a no-op on the CPU, the only device today).
    pub fn to_device(&self, device: Device) -> Tensor {
        match device {
            Device::Cpu => self.clone(),
        }
    }

    // ----- data out ---------------------------------------------------------------------------

    /// The whole backing buffer of type `T` (which may be larger than the view).
    pub(crate) fn buffer<T: Element>(&self) -> &[T] {
        match T::slice(&self.0.storage) {
            Some(s) => s,
            None => panic!(
                "internal: tensor of dtype {} read as {}",
                self.dtype(),
                T::DTYPE
            ),
        }
    }

    /// The elements as a slice when the layout is contiguous.
    pub(crate) fn contiguous_slice<T: Element>(&self) -> Option<&[T]> {
        self.0
            .layout
            .contiguous_range()
            .map(|r| &self.buffer::<T>()[r])
    }

    /// The elements in row-major order, copied into a new buffer when the layout is not contiguous.
    pub(crate) fn contiguous_data<T: Element>(&self) -> std::borrow::Cow<'_, [T]> {
        match self.contiguous_slice::<T>() {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => {
                let buf = self.buffer::<T>();
                let mut v = Vec::with_capacity(self.numel());
                layout::for_each_offset(&self.0.layout, |o| v.push(buf[o]));
                std::borrow::Cow::Owned(v)
            }
        }
    }

    /// The elements for writing in place, when this handle is the only owner of a contiguous buffer
    /// that it covers exactly; `None` otherwise (then the caller builds a new tensor).
    pub(crate) fn try_data_mut<T: Element>(&mut self) -> Option<&mut [T]> {
        let inner = self.unique_mut()?;
        let numel = inner.layout.numel();
        if !inner.layout.is_contiguous() || inner.layout.offset != 0 {
            return None;
        }
        let s = T::slice_mut(&mut inner.storage)?;
        (s.len() == numel).then_some(s)
    }

    /// The elements in row-major order, converted to `T`.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]).t();
    /// assert_eq!(t.to_vec::<f64>(), vec![1.0, 3.0, 2.0, 4.0]);
    /// ```
    pub fn to_vec<T: Element>(&self) -> Vec<T> {
        crate::compile::guard_read("to_vec", self);
        self.values_as()
    }

    /// The elements in row-major order as `T`, without the compiled path's guard (for the tape
    /// builder, which reads constants).
    pub(crate) fn values_as<T: Element>(&self) -> Vec<T> {
        match self.dtype() {
            DType::F32 => self
                .contiguous_data::<f32>()
                .iter()
                .map(|&v| T::from_f64(v as f64))
                .collect(),
            DType::F64 => self
                .contiguous_data::<f64>()
                .iter()
                .map(|&v| T::from_f64(v))
                .collect(),
        }
    }

    /// The single value of a one-element tensor, as `f64`.
    ///
    /// # Panics
    /// If the tensor does not have exactly one element.
    ///
    /// ```
    /// use nabla::Tensor;
    /// assert_eq!(Tensor::scalar(1.5f32).item(), 1.5);
    /// assert_eq!(Tensor::from_vec(vec![4.0f64], [1, 1]).item(), 4.0);
    /// ```
    pub fn item(&self) -> f64 {
        if self.numel() != 1 {
            panic!(
                "item: tensor of shape {} has {} elements, not 1",
                self.shape(),
                self.numel()
            );
        }
        crate::compile::guard_read("item", self);
        let o = self.0.layout.offset;
        match self.dtype() {
            DType::F32 => self.buffer::<f32>()[o] as f64,
            DType::F64 => self.buffer::<f64>()[o],
        }
    }

    /// The single value of a one-element tensor, as `T`.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x: f32 = Tensor::scalar(2.5f64).to_scalar();
    /// assert_eq!(x, 2.5);
    /// ```
    pub fn to_scalar<T: Element>(&self) -> T {
        T::from_f64(self.item())
    }
}

/// Panics unless both tensors have the same dtype; the message names the op and both shapes.
#[inline]
pub(crate) fn same_dtype(op: &str, a: &Tensor, b: &Tensor) -> DType {
    let (da, db) = (a.dtype(), b.dtype());
    if da != db {
        panic!(
            "{op}: dtype mismatch: {da} {} and {db} {} (convert one with .to_dtype())",
            a.shape(),
            b.shape()
        );
    }
    da
}

#[cfg(test)]
mod size_tests {
    #[test]
    fn print_sizes() {
        eprintln!(
            "Inner {} Layout {} Storage {} Node {}",
            std::mem::size_of::<super::Inner>(),
            std::mem::size_of::<super::Layout>(),
            std::mem::size_of::<super::Storage>(),
            std::mem::size_of::<Option<crate::autodiff::Node>>()
        );
    }
}
