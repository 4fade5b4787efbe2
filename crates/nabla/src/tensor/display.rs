//! `Debug` and `Display` for tensors, in the style of PyTorch: nested brackets, long dims elided.

use super::Tensor;
use std::fmt;

const EDGE: usize = 3;
const ELIDE_ABOVE: usize = 1000;

fn write_rec(
    f: &mut fmt::Formatter<'_>,
    vals: &[f64],
    dims: &[usize],
    elide: bool,
    depth: usize,
) -> fmt::Result {
    if dims.is_empty() {
        return write!(f, "{:.4}", vals[0]);
    }
    let n = dims[0];
    let inner: usize = dims[1..].iter().product();
    f.write_str("[")?;
    let mut i = 0;
    while i < n {
        if elide && n > 2 * EDGE && i == EDGE {
            f.write_str("...")?;
            i = n - EDGE;
            if dims.len() > 1 {
                write!(f, ",\n{:width$}", "", width = depth + 1)?;
            } else {
                f.write_str(", ")?;
            }
            continue;
        }
        write_rec(
            f,
            &vals[i * inner..(i + 1) * inner],
            &dims[1..],
            elide,
            depth + 1,
        )?;
        if i + 1 < n {
            if dims.len() > 1 {
                write!(f, ",\n{:width$}", "", width = depth + 1)?;
            } else {
                f.write_str(", ")?;
            }
        }
        i += 1;
    }
    f.write_str("]")
}

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vals = self.to_vec::<f64>();
        write_rec(f, &vals, self.dims(), self.numel() > ELIDE_ABOVE, 0)
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor(")?;
        fmt::Display::fmt(self, f)?;
        write!(f, ", shape={}, dtype={}", self.shape(), self.dtype())?;
        if self.requires_grad() {
            write!(f, ", tracked")?;
        }
        write!(f, ")")
    }
}
