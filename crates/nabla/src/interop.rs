//! Conversions between [`Tensor`] and [`ndarray`] arrays (cargo feature `ndarray`).
//!
//! ```
//! use nabla::{grad, Tensor};
//! use ndarray::{ArrayD, array};
//!
//! // ndarray -> nabla: any f32/f64 array or view, of any dimension
//! let a = array![[1.0f64, 2.0], [3.0, 4.0]];
//! let x = Tensor::from_ndarray(&a);
//! assert_eq!(x.dims(), &[2, 2]);
//! let x2: Tensor = a.clone().into_dyn().into(); // From<ArrayD<f64>>, no copy
//!
//! // differentiate, then nabla -> ndarray
//! let g = grad(|x: &Tensor| (x * x).sum())(&x2);
//! let g: ArrayD<f64> = g.to_ndarray::<f64>();
//! assert_eq!(g, (&a * 2.0).into_dyn());
//! assert_eq!(g.shape(), &[2, 2]);
//! ```
//!
//! Conversions copy the values (except `From<Array>` of a standard-layout array, which takes its
//! buffer), and carry no graph: a converted tensor is a constant, which you can make a variable
//! with [`Tensor::variable`] or pass to [`grad`](crate::grad).

use crate::{Element, Tensor};
use ndarray::{Array, ArrayBase, ArrayD, ArrayView, Data, Dimension, IxDyn};

impl Tensor {
    /// A tensor with the shape and values of `array` (any `f32` or `f64` array or view, of any
    /// dimension; its dtype follows the element type). Views with any strides are accepted; the
    /// values are copied in row-major order.
    ///
    /// ```
    /// use nabla::{DType, Tensor};
    /// let a = ndarray::Array::from_shape_vec((2, 3), vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    /// let t = Tensor::from_ndarray(&a.t()); // a transposed view
    /// assert_eq!((t.dims(), t.dtype()), (&[3, 2][..], DType::F32));
    /// assert_eq!(t.to_vec::<f32>(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    /// ```
    pub fn from_ndarray<T, S, D>(array: &ArrayBase<S, D>) -> Tensor
    where
        T: Element,
        S: Data<Elem = T>,
        D: Dimension,
    {
        let data: Vec<T> = match array.as_slice() {
            Some(s) => s.to_vec(),
            None => array.iter().copied().collect(),
        };
        Tensor::from_vec(data, array.shape())
    }

    /// The values as an [`ndarray::ArrayD`] of `T` (`f32` or `f64`, converted if the tensor's dtype
    /// differs), in the tensor's shape. The graph is not carried over.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]);
    /// let a = t.to_ndarray::<f64>();
    /// assert_eq!(a.shape(), &[2, 3]);
    /// assert_eq!(a[[1, 0]], 4.0);
    /// // a 0-d tensor becomes a 0-d array
    /// assert_eq!(Tensor::scalar(2.5f64).to_ndarray::<f64>().ndim(), 0);
    /// ```
    pub fn to_ndarray<T: Element>(&self) -> ArrayD<T> {
        ArrayD::from_shape_vec(IxDyn(self.dims()), self.to_vec::<T>())
            .expect("a tensor's element count matches its shape")
    }
}

/// Takes the array's buffer without copying when it is in standard (row-major, contiguous) layout;
/// copies it otherwise.
impl<T: Element, D: Dimension> From<Array<T, D>> for Tensor {
    fn from(array: Array<T, D>) -> Tensor {
        if !array.is_standard_layout() {
            return Tensor::from_ndarray(&array);
        }
        let shape = array.shape().to_vec();
        let n = array.len();
        let (data, offset) = array.into_raw_vec_and_offset();
        if offset.unwrap_or(0) == 0 && data.len() == n {
            Tensor::from_vec(data, shape)
        } else {
            let start = offset.unwrap_or(0);
            Tensor::from_vec(data[start..start + n].to_vec(), shape)
        }
    }
}

/// Copies the view's values in row-major order.
impl<T: Element, D: Dimension> From<ArrayView<'_, T, D>> for Tensor {
    fn from(view: ArrayView<'_, T, D>) -> Tensor {
        Tensor::from_ndarray(&view)
    }
}

#[cfg(test)]
mod tests {
    use crate::{DType, Tensor, grad};
    use ndarray::{Array, ArrayD, ArrayViewD, IxDyn, ShapeBuilder, s};

    #[test]
    fn round_trip_f32_and_f64_any_rank() {
        for dims in [vec![], vec![0], vec![3], vec![2, 3], vec![2, 1, 4]] {
            let n: usize = dims.iter().product();
            let a64 =
                ArrayD::from_shape_vec(IxDyn(&dims), (0..n).map(|i| i as f64 * 0.5).collect())
                    .unwrap();
            let t = Tensor::from(a64.clone());
            assert_eq!((t.dims(), t.dtype()), (&dims[..], DType::F64));
            assert_eq!(t.to_ndarray::<f64>(), a64);
            let a32 = a64.mapv(|v| v as f32);
            let t = Tensor::from(a32.clone());
            assert_eq!(t.dtype(), DType::F32);
            assert_eq!(t.to_ndarray::<f32>(), a32);
            // conversion between element types on the way out
            assert_eq!(t.to_ndarray::<f64>(), a64);
        }
    }

    #[test]
    fn views_with_strides_and_offsets() {
        let a = Array::from_shape_fn((4, 5), |(i, j)| (10 * i + j) as f64);
        // a sliced, strided view with an offset
        let v = a.slice(s![1..4;2, 1..;2]);
        let t = Tensor::from(v);
        assert_eq!(t.dims(), &[2, 2]);
        assert_eq!(t.to_vec::<f64>(), vec![11.0, 13.0, 31.0, 33.0]);
        // a transposed view, and a dynamic-dimension view
        let t = Tensor::from_ndarray(&a.t());
        assert_eq!(t.to_ndarray::<f64>(), a.t().into_dyn());
        let dynv: ArrayViewD<'_, f64> = a.view().into_dyn();
        assert_eq!(Tensor::from(dynv).to_ndarray::<f64>(), a.clone().into_dyn());
    }

    #[test]
    fn owned_arrays_that_are_not_standard_layout() {
        // Fortran order, and an owned array whose data does not start at the buffer's start
        let f = Array::from_shape_vec((2, 3).f(), vec![1.0f32, 4.0, 2.0, 5.0, 3.0, 6.0]).unwrap();
        assert_eq!(
            Tensor::from(f).to_vec::<f32>(),
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        );
        let mut b = Array::from_shape_fn((3, 2), |(i, j)| (2 * i + j) as f64);
        b.slice_collapse(s![1.., ..]);
        assert_eq!(Tensor::from(b).to_vec::<f64>(), vec![2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn converted_tensors_differentiate_and_results_convert_back() {
        let a = Array::from_shape_vec((3,), vec![1.0f64, -2.0, 0.5]).unwrap();
        let g = grad(|x: &Tensor| (x * x * x).sum())(&Tensor::from(a.clone()));
        assert_eq!(g.to_ndarray::<f64>(), (a.mapv(|v| 3.0 * v * v)).into_dyn());
        // a tracked tensor converts by value
        let w = Tensor::from(a.clone()).variable();
        assert_eq!((&w * 2.0).to_ndarray::<f64>(), (&a * 2.0).into_dyn());
    }
}
