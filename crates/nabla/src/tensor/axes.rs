//! Axis arguments: every operation that takes an axis accepts any integer type (`isize`, `i32`,
//! `usize`, ...), negative values counting from the end; operations over several axes accept a
//! list of them (array, slice, `Vec`) or [`AllAxes`].

use smallvec::SmallVec;

/// One axis: an integer of any type; negative values count from the end (`-1` is the last axis).
pub trait Axis: Copy {
    /// The axis as a signed index (possibly negative).
    fn to_isize(self) -> isize;
}

macro_rules! axis_ints {
    ($($t:ty),*) => {$(
        impl Axis for $t {
            #[inline]
            fn to_isize(self) -> isize {
                self as isize
            }
        }
    )*};
}
axis_ints!(isize, i8, i16, i32, i64, usize, u8, u16, u32, u64);

/// Several axes: an array, slice, `Vec` or `SmallVec` of [`Axis`] values (by value or by
/// reference), or [`AllAxes`].
pub trait AxisSet {
    /// The axes as signed indices, in the order given (for a tensor of rank `rank`).
    fn axis_list(&self, rank: usize) -> SmallVec<[isize; 4]>;
}

/// Every axis of the tensor, in order: `x.sum_axes(AllAxes, true)` reduces everything and keeps
/// the rank, `x.logsumexp(AllAxes, false)` is a 0-d tensor.
///
/// ```
/// use nabla::{AllAxes, Tensor};
/// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], [2, 2]);
/// assert_eq!(x.sum_axes(AllAxes, true).dims(), &[1, 1]);
/// assert_eq!(x.max_axes(AllAxes, false).item(), 4.0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllAxes;

impl AxisSet for AllAxes {
    fn axis_list(&self, rank: usize) -> SmallVec<[isize; 4]> {
        (0..rank as isize).collect()
    }
}

impl<A: Axis> AxisSet for [A] {
    fn axis_list(&self, _: usize) -> SmallVec<[isize; 4]> {
        self.iter().map(|a| a.to_isize()).collect()
    }
}

impl<A: Axis, const N: usize> AxisSet for [A; N] {
    fn axis_list(&self, _: usize) -> SmallVec<[isize; 4]> {
        self.iter().map(|a| a.to_isize()).collect()
    }
}

impl<A: Axis> AxisSet for Vec<A> {
    fn axis_list(&self, _: usize) -> SmallVec<[isize; 4]> {
        self.iter().map(|a| a.to_isize()).collect()
    }
}

impl<A: Axis> AxisSet for SmallVec<[A; 4]> {
    fn axis_list(&self, _: usize) -> SmallVec<[isize; 4]> {
        self.iter().map(|a| a.to_isize()).collect()
    }
}

impl<S: AxisSet + ?Sized> AxisSet for &S {
    fn axis_list(&self, rank: usize) -> SmallVec<[isize; 4]> {
        (**self).axis_list(rank)
    }
}
