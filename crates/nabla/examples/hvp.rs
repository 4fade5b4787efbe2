//! Hessian-vector products three ways, on the Rosenbrock function in 4 dimensions.
//!
//! 1. `hvp(f, x, v)`: without ever forming the Hessian. By default (`HvpMode::Auto`) it traces `f`
//!    once, as `nabla::compile` does, and runs forward over reverse on the tape, which costs less
//!    than one eager gradient where `f` compiles (rk4-pendulum, BENCHMARKS.md); else, and with
//!    `hvp_with(HvpMode::ForwardOverReverse, ..)`, eager forward over reverse: about 2.9 gradients
//!    in instructions (`bench/examples/hvp_repeat.rs`), 4.9-5.7 in wall time on a quiet host (its
//!    working set is about three times a gradient's); or reverse over reverse;
//! 2. a central finite difference of gradients, `(∇f(x + εv) - ∇f(x - εv)) / 2ε`;
//! 3. the full Hessian as `jacobian` of `grad(f)`, multiplied by `v`.
//!
//! Run it with `cargo run --example hvp`.

use nabla::{Tensor, grad, hvp, jacobian};

/// Rosenbrock: Σᵢ 100 (xᵢ₊₁ - xᵢ²)² + (1 - xᵢ)².
fn rosenbrock(x: &Tensor) -> Tensor {
    let n = x.dims()[0];
    let head = x.narrow(0, 0, n - 1);
    let tail = x.narrow(0, 1, n - 1);
    ((&tail - &head.square()).square() * 100.0 + (1.0 - &head).square()).sum()
}

fn show(name: &str, t: &Tensor) {
    let v: Vec<String> = t
        .to_vec::<f64>()
        .iter()
        .map(|x| format!("{x:10.4}"))
        .collect();
    println!("{name:<28}[{}]", v.join(", "));
}

fn main() {
    let x = Tensor::from_vec(vec![-1.2f64, 1.0, 0.5, 0.8], [4]);
    let v = Tensor::from_vec(vec![1.0f64, -2.0, 0.5, 3.0], [4]);

    // 1. Without forming H (on the tape of a trace by default; `hvp_with` picks the mode).
    let hv = hvp(rosenbrock, &x, &v);

    // 2. Finite differences of the gradient.
    let df = grad(rosenbrock);
    let eps = 1e-5;
    let fd = (df(&(&x + &v * eps)) - df(&(&x - &v * eps))) / (2.0 * eps);

    // 3. The full 4×4 Hessian: the Jacobian of the gradient (reverse over reverse here).
    let h = jacobian(grad(rosenbrock), &x);
    let hv_full = h.matmul(&v);

    show("hvp", &hv);
    show("finite differences", &fd);
    show("jacobian(grad(f)) @ v", &hv_full);
    println!("Hessian:");
    for row in 0..4 {
        show("", &h.select(0, row));
    }

    let err_fd = (&hv - &fd).abs().max().item();
    let err_full = (&hv - &hv_full).abs().max().item();
    println!("max |hvp - fd| = {err_fd:.2e}, max |hvp - H v| = {err_full:.2e}");
    assert!(err_fd < 1e-4 && err_full < 1e-10);
    // The Hessian of a smooth function is symmetric.
    assert!((&h - &h.t()).abs().max().item() < 1e-10);
}

#[cfg(test)]
#[test]
fn runs() {
    main();
}
