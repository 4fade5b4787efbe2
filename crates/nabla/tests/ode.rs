//! `nabla::ode` against analytic solutions and analytic parameter gradients (f64).

use nabla::ode::{Direction, Event, Gradient, Method, OdeError, Options, solve, solve_with_events};
use nabla::testing::{GradCheck, check_grad_with};
use nabla::{Tensor, value_and_grad};
use std::time::Instant;

fn s(v: f64) -> Tensor {
    Tensor::scalar(v)
}

fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!(
        (a - b).abs() <= tol * (1.0 + b.abs()),
        "{what}: got {a}, want {b} (diff {:e})",
        (a - b).abs()
    );
}

/// y' = -k y from (t0, y0) to T; returns y(T).
fn decay(k: &Tensor, t0: &Tensor, y0: &Tensor, t1: f64, opts: &Options) -> Tensor {
    let k = k.clone();
    solve(move |_t, y| -(&k * y), t0, t1, y0, opts).unwrap().y
}

#[test]
fn exponential_decay_value_and_gradients_every_method() {
    let (k, y0, t1) = (0.7f64, 1.3, 2.0);
    let exact = y0 * (-k * t1).exp();
    let cases = [
        (Options::default().rtol(1e-10).atol(1e-12), 1e-8),
        (
            Options::default()
                .method(Method::Dopri5)
                .rtol(1e-10)
                .atol(1e-12),
            1e-8,
        ),
        (Options::default().method(Method::Rk4).dt(0.01), 1e-8),
        (Options::default().method(Method::Midpoint).dt(1e-3), 1e-5),
        (Options::default().method(Method::Euler).dt(1e-4), 1e-3),
    ];
    for (opts, tol) in cases {
        let (v, g) = value_and_grad(
            |p: &[Tensor]| decay(&p[0], &s(0.0), &p[1], t1, &opts),
            &[s(k), s(y0)],
        );
        close(v.item(), exact, tol, "y(T)");
        close(g[0].item(), -t1 * exact, tol, "dy/dk");
        close(g[1].item(), exact / y0, tol, "dy/dy0");
    }
}

#[test]
fn initial_time_is_differentiable() {
    // y(T) = y0 exp(-k (T - t0)): dy/dt0 = k y(T); also through a saved point
    let (k, t0, t1) = (0.9f64, 0.4, 1.5);
    for gradient in [Gradient::Record, Gradient::checkpoint()] {
        for method in [Method::Tsit5, Method::Rk4] {
            let opts = Options::default()
                .method(method)
                .dt(0.01)
                .rtol(1e-10)
                .atol(1e-12)
                .save_at(vec![1.0])
                .gradient(gradient);
            let kk = s(k);
            let f = |p: &[Tensor]| {
                let kk = kk.clone();
                let sol = solve(move |_t, y| -(&kk * y), &p[0], t1, &s(1.0), &opts).unwrap();
                &sol.y + &sol.ys[0]
            };
            let (v, g) = value_and_grad(f, &[s(t0)]);
            let (yt, ys) = ((-k * (t1 - t0)).exp(), (-k * (1.0 - t0)).exp());
            close(v.item(), yt + ys, 1e-8, "value");
            close(g[0].item(), k * (yt + ys), 1e-7, "d/dt0");
        }
    }
}

/// A batch of oscillators x'' = -w^2 x, state [batch, 2] = (x, v), one w per row.
fn oscillators(w: &Tensor, y0: &Tensor, t1: f64, opts: &Options) -> Tensor {
    let w2 = (w * w).reshape([3, 1]);
    let f = move |_t: &Tensor, y: &Tensor| {
        let x = y.narrow(1, 0, 1);
        let v = y.narrow(1, 1, 1);
        Tensor::concat(&[v, -(&w2 * &x)], 1)
    };
    solve(f, &s(0.0), t1, y0, opts).unwrap().y
}

#[test]
fn batched_harmonic_oscillator_and_frequency_gradient() {
    let w = [0.5, 1.0, 2.0];
    let y0 = Tensor::from_vec(vec![1.0, 0.0, 0.5, 1.0, -1.0, 2.0], [3, 2]);
    let t1 = 3.0;
    let opts = Options::default().rtol(1e-10).atol(1e-12);
    let (v, g) = value_and_grad(
        |p: &[Tensor]| oscillators(&p[0], &y0, t1, &opts).narrow(1, 0, 1).sum(),
        &[Tensor::from_vec(w.to_vec(), [3])],
    );
    let y0v = y0.to_vec::<f64>();
    let mut total = 0.0;
    for (i, &wi) in w.iter().enumerate() {
        let (x0, v0) = (y0v[2 * i], y0v[2 * i + 1]);
        total += x0 * (wi * t1).cos() + v0 / wi * (wi * t1).sin();
        let dx_dw = -x0 * t1 * (wi * t1).sin()
            + v0 * (t1 * (wi * t1).cos() / wi - (wi * t1).sin() / (wi * wi));
        close(g[0].to_vec::<f64>()[i], dx_dw, 1e-7, "dx/dw");
    }
    close(v.item(), total, 1e-8, "sum x(T)");
}

/// A body falling from height h under gravity g; the ground event gives the impact time and
/// velocity.
fn fall(h: &Tensor, g: &Tensor, opts: &Options) -> (Tensor, Tensor) {
    let gc = g.clone();
    let f = move |_t: &Tensor, y: &Tensor| Tensor::stack(&[y.select(0, 1), gc.neg()], 0);
    let y0 = Tensor::stack(&[h.clone(), s(0.0)], 0);
    let ground = Event::new(|_t: &Tensor, y: &Tensor| y.select(0, 0)).direction(Direction::Falling);
    let sol = solve_with_events(f, &s(0.0), 100.0, &y0, &[ground], opts).unwrap();
    assert_eq!(sol.event, Some(0));
    (sol.t, sol.y.select(0, 1))
}

#[test]
fn falling_body_impact_time_velocity_and_gradients() {
    let (h, g) = (5.0f64, 9.81);
    let t_star = (2.0 * h / g).sqrt();
    for opts in [
        Options::default(),
        Options::default().gradient(Gradient::checkpoint()),
        Options::default().method(Method::Rk4).dt(0.05),
        Options::default()
            .method(Method::Dopri5)
            .save_at(vec![0.1, 0.2]),
    ] {
        let (t, gt) = value_and_grad(|p: &[Tensor]| fall(&p[0], &p[1], &opts).0, &[s(h), s(g)]);
        close(t.item(), t_star, 1e-9, "t*");
        close(gt[0].item(), 1.0 / (2.0 * g * h).sqrt(), 1e-8, "dt*/dh");
        close(gt[1].item(), -t_star / (2.0 * g), 1e-8, "dt*/dg");
        let (v, gv) = value_and_grad(|p: &[Tensor]| fall(&p[0], &p[1], &opts).1, &[s(h), s(g)]);
        close(v.item(), -(2.0 * g * h).sqrt(), 1e-9, "impact velocity");
        close(gv[0].item(), -(g / (2.0 * h)).sqrt(), 1e-8, "dv/dh");
        close(gv[1].item(), -(h / (2.0 * g)).sqrt(), 1e-8, "dv/dg");
    }
}

#[test]
fn phases_chain_through_event_time_and_state() {
    // fall from h, bounce with restitution e, land again: T2 = t*(1 + 2e)
    let (h, g, e) = (2.0f64, 9.81, 0.6);
    let opts = Options::default();
    let landing = |p: &[Tensor]| {
        let f = |_t: &Tensor, y: &Tensor| Tensor::stack(&[y.select(0, 1), s(-9.81)], 0);
        let ground =
            || Event::new(|_t: &Tensor, y: &Tensor| y.select(0, 0)).direction(Direction::Falling);
        let y0 = Tensor::stack(&[p[0].clone(), s(0.0)], 0);
        let one = solve_with_events(f, &s(0.0), 50.0, &y0, &[ground()], &opts).unwrap();
        let v = one.y.select(0, 1) * -e;
        let y1 = Tensor::stack(&[one.y.select(0, 0), v], 0);
        // the second phase starts on the ground: g = 0 there, and rises first, so only the
        // falling crossing at the next landing fires
        let two = solve_with_events(f, &one.t, 50.0, &y1, &[ground()], &opts).unwrap();
        assert_eq!(two.event, Some(0));
        two.t
    };
    let (t, gr) = value_and_grad(landing, &[s(h)]);
    let t_star = (2.0 * h / g).sqrt();
    close(t.item(), t_star * (1.0 + 2.0 * e), 1e-8, "second landing");
    close(
        gr[0].item(),
        (1.0 + 2.0 * e) / (2.0 * g * h).sqrt(),
        1e-7,
        "d/dh",
    );
}

#[test]
fn non_terminal_events_are_recorded_in_time_order() {
    // x = sin t: rising zeros at 2π, 4π; falling at π, 3π
    let f = |_t: &Tensor, y: &Tensor| Tensor::stack(&[y.select(0, 1), -y.select(0, 0)], 0);
    let y0 = Tensor::from_vec(vec![0.0, 1.0], [2]);
    let x = |_t: &Tensor, y: &Tensor| y.select(0, 0);
    let events = [
        Event::new(x).direction(Direction::Rising).terminal(false),
        Event::new(x).direction(Direction::Falling).terminal(false),
    ];
    let opts = Options::default().rtol(1e-10).atol(1e-12);
    let sol = solve_with_events(f, &s(0.0), 13.0, &y0, &events, &opts).unwrap();
    assert_eq!(sol.event, None);
    let got: Vec<(usize, f64)> = sol.events.iter().map(|e| (e.index, e.t.item())).collect();
    let pi = std::f64::consts::PI;
    let want = [(1, pi), (0, 2.0 * pi), (1, 3.0 * pi), (0, 4.0 * pi)];
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.0, w.0);
        close(g.1, w.1, 1e-9, "event time");
    }
    close(
        sol.events[1].y.select(0, 1).item(),
        1.0,
        1e-8,
        "velocity at 2π",
    );
}

fn convergence_error(method: Method, dt: f64) -> f64 {
    // y' = y cos t, y = exp(sin t)
    let sol = solve(
        |t: &Tensor, y: &Tensor| y * &t.cos(),
        &s(0.0),
        1.0,
        &s(1.0),
        &Options::default().method(method).dt(dt),
    )
    .unwrap();
    (sol.y.item() - 1f64.sin().exp()).abs()
}

#[test]
fn fixed_step_methods_converge_at_their_order() {
    for (method, order) in [(Method::Euler, 1), (Method::Midpoint, 2), (Method::Rk4, 4)] {
        let ratio = convergence_error(method, 0.05) / convergence_error(method, 0.025);
        let want = 2f64.powi(order);
        assert!(
            ratio > 0.85 * want && ratio < 1.2 * want,
            "{method:?}: error ratio {ratio}, want about {want}"
        );
    }
}

/// Lotka–Volterra with parameters (a, b) and initial state: the final state's sum plus a saved
/// value.
fn lotka_volterra(xs: &[Tensor], gradient: Gradient) -> Tensor {
    let p = xs[0].clone();
    let rhs = move |_t: &Tensor, y: &Tensor| {
        let (u, v) = (y.select(0, 0), y.select(0, 1));
        let du = &u * &p.select(0, 0) - &(&u * &v) * &p.select(0, 1);
        let dv = &(&u * &v) * 0.5 - &v;
        Tensor::stack(&[du, dv], 0)
    };
    let opts = Options::default()
        .rtol(1e-11)
        .atol(1e-12)
        .save_at(vec![1.3])
        .gradient(gradient);
    let sol = solve(rhs, &s(0.0), 2.5, &xs[1], &opts).unwrap();
    sol.y.sum() + sol.ys[0].select(0, 0)
}

#[test]
fn adaptive_gradient_matches_finite_differences() {
    let inputs = [
        Tensor::from_vec(vec![1.1, 0.4], [2]),
        Tensor::from_vec(vec![1.0, 0.8], [2]),
    ];
    let check = GradCheck {
        eps: 1e-5,
        rtol: 1e-5,
        atol: 1e-7,
        ..GradCheck::default()
    };
    // reverse and forward mode through every recorded step
    check_grad_with(
        |xs: &[Tensor]| lotka_volterra(xs, Gradient::Record),
        &inputs,
        &check,
    )
    .unwrap();
    // checkpointed segments (reverse mode only)
    let check = GradCheck {
        forward_mode: false,
        ..check
    };
    let f = |xs: &[Tensor]| lotka_volterra(xs, Gradient::Checkpoint { segments: Some(4) });
    check_grad_with(f, &inputs, &check).unwrap();
}

#[test]
fn tighter_rtol_reduces_the_error() {
    let mut prev = (f64::INFINITY, 0);
    for rtol in [1e-3, 1e-5, 1e-7, 1e-9] {
        let opts = Options::default().rtol(rtol).atol(rtol * 1e-3);
        let sol = solve(
            |t: &Tensor, y: &Tensor| y * &t.cos(),
            &s(0.0),
            10.0,
            &s(1.0),
            &opts,
        )
        .unwrap();
        let err = (sol.y.item() - 10f64.sin().exp()).abs();
        assert!(
            err < prev.0 && sol.stats.steps > prev.1,
            "rtol {rtol}: error {err}"
        );
        prev = (err, sol.stats.steps);
    }
}

#[test]
fn dense_output_at_save_times() {
    let times = vec![0.0, 0.1, 0.35, 0.5, 0.77, 2.0, 3.3];
    for method in [Method::Tsit5, Method::Dopri5] {
        let opts = Options::default()
            .method(method)
            .rtol(1e-8)
            .atol(1e-10)
            .save_at(times.clone());
        let sol = solve(
            |t: &Tensor, y: &Tensor| y * &t.cos(),
            &s(0.0),
            3.3,
            &s(1.0),
            &opts,
        )
        .unwrap();
        assert_eq!(sol.ts, times);
        assert!(sol.stats.steps < 60, "{} steps", sol.stats.steps);
        for (t, y) in sol.ts.iter().zip(&sol.ys) {
            close(y.item(), t.sin().exp(), 1e-6, "saved value");
        }
    }
}

#[test]
fn blow_up_and_step_budget_fail_fast_with_typed_errors() {
    // y' = y^2, y(0) = 1 blows up at t = 1
    let start = Instant::now();
    let err = solve(
        |_t, y: &Tensor| y * y,
        &s(0.0),
        2.0,
        &s(1.0),
        &Options::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, OdeError::StepSizeUnderflow { t, .. } | OdeError::NonFinite { t } if (t - 1.0).abs() < 1e-3),
        "{err}"
    );
    let err = solve(
        |_t, y: &Tensor| y * y,
        &s(0.0),
        2.0,
        &s(1.0),
        &Options::default().method(Method::Rk4).dt(0.01),
    )
    .unwrap_err();
    assert!(matches!(err, OdeError::NonFinite { .. }), "{err}");
    let opts = Options::default().max_steps(20);
    let err = solve(
        |t: &Tensor, y: &Tensor| y * &(t * 50.0).cos(),
        &s(0.0),
        100.0,
        &s(1.0),
        &opts,
    )
    .unwrap_err();
    assert_eq!(
        err,
        OdeError::MaxStepsReached {
            t: err_time(&err),
            max_steps: 20
        }
    );
    assert!(start.elapsed().as_secs_f64() < 2.0);
    let err = solve(
        |_t, y: &Tensor| -y,
        &s(0.0),
        1.0,
        &s(1.0),
        &Options::default().method(Method::Rk4),
    )
    .unwrap_err();
    assert!(matches!(err, OdeError::InvalidOptions(_)), "{err}");
    assert!(err.to_string().contains("needs dt"));
}

fn err_time(e: &OdeError) -> f64 {
    match e {
        OdeError::MaxStepsReached { t, .. } => *t,
        _ => f64::NAN,
    }
}

#[test]
fn checkpointed_gradients_equal_recorded_ones() {
    // a damped, driven pendulum with an event and save times; gradients w.r.t. parameters, the
    // initial state and the initial time
    let run = |p: &[Tensor], gradient: Gradient| {
        let q = p[0].clone();
        let f = move |t: &Tensor, y: &Tensor| {
            let (th, om) = (y.select(0, 0), y.select(0, 1));
            let acc = -(th.sin() * &q.select(0, 0)) - &om * &q.select(0, 1) + (t * 0.7).sin() * 0.3;
            Tensor::stack(&[om, acc], 0)
        };
        let ev = Event::new(|t: &Tensor, y: &Tensor| y.select(0, 0) - (t * 0.01) + 0.2)
            .direction(Direction::Falling)
            .terminal(false);
        let opts = Options::default()
            .rtol(1e-9)
            .atol(1e-10)
            .save_at(vec![3.0, 7.5])
            .gradient(gradient);
        let sol = solve_with_events(f, &p[2], 12.0, &p[1], &[ev], &opts).unwrap();
        assert!(sol.stats.steps > 100 && !sol.events.is_empty());
        let ev_sum = sol
            .events
            .iter()
            .fold(s(0.0), |acc, e| acc + &e.t + e.y.sum());
        sol.y.sum() + sol.ys[0].sum() + sol.ys[1].select(0, 1) + ev_sum
    };
    let inputs = [
        Tensor::from_vec(vec![4.0, 0.15], [2]),
        Tensor::from_vec(vec![1.2, 0.0], [2]),
        s(0.3),
    ];
    let (v0, g0) = value_and_grad(|p: &[Tensor]| run(p, Gradient::Record), &inputs);
    for segments in [None, Some(1), Some(7)] {
        let (v1, g1) = value_and_grad(
            |p: &[Tensor]| run(p, Gradient::Checkpoint { segments }),
            &inputs,
        );
        close(v1.item(), v0.item(), 1e-10, "value");
        for (a, b) in g0.iter().zip(&g1) {
            for (x, y) in a.to_vec::<f64>().iter().zip(b.to_vec::<f64>()) {
                close(y, *x, 1e-10, "checkpointed gradient");
            }
        }
    }
}

#[test]
fn f32_states_work() {
    let k = Tensor::scalar(0.5f32);
    let kc = k.clone();
    let sol = solve(
        move |_t, y| -(&kc * y),
        &Tensor::scalar(0.0f32),
        1.0,
        &Tensor::from_vec(vec![1.0f32, 2.0], [2]),
        &Options::default().rtol(1e-5).atol(1e-6),
    )
    .unwrap();
    let y = sol.y.to_vec::<f32>();
    assert!((y[1] - 2.0 * (-0.5f32).exp()).abs() < 1e-4, "{y:?}");
}
