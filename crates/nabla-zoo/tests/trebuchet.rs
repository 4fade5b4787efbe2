//! The trebuchet simulator: its physics (energy, the ground constraint, the reaction at rest), the
//! gradient of each phase's step and of a whole shot against central finite differences (f64).

use nabla::Tensor;
use nabla::ode::{Direction, Event, Method, Options, solve, solve_with_events};
use nabla::testing::{GradCheck, check_grad_with};
use nabla_zoo::sim::trebuchet::{
    Design, SwingState, flight_rhs, ground_reaction, projectile, release_gap, shoot, shot_options,
    swing_energy, swing_rhs,
};

fn t0() -> Tensor {
    Tensor::scalar(0.0f64)
}

fn rest(d: &Design) -> Tensor {
    Tensor::from_vec(d.rest_state().to_vec(), [6])
}

#[test]
fn at_rest_the_ground_carries_the_projectiles_weight() {
    // The sling lies flat, so it pulls horizontally: the ground's reaction is exactly m g.
    let d = Design::reference();
    let n = ground_reaction(&d, &Tensor::scalar(90.0f64), &rest(&d)).item();
    assert!((n - d.projectile_mass * d.gravity).abs() < 1e-12, "{n}");
    let [_, y, _, _] = projectile(&d, &SwingState::from_tensor(&rest(&d)));
    assert!(y.item().abs() < 1e-12);
}

#[test]
fn energy_is_conserved_while_sliding_and_swinging() {
    let d = Design::reference();
    let mass = Tensor::scalar(90.0f64);
    let opts = Options::default().rtol(1e-10).atol(1e-12);
    let e0 = swing_energy(&d, &mass, &rest(&d)).item();
    // Phase 1, sampled, until lift-off: energy constant, projectile on the ground, reaction > 0.
    let lift = Event::new(|_t: &Tensor, y: &Tensor| ground_reaction(&d, &mass, y))
        .direction(Direction::Falling);
    let grid: Vec<f64> = (1..100).map(|i| i as f64 * 0.01).collect();
    let s1 = solve_with_events(
        swing_rhs(d, mass.clone(), true),
        &t0(),
        2.0,
        &rest(&d),
        &[lift],
        &opts.clone().save_at(grid.clone()),
    )
    .unwrap();
    assert_eq!(s1.event, Some(0));
    let t1 = s1.t.item();
    assert!(t1 > 0.05 && t1 < 1.0, "lift-off at {t1}");
    assert!(s1.ys.len() > 5);
    let scale = e0.abs().max(1.0);
    for y in &s1.ys {
        let e = swing_energy(&d, &mass, y).item();
        assert!((e - e0).abs() < 1e-7 * scale, "phase 1 energy {e} vs {e0}");
        let [_, h, _, _] = projectile(&d, &SwingState::from_tensor(y));
        assert!(h.item().abs() < 1e-6, "off the ground by {}", h.item());
        assert!(ground_reaction(&d, &mass, y).item() > 0.0);
    }
    // The counterweight has fallen: kinetic energy came from it.
    let ke = swing_energy(&d, &mass, &s1.y).item()
        - swing_energy(
            &d,
            &mass,
            &(&s1.y * Tensor::from_vec(vec![1.0, 1.0, 1.0, 0.0, 0.0, 0.0], [6])),
        )
        .item();
    assert!(ke > 1.0, "kinetic energy at lift-off {ke}");
    // Phase 2 until release at 45 degrees.
    let angle = Tensor::scalar(45f64.to_radians());
    let release = Event::new(|_t: &Tensor, y: &Tensor| release_gap(&d, &angle, y))
        .direction(Direction::Falling);
    let s2 = solve_with_events(
        swing_rhs(d, mass.clone(), false),
        &t0(),
        4.0,
        &s1.y,
        &[release],
        &opts.clone().save_at(grid),
    )
    .unwrap();
    assert_eq!(s2.event, Some(0));
    for y in s2.ys.iter().chain([&s2.y]) {
        let e = swing_energy(&d, &mass, y).item();
        assert!((e - e0).abs() < 1e-7 * scale, "phase 2 energy {e} vs {e0}");
    }
    let [_, _, vx, vy] = projectile(&d, &SwingState::from_tensor(&s2.y));
    let beta = vy.item().atan2(vx.item()).to_degrees();
    assert!((beta - 45.0).abs() < 1e-6, "released at {beta} degrees");
}

fn one_step_opts() -> Options {
    Options::default().method(Method::Rk4).dt(0.01)
}

fn fd_opts() -> GradCheck {
    GradCheck {
        eps: 1e-6,
        rtol: 1e-5,
        ..GradCheck::default()
    }
}

#[test]
fn each_phase_step_has_the_finite_difference_gradient() {
    let d = Design::reference();
    // A state mid-swing (moving), so every term of the equations matters.
    let y = Tensor::from_vec(vec![3.6, 0.4, -0.3, -4.0, 2.0, -6.0], [6]);
    for on_ground in [true, false] {
        check_grad_with(
            |xs: &[Tensor]| {
                solve(
                    swing_rhs(d, xs[0].clone(), on_ground),
                    &t0(),
                    0.01,
                    &xs[1],
                    &one_step_opts(),
                )
                .unwrap()
                .y
            },
            &[Tensor::scalar(90.0f64), y.clone()],
            &fd_opts(),
        )
        .unwrap_or_else(|e| panic!("phase {}: {e}", if on_ground { 1 } else { 2 }));
    }
    let flight = Tensor::from_vec(vec![-1.0, 4.0, 30.0, 25.0], [4]);
    check_grad_with(
        |xs: &[Tensor]| {
            solve(
                flight_rhs(d, xs[0].clone()),
                &t0(),
                0.01,
                &xs[1],
                &one_step_opts(),
            )
            .unwrap()
            .y
        },
        &[Tensor::scalar(-3.0f64), flight],
        &fd_opts(),
    )
    .unwrap();
    // The event functions too.
    check_grad_with(
        |xs: &[Tensor]| ground_reaction(&d, &xs[0], &xs[1]),
        &[Tensor::scalar(90.0f64), y.clone()],
        &fd_opts(),
    )
    .unwrap();
    check_grad_with(
        |xs: &[Tensor]| release_gap(&d, &xs[0], &xs[1]),
        &[Tensor::scalar(0.7f64), y],
        &fd_opts(),
    )
    .unwrap();
}

#[test]
fn a_shots_distance_has_the_finite_difference_gradient() {
    // Tight tolerances, so that finite differences across step-size changes stay small.
    let d = Design::reference();
    let opts = shot_options(1e-10, 1e-12);
    check_grad_with(
        |xs: &[Tensor]| {
            shoot(&d, &xs[0], &xs[1], &xs[2], &opts, 0.0)
                .unwrap()
                .distance
        },
        &[
            Tensor::scalar(90.0f64),
            Tensor::scalar(45f64.to_radians()),
            Tensor::scalar(2.0f64),
        ],
        &GradCheck {
            eps: 1e-4,
            rtol: 1e-4,
            ..GradCheck::default()
        },
    )
    .unwrap();
}

#[test]
fn the_reference_shot_lands_where_an_independent_solver_puts_it() {
    // 78.6824 m: the same equations integrated by SciPy's RK45 at rtol = atol = 1e-10 with its own
    // event location (a prototype written while deriving them).
    let d = Design::reference();
    let s = shoot(
        &d,
        &Tensor::scalar(90.0f64),
        &Tensor::scalar(45f64.to_radians()),
        &Tensor::scalar(0.0f64),
        &shot_options(1e-9, 1e-11),
        0.05,
    )
    .unwrap();
    let x = s.distance.item();
    assert!((x - 78.6824).abs() < 1e-3, "{x}");
    // The path starts at rest on the ground and ends at the landing point.
    assert!(s.path.len() > 20);
    assert!(s.path[0].1.abs() < 1e-9);
    assert_eq!(*s.path.last().unwrap(), (x, 0.0));
    // More mass, farther; more tailwind, farther.
    let at = |m: f64, w: f64| {
        shoot(
            &d,
            &Tensor::scalar(m),
            &Tensor::scalar(45f64.to_radians()),
            &Tensor::scalar(w),
            &shot_options(1e-8, 1e-10),
            0.0,
        )
        .unwrap()
        .distance
        .item()
    };
    assert!(at(120.0, 0.0) > x && at(90.0, 3.0) > x && at(90.0, -3.0) < x);
}
