//! Matrix products: `matmul` with NumPy semantics (1-d operands, batch dimensions that broadcast),
//! `dot`, `outer`. The CPU kernel (`backend/cpu/matmul.rs`) is the `gemm`
//! crate, called with the operands' own strides so transposed views are never copied.

use crate::autodiff::{InputGrads, Op, record};
use crate::backend;
use crate::tensor::shape::{Shape, broadcast_shapes};
use crate::tensor::{Tensor, same_dtype};
use smallvec::smallvec;

struct MatMul;

impl Op for MatMul {
    fn name(&self) -> &str {
        "matmul"
    }
    fn lower(&self) -> Option<crate::compile::Prim> {
        Some(crate::compile::Prim::MatMul(0, 0, 0))
    }
    fn vjp(&self, i: &[Tensor], _: &Tensor, g: &Tensor, needs: &[bool]) -> InputGrads {
        let (a, b) = (&i[0], &i[1]);
        // Each gradient is produced in its input's memory layout: for an operand that is a
        // transposed view (`x.matmul(&w.t())`, as in a linear layer), (gᵀa)ᵀ instead of aᵀg, so the
        // transpose's own rule hands back a contiguous gradient (same cost, no strided copy later).
        let transposed = |x: &Tensor| x.rank() >= 2 && !x.is_contiguous() && x.t().is_contiguous();
        let ga = || {
            if transposed(a) {
                b.matmul(&g.t()).t().sum_to(a.shape())
            } else {
                g.matmul(&b.t()).sum_to(a.shape())
            }
        };
        let gb = || {
            if transposed(b) {
                g.t().matmul(a).t().sum_to(b.shape())
            } else {
                a.t().matmul(g).sum_to(b.shape())
            }
        };
        smallvec![needs[0].then(ga), needs[1].then(gb)]
    }
    fn jvp(&self, i: &[Tensor], t: &[Option<Tensor>]) -> Tensor {
        let (a, b) = (&i[0], &i[1]);
        match (&t[0], &t[1]) {
            (Some(ta), Some(tb)) => ta.matmul(b) + a.matmul(tb),
            (Some(ta), None) => ta.matmul(b),
            (None, Some(tb)) => a.matmul(tb),
            (None, None) => unreachable!(),
        }
    }
}

impl Tensor {
    /// Matrix product with NumPy semantics: 2-d @ 2-d is the matrix product; leading dimensions are
    /// batch dimensions and broadcast; a 1-d operand is a vector (a row on the left, a column on the
    /// right) whose dimension is removed from the result.
    ///
    /// # Panics
    /// When the inner dimensions differ, e.g. `matmul: [2, 3] @ [4, 5]: inner dimensions 3 and 4 differ`.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]);
    /// let v = Tensor::from_vec(vec![1.0f32, 1.0], [2]);
    /// assert_eq!(a.matmul(&v).to_vec::<f32>(), vec![3.0, 7.0]);
    /// assert_eq!(a.matmul(&a).to_vec::<f32>(), vec![7.0, 10.0, 15.0, 22.0]);
    /// ```
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        same_dtype("matmul", self, other);
        if self.rank() == 0 || other.rank() == 0 {
            panic!(
                "matmul: {} @ {}: operands must have at least one dimension",
                self.shape(),
                other.shape()
            );
        }
        let a = if self.rank() == 1 {
            self.unsqueeze(0)
        } else {
            self.clone()
        };
        let b = if other.rank() == 1 {
            other.unsqueeze(-1)
        } else {
            other.clone()
        };
        let (ra, rb) = (a.rank(), b.rank());
        let (m, k, k2, n) = (
            a.dims()[ra - 2],
            a.dims()[ra - 1],
            b.dims()[rb - 2],
            b.dims()[rb - 1],
        );
        if k != k2 {
            panic!(
                "matmul: {} @ {}: inner dimensions {k} and {k2} differ",
                self.shape(),
                other.shape()
            );
        }
        let batch = {
            let sa = Shape::from(&a.dims()[..ra - 2]);
            let sb = Shape::from(&b.dims()[..rb - 2]);
            if sa == sb {
                sa
            } else {
                broadcast_shapes(
                    &format!(
                        "matmul: {} @ {}: batch dimensions",
                        self.shape(),
                        other.shape()
                    ),
                    &sa,
                    &sb,
                )
            }
        };
        let out = backend::matmul(&a, &b, &batch, [m, k, n]);
        let out = record(out, MatMul, &[&a, &b]);
        match (self.rank(), other.rank()) {
            (1, 1) => out.reshape(()),
            (1, _) => out.squeeze(-2),
            (_, 1) => out.squeeze(-1),
            _ => out,
        }
    }

    /// Inner product of two vectors of one length.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], [3]);
    /// assert_eq!(a.dot(&a).item(), 14.0);
    /// ```
    pub fn dot(&self, other: &Tensor) -> Tensor {
        if self.rank() != 1 || other.rank() != 1 || self.numel() != other.numel() {
            panic!(
                "dot: needs two vectors of one length, got {} and {}",
                self.shape(),
                other.shape()
            );
        }
        self.matmul(other)
    }

    /// Outer product of two vectors: `out[i, j] = a[i] * b[j]`.
    ///
    /// ```
    /// use nabla::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0], [2]);
    /// let b = Tensor::from_vec(vec![3.0f32, 4.0, 5.0], [3]);
    /// let o = a.outer(&b);
    /// assert_eq!(o.dims(), &[2, 3]);
    /// assert_eq!(o.to_vec::<f32>(), vec![3.0, 4.0, 5.0, 6.0, 8.0, 10.0]);
    /// ```
    pub fn outer(&self, other: &Tensor) -> Tensor {
        if self.rank() != 1 || other.rank() != 1 {
            panic!(
                "outer: needs two vectors, got {} and {}",
                self.shape(),
                other.shape()
            );
        }
        self.unsqueeze(1) * other.unsqueeze(0)
    }
}

#[cfg(test)]
mod tests {
    use crate::{DType, Tensor};

    fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for x in 0..k {
                    c[i * n + j] += a[i * k + x] * b[x * n + j];
                }
            }
        }
        c
    }

    #[test]
    fn large_and_transposed_match_naive() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for &(m, k, n) in &[(3, 4, 5), (67, 45, 33), (128, 130, 129)] {
            let a = Tensor::randn([m, k], DType::F64, &mut rng);
            let bt = Tensor::randn([n, k], DType::F64, &mut rng);
            let b = bt.t(); // strided view
            let c = a.matmul(&b);
            let want = naive(&a.to_vec(), &b.to_vec(), m, k, n);
            for (x, y) in c.to_vec::<f64>().iter().zip(&want) {
                assert!((x - y).abs() < 1e-9, "{m}x{k}x{n}");
            }
        }
    }

    #[test]
    fn batch_broadcasting() {
        let a = Tensor::ones([2, 1, 3, 4], DType::F32);
        let b = Tensor::ones([5, 4, 2], DType::F32);
        let c = a.matmul(&b);
        assert_eq!(c.dims(), &[2, 5, 3, 2]);
        assert!(c.to_vec::<f32>().iter().all(|&v| v == 4.0));
    }

    #[test]
    #[should_panic(expected = "matmul: [2, 3] @ [4, 5]: inner dimensions 3 and 4 differ")]
    fn inner_mismatch_message() {
        let _ = Tensor::zeros([2, 3], DType::F32).matmul(&Tensor::zeros([4, 5], DType::F32));
    }
}
