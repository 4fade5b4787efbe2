//! A gradient through a loop with a data-dependent branch, checked against finite differences.
//!
//! A ball is thrown upwards and bounces on the floor: a plain Rust loop of Euler steps, with an
//! `if` that fires whenever the height (a value computed in the loop) goes below zero, and an early
//! `return` when the ball comes to rest. `value_and_grad` differentiates the final height with
//! respect to the throw speed and the coefficient of restitution straight through that program.
//!
//! Run it with `cargo run --example grad_control_flow`.

use nabla::{Tensor, grad, value_and_grad};

/// The height of the ball after `steps` steps of `dt`, thrown up at `v0` from height 1, losing a
/// fraction of its speed at each bounce (`restitution` in [0, 1]).
fn final_height(v0: &Tensor, restitution: &Tensor, steps: usize) -> Tensor {
    let dt = 0.01;
    let (mut h, mut v) = (Tensor::scalar(1.0f64), v0.clone());
    let mut bounces = 0;
    for _ in 0..steps {
        v = v - 9.81 * dt;
        h = &h + &(&v * dt);
        if h.item() < 0.0 {
            // a data-dependent branch: reflect the height and the speed
            h = -&h * restitution;
            v = -&v * restitution;
            bounces += 1;
        }
        if bounces > 20 {
            return h; // an early return: the ball has (nearly) stopped
        }
    }
    h
}

/// Central finite difference of `f` at `x` (in f64).
fn finite_difference(f: impl Fn(f64) -> f64, x: f64) -> f64 {
    let eps = 1e-6;
    (f(x + eps) - f(x - eps)) / (2.0 * eps)
}

fn main() {
    let (v0, e) = (3.0, 0.8);
    let steps = 250;
    let (h, g) = value_and_grad(
        |p: &[Tensor]| final_height(&p[0], &p[1], steps),
        &[Tensor::scalar(v0), Tensor::scalar(e)],
    );
    let (dh_dv0, dh_de) = (g[0].item(), g[1].item());

    let fd_v0 = finite_difference(
        |v| final_height(&Tensor::scalar(v), &Tensor::scalar(e), steps).item(),
        v0,
    );
    let fd_e = finite_difference(
        |r| final_height(&Tensor::scalar(v0), &Tensor::scalar(r), steps).item(),
        e,
    );
    println!("height after {steps} steps: {:.6}", h.item());
    println!("d height / d v0:          autodiff {dh_dv0:+.8}   finite differences {fd_v0:+.8}");
    println!("d height / d restitution: autodiff {dh_de:+.8}   finite differences {fd_e:+.8}");
    assert!((dh_dv0 - fd_v0).abs() < 1e-5 * (1.0 + fd_v0.abs()));
    assert!((dh_de - fd_e).abs() < 1e-5 * (1.0 + fd_e.abs()));

    // `grad` turns a function of one tensor into its derivative; it works on any Rust code,
    // here a recursion whose depth depends on the input's value.
    fn halve_until_small(x: &Tensor) -> Tensor {
        if x.item() < 1.0 {
            x.sin()
        } else {
            halve_until_small(&(x * 0.5)) * 2.0
        }
    }
    let d = grad(|x: &Tensor| halve_until_small(x));
    // at x = 5: three halvings, so f(x) = 8 sin(x / 8) and f'(x) = cos(x / 8)
    let x = Tensor::scalar(5.0f64);
    println!(
        "recursion: f'(5) = {:.8} (exact {:.8})",
        d(&x).item(),
        (5.0f64 / 8.0).cos()
    );
    assert!((d(&x).item() - (5.0f64 / 8.0).cos()).abs() < 1e-12);
}

#[cfg(test)]
#[test]
fn runs() {
    main();
}
