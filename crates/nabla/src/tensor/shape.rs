//! Shapes, axis normalisation and NumPy broadcasting.

use smallvec::SmallVec;
use std::fmt;
use std::ops::Deref;

/// Dimensions of a tensor, outermost first. A 0-d (scalar) tensor has the empty shape `[]`.
///
/// Anything that names a list of sizes converts into a `Shape`: `[2, 3]`, `&[2, 3][..]`,
/// `vec![2, 3]`, `()` for a scalar.
///
/// ```
/// use nabla::Shape;
/// let s: Shape = [2, 3].into();
/// assert_eq!(s.numel(), 6);
/// assert_eq!(s.to_string(), "[2, 3]");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub(crate) SmallVec<[usize; 4]>);

impl Shape {
    /// The empty shape of a 0-d tensor.
    pub fn scalar() -> Shape {
        Shape(SmallVec::new())
    }
    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }
    /// The dimensions as a slice.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    /// Row-major (C order) strides for this shape.
    #[inline]
    pub fn contiguous_strides(&self) -> SmallVec<[usize; 4]> {
        if self.0.is_empty() {
            return SmallVec::new();
        }
        let mut strides: SmallVec<[usize; 4]> = SmallVec::from_elem(0, self.0.len());
        let mut acc = 1;
        for i in (0..self.0.len()).rev() {
            strides[i] = acc;
            acc *= self.0[i];
        }
        strides
    }
}

impl Deref for Shape {
    type Target = [usize];
    fn deref(&self) -> &[usize] {
        &self.0
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Shape {
        Shape(SmallVec::from_slice(d))
    }
}
impl From<&Vec<usize>> for Shape {
    fn from(d: &Vec<usize>) -> Shape {
        Shape(SmallVec::from_slice(d))
    }
}
impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Shape {
        Shape(SmallVec::from_vec(d))
    }
}
impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Shape {
        Shape(SmallVec::from_slice(&d))
    }
}
impl<const N: usize> From<&[usize; N]> for Shape {
    fn from(d: &[usize; N]) -> Shape {
        Shape(SmallVec::from_slice(d))
    }
}
impl From<()> for Shape {
    fn from(_: ()) -> Shape {
        Shape::scalar()
    }
}
impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Shape {
        s.clone()
    }
}

/// Normalises a possibly negative axis (`-1` is the last) against `rank`, panicking with the op name.
pub(crate) fn norm_axis(op: &str, axis: isize, rank: usize) -> usize {
    let r = rank as isize;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r.max(0) {
        panic!("{op}: axis {axis} is out of range for a tensor of rank {rank}");
    }
    a as usize
}

/// Normalises a list of axes, sorted and without repeats.
pub(crate) fn norm_axes(op: &str, axes: &[isize], rank: usize) -> SmallVec<[usize; 4]> {
    let mut out: SmallVec<[usize; 4]> = axes.iter().map(|&a| norm_axis(op, a, rank)).collect();
    out.sort_unstable();
    let before = out.len();
    out.dedup();
    if out.len() != before {
        panic!("{op}: repeated axis in {axes:?}");
    }
    out
}

/// NumPy broadcasting of two shapes, or a panic that names the op and both shapes.
pub(crate) fn broadcast_shapes(op: &str, a: &Shape, b: &Shape) -> Shape {
    if a == b {
        return a.clone();
    }
    let rank = a.rank().max(b.rank());
    let mut out: SmallVec<[usize; 4]> = SmallVec::from_elem(1, rank);
    for i in 0..rank {
        let da = if i < rank - a.rank() {
            1
        } else {
            a[i - (rank - a.rank())]
        };
        let db = if i < rank - b.rank() {
            1
        } else {
            b[i - (rank - b.rank())]
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            panic!(
                "{op}: shapes {a} and {b} cannot be broadcast together (dimension {i}: {da} vs {db})"
            );
        };
    }
    Shape(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        let s = |d: &[usize]| Shape::from(d);
        assert_eq!(
            broadcast_shapes("t", &s(&[2, 1, 3]), &s(&[4, 1])),
            s(&[2, 4, 3])
        );
        assert_eq!(broadcast_shapes("t", &s(&[]), &s(&[5])), s(&[5]));
        assert_eq!(broadcast_shapes("t", &s(&[1]), &s(&[0])), s(&[0]));
    }

    #[test]
    #[should_panic(expected = "add: shapes [2, 3] and [4] cannot be broadcast")]
    fn broadcasting_mismatch_names_op() {
        broadcast_shapes("add", &Shape::from([2, 3]), &Shape::from([4]));
    }

    #[test]
    fn negative_axes() {
        assert_eq!(norm_axis("t", -1, 3), 2);
        assert_eq!(norm_axes("t", &[-1, 0], 3).as_slice(), &[0, 2]);
    }
}
