//! Element types: `f32` and `f64`.

use std::fmt;

/// The element type of a [`Tensor`](crate::Tensor).
///
/// ```
/// use nabla::{DType, Tensor};
/// let x = Tensor::zeros([2, 3], DType::F64);
/// assert_eq!(x.dtype(), DType::F64);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit IEEE float (the default for networks).
    F32,
    /// 64-bit IEEE float (the default for gradient checks and simulators that need precision).
    F64,
}

impl DType {
    /// Size of one element in bytes.
    ///
    /// ```
    /// use nabla::DType;
    /// assert_eq!((DType::F32.size_in_bytes(), DType::F64.size_in_bytes()), (4, 8));
    /// ```
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
        })
    }
}

/// A Rust scalar type that can be stored in a tensor (`f32` or `f64`).
///
/// This trait is sealed: nabla's kernels are written once, generically over it.
///
/// ```
/// use nabla::{DType, Element, Tensor};
/// fn first<T: Element>(t: &Tensor) -> T {
///     t.to_vec::<T>()[0]
/// }
/// let t = Tensor::from_vec(vec![1.5f32, 2.0], [2]);
/// assert_eq!(first::<f64>(&t), 1.5);
/// assert_eq!(<f32 as Element>::DTYPE, DType::F32);
/// ```
pub trait Element:
    num_traits::Float
    + num_traits::FloatConst
    + Copy
    + Send
    + Sync
    + fmt::Debug
    + fmt::Display
    + Default
    + std::iter::Sum
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + std::ops::DivAssign
    + 'static
    + sealed::Sealed
    + crate::tensor::storage::StorageElem
{
    /// The matching [`DType`].
    const DTYPE: DType;
    /// Converts from `f64` (rounding for `f32`).
    fn from_f64(v: f64) -> Self;
    /// Converts to `f64` (exact).
    fn to_f64(self) -> f64;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}
