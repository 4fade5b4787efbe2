//! The two ways forward mode computes a tangent: the one-step rule on one-element values, taken
//! when the tangent needs no derivatives of its own (forward over reverse at top level), and the
//! rule written with tensor operations (nested transforms, reverse over forward). Both must give
//! the same numbers; and a `jvp` records its tangents for reverse mode exactly when a reverse
//! transform outside it may differentiate them.

use nabla::testing::check_grad;
use nabla::{HvpMode, Tensor, grad, hvp_with, jvp, value_and_grad};

fn s(v: f64) -> Tensor {
    Tensor::scalar(v)
}

type Binary = fn(&Tensor, &Tensor) -> Tensor;
type Unary = fn(&Tensor) -> Tensor;

const BINARY: [(&str, Binary); 4] = [
    ("add", |a, b| a + b),
    ("sub", |a, b| a - b),
    ("mul", |a, b| a * b),
    ("div", |a, b| a / b),
];

const UNARY: [(&str, Unary); 6] = [
    ("sin", Tensor::sin),
    ("cos", Tensor::cos),
    ("exp", Tensor::exp),
    ("ln", Tensor::ln),
    ("sqrt", Tensor::sqrt),
    ("tanh", Tensor::tanh),
];

/// The tangent of `f` at `xs` along `ts` by a top-level `jvp` (one-element operands: the one-step
/// rule) and by the same `jvp` inside a reverse transform (recorded: the tensor rule).
fn both_paths(f: &dyn Fn(&[Tensor]) -> Tensor, xs: &[Tensor], ts: &[Tensor]) -> (f64, f64) {
    let direct = jvp(f, xs, ts).1.item();
    let mut recorded = 0.0;
    value_and_grad(
        |ys: &[Tensor]| {
            // recording is on here, so the rules run as tensor operations
            let t = jvp(f, ys, ts).1;
            recorded = t.item();
            t
        },
        xs,
    );
    (direct, recorded)
}

fn assert_same(what: &str, a: f64, b: f64) {
    assert!(
        (a - b).abs() <= 1e-14 * (1.0 + b.abs()),
        "{what}: one-step rule {a} vs tensor rule {b}"
    );
}

#[test]
fn one_step_tangent_rules_match_the_tensor_rules() {
    let (a, b) = (s(0.7), s(1.9));
    for (name, op) in BINARY {
        // both tangents, then only one of them (the other operand a constant of the function)
        let f = |p: &[Tensor]| op(&p[0], &p[1]);
        let (x, y) = both_paths(&f, &[a.clone(), b.clone()], &[s(0.3), s(-1.1)]);
        assert_same(name, x, y);
        let f = |p: &[Tensor]| op(&p[0], &b);
        let (x, y) = both_paths(&f, std::slice::from_ref(&a), &[s(0.3)]);
        assert_same(name, x, y);
        let f = |p: &[Tensor]| op(&a, &p[0]);
        let (x, y) = both_paths(&f, std::slice::from_ref(&b), &[s(-1.1)]);
        assert_same(name, x, y);
        // a 0-d operand against a [1, 1] one: the tangent takes the broadcast shape
        let m = Tensor::from_vec(vec![1.9f64], [1, 1]) * 1.0;
        let (_, t) = jvp(
            |p: &[Tensor]| op(&p[0], &m),
            std::slice::from_ref(&a),
            &[s(1.0)],
        );
        assert_eq!(t.dims(), &[1, 1], "{name}");
    }
    for (name, op) in UNARY {
        let f = |p: &[Tensor]| op(&p[0]);
        let (x, y) = both_paths(&f, std::slice::from_ref(&a), &[s(0.4)]);
        assert_same(name, x, y);
    }
}

#[test]
fn one_step_tangent_rules_match_finite_differences_in_f64() {
    // check_grad's forward-mode check is a top-level jvp: on 0-d inputs it takes the one-step rules
    for (name, op) in BINARY {
        check_grad(|p: &[Tensor]| op(&p[0], &p[1]), &[s(0.7), s(1.9)])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for (name, op) in UNARY {
        check_grad(|p: &[Tensor]| op(&p[0]), &[s(0.7)]).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn one_step_rule_keeps_f32() {
    let (_, t) = jvp(
        |p: &[Tensor]| (&p[0] * &p[1]).sin(),
        &[Tensor::scalar(0.5f32), Tensor::scalar(2.0f32)],
        &[Tensor::scalar(1.0f32), Tensor::scalar(0.0f32)],
    );
    assert_eq!(t.dtype(), nabla::DType::F32);
    assert!((t.item() - 2.0 * 1.0f64.cos()).abs() < 1e-6);
}

#[test]
fn a_tangent_is_recorded_only_for_a_reverse_transform_outside_the_jvp() {
    let f = |p: &[Tensor]| p[0].sin() * &p[0];
    // top level, untracked primal: nothing can differentiate the tangent
    let (_, t) = jvp(f, &[s(0.5)], &[s(1.0)]);
    assert!(!t.requires_grad());
    // a tracked primal: the tangent sin w + w cos w is differentiable, d/dw = 2 cos w - w sin w
    let w = s(0.5).variable();
    let (_, t) = jvp(f, std::slice::from_ref(&w), &[s(1.0)]);
    let g = t.backward();
    let want = 2.0 * 0.5f64.cos() - 0.5 * 0.5f64.sin();
    assert!((g.get(&w).unwrap().item() - want).abs() < 1e-14);
    // inside grad (reverse over forward): the same derivative
    let d = grad(|x: &Tensor| jvp(f, std::slice::from_ref(x), &[s(1.0)]).1)(&s(0.5));
    assert!((d.item() - want).abs() < 1e-14);
}

/// A damped pendulum by 40 RK4 steps in f64, as a function of `(b, g, L)`: the shape of the
/// rk4-pendulum benchmark, small.
fn pendulum(p: &[Tensor]) -> Tensor {
    let (b, g, l) = (&p[0], &p[1], &p[2]);
    let f = |th: &Tensor, om: &Tensor| (om.clone(), -(g / l) * th.sin() - b * om);
    let (mut th, mut om) = (s(1.0), s(0.0));
    let dt = 0.05;
    for _ in 0..40 {
        let (k1t, k1o) = f(&th, &om);
        let (k2t, k2o) = f(&(&th + &k1t * (dt / 2.0)), &(&om + &k1o * (dt / 2.0)));
        let (k3t, k3o) = f(&(&th + &k2t * (dt / 2.0)), &(&om + &k2o * (dt / 2.0)));
        let (k4t, k4o) = f(&(&th + &k3t * dt), &(&om + &k3o * dt));
        th = &th + (&k1t + &k2t * 2.0 + &k3t * 2.0 + &k4t) * (dt / 6.0);
        om = &om + (&k1o + &k2o * 2.0 + &k3o * 2.0 + &k4o) * (dt / 6.0);
    }
    &th * &th + &om * &om
}

#[test]
fn both_hvp_modes_agree_on_a_scalar_simulator_and_match_finite_differences() {
    let p = [s(0.1), s(9.81), s(1.0)];
    let v = [s(1.0), s(-0.5), s(2.0)];
    let fr = hvp_with(HvpMode::ForwardOverReverse, pendulum, &p, &v);
    let rr = hvp_with(HvpMode::ReverseOverReverse, pendulum, &p, &v);
    // central differences of the gradient along v
    let eps = 1e-5;
    let at = |sign: f64| {
        let q: Vec<Tensor> = p
            .iter()
            .zip(&v)
            .map(|(x, d)| x + &(d * (sign * eps)))
            .collect();
        value_and_grad(pendulum, &q).1
    };
    let (gp, gm) = (at(1.0), at(-1.0));
    for k in 0..3 {
        let (a, b) = (fr[k].item(), rr[k].item());
        assert!(
            (a - b).abs() <= 1e-10 * (1.0 + b.abs()),
            "block {k}: {a} vs {b}"
        );
        let fd = (gp[k].item() - gm[k].item()) / (2.0 * eps);
        assert!(
            (a - fd).abs() <= 1e-5 * (1.0 + fd.abs()),
            "block {k}: {a} vs {fd}"
        );
    }
}

#[test]
fn gradient_of_a_forward_over_reverse_hvp_matches_finite_differences() {
    // third derivatives: the hvp's tangents are recorded when a reverse transform encloses it
    let f = |p: &[Tensor]| (p[0].sin() * &p[1] + (&p[0] * &p[1]).exp()).sum();
    let v = [s(1.0), s(0.5)];
    check_grad(
        |p: &[Tensor]| {
            let hv = hvp_with(HvpMode::ForwardOverReverse, f, p, &v);
            &hv[0] * 2.0 + &hv[1]
        },
        &[s(0.3), s(-0.8)],
    )
    .unwrap();
}
