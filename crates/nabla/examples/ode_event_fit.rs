//! Fits the launch speed `v` and the drag coefficient `c` of a thrown ball from where it landed.
//!
//! The ball flies under gravity and quadratic drag, `r'' = -g ŷ - c |r'| r'`, from 1 m above the
//! ground. The adaptive solver (Tsit5) stops it with a terminal event when its height falls through
//! zero; the landing distance `x(t*)` is differentiable in `v` and `c` through the event time
//! (implicit-function rule) and the final step. Two throws, at 30° and 60°, were observed to land
//! at known distances; Gauss–Newton, using the gradients of both landing distances, recovers the
//! speed and drag that produced them.
//!
//! Run it with `cargo run --release --example ode_event_fit`.

use nabla::Tensor;
use nabla::ode::{Direction, Event, Options, solve_with_events};
use nabla::value_and_grad;

const G: f64 = 9.81;

/// Where a ball thrown at `angle` (radians) with speed `v` and drag `c` lands.
fn landing_distance(v: &Tensor, c: &Tensor, angle: f64) -> Tensor {
    let c = c.clone();
    // state (x, y, vx, vy)
    let f = move |_t: &Tensor, s: &Tensor| {
        let vel = s.narrow(0, 2, 2);
        let speed = (&vel * &vel).sum().sqrt();
        let drag = &vel * &(&c * &speed);
        let gravity = Tensor::from_vec(vec![0.0, G], [2]);
        Tensor::concat(&[vel.clone(), -(drag + gravity)], 0)
    };
    let start = Tensor::from_vec(vec![0.0, 1.0], [2]);
    let dir = Tensor::from_vec(vec![angle.cos(), angle.sin()], [2]);
    let y0 = Tensor::concat(&[start, &dir * v], 0);
    let ground = Event::new(|_t: &Tensor, s: &Tensor| s.select(0, 1)).direction(Direction::Falling);
    let opts = Options::default().rtol(1e-8).atol(1e-10);
    let sol = solve_with_events(f, &Tensor::scalar(0.0f64), 60.0, &y0, &[ground], &opts)
        .expect("the ball lands");
    assert_eq!(sol.event, Some(0), "the ball must land before t = 60 s");
    sol.y.select(0, 0)
}

fn main() {
    let angles = [30f64.to_radians(), 60f64.to_radians()];
    let (v_true, c_true) = (18.0, 0.03);
    let observed: Vec<f64> = angles
        .iter()
        .map(|&a| landing_distance(&Tensor::scalar(v_true), &Tensor::scalar(c_true), a).item())
        .collect();
    println!(
        "observed landings: {:.4} m at 30°, {:.4} m at 60°",
        observed[0], observed[1]
    );

    // Gauss–Newton on the two residuals r_i = x_i(v, c) - observed_i.
    let (mut v, mut c) = (12.0f64, 0.0f64);
    for it in 0..12 {
        let mut r = [0.0; 2];
        let mut jac = [[0.0; 2]; 2];
        for (i, &a) in angles.iter().enumerate() {
            let (x, g) = value_and_grad(
                |p: &[Tensor]| landing_distance(&p[0], &p[1], a),
                &[Tensor::scalar(v), Tensor::scalar(c)],
            );
            r[i] = x.item() - observed[i];
            jac[i] = [g[0].item(), g[1].item()];
        }
        println!(
            "iteration {it:2}: v = {v:.6} m/s, c = {c:.6} 1/m, residuals {:.2e} {:.2e}",
            r[0], r[1]
        );
        if r[0].abs().max(r[1].abs()) < 1e-9 {
            break;
        }
        // solve J d = -r (2x2)
        let det = jac[0][0] * jac[1][1] - jac[0][1] * jac[1][0];
        v -= (jac[1][1] * r[0] - jac[0][1] * r[1]) / det;
        c -= (jac[0][0] * r[1] - jac[1][0] * r[0]) / det;
    }
    println!("true values:  v = {v_true:.6} m/s, c = {c_true:.6} 1/m");
    assert!(
        (v - v_true).abs() < 1e-6 && (c - c_true).abs() < 1e-8,
        "v = {v}, c = {c}"
    );
}

#[cfg(test)]
#[test]
fn runs() {
    main();
}
