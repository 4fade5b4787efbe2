//! [`Indices`]: n-d arrays of integer positions, the index operand of the operations of
//! `ops/index.rs` (host memory).

use crate::dtype::DType;
use crate::tensor::{Shape, Tensor};
use std::fmt;
use std::sync::Arc;

/// An n-d array of `usize` positions with a [`Shape`]: class labels, token ids, the positions
/// returned by [`argmax`](Tensor::argmax), the `index` argument of [`gather`](Tensor::gather).
///
/// Cloning is cheap (the values are shared behind an `Arc`). Values are stored row-major.
///
/// ```
/// use nabla::{Indices, Tensor};
/// let labels = Indices::from(vec![1, 0, 1]);
/// assert_eq!((labels.dims(), labels.len()), (&[3][..], 3));
/// let table = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]);
/// let rows = table.index_select(0, &labels);
/// assert_eq!(rows.to_vec::<f32>(), vec![3.0, 4.0, 1.0, 2.0, 3.0, 4.0]);
/// let grid = Indices::new(vec![0, 1, 1, 0], [2, 2]);
/// assert_eq!((grid.dims(), grid.as_slice()), (&[2, 2][..], &[0, 1, 1, 0][..]));
/// // conversions: from a Vec, an array, a slice, an iterator
/// let a: Indices = [1, 0, 1].into();
/// let b: Indices = (0..3).map(|i| (i + 1) % 2).collect();
/// assert_eq!(a, b);
/// assert_eq!(a, Indices::from(&[1, 0, 1][..]));
/// assert_eq!((&a).into_iter().sum::<usize>(), 2);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Indices {
    data: Arc<[usize]>,
    shape: Shape,
}

impl Indices {
    /// Indices holding `data`, laid out row-major in `shape`.
    ///
    /// # Panics
    /// If `data.len()` is not the number of elements of `shape`.
    ///
    /// ```
    /// use nabla::Indices;
    /// let i = Indices::new(vec![0, 2, 1, 1, 0, 2], [2, 3]);
    /// assert_eq!(i.dims(), &[2, 3]);
    /// ```
    pub fn new(data: Vec<usize>, shape: impl Into<Shape>) -> Indices {
        let shape = shape.into();
        if data.len() != shape.numel() {
            panic!(
                "Indices::new: {} values cannot have shape {shape} ({} elements)",
                data.len(),
                shape.numel()
            );
        }
        Indices {
            data: Arc::from(data),
            shape,
        }
    }

    /// 1-d indices copied from a slice.
    ///
    /// ```
    /// use nabla::Indices;
    /// let i = Indices::from_slice(&[3, 1, 4]);
    /// assert_eq!((i.dims(), i.to_vec()), (&[3][..], vec![3, 1, 4]));
    /// ```
    pub fn from_slice(data: &[usize]) -> Indices {
        Indices {
            data: Arc::from(data),
            shape: Shape::from([data.len()]),
        }
    }

    /// A 0-d index holding one position.
    ///
    /// ```
    /// use nabla::Indices;
    /// let i = Indices::scalar(4);
    /// assert_eq!((i.rank(), i.as_slice()), (0, &[4][..]));
    /// ```
    pub fn scalar(value: usize) -> Indices {
        Indices {
            data: Arc::from([value]),
            shape: Shape::scalar(),
        }
    }

    /// Indices read from the values of a tensor (e.g. float class labels), with its shape.
    ///
    /// # Panics
    /// If a value is negative, not an integer or not finite.
    ///
    /// ```
    /// use nabla::{Indices, Tensor};
    /// let t = Tensor::from_vec(vec![2.0f32, 0.0, 1.0], [3]);
    /// assert_eq!(Indices::from_tensor(&t).to_vec(), vec![2, 0, 1]);
    /// ```
    pub fn from_tensor(t: &Tensor) -> Indices {
        let data: Vec<usize> = t
            .to_vec::<f64>()
            .into_iter()
            .map(|v| {
                if !(v >= 0.0 && v.fract() == 0.0 && v < usize::MAX as f64) {
                    panic!(
                        "Indices::from_tensor: value {v} of a tensor of shape {} is not a non-negative integer",
                        t.shape()
                    );
                }
                v as usize
            })
            .collect();
        Indices {
            data: Arc::from(data),
            shape: t.shape().clone(),
        }
    }

    /// The positions as a tensor of the given dtype, with the same shape.
    ///
    /// ```
    /// use nabla::{DType, Indices};
    /// let t = Indices::from_slice(&[1, 3]).to_tensor(DType::F64);
    /// assert_eq!(t.to_vec::<f64>(), vec![1.0, 3.0]);
    /// ```
    pub fn to_tensor(&self, dtype: DType) -> Tensor {
        let v: Vec<f64> = self.data.iter().map(|&i| i as f64).collect();
        Tensor::from_vec(v, self.shape.clone()).to_dtype(dtype)
    }

    /// The shape.
    ///
    /// ```
    /// use nabla::{Indices, Shape};
    /// assert_eq!(Indices::new(vec![0; 6], [2, 3]).shape(), &Shape::from([2, 3]));
    /// ```
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The dimensions as a slice.
    ///
    /// ```
    /// use nabla::Indices;
    /// assert_eq!(Indices::new(vec![0; 6], [2, 3]).dims(), &[2, 3]);
    /// ```
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    /// Number of dimensions (0 for a single position).
    ///
    /// ```
    /// use nabla::Indices;
    /// assert_eq!((Indices::from_slice(&[1, 2]).rank(), Indices::scalar(1).rank()), (1, 0));
    /// ```
    pub fn rank(&self) -> usize {
        self.shape.rank()
    }

    /// Number of positions (the product of the dimensions), not the size of the first dimension.
    ///
    /// ```
    /// use nabla::Indices;
    /// assert_eq!(Indices::new(vec![0; 6], [2, 3]).len(), 6);
    /// ```
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether there are no positions.
    ///
    /// ```
    /// use nabla::Indices;
    /// assert!(Indices::from(Vec::new()).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The positions in row-major order.
    ///
    /// ```
    /// use nabla::Indices;
    /// assert_eq!(Indices::new(vec![3, 1, 2, 0], [2, 2]).as_slice(), &[3, 1, 2, 0]);
    /// ```
    pub fn as_slice(&self) -> &[usize] {
        &self.data
    }

    /// The positions in row-major order, copied into a `Vec`.
    ///
    /// ```
    /// use nabla::Indices;
    /// assert_eq!(Indices::from_slice(&[2, 0]).to_vec(), vec![2, 0]);
    /// ```
    pub fn to_vec(&self) -> Vec<usize> {
        self.data.to_vec()
    }

    /// Iterates over the positions in row-major order.
    ///
    /// ```
    /// use nabla::Indices;
    /// let n = Indices::from_slice(&[1, 2, 1]).iter().filter(|&&i| i == 1).count();
    /// assert_eq!(n, 2);
    /// ```
    pub fn iter(&self) -> std::slice::Iter<'_, usize> {
        self.data.iter()
    }

    /// The same positions in another shape with as many elements (shares the values).
    ///
    /// # Panics
    /// If the number of elements differs.
    ///
    /// ```
    /// use nabla::Indices;
    /// let i = Indices::from_slice(&[0, 1, 2, 3]).reshape([2, 2]);
    /// assert_eq!(i.dims(), &[2, 2]);
    /// ```
    pub fn reshape(&self, shape: impl Into<Shape>) -> Indices {
        let shape = shape.into();
        if shape.numel() != self.len() {
            panic!(
                "Indices::reshape: cannot reshape {} ({} elements) into {shape} ({} elements)",
                self.shape,
                self.len(),
                shape.numel()
            );
        }
        Indices {
            data: self.data.clone(),
            shape,
        }
    }

    /// The positions as 1-d indices (shares the values).
    ///
    /// ```
    /// use nabla::Indices;
    /// assert_eq!(Indices::new(vec![0; 6], [2, 3]).flatten().dims(), &[6]);
    /// ```
    pub fn flatten(&self) -> Indices {
        self.reshape([self.len()])
    }

    /// The largest position, or `None` when there are none (e.g. to count classes).
    ///
    /// ```
    /// use nabla::Indices;
    /// assert_eq!(Indices::from_slice(&[2, 7, 1]).max(), Some(7));
    /// ```
    pub fn max(&self) -> Option<usize> {
        self.data.iter().copied().max()
    }
}

impl fmt::Debug for Indices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Indices(shape {}, {:?})", self.shape, &self.data[..])
    }
}

impl From<Vec<usize>> for Indices {
    /// 1-d indices that own `data`.
    fn from(data: Vec<usize>) -> Indices {
        let n = data.len();
        Indices {
            data: Arc::from(data),
            shape: Shape::from([n]),
        }
    }
}

impl From<&[usize]> for Indices {
    /// 1-d indices copied from a slice.
    fn from(data: &[usize]) -> Indices {
        Indices::from_slice(data)
    }
}

impl<const N: usize> From<[usize; N]> for Indices {
    /// 1-d indices from an array.
    fn from(data: [usize; N]) -> Indices {
        Indices::from_slice(&data)
    }
}

impl FromIterator<usize> for Indices {
    /// 1-d indices collected from an iterator.
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Indices {
        Indices::from(iter.into_iter().collect::<Vec<usize>>())
    }
}

impl<'a> IntoIterator for &'a Indices {
    type Item = &'a usize;
    type IntoIter = std::slice::Iter<'a, usize>;
    fn into_iter(self) -> Self::IntoIter {
        self.data.iter()
    }
}
