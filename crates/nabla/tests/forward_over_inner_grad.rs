//! Forward mode (`jvp`) through a function that computes an inner gradient (`value_and_grad`,
//! `meta::inner_grad`, `vjp`) and feeds it, with the inner loss, into further computation: the
//! shape of an unrolled learned optimiser's meta-loss. Checked against central finite differences
//! in f64, in forward and reverse mode.

use nabla::meta::{Order, inner_grad};
use nabla::nn::{LstmCell, Module};
use nabla::rand::{SeedableRng, rngs::StdRng};
use nabla::testing::check_grad;
use nabla::{DType, Tensor, jvp, value_and_grad, vjp};

/// `x ↦ Σ sin(x)·x²`, an inner loss with a non-constant Hessian.
fn inner(p: &[Tensor]) -> Tensor {
    (p[0].sin() * p[0].square()).sum()
}

#[test]
fn jvp_of_the_value_returned_by_value_and_grad_keeps_its_tangent() {
    // d/dx of value_and_grad(f)(x).0 is f'(x): the value must carry the outer tangent.
    let x = Tensor::scalar(0.7f64);
    let (_, t) = jvp(
        |xs: &[Tensor]| value_and_grad(inner, xs).0,
        std::slice::from_ref(&x),
        &[Tensor::scalar(1.0f64)],
    );
    let want = 0.7f64.cos() * 0.49 + 0.7f64.sin() * 1.4;
    assert!((t.item() - want).abs() < 1e-12, "{} vs {want}", t.item());
    // the same for the value returned by vjp
    let (_, t) = jvp(
        |xs: &[Tensor]| vjp(inner, xs).0,
        std::slice::from_ref(&x),
        &[Tensor::scalar(1.0f64)],
    );
    assert!((t.item() - want).abs() < 1e-12, "{} vs {want}", t.item());
}

#[test]
fn inner_gradient_and_loss_through_tanh_and_sigmoid_match_finite_differences() {
    let x = Tensor::from_vec(vec![0.3f64, -0.8, 1.1], [3]);
    let f = |xs: &[Tensor]| {
        let (loss, g) = value_and_grad(inner, xs);
        let y = (&g[0].tanh() * &g[0].sigmoid() + &xs[0]).sum();
        y + loss
    };
    check_grad(f, &[x]).unwrap();
}

#[test]
fn unrolled_steps_of_an_lstm_reading_the_inner_gradient_match_finite_differences() {
    // Three steps: θ ← θ + W·h(LSTM(∇f(θ))), meta-loss = Σ f(θ_k) with the inner losses recorded
    // (Order::Second), differentiated with respect to the LSTM's weights, as learned-optimizer does.
    let make = || LstmCell::with_options(1, 2, true, DType::F64, &mut StdRng::seed_from_u64(3));
    let mut rng = StdRng::seed_from_u64(4);
    let out_w = Tensor::randn([2, 1], DType::F64, &mut rng) * 0.3;
    let theta0 = Tensor::from_vec(vec![0.4f64, -0.9, 1.3], [3, 1]);
    let mut weights: Vec<Tensor> = make().parameters().iter().map(|t| t.detach()).collect();
    weights.push(out_w);
    let n = weights.len();
    let meta = |ws: &[Tensor]| {
        let mut cell = make();
        cell.set_parameters(&ws[..n - 1]);
        let mut theta = theta0.clone();
        let mut state: Option<(Tensor, Tensor)> = None;
        let mut total = Tensor::scalar(0.0f64);
        for _ in 0..3 {
            let (loss, g) = inner_grad(inner, std::slice::from_ref(&theta), Order::Second);
            total = total + loss;
            let (h, c) = cell.forward_with_state(&g[0], state.as_ref().map(|(h, c)| (h, c)));
            theta = &theta + h.matmul(&ws[n - 1]);
            state = Some((h, c));
        }
        total + inner(&[theta])
    };
    check_grad(meta, &weights).unwrap();
}
