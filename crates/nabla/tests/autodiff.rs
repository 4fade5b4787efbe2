//! Cross-module behaviour of automatic differentiation: composition of transforms, control flow,
//! custom rules, checkpointing, and the PyTorch-style API.

use nabla::testing::{check_grad, check_grad2};
use nabla::*;

fn s(v: f64) -> Tensor {
    Tensor::scalar(v)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * (1.0 + b.abs())
}

#[test]
fn nested_reverse_does_not_confuse_perturbations() {
    // d/dx [ x * d/dy (x + y) ] = 1 at any x
    for x0 in [-2.0, 0.0, 3.5] {
        let f = |x: &Tensor| {
            let xc = x.clone();
            let inner = grad(move |y: &Tensor| (&xc + y).sum());
            x * &inner(&s(1.0))
        };
        assert!(close(grad(f)(&s(x0)).item(), 1.0));
    }
}

#[test]
fn nested_forward_does_not_confuse_perturbations() {
    let outer = |x0: f64| {
        jvp(
            |xs: &[Tensor]| {
                let x = xs[0].clone();
                let (_, d) = jvp(|ys: &[Tensor]| &x + &ys[0], &[s(1.0)], &[s(1.0)]);
                &xs[0] * &d
            },
            &[s(x0)],
            &[s(1.0)],
        )
        .1
        .item()
    };
    for x0 in [-2.0, 0.0, 3.5] {
        assert!(close(outer(x0), 1.0));
    }
}

#[test]
fn mixed_nesting_does_not_confuse_perturbations() {
    // reverse outside, forward inside
    let f = |x: &Tensor| {
        let xc = x.clone();
        let (_, d) = jvp(move |ys: &[Tensor]| &xc + &ys[0], &[s(1.0)], &[s(1.0)]);
        x * &d
    };
    assert!(close(grad(f)(&s(2.0)).item(), 1.0));
    // forward outside, reverse inside
    let (_, t) = jvp(
        |xs: &[Tensor]| {
            let x = xs[0].clone();
            let inner = grad(move |y: &Tensor| (&x + y).sum());
            &xs[0] * &inner(&s(1.0))
        },
        &[s(2.0)],
        &[s(1.0)],
    );
    assert!(close(t.item(), 1.0));
}

#[test]
fn third_derivative_by_nesting_grad() {
    // f = sin(x) => f''' = -cos(x)
    let d1 = grad(|x: &Tensor| x.sin().sum());
    let d2 = grad(move |x: &Tensor| d1(x).sum());
    let d3 = grad(move |x: &Tensor| d2(x).sum());
    let x = 0.7;
    assert!(close(d3(&s(x)).item(), -x.cos()));
}

#[test]
fn forward_over_forward_second_derivative() {
    // d²/dx² of x³ at 2 is 12, by jvp of jvp
    let f = |x: &Tensor| x * x * x;
    let d1 = |x: &Tensor| {
        jvp(
            |xs: &[Tensor]| f(&xs[0]),
            std::slice::from_ref(x),
            &[s(1.0)],
        )
        .1
    };
    let (_, d2) = jvp(|xs: &[Tensor]| d1(&xs[0]), &[s(2.0)], &[s(1.0)]);
    assert!(close(d2.item(), 12.0));
}

#[test]
fn hessian_vector_product_matches_reverse_over_reverse() {
    let f = |x: &Tensor| (x.sin() * x.exp()).sum() + x.matmul(x).sum() * 0.5;
    let x = Tensor::from_vec(vec![0.1f64, -0.4, 0.9], [3]);
    let v = Tensor::from_vec(vec![1.0f64, 2.0, -1.0], [3]);
    let hv = hvp(f, &x, &v);
    let g = grad(f);
    let rr = grad(move |y: &Tensor| (g(y) * &v).sum())(&x);
    for (a, b) in hv.to_vec::<f64>().iter().zip(rr.to_vec::<f64>()) {
        assert!(close(*a, b), "{a} vs {b}");
    }
}

/// The Jacobian of `f` at `x` built both ways: one reverse pullback per output row and one forward
/// `jvp` per input column.
fn jacobian_both_ways(f: impl Fn(&Tensor) -> Tensor + Copy, x: &Tensor) -> (Vec<f64>, Vec<f64>) {
    let m = f(x).numel();
    let n = x.numel();
    let basis = |k: usize, len: usize| {
        let mut e = vec![0.0f64; len];
        e[k] = 1.0;
        Tensor::from_vec(e, [len])
    };
    let (_, pullback) = vjp(move |xs: &[Tensor]| f(&xs[0]), std::slice::from_ref(x));
    let mut rev = vec![0.0; m * n];
    for i in 0..m {
        let row = pullback(&basis(i, m).reshape(f(x).dims()))
            .remove(0)
            .to_vec::<f64>();
        rev[i * n..(i + 1) * n].copy_from_slice(&row);
    }
    let mut fwd = vec![0.0; m * n];
    for j in 0..n {
        let col = jvp(
            move |xs: &[Tensor]| f(&xs[0]),
            std::slice::from_ref(x),
            &[basis(j, n).reshape(x.dims())],
        )
        .1
        .to_vec::<f64>();
        for i in 0..m {
            fwd[i * n + j] = col[i];
        }
    }
    (rev, fwd)
}

#[test]
fn jacobian_forward_and_reverse_agree() {
    let (a, b) = (0.3f64, -0.2f64);
    let x = Tensor::from_vec(vec![a, b], [2]);
    // wide output (jacobian takes forward mode): all 12 entries, both modes, closed form
    let wide = |x: &Tensor| Tensor::concat(&[x.sin(), x * x, x.exp()], 0);
    let want = [
        a.cos(),
        0.0,
        0.0,
        b.cos(),
        2.0 * a,
        0.0,
        0.0,
        2.0 * b,
        a.exp(),
        0.0,
        0.0,
        b.exp(),
    ];
    let j = jacobian(wide, &x);
    assert_eq!(j.dims(), &[6, 2]);
    let (rev, fwd) = jacobian_both_ways(wide, &x);
    for (k, w) in want.iter().enumerate() {
        let got = j.to_vec::<f64>()[k];
        assert!(
            close(got, *w) && close(rev[k], *w) && close(fwd[k], *w),
            "entry {k}: {got} {} {} vs {w}",
            rev[k],
            fwd[k]
        );
    }
    // narrow output (jacobian takes reverse mode) mixing the inputs: [Σ x0k x1k, sin Σ x]
    let narrow = |x: &Tensor| {
        let dot = (x.select(0, 0) * x.select(0, 1)).sum();
        Tensor::stack(&[dot, x.sum().sin()], 0)
    };
    let xv = vec![0.5f64, -1.5, 0.25, 2.0, -0.75, 1.0];
    let x6 = Tensor::from_vec(xv.clone(), [2, 3]);
    let j = jacobian(narrow, &x6);
    assert_eq!(j.dims(), &[2, 2, 3]);
    let c = xv.iter().sum::<f64>().cos();
    let mut want = [c; 12];
    want[..6].copy_from_slice(&[xv[3], xv[4], xv[5], xv[0], xv[1], xv[2]]);
    let (rev, fwd) = jacobian_both_ways(narrow, &x6);
    let got = j.to_vec::<f64>();
    for (k, w) in want.iter().enumerate() {
        assert!(
            close(got[k], *w) && close(rev[k], *w) && close(fwd[k], *w),
            "entry {k}: {} {} {} vs {w}",
            got[k],
            rev[k],
            fwd[k]
        );
    }
}

/// Rust control flow: a loop with a data-dependent branch, recursion and an early return.
fn collatz_like(x: &Tensor, depth: usize) -> Tensor {
    if depth == 0 {
        return x.clone();
    }
    let y = if x.item() > 1.0 {
        x.sqrt()
    } else {
        x * x + 1.0
    };
    if y.item() > 100.0 {
        return y; // early return
    }
    collatz_like(&y, depth - 1)
}

#[test]
fn gradients_flow_through_control_flow() {
    let x0 = 0.5f64;
    let g = grad(|x: &Tensor| collatz_like(x, 6))(&s(x0)).item();
    // central finite difference of the same program (the branch pattern is locally constant)
    let h = 1e-6;
    let num = (collatz_like(&s(x0 + h), 6).item() - collatz_like(&s(x0 - h), 6).item()) / (2.0 * h);
    assert!((g - num).abs() < 1e-6, "{g} vs {num}");
    check_grad(|xs: &[Tensor]| collatz_like(&xs[0], 6), &[s(x0)]).unwrap();
}

#[test]
fn loop_with_accumulation_and_closure() {
    let poly = |coeffs: Vec<f64>| {
        move |x: &Tensor| {
            let mut acc = x.zeros_like();
            let mut p = x.ones_like();
            for c in &coeffs {
                acc = acc + &p * *c;
                p = &p * x;
            }
            acc.sum()
        }
    };
    let df = grad(poly(vec![1.0, 2.0, 3.0])); // 1 + 2x + 3x² -> 2 + 6x
    assert!(close(df(&s(2.0)).item(), 14.0));
}

#[test]
fn value_and_grad_of_many_inputs_and_unused_input() {
    let a = Tensor::from_vec(vec![1.0f64, 2.0], [2]);
    let b = s(3.0);
    let c = s(5.0);
    let (v, g) = value_and_grad(|p: &[Tensor]| (&p[0] * &p[1]).sum(), &[a, b, c]);
    assert_eq!(v.item(), 9.0);
    assert_eq!(g[0].to_vec::<f64>(), vec![3.0, 3.0]);
    assert_eq!(g[1].item(), 3.0);
    assert_eq!(g[2].item(), 0.0);
    assert!(!v.requires_grad() && !g[0].requires_grad());
}

#[test]
fn pytorch_style_backward_and_no_grad() {
    let w = Tensor::from_vec(vec![1.0f64, -1.0], [2]).variable();
    let b = s(0.5).variable();
    let x = Tensor::from_vec(vec![2.0f64, 3.0], [2]);
    let loss = ((&w * &x).sum() + &b).square();
    let grads = loss.backward();
    // loss = (2 - 3 + .5)^2 = .25; dL/dw = 2 * (-.5) * x
    assert_eq!(grads.get(&w).unwrap().to_vec::<f64>(), vec![-2.0, -3.0]);
    assert_eq!(grads.get(&b).unwrap().item(), -1.0);
    let y = no_grad(|| &w * 2.0);
    assert!(!y.requires_grad());
    assert!(grads.get(&x).is_none());
}

#[test]
fn detach_stops_gradient() {
    let f = grad(|x: &Tensor| (x * &x.detach()).sum());
    assert_eq!(f(&s(3.0)).item(), 3.0);
    let (_, t) = jvp(
        |xs: &[Tensor]| &xs[0] * &xs[0].stop_gradient(),
        &[s(3.0)],
        &[s(1.0)],
    );
    assert_eq!(t.item(), 3.0);
}

#[test]
fn straight_through_and_soft_select() {
    let f = |x: &Tensor| {
        let hard = x.gt_scalar(0.0);
        let soft = x.sigmoid();
        straight_through(&hard, &soft)
    };
    let x = Tensor::from_vec(vec![-1.0f64, 2.0], [2]);
    assert_eq!(f(&x).to_vec::<f64>(), vec![0.0, 1.0]);
    let g = grad(|x: &Tensor| f(x).sum())(&x).to_vec::<f64>();
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    assert!(close(g[0], sig(-1.0) * (1.0 - sig(-1.0))));
    check_grad(
        |xs: &[Tensor]| soft_select(&xs[0].sigmoid(), &xs[1].sin(), &xs[1].cos()),
        &[x.clone(), x.clone()],
    )
    .unwrap();
}

struct Cube;
impl CustomOp for Cube {
    fn name(&self) -> &str {
        "cube"
    }
    fn forward(&self, i: &[Tensor]) -> Tensor {
        &i[0] * &i[0] * &i[0]
    }
    fn backward(&self, i: &[Tensor], _out: &Tensor, g: &Tensor) -> Vec<Option<Tensor>> {
        vec![Some(g * &(i[0].square() * 3.0))]
    }
}

#[test]
fn custom_op_rules_compose() {
    let x = Tensor::from_vec(vec![0.5f64, -1.5, 2.0], [3]);
    let f = |xs: &[Tensor]| Cube.apply(&[xs[0].sin()]);
    check_grad(f, std::slice::from_ref(&x)).unwrap(); // reverse, and forward derived from backward
    check_grad2(f, &[x]).unwrap(); // second order through the user's rule
}

#[test]
fn checkpoint_matches_plain_and_recomputes() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let block = |xs: &[Tensor]| {
        CALLS.fetch_add(1, Ordering::SeqCst);
        (xs[0].matmul(&xs[1])).tanh()
    };
    let x = Tensor::from_vec(vec![0.1f64, 0.2, 0.3, 0.4], [2, 2]);
    let w = Tensor::from_vec(vec![0.5f64, -0.3, 0.8, 0.1], [2, 2]);
    let plain = value_and_grad(
        |p: &[Tensor]| block(p).square().sum(),
        &[x.clone(), w.clone()],
    )
    .1;
    CALLS.store(0, Ordering::SeqCst);
    let ck = value_and_grad(
        |p: &[Tensor]| checkpoint(block, p).square().sum(),
        &[x.clone(), w.clone()],
    )
    .1;
    assert_eq!(
        CALLS.load(Ordering::SeqCst),
        2,
        "forward once, recomputed once in backward"
    );
    for (a, b) in plain.iter().zip(&ck) {
        for (u, v) in a.to_vec::<f64>().iter().zip(b.to_vec::<f64>()) {
            assert!(close(*u, v));
        }
    }
    check_grad(|p: &[Tensor]| checkpoint(block, p), &[x.clone(), w.clone()]).unwrap();
    check_grad2(|p: &[Tensor]| checkpoint(block, p), &[x, w]).unwrap();
}

#[test]
fn deep_graphs_do_not_overflow_the_stack() {
    // a million recorded ops: backward and drop must be iterative
    let g = grad(|x: &Tensor| {
        let mut y = x.clone();
        for _ in 0..1_000_000 {
            y = &y * 1.0000001;
        }
        y
    })(&s(1.0));
    assert!((g.item() - 1.0000001f64.powi(1_000_000)).abs() < 1e-6);
}

#[test]
fn grad_of_value_that_ignores_input_is_zero() {
    let g = grad(|x: &Tensor| x.detach().sum() + 1.0)(&s(2.0));
    assert_eq!(g.item(), 0.0);
}

#[test]
fn gradients_accumulate_over_reuse() {
    // x used many times through branches of a DAG
    let f = |x: &Tensor| {
        let a = x.sin();
        let b = &a * &a;
        let c = &a + &b;
        (&c * &a).sum()
    };
    check_grad(
        |xs: &[Tensor]| f(&xs[0]),
        &[Tensor::from_vec(vec![0.3f64, 1.1], [2])],
    )
    .unwrap();
    check_grad2(
        |xs: &[Tensor]| f(&xs[0]),
        &[Tensor::from_vec(vec![0.3f64, 1.1], [2])],
    )
    .unwrap();
}

#[test]
#[should_panic(
    expected = "value_and_grad: the function must return a one-element tensor, got shape [2]"
)]
fn grad_of_non_scalar_panics() {
    let _ = grad(|x: &Tensor| x * 2.0)(&Tensor::zeros([2], DType::F64));
}

#[test]
fn f32_gradients() {
    let g = grad(|x: &Tensor| (x * x).sum())(&Tensor::from_vec(vec![1.0f32, 2.0], [2]));
    assert_eq!(g.dtype(), DType::F32);
    assert_eq!(g.to_vec::<f32>(), vec![2.0, 4.0]);
}

#[test]
fn backward_passes_of_changing_sizes_reuse_scratch_correctly() {
    // The engine keeps its working tables per thread between passes; graphs of different sizes,
    // one after another and nested (grad of grad), must not see each other's leftovers.
    for &n in &[1000usize, 10, 5000, 3, 1000] {
        let w = Tensor::scalar(0.999f64).variable();
        let mut y = Tensor::scalar(1.0f64);
        for _ in 0..n {
            y = &y * &w + 0.001;
        }
        let g = y.backward();
        // y_n = w^n + 0.001 (1 - w^n) / (1 - w); dy/dw by central differences of that formula
        let f = |w: f64| w.powi(n as i32) + 0.001 * (1.0 - w.powi(n as i32)) / (1.0 - w);
        let h = 1e-6;
        let fd = (f(0.999 + h) - f(0.999 - h)) / (2.0 * h);
        let got = g.get(&w).unwrap().item();
        assert!(
            (got - fd).abs() < 1e-5 * fd.abs().max(1.0),
            "n={n}: {got} vs {fd}"
        );
    }
    let d2 = nabla::grad(|x: &Tensor| nabla::grad(|x: &Tensor| (x * x * x).sum())(x).sum());
    assert!((d2(&Tensor::scalar(2.0f64)).item() - 12.0).abs() < 1e-12);
}
