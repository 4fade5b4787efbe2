//! Meta-learning support: higher-order gradients of composites and gradients through inner
//! optimisation steps, against central finite differences in f64.

use nabla::meta::{
    DiffAdam, DiffMomentum, DiffOptimizer, DiffSgd, Order, Unroll, inner_grad, unroll,
};
use nabla::rand::{SeedableRng, rngs::StdRng};
use nabla::testing::{GradCheck, check_grad, check_grad_with, check_grad2};
use nabla::{DType, Tensor, grad, value_and_grad};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape.to_vec(), DType::F64, &mut StdRng::seed_from_u64(seed)) * 0.5
}

/// A composite of matmul, tanh, exp, sin and a reduction.
fn composite(x: &Tensor, w: &Tensor) -> Tensor {
    let h = x.reshape([1, 3]).matmul(w).tanh();
    (&h.exp() * &(&h * 2.0).sin()).sum() + (x * x * x).sum() * 0.1
}

#[test]
fn third_order_gradient_of_a_composite_matches_finite_differences() {
    let w = randn(&[3, 4], 1);
    let x = randn(&[3], 2);
    // third derivative along a direction, by grad of grad of grad ...
    let v = Tensor::from_vec(vec![0.3f64, -0.5, 0.8], [3]);
    let d = |order: usize| {
        let w = w.clone();
        let v = v.clone();
        move |x: &Tensor| -> f64 {
            // directional derivatives v·∇ nested `order` times, each a grad of the previous
            fn nest(k: usize, x: &Tensor, w: &Tensor, v: &Tensor) -> Tensor {
                if k == 0 {
                    return composite(x, w);
                }
                let (w2, v2) = (w.clone(), v.clone());
                (grad(move |y: &Tensor| nest(k - 1, y, &w2, &v2))(x) * v).sum()
            }
            nest(order, x, &w, &v).item()
        }
    };
    let d2 = d(2);
    let d3 = d(3);
    let h = 1e-4;
    let xp = &x + &(&v * h);
    let xm = &x - &(&v * h);
    let fd = (d2(&xp) - d2(&xm)) / (2.0 * h);
    let exact = d3(&x);
    assert!(
        (fd - exact).abs() <= 1e-6 * (1.0 + exact.abs()),
        "third derivative {exact} vs finite differences of the second {fd}"
    );
    // and every third derivative: check_grad2 checks second derivatives of the gradient
    let w2 = w.clone();
    check_grad2(
        move |xs: &[Tensor]| {
            let w = w2.clone();
            grad(move |y: &Tensor| composite(y, &w))(&xs[0])
        },
        &[x],
    )
    .unwrap();
}

/// Tanh MLP regression loss with parameters `[w1, b1, w2]`.
fn mlp_loss(p: &[Tensor], x: &Tensor, y: &Tensor) -> Tensor {
    let h = (x.matmul(&p[0]) + &p[1]).tanh();
    (h.matmul(&p[2]) - y).square().mean()
}

fn data(seed: u64) -> (Tensor, Tensor) {
    let x = randn(&[6, 2], seed) * 2.0;
    let y = (x.narrow(1, 0, 1) * 1.5).sin() + x.narrow(1, 1, 1) * 0.3;
    (x, y)
}

fn mlp_params() -> Vec<Tensor> {
    vec![randn(&[2, 5], 10), randn(&[5], 11), randn(&[5, 1], 12)]
}

#[test]
fn gradient_through_an_inner_sgd_step_matches_finite_differences() {
    let (xt, yt) = data(3);
    let (xv, yv) = data(4);
    // inputs: the three initial parameters and the learning rate; second-order meta-gradient
    let meta = move |xs: &[Tensor]| {
        let (xt, yt) = (xt.clone(), yt.clone());
        let (_, g) = inner_grad(
            |p: &[Tensor]| mlp_loss(p, &xt, &yt),
            &xs[..3],
            Order::Second,
        );
        let opt = DiffSgd::new(xs[3].clone());
        let (p, _) = opt.update(&xs[..3], &g, &opt.init(&xs[..3]));
        mlp_loss(&p, &xv, &yv)
    };
    let mut inputs = mlp_params();
    inputs.push(Tensor::scalar(0.3f64));
    check_grad(meta, &inputs).unwrap();
}

#[test]
fn first_order_meta_gradient_treats_the_inner_gradient_as_constant() {
    let (xt, yt) = data(5);
    let (xv, yv) = data(6);
    let p0 = mlp_params();
    let lr = 0.2;
    let (xt2, yt2) = (xt.clone(), yt.clone());
    let (xv2, yv2) = (xv.clone(), yv.clone());
    let (_, meta_g) = value_and_grad(
        move |p: &[Tensor]| {
            let (xt, yt) = (xt2.clone(), yt2.clone());
            let (_, g) = inner_grad(|q: &[Tensor]| mlp_loss(q, &xt, &yt), p, Order::First);
            assert!(g.iter().all(|g| !g.requires_grad()));
            let opt = DiffSgd::new(Tensor::scalar(lr));
            let (p2, _) = opt.update(p, &g, &opt.init(p));
            mlp_loss(&p2, &xv2, &yv2)
        },
        &p0,
    );
    // expected: the validation gradient at the adapted parameters
    let (_, g) = value_and_grad(|q: &[Tensor]| mlp_loss(q, &xt, &yt), &p0);
    let adapted: Vec<Tensor> = p0.iter().zip(&g).map(|(p, g)| p - &(g * lr)).collect();
    let (_, want) = value_and_grad(|q: &[Tensor]| mlp_loss(q, &xv, &yv), &adapted);
    for (a, b) in meta_g.iter().zip(&want) {
        for (u, v) in a.to_vec::<f64>().iter().zip(b.to_vec::<f64>()) {
            assert!((u - v).abs() < 1e-12, "{u} vs {v}");
        }
    }
}

/// Validation loss after an unroll of `cfg` from parameters `xs[..3]` with hyperparameters
/// `xs[3..]` (as `make` builds the optimiser from them).
fn unrolled_val<O: DiffOptimizer>(
    cfg: Unroll,
    sum_weight: f64,
    make: impl Fn(&[Tensor]) -> O,
) -> impl Fn(&[Tensor]) -> Tensor {
    let (xt, yt) = data(7);
    let (xv, yv) = data(8);
    move |xs: &[Tensor]| {
        let opt = make(&xs[3..]);
        let (xt, yt) = (xt.clone(), yt.clone());
        let out = unroll(
            &opt,
            &xs[..3],
            &opt.init(&xs[..3]),
            &cfg,
            move |_, p: &[Tensor]| mlp_loss(p, &xt, &yt),
        );
        mlp_loss(&out.params, &xv, &yv) + out.loss_sum * sum_weight
    }
}

fn loose() -> GradCheck {
    GradCheck {
        rtol: 1e-4,
        atol: 1e-6,
        forward_mode: false,
        ..GradCheck::default()
    }
}

#[test]
fn unrolled_momentum_and_adam_gradients_match_finite_differences() {
    let mut inputs = mlp_params();
    inputs.extend([Tensor::scalar(0.1f64), Tensor::scalar(0.7f64)]);
    let momentum = |h: &[Tensor]| DiffMomentum::new(h[0].clone(), h[1].clone());
    check_grad_with(
        unrolled_val(Unroll::new(4), 0.1, momentum),
        &inputs,
        &loose(),
    )
    .unwrap();
    // checkpointed blocks of 3 (and a last block of 1) give the same gradient
    check_grad_with(
        unrolled_val(Unroll::new(4).checkpoint_every(3), 0.1, momentum),
        &inputs,
        &loose(),
    )
    .unwrap();

    let mut inputs = mlp_params();
    inputs.extend([
        Tensor::scalar(0.05f64),
        Tensor::scalar(0.8f64),
        Tensor::scalar(0.95f64),
    ]);
    let adam = |h: &[Tensor]| DiffAdam::new(h[0].clone()).betas(h[1].clone(), h[2].clone());
    check_grad_with(unrolled_val(Unroll::new(3), 0.1, adam), &inputs, &loose()).unwrap();
}

#[test]
fn checkpointing_and_truncation_give_the_expected_meta_gradients() {
    let mut inputs = mlp_params();
    inputs.push(Tensor::scalar(0.2f64));
    let sgd = |h: &[Tensor]| DiffSgd::new(h[0].clone());
    let (a, ga) = value_and_grad(unrolled_val(Unroll::new(9), 0.1, sgd), &inputs);
    let (b, gb) = value_and_grad(
        unrolled_val(Unroll::new(9).checkpoint_every(4), 0.1, sgd),
        &inputs,
    );
    assert!((a.item() - b.item()).abs() < 1e-12);
    for (u, v) in ga.iter().zip(&gb) {
        for (x, y) in u.to_vec::<f64>().iter().zip(v.to_vec::<f64>()) {
            assert!((x - y).abs() < 1e-10, "{x} vs {y}");
        }
    }
    // truncated to the last 2 steps: no gradient of the final validation loss reaches the initial
    // parameters, the learning rate still gets one, and the value is unchanged
    let (a, ga) = value_and_grad(unrolled_val(Unroll::new(9), 0.0, sgd), &inputs);
    let (c, gc) = value_and_grad(unrolled_val(Unroll::new(9).truncate(2), 0.0, sgd), &inputs);
    assert!((a.item() - c.item()).abs() < 1e-12);
    for g in &gc[..3] {
        assert!(g.to_vec::<f64>().iter().all(|v| *v == 0.0));
    }
    assert!(gc[3].item() != 0.0 && gc[3].item() != ga[3].item());
}
