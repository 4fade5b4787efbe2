//! What the compiled-path tests share: comparing compiled results with eager ones to 1e-12, and
//! the RK4 pendulum program.

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

/// `steps` RK4 steps of the damped pendulum with parameters `(b, g, l)` from `(th, om)`.
pub fn rk4_pendulum(
    p: &[Tensor],
    mut th: Tensor,
    mut om: Tensor,
    steps: usize,
) -> (Tensor, Tensor) {
    let (b, g, l) = (&p[0], &p[1], &p[2]);
    let f = |th: &Tensor, om: &Tensor| (om.clone(), -(g / l) * th.sin() - b * om);
    let (h, dt) = (0.005, 0.01);
    for _ in 0..steps {
        let (k1t, k1o) = f(&th, &om);
        let (k2t, k2o) = f(&(&th + &k1t * h), &(&om + &k1o * h));
        let (k3t, k3o) = f(&(&th + &k2t * h), &(&om + &k2o * h));
        let (k4t, k4o) = f(&(&th + &k3t * dt), &(&om + &k3o * dt));
        th = &th + (&k1t + &k2t * 2.0 + &k3t * 2.0 + &k4t) * (dt / 6.0);
        om = &om + (&k1o + &k2o * 2.0 + &k3o * 2.0 + &k4o) * (dt / 6.0);
    }
    (th, om)
}
