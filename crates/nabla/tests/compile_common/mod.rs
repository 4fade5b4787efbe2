//! What the compiled-path tests share: comparing compiled results with eager ones to 1e-12.

#![allow(dead_code)]

use nabla::Tensor;

/// Equal to 1e-12, relative to the larger magnitude (absolute near zero).
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * (1.0 + a.abs().max(b.abs()))
}

/// Same shape and every element [`close`]; `what` names the value in the panic.
pub fn assert_close(what: &str, c: &Tensor, e: &Tensor) {
    assert_eq!(c.shape(), e.shape(), "{what}: shapes");
    for (i, (x, y)) in c.to_vec::<f64>().iter().zip(e.to_vec::<f64>()).enumerate() {
        assert!(close(*x, y), "{what}[{i}]: compiled {x} vs eager {y}");
    }
}
