//! The compiled path (`nabla::compile`) against eager execution: values and gradients agree to
//! 1e-12 in f64 on random straight-line and looped programs and on an RK4 simulator; a branch on a
//! traced value never replays stale; composition with other transforms stays exact.

mod compile_common;

use compile_common::{assert_close, close, rk4_pendulum};
use nabla::{DType, HvpMode, Tensor, compile, grad, hvp, hvp_with, value_and_grad};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// One random instruction of a program over a pool of values (all of one shape, or 0-d).
#[derive(Clone, Debug)]
enum Step {
    Bin(u8, usize, usize),
    Un(u8, usize),
    Scalar(u8, f64, usize),
}

fn random_program(rng: &mut StdRng, n_inputs: usize, len: usize) -> Vec<Step> {
    (0..len)
        .map(|k| {
            let avail = n_inputs + k;
            let pick = |rng: &mut StdRng| rng.random_range(0..avail);
            match rng.random_range(0..3) {
                0 => Step::Bin(rng.random_range(0..4), pick(rng), pick(rng)),
                1 => Step::Un(rng.random_range(0..7), pick(rng)),
                _ => Step::Scalar(
                    rng.random_range(0..5),
                    rng.random_range(0.5..1.5),
                    pick(rng),
                ),
            }
        })
        .collect()
}

/// Runs a program; values stay in a safe range (bounded unary functions, divisions by 1 + x²).
fn run_program(prog: &[Step], xs: &[Tensor], rounds: usize) -> Tensor {
    let mut pool: Vec<Tensor> = xs.to_vec();
    for _ in 0..rounds {
        for s in prog {
            let y = match *s {
                Step::Bin(op, a, b) => {
                    let (a, b) = (&pool[a], &pool[b]);
                    match op {
                        0 => a + b,
                        1 => a - b,
                        2 => (a * b).tanh(),
                        _ => a / (b.square() + 1.0),
                    }
                }
                Step::Un(op, a) => {
                    let a = &pool[a];
                    match op {
                        0 => a.sin(),
                        1 => a.cos(),
                        2 => a.tanh(),
                        3 => a.sigmoid(),
                        4 => (a.square() + 1.0).ln(),
                        5 => (a.square() + 0.5).sqrt(),
                        _ => (a.tanh()).exp(),
                    }
                }
                Step::Scalar(op, c, a) => {
                    let a = &pool[a];
                    match op {
                        0 => a * c,
                        1 => a + c,
                        2 => c - a,
                        3 => c / (a.square() + 1.0),
                        _ => (a.square() + 1.0).powf(c),
                    }
                }
            };
            pool.push(y);
        }
        // feed the last values back as the next round's inputs (a loop)
        let k = pool.len();
        pool = pool[k - xs.len()..].to_vec();
    }
    pool.iter()
        .map(|t| t.sum())
        .reduce(|a, b| a + b)
        .expect("values")
}

#[test]
fn random_straight_line_and_looped_programs_match_eager() {
    let mut rng = StdRng::seed_from_u64(12);
    for case in 0..40 {
        let n_inputs = rng.random_range(1..4);
        let len = rng.random_range(3..25);
        let prog = random_program(&mut rng, n_inputs, len);
        let rounds = if case % 2 == 0 {
            1
        } else {
            rng.random_range(2..6)
        };
        // half the programs over [3] vectors mixed with 0-d scalars, half over scalars
        let xs: Vec<Tensor> = (0..n_inputs)
            .map(|i| {
                if case % 4 < 2 && i % 2 == 0 {
                    Tensor::randn([3], DType::F64, &mut rng)
                } else {
                    Tensor::scalar(rng.random_range(-1.0..1.0f64))
                }
            })
            .collect();
        let f = |p: &[Tensor]| run_program(&prog, p, rounds);
        let cf = compile(f);
        let (ev, eg) = value_and_grad(f, &xs);
        for _ in 0..2 {
            let (cv, cg) = cf.value_and_grad(&xs);
            assert_close(&format!("case {case} value"), &cv, &ev);
            for (i, (c, e)) in cg.iter().zip(&eg).enumerate() {
                assert_close(&format!("case {case} grad {i}"), c, e);
            }
        }
        assert_close("call", &cf.call(&xs), &ev);
        let st = cf.stats();
        assert_eq!(st.traces, 1, "case {case}: {st:?}");
        assert_eq!(st.eager_calls, 0, "case {case}: {st:?}");
        assert_eq!(st.replays, 3);
        // new values, same signature: replayed, still exact
        let ys: Vec<Tensor> = xs.iter().map(|x| x * 0.7 + 0.1).collect();
        let (cv, cg) = cf.value_and_grad(&ys);
        let (ev, eg) = value_and_grad(f, &ys);
        assert_close("new inputs", &cv, &ev);
        assert_close("new inputs grad", &cg[0], &eg[0]);
        assert_eq!(cf.stats().traces, 1);
    }
}

/// A damped pendulum through RK4 steps (the rk4-pendulum benchmark's program) in f64.
fn pendulum(p: &[Tensor], steps: usize) -> Tensor {
    let th = Tensor::scalar(1.0f64).to_dtype(p[0].dtype());
    let om = Tensor::scalar(0.0f64).to_dtype(p[0].dtype());
    let (th, om) = rk4_pendulum(p, th, om, steps);
    &th * &th + &om * &om
}

#[test]
fn rk4_pendulum_compiled_matches_eager() {
    let p = [
        Tensor::scalar(0.1f64),
        Tensor::scalar(9.81f64),
        Tensor::scalar(1.0f64),
    ];
    let f = |p: &[Tensor]| pendulum(p, 300);
    let cf = compile(f);
    let (ev, eg) = value_and_grad(f, &p);
    let (cv, cg) = cf.value_and_grad(&p);
    assert_close("loss", &cv, &ev);
    for i in 0..3 {
        assert_close("grad", &cg[i], &eg[i]);
    }
    assert!(cf.stats().tape_len > 10_000, "{:?}", cf.stats());
    // f32 gives the eager f32 numbers (same operations in the same order)
    let p32: Vec<Tensor> = p.iter().map(|t| t.to_dtype(DType::F32)).collect();
    let (cv, cg) = cf.value_and_grad(&p32);
    let (ev, eg) = value_and_grad(f, &p32);
    assert_eq!(cv.dtype(), DType::F32);
    assert!((cv.item() - ev.item()).abs() <= 1e-5 * ev.item().abs());
    for i in 0..3 {
        assert!((cg[i].item() - eg[i].item()).abs() <= 1e-4 * (1.0 + eg[i].item().abs()));
    }
    assert_eq!(cf.stats().traces, 2);
}

/// A branch on a traced value: `x ↦ 2x` for positive x, `x³` otherwise.
fn branchy(p: &[Tensor]) -> Tensor {
    let x = &p[0];
    if x.item() > 0.0 { x * 2.0 } else { x * x * x }
}

#[test]
fn a_value_dependent_branch_never_replays_stale() {
    let cf = compile(branchy);
    for &(x, want_y, want_g) in &[
        (1.5, 3.0, 2.0),
        (-2.0, -8.0, 12.0),
        (0.5, 1.0, 2.0),
        (-1.0, -1.0, 3.0),
    ] {
        let (y, g) = cf.value_and_grad(&[Tensor::scalar(x)]);
        assert_eq!((y.item(), g[0].item()), (want_y, want_g), "x = {x}");
        assert_eq!(cf.call(&[Tensor::scalar(x)]).item(), want_y);
    }
    let st = cf.stats();
    assert_eq!((st.traces, st.replays), (1, 0), "{st:?}");
    assert!(
        st.last_fallback
            .unwrap()
            .contains("`item` reads a traced value")
    );
    // the same with a mask instead of a Rust branch
    let masked = |p: &[Tensor]| {
        let x = &p[0];
        x.gt_scalar(0.0).where_(&(x * 2.0), &(x * x * x)).sum()
    };
    let cm = compile(masked);
    for x in [1.5, -2.0] {
        let xs = [Tensor::from_vec(vec![x, -x], [2])];
        let (y, g) = cm.value_and_grad(&xs);
        let (ye, ge) = value_and_grad(masked, &xs);
        assert_eq!(y.item(), ye.item());
        assert_eq!(g[0].to_vec::<f64>(), ge[0].to_vec::<f64>());
    }
    assert_eq!(cm.stats().replays, 0);
}

#[test]
#[should_panic(expected = "compile: `item` reads the value of a traced tensor of shape []")]
fn strict_mode_refuses_a_value_dependent_branch() {
    let cf = compile(branchy).strict();
    cf.call(&[Tensor::scalar(1.0f64)]);
}

#[test]
fn detach_and_uncompilable_operations_fall_back_to_eager() {
    let f = |p: &[Tensor]| (&p[0] * &p[0].detach()).sum();
    let cf = compile(f);
    let x = [Tensor::from_vec(vec![1.0f64, 2.0], [2])];
    let x2 = [Tensor::from_vec(vec![3.0f64, -1.0], [2])];
    cf.value_and_grad(&x);
    let (y, g) = cf.value_and_grad(&x2);
    assert_eq!(y.item(), 10.0);
    assert_eq!(g[0].to_vec::<f64>(), vec![3.0, -1.0]);
    // prod has no compiled form: eager, same numbers
    let m = |p: &[Tensor]| p[0].prod_axes([1], false).square().sum();
    let cm = compile(m);
    let a = [Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], [2, 2])];
    let (y, g) = cm.value_and_grad(&a);
    let (ye, ge) = value_and_grad(m, &a);
    assert_eq!(y.item(), ye.item());
    assert_eq!(g[0].to_vec::<f64>(), ge[0].to_vec::<f64>());
    assert!(
        cm.stats()
            .last_fallback
            .unwrap()
            .contains("has no compiled form")
    );
}

#[test]
fn new_shapes_retrace_and_captured_tensors_are_constants() {
    let w = Tensor::from_vec(vec![0.5f64, -1.0, 2.0], [3]);
    let f = |p: &[Tensor]| (&p[0] * &w).sin().sum();
    let cf = compile(f);
    let x3 = Tensor::from_vec(vec![0.1f64, 0.2, 0.3], [3]);
    let (_, g) = cf.value_and_grad(std::slice::from_ref(&x3));
    let (_, ge) = value_and_grad(f, std::slice::from_ref(&x3));
    assert_close("captured", &g[0], &ge[0]);
    let x1 = Tensor::scalar(0.4f64);
    assert_close(
        "scalar",
        &cf.call(std::slice::from_ref(&x1)),
        &f(std::slice::from_ref(&x1)),
    );
    assert_eq!(cf.stats().traces, 2);
}

#[test]
fn grad_of_grad_and_hvp_through_a_compiled_function_compose_exactly() {
    let body = |p: &[Tensor]| {
        let mut y = p[0].clone();
        for _ in 0..5 {
            y = (&y * 1.1).sin() + &y * &y * 0.1;
        }
        y.sum()
    };
    let cf = compile(body);
    let x = Tensor::scalar(0.3f64);
    let d2c = grad(grad(|x: &Tensor| cf.call(std::slice::from_ref(x))))(&x);
    let d2e = grad(grad(|x: &Tensor| body(std::slice::from_ref(x))))(&x);
    assert!(close(d2c.item(), d2e.item()));
    let v = Tensor::scalar(1.0f64);
    let hc = hvp(|x: &Tensor| cf.call(std::slice::from_ref(x)), &x, &v);
    assert!(close(hc.item(), d2e.item()));
    // first-order calls on plain inputs were replayed
    let (yc, gc) = cf.value_and_grad(std::slice::from_ref(&x));
    let (ye, ge) = value_and_grad(body, std::slice::from_ref(&x));
    assert!(close(yc.item(), ye.item()) && close(gc[0].item(), ge[0].item()));
    assert!(cf.stats().replays >= 1);
}

#[test]
fn compiled_hvp_matches_eager_on_rk4_and_random_programs() {
    let p = [
        Tensor::scalar(0.1f64),
        Tensor::scalar(9.81f64),
        Tensor::scalar(1.0f64),
    ];
    let v = [
        Tensor::scalar(1.0f64),
        Tensor::scalar(-0.5f64),
        Tensor::scalar(2.0f64),
    ];
    let f = |p: &[Tensor]| pendulum(p, 100);
    let cf = compile(f);
    let hc = cf.hvp(&p, &v);
    for mode in [
        HvpMode::Auto,
        HvpMode::ForwardOverReverse,
        HvpMode::ReverseOverReverse,
    ] {
        let he = hvp_with(mode, f, &p, &v);
        for i in 0..3 {
            assert_close(&format!("rk4 hvp {i} ({mode:?})"), &hc[i], &he[i]);
        }
    }
    assert_eq!(cf.stats().eager_calls, 0);
    let mut rng = StdRng::seed_from_u64(7);
    for case in 0..20 {
        let n_inputs = rng.random_range(1..4);
        let len = rng.random_range(3..20);
        let prog = random_program(&mut rng, n_inputs, len);
        let xs: Vec<Tensor> = (0..n_inputs)
            .map(|i| {
                if i % 2 == 0 {
                    Tensor::randn([4], DType::F64, &mut rng)
                } else {
                    Tensor::scalar(rng.random_range(-1.0..1.0f64))
                }
            })
            .collect();
        let vs: Vec<Tensor> = xs
            .iter()
            .map(|x| Tensor::randn(x.shape(), DType::F64, &mut rng))
            .collect();
        let f = |p: &[Tensor]| run_program(&prog, p, 1 + case % 3);
        let hc = compile(f).hvp(&xs, &vs);
        let he = hvp_with(HvpMode::ReverseOverReverse, f, &xs, &vs);
        for (i, (c, e)) in hc.iter().zip(&he).enumerate() {
            assert_close(&format!("case {case} hvp {i}"), c, e);
        }
    }
}

/// rk4-pendulum over a batch of parameter sets (`[n]` tensors), the loss summed over the batch.
fn pendulum_batch(p: &[Tensor], steps: usize) -> Tensor {
    let (th, om) = rk4_pendulum(p, p[0].ones_like(), p[0].zeros_like(), steps);
    (&th * &th + &om * &om).sum()
}

#[test]
fn batched_rk4_compiled_matches_eager() {
    let mut rng = StdRng::seed_from_u64(9);
    let n = 33;
    let u = |rng: &mut StdRng, c: f64, h: f64| {
        Tensor::from_vec(
            (0..n)
                .map(|_| c + h * rng.random_range(-1.0..1.0f64))
                .collect::<Vec<f64>>(),
            [n],
        )
    };
    let p = [
        u(&mut rng, 0.1, 0.05),
        u(&mut rng, 9.81, 1.0),
        u(&mut rng, 1.0, 0.5),
    ];
    let f = |p: &[Tensor]| pendulum_batch(p, 60);
    let cf = compile(f);
    let (ev, eg) = value_and_grad(f, &p);
    for _ in 0..2 {
        let (cv, cg) = cf.value_and_grad(&p);
        assert_close("batch loss", &cv, &ev);
        for i in 0..3 {
            assert_close(&format!("batch grad {i}"), &cg[i], &eg[i]);
        }
    }
    let st = cf.stats();
    assert_eq!((st.traces, st.replays, st.eager_calls), (1, 2, 0), "{st:?}");
    // and its Hessian-vector product
    let v: Vec<Tensor> = p.iter().map(|t| t.ones_like() * 0.5).collect();
    let hc = cf.hvp(&p, &v);
    let he = hvp_with(HvpMode::ReverseOverReverse, f, &p, &v);
    for i in 0..3 {
        assert_close(&format!("batch hvp {i}"), &hc[i], &he[i]);
    }
}

/// A 2-4-1 tanh network's mean squared error (matmul, broadcast bias, mean).
fn mlp_mse(p: &[Tensor], x: &Tensor, y: &Tensor) -> Tensor {
    let h = (x.matmul(&p[0]) + &p[1]).tanh();
    (h.matmul(&p[2]) + &p[3] - y).square().mean()
}

#[test]
fn matmul_broadcasts_views_and_axis_sums_compile_with_an_inner_gradient() {
    // the validation loss after three SGD steps whose learning rate is the input: matmul,
    // broadcast bias, transposes and axis sums in the recorded inner gradients
    let mut rng = StdRng::seed_from_u64(21);
    let x = Tensor::randn([6, 2], DType::F64, &mut rng);
    let y = Tensor::randn([6, 1], DType::F64, &mut rng);
    let init = [
        Tensor::randn([2, 4], DType::F64, &mut rng),
        Tensor::randn([4], DType::F64, &mut rng) * 0.1,
        Tensor::randn([4, 1], DType::F64, &mut rng),
        Tensor::randn([1], DType::F64, &mut rng) * 0.1,
    ];
    let f = |h: &[Tensor]| {
        let mut p: Vec<Tensor> = init.to_vec();
        for _ in 0..3 {
            let (_, g) = value_and_grad(|q: &[Tensor]| mlp_mse(q, &x, &y), &p);
            p = p.iter().zip(&g).map(|(w, g)| w - g * &h[0]).collect();
        }
        // views and axis reductions on the way out
        let w = &p[0];
        mlp_mse(&p, &x, &y)
            + w.t().sum_axes([0], false).square().sum() * 0.01
            + w.narrow(1, 1, 2).sum() * 0.1
            + w.select(0, 1).sin().sum()
    };
    let cf = compile(f);
    let lr = [Tensor::scalar(0.3f64)];
    let (ev, eg) = value_and_grad(f, &lr);
    let (cv, cg) = cf.value_and_grad(&lr);
    let st = cf.stats();
    assert_eq!((st.traces, st.eager_calls), (1, 0), "{st:?}");
    assert_close("loss", &cv, &ev);
    assert_close("hypergradient", &cg[0], &eg[0]);
    let v = [Tensor::scalar(1.0f64)];
    assert_close(
        "hvp",
        &cf.hvp(&lr, &v)[0],
        &hvp_with(HvpMode::ReverseOverReverse, f, &lr, &v)[0],
    );
    // the network itself, compiled as a function of its weights
    let g = |p: &[Tensor]| mlp_mse(p, &x, &y);
    let cg_ = compile(g);
    let (ev, eg) = value_and_grad(g, &init);
    let (cv, cgr) = cg_.value_and_grad(&init);
    assert_close("mlp loss", &cv, &ev);
    for i in 0..4 {
        assert_close(&format!("mlp grad {i}"), &cgr[i], &eg[i]);
    }
    assert_eq!(cg_.stats().eager_calls, 0);
}
