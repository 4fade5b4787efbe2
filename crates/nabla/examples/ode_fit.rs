//! Fits the parameters of an ODE through its solver: the damping `b` and length `L` of a damped
//! pendulum, `θ'' = -(g/L) sin θ - b θ'`, recovered from an observed trajectory.
//!
//! The simulator is a plain RK4 loop over 0-d tensors. `value_and_grad` differentiates the
//! mismatch between simulated and observed angles with respect to `b` and `L` through all the
//! steps, and gradient descent moves them towards the values that produced the observations.
//!
//! Run it with `cargo run --release --example ode_fit`.

use nabla::{Tensor, value_and_grad};

const G: f64 = 9.81;
const DT: f64 = 0.02;
const STEPS: usize = 100; // 2 seconds

/// The right-hand side: (θ, ω)' = (ω, -(g/L) sin θ - b ω).
fn rhs(theta: &Tensor, omega: &Tensor, b: &Tensor, l: &Tensor) -> (Tensor, Tensor) {
    let accel = -(G / l) * theta.sin() - b * omega;
    (omega.clone(), accel)
}

/// The angle at every step, from θ = 1, ω = 0, by the classic Runge-Kutta method.
fn simulate(b: &Tensor, l: &Tensor) -> Vec<Tensor> {
    let (mut th, mut om) = (Tensor::scalar(1.0f64), Tensor::scalar(0.0f64));
    let mut out = Vec::with_capacity(STEPS);
    for _ in 0..STEPS {
        let (k1t, k1o) = rhs(&th, &om, b, l);
        let (k2t, k2o) = rhs(&(&th + &k1t * (DT / 2.0)), &(&om + &k1o * (DT / 2.0)), b, l);
        let (k3t, k3o) = rhs(&(&th + &k2t * (DT / 2.0)), &(&om + &k2o * (DT / 2.0)), b, l);
        let (k4t, k4o) = rhs(&(&th + &k3t * DT), &(&om + &k3o * DT), b, l);
        th = &th + (k1t + k2t * 2.0 + k3t * 2.0 + k4t) * (DT / 6.0);
        om = &om + (k1o + k2o * 2.0 + k3o * 2.0 + k4o) * (DT / 6.0);
        out.push(th.clone());
    }
    out
}

/// Mean squared difference between the simulated and observed angles.
fn loss(b: &Tensor, l: &Tensor, observed: &[f64]) -> Tensor {
    let sim = Tensor::stack(&simulate(b, l), 0);
    (sim - Tensor::from_slice(observed, [STEPS]))
        .square()
        .mean()
}

fn main() {
    // "Observations": the trajectory of a pendulum with b = 0.3, L = 1.5.
    let (b_true, l_true) = (0.3, 1.5);
    let observed: Vec<f64> = simulate(&Tensor::scalar(b_true), &Tensor::scalar(l_true))
        .iter()
        .map(|t| t.item())
        .collect();

    // Start from a wrong guess and descend the gradient.
    let (mut b, mut l) = (Tensor::scalar(0.1f64), Tensor::scalar(1.0f64));
    let lr = [0.5, 2.0]; // one step size per parameter
    for step in 0..=100 {
        let (value, g) = value_and_grad(
            |p: &[Tensor]| loss(&p[0], &p[1], &observed),
            &[b.clone(), l.clone()],
        );
        if step % 20 == 0 {
            println!(
                "step {step:3}: loss {:.3e}   b = {:.5}   L = {:.5}",
                value.item(),
                b.item(),
                l.item()
            );
        }
        b = &b - &g[0] * lr[0];
        l = &l - &g[1] * lr[1];
    }
    println!("true values:            b = {b_true:.5}   L = {l_true:.5}");
    assert!((b.item() - b_true).abs() < 1e-3 && (l.item() - l_true).abs() < 1e-3);
}

#[cfg(test)]
#[test]
fn runs() {
    main();
}
