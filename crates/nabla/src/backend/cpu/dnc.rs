//! CPU kernel of the DNC's temporal link matrix update.

use crate::dtype::Element;
use crate::tensor::Tensor;

/// `L[b,i,j] = (1 - w[b,i] - w[b,j]) L_prev[b,i,j] + w[b,i] p[b,j]` off the diagonal, 0 on it.
pub(crate) fn link_matrix<T: Element>(
    prev: &Tensor,
    write: &Tensor,
    prev_precedence: &Tensor,
) -> Tensor {
    let d = prev.dims();
    let (b, n) = (d[0], d[1]);
    let (l, w, p) = (
        prev.contiguous_data::<T>(),
        write.contiguous_data::<T>(),
        prev_precedence.contiguous_data::<T>(),
    );
    let data = crate::tensor::storage::build_overwrite(b * n * n, |o: &mut [T]| {
        let one = <T as num_traits::One>::one();
        let zero = <T as num_traits::Zero>::zero();
        for bi in 0..b {
            let (w, p) = (&w[bi * n..(bi + 1) * n], &p[bi * n..(bi + 1) * n]);
            for i in 0..n {
                let row = (bi * n + i) * n;
                let (o, l) = (&mut o[row..row + n], &l[row..row + n]);
                let a = one - w[i];
                for j in 0..n {
                    o[j] = (a - w[j]) * l[j] + w[i] * p[j];
                }
                o[i] = zero;
            }
        }
    });
    Tensor::from_arc(data, crate::Shape::from(vec![b, n, n]))
}
