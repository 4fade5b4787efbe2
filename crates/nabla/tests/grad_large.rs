//! Gradients of the paths that only large inputs take (multi-threaded matmul above the small-size
//! cutoff, threaded pooling, batch-parallel convolution) against finite differences, and gradients
//! of tensors with a size-0 dimension.
//!
//! A full element-by-element check of a large input would take millions of evaluations; instead
//! each check compares reverse mode (`uᵀJ·d`) and forward mode (`J·d`, projected on `u`) with a
//! central difference along several random directions `d`, which exercises every element at once.

use nabla::rand::{SeedableRng, rngs::StdRng};
use nabla::testing::check_grad;
use nabla::{Conv2dOpts, DType, Tensor, jvp, vjp};

type UnaryFn = fn(&Tensor) -> Tensor;

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape.to_vec(), DType::F64, &mut StdRng::seed_from_u64(seed))
}

/// Reverse and forward mode of `f` at `xs` against central differences along random directions.
fn directional_check(what: &str, f: impl Fn(&[Tensor]) -> Tensor, xs: &[Tensor]) {
    let out = f(xs);
    let u = randn(out.dims(), 1000);
    let (_, pullback) = vjp(|ys: &[Tensor]| f(ys), xs);
    let g = pullback(&u);
    for k in 0..3u64 {
        let d: Vec<Tensor> = xs
            .iter()
            .enumerate()
            .map(|(i, x)| randn(x.dims(), 2000 + 10 * k + i as u64))
            .collect();
        let reverse: f64 = g.iter().zip(&d).map(|(g, d)| (g * d).sum().item()).sum();
        let forward = (jvp(|ys: &[Tensor]| f(ys), xs, &d).1 * &u).sum().item();
        let eps = 1e-6;
        let at = |s: f64| {
            let ys: Vec<Tensor> = xs.iter().zip(&d).map(|(x, d)| x + &(d * s)).collect();
            nabla::no_grad(|| (f(&ys) * &u).sum().item())
        };
        let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
        let scale: f64 = g
            .iter()
            .zip(&d)
            .map(|(g, d)| (g * d).abs().sum().item())
            .sum::<f64>()
            .max(1e-300);
        for (mode, v) in [("reverse", reverse), ("forward", forward)] {
            assert!(
                (v - numeric).abs() <= 1e-6 * scale,
                "{what}, direction {k}: {mode} mode {v} but finite differences {numeric} (scale {scale})"
            );
        }
    }
}

#[test]
fn threaded_matmul_above_the_small_cutoff() {
    // m·n·k far above the 4,096 of the naive loop: gemm, split over the rayon threads
    let (a, b) = (randn(&[96, 80], 1), randn(&[80, 72], 2));
    directional_check(
        "matmul 96x80x72",
        |x| x[0].matmul(&x[1]),
        &[a.clone(), b.clone()],
    );
    // batched, and with a transposed (strided) operand
    let (a, b) = (randn(&[3, 40, 50], 3), randn(&[3, 60, 50], 4));
    directional_check(
        "batched matmul with b transposed",
        |x| x[0].matmul(&x[1].t()),
        &[a, b],
    );
}

#[test]
fn threaded_pooling() {
    // [4, 8, 40, 40]: 51,200 elements, above the threading threshold (32,768)
    let x = randn(&[4, 8, 40, 40], 5);
    directional_check(
        "max_pool2d",
        |x| x[0].max_pool2d([2, 2], [2, 2], [0, 0]),
        std::slice::from_ref(&x),
    );
    directional_check(
        "max_pool2d 3x3 stride 2 padded",
        |x| x[0].max_pool2d([3, 3], [2, 2], [1, 1]),
        std::slice::from_ref(&x),
    );
    directional_check(
        "avg_pool2d",
        |x| x[0].avg_pool2d([3, 3], [2, 2], [1, 1]),
        std::slice::from_ref(&x),
    );
}

#[test]
fn batch_parallel_convolution() {
    // 6 samples, ~4.5 million flops: above the threshold that splits the batch over threads
    let x = randn(&[6, 8, 18, 18], 6);
    let w = randn(&[16, 8, 3, 3], 7).scale(0.2);
    let b = randn(&[16], 8);
    let opts = Conv2dOpts::default().padding(1);
    directional_check(
        "conv2d",
        |xs| xs[0].conv2d(&xs[1], Some(&xs[2]), opts),
        &[x.clone(), w.clone(), b],
    );
    let strided = Conv2dOpts {
        stride: [2, 2],
        ..Conv2dOpts::default()
    };
    directional_check(
        "conv2d stride 2",
        |xs| xs[0].conv2d(&xs[1], None, strided),
        &[x, w],
    );
}

#[test]
fn gradients_of_tensors_with_a_size_zero_dimension() {
    for shape in [vec![0], vec![0, 3], vec![2, 0, 3], vec![3, 0]] {
        let x = randn(&shape, 9);
        let y = randn(&shape, 10);
        let unary: [(&str, UnaryFn); 5] = [
            ("exp", |x| x.exp()),
            ("tanh", |x| x.tanh()),
            ("square", |x| x.square()),
            ("transpose", |x| x.t().contiguous()),
            ("softmax", |x| x.softmax(-1)),
        ];
        for (name, op) in unary {
            if name == "transpose" && shape.len() < 2 {
                continue;
            }
            check_grad(|xs: &[Tensor]| op(&xs[0]), std::slice::from_ref(&x))
                .unwrap_or_else(|e| panic!("{name} of {shape:?}: {e}"));
            let g = nabla::grad(|x: &Tensor| op(x).sum())(&x);
            assert_eq!(g.dims(), shape.as_slice(), "{name}");
        }
        check_grad(
            |xs: &[Tensor]| &xs[0] * &xs[1] + &xs[0],
            &[x.clone(), y.clone()],
        )
        .unwrap();
        // reductions of nothing: sum 0 with a zero gradient of the right shape
        let g = nabla::grad(|x: &Tensor| x.sum() + 1.0)(&x);
        assert_eq!(g.dims(), shape.as_slice());
        assert_eq!(nabla::no_grad(|| x.sum().item()), 0.0);
        check_grad(
            |xs: &[Tensor]| xs[0].sum_axes([0], false),
            std::slice::from_ref(&x),
        )
        .unwrap();
    }
    // a matmul with an empty inner dimension: zeros, and gradients of the right (empty) shapes
    let (a, b) = (randn(&[3, 0], 11), randn(&[0, 4], 12));
    let c = a.matmul(&b);
    assert_eq!(c.to_vec::<f64>(), vec![0.0; 12]);
    check_grad(|xs: &[Tensor]| xs[0].matmul(&xs[1]), &[a, b]).unwrap();
    // an empty batch through matmul
    check_grad(
        |xs: &[Tensor]| xs[0].matmul(&xs[1]),
        &[randn(&[0, 3], 13), randn(&[3, 2], 14)],
    )
    .unwrap();
}

#[test]
fn gradients_of_strided_inputs() {
    // the same values in a non-contiguous layout give the same gradients
    let base = randn(&[4, 6], 15);
    let strided = base.t().contiguous().t();
    assert!(!strided.is_contiguous());
    for (name, op) in [
        (
            "matmul",
            (|x: &Tensor| x.matmul(&x.t())) as fn(&Tensor) -> Tensor,
        ),
        ("softmax", |x| x.softmax(-1)),
        ("sum_axes", |x| x.sum_axes([1], false)),
        ("exp", |x| x.exp()),
    ] {
        check_grad(|xs: &[Tensor]| op(&xs[0]), std::slice::from_ref(&strided))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let g1 = nabla::grad(|x: &Tensor| op(x).square().sum())(&base).to_vec::<f64>();
        let g2 = nabla::grad(|x: &Tensor| op(x).square().sum())(&strided).to_vec::<f64>();
        for (a, b) in g1.iter().zip(&g2) {
            assert!(
                (a - b).abs() <= 1e-12 * (1.0 + a.abs()),
                "{name}: {a} vs {b}"
            );
        }
    }
}
