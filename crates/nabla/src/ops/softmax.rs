//! Softmax, log-softmax and cumulative sums along one axis.

use crate::autodiff::{InputGrads, Op, record};
use crate::backend::{self, LaneOp};
use crate::tensor::Tensor;
#[allow(unused_imports)]
use crate::tensor::axes::{Axis, AxisSet};
use crate::tensor::shape::norm_axis;
use smallvec::smallvec;

struct Softmax {
    axis: isize,
}

impl Op for Softmax {
    fn name(&self) -> &str {
        "softmax"
    }
    fn vjp(&self, _: &[Tensor], y: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
        let gy = g * y;
        smallvec![Some(&gy - &(y * &gy.sum_axes([self.axis], true)))]
    }
    fn jvp(&self, i: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        let y = i[0].softmax(self.axis);
        let ty = t[0].as_ref().expect("tangent") * &y;
        &ty - &(&y * &ty.sum_axes([self.axis], true))
    }
}

struct LogSoftmax {
    axis: isize,
}

impl Op for LogSoftmax {
    fn name(&self) -> &str {
        "log_softmax"
    }
    fn vjp(&self, _: &[Tensor], y: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
        smallvec![Some(g - &(y.exp() * g.sum_axes([self.axis], true)))]
    }
    fn jvp(&self, i: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        let t = t[0].as_ref().expect("tangent");
        let p = i[0].softmax(self.axis);
        t - &(&p * t).sum_axes([self.axis], true)
    }
}

struct Cumsum {
    axis: isize,
    reverse: bool,
}

impl Op for Cumsum {
    fn name(&self) -> &str {
        "cumsum"
    }
    fn vjp(&self, _: &[Tensor], _: &Tensor, g: &Tensor, _: &[bool]) -> InputGrads {
        smallvec![Some(g.cumsum_dir(self.axis, !self.reverse))]
    }
    fn jvp(&self, _: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        t[0].as_ref()
            .expect("tangent")
            .cumsum_dir(self.axis, self.reverse)
    }
}

impl Tensor {
    /// `exp(x) / Σ exp(x)` along `axis`, computed stably.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let p = Tensor::from_vec(vec![1.0f64, 1.0], [2]).softmax(-1);
    /// assert_eq!(p.to_vec::<f64>(), vec![0.5, 0.5]);
    /// ```
    pub fn softmax(&self, axis: impl Axis) -> Tensor {
        let axis = axis.to_isize();
        let a = norm_axis("softmax", axis, self.rank().max(1));
        if self.rank() == 0 {
            return self.reshape([1]).softmax(0).reshape(());
        }
        let out = backend::lanes(LaneOp::Softmax, self, a);
        record(out, Softmax { axis: a as isize }, &[self])
    }

    /// `x - logsumexp(x)` along `axis`: log-probabilities, computed stably.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let l = Tensor::from_vec(vec![0.0f64, 0.0], [2]).log_softmax(0);
    /// assert!((l.to_vec::<f64>()[0] + 2f64.ln()).abs() < 1e-12);
    /// ```
    pub fn log_softmax(&self, axis: impl Axis) -> Tensor {
        let axis = axis.to_isize();
        let a = norm_axis("log_softmax", axis, self.rank().max(1));
        if self.rank() == 0 {
            return self.reshape([1]).log_softmax(0).reshape(());
        }
        let out = backend::lanes(LaneOp::LogSoftmax, self, a);
        record(out, LogSoftmax { axis: a as isize }, &[self])
    }

    /// Running sums along `axis`: `out[i] = x[0] + … + x[i]`.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], [3]);
    /// assert_eq!(x.cumsum(0).to_vec::<f64>(), vec![1.0, 3.0, 6.0]);
    /// ```
    pub fn cumsum(&self, axis: impl Axis) -> Tensor {
        let axis = axis.to_isize();
        self.cumsum_dir(axis, false)
    }

    /// Running sums from the end: `out[i] = x[i] + … + x[n-1]`.
    pub fn cumsum_reverse(&self, axis: impl Axis) -> Tensor {
        let axis = axis.to_isize();
        self.cumsum_dir(axis, true)
    }

    fn cumsum_dir(&self, axis: isize, reverse: bool) -> Tensor {
        // A 0-d tensor is one lane of one element (axis 0 or -1, as in softmax): its own sum.
        let a = norm_axis("cumsum", axis, self.rank().max(1));
        if self.rank() == 0 {
            return self.clone();
        }
        let op = if reverse {
            LaneOp::CumsumReverse
        } else {
            LaneOp::Cumsum
        };
        let out = backend::lanes(op, self, a);
        record(
            out,
            Cumsum {
                axis: a as isize,
                reverse,
            },
            &[self],
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::{Tensor, grad};

    /// Regression: `cumsum` of a 0-d tensor panicked ("axis -1 is out of range for a tensor of
    /// rank 0") although softmax and log_softmax accept axis 0 / -1 there; it is the identity.
    #[test]
    fn cumsum_of_0d_tensor() {
        let x = Tensor::scalar(1.5f64);
        for axis in [0, -1] {
            assert_eq!(x.cumsum(axis).item(), 1.5);
            assert_eq!(x.cumsum_reverse(axis).dims(), &[] as &[usize]);
            let g = grad(|x: &Tensor| x.cumsum(axis).square().sum())(&x);
            assert_eq!(g.item(), 3.0);
        }
    }

    #[test]
    #[should_panic(expected = "cumsum: axis 1 is out of range")]
    fn cumsum_of_0d_tensor_checks_the_axis() {
        let _ = Tensor::scalar(1.5f64).cumsum(1);
    }
}
