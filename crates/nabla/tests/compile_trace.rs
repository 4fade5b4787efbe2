//! How `nabla::compile` traces: operations are lowered as they are recorded (a lean trace that
//! keeps no graph), dead values are dropped from the tape, a reverse pass over the trace's own level
//! (`backward` inside the compiled function) restarts the trace with the full graph, and a tensor
//! that escapes the trace cannot be differentiated by mistake.

mod compile_common;

use compile_common::assert_close;
use nabla::{Tensor, compile, value_and_grad};
use std::cell::RefCell;

fn inputs() -> Vec<Tensor> {
    vec![
        Tensor::from_vec(vec![0.3f64, -0.7, 1.1], [3]),
        Tensor::scalar(0.9f64),
    ]
}

/// Values and gradients of `f`, compiled (traced, then replayed) and eager.
fn check(name: &str, f: impl Fn(&[Tensor]) -> Tensor + Copy) -> nabla::CompileStats {
    let xs = inputs();
    let cf = compile(f);
    let (ye, ge) = value_and_grad(f, &xs);
    for call in 0..2 {
        let (yc, gc) = cf.value_and_grad(&xs);
        assert_close(&format!("{name} value, call {call}"), &yc, &ye);
        for (i, (c, e)) in gc.iter().zip(&ge).enumerate() {
            assert_close(&format!("{name} grad {i}, call {call}"), c, e);
        }
    }
    cf.stats()
}

#[test]
fn backward_inside_a_compiled_function_retraces_with_the_graph() {
    // `backward` walks the trace's own graph: the lean trace restarts keeping it, once
    let f = |p: &[Tensor]| {
        let y = (&p[0] * &p[1]).sin().sum();
        let g = y.backward();
        let gx = g.get(&p[0]).expect("gradient of p[0]");
        (gx * &p[0]).sum() + &y * &y
    };
    let s = check("backward inside", f);
    assert_eq!((s.traces, s.replays, s.eager_calls), (1, 2, 0));
}

#[test]
fn an_inner_transform_compiles_in_a_lean_trace() {
    let f = |p: &[Tensor]| {
        let (v, g) = value_and_grad(|q: &[Tensor]| (&q[0] * &q[1]).exp().sum(), p);
        v + (&g[0] * &g[1]).sum() + p[1].cos()
    };
    let s = check("inner value_and_grad", f);
    assert_eq!((s.traces, s.replays, s.eager_calls), (1, 2, 0));
}

#[test]
fn dead_values_leave_the_tape_even_without_a_compiled_form() {
    let live = |p: &[Tensor]| (&p[0] * &p[1]).sin().sum();
    let with_dead = |p: &[Tensor]| {
        // prod has no compiled form, and the exp is never used: neither reaches the output
        let _unused = p[0].prod_axes([0], false) + p[0].exp();
        (&p[0] * &p[1]).sin().sum()
    };
    let a = check("live", live);
    let b = check("with dead values", with_dead);
    assert_eq!(b.eager_calls, 0);
    assert_eq!(a.tape_len, b.tape_len);
}

#[test]
#[should_panic(expected = "escaped its trace")]
fn a_tensor_that_escapes_the_trace_cannot_be_differentiated() {
    let escaped: RefCell<Option<Tensor>> = RefCell::new(None);
    let cf = compile(|p: &[Tensor]| {
        let y = p[0].sin() * 2.0;
        *escaped.borrow_mut() = Some(y.clone());
        y.sum()
    });
    cf.call(&inputs()[..1]);
    let y = escaped.borrow_mut().take().expect("escaped");
    y.sum().backward();
}

#[test]
fn the_default_hvp_traces_where_it_compiles_and_falls_back_where_not() {
    use nabla::{HvpMode, hvp_with};
    let xs = inputs();
    let vs = vec![
        Tensor::from_vec(vec![1.0f64, -2.0, 0.5], [3]),
        Tensor::scalar(0.7f64),
    ];
    let smooth = |p: &[Tensor]| ((&p[0] * &p[1]).sin() * p[0].exp()).sum() * &p[1];
    // branches on a value: the trace sees the read and the default falls back to eager mode
    let branchy = |p: &[Tensor]| {
        if p[1].item() > 0.0 {
            (&p[0] * &p[0] * &p[1]).sum()
        } else {
            p[0].sin().sum()
        }
    };
    // the function captures a tensor that requires grad: a trace cannot replace it
    let w = Tensor::scalar(1.3f64).variable();
    let captures = |p: &[Tensor]| (&p[0] * &w).square().sum() * &p[1];
    for (name, f) in [
        ("smooth", &smooth as &dyn Fn(&[Tensor]) -> Tensor),
        ("branchy", &branchy),
        ("captures", &captures),
    ] {
        let auto = hvp_with(HvpMode::Auto, f, &xs, &vs);
        let eager = hvp_with(HvpMode::ReverseOverReverse, f, &xs, &vs);
        for (i, (a, e)) in auto.iter().zip(&eager).enumerate() {
            assert_close(&format!("{name} hvp block {i}"), a, e);
        }
    }
}
