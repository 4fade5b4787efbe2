//! A user-defined operation with its own gradient: a numerically stable `log(1 + eˣ)`.
//!
//! Composed from `exp` and `log1p`, `log(1 + eˣ)` overflows for large `x`: `e⁸⁰⁰` is infinite in
//! f64, so the value is infinite and the gradient `eˣ / (1 + eˣ)` is `inf / inf = NaN`. As a
//! [`CustomOp`] we compute the value stably and give the derivative, `sigmoid(x)`, ourselves (and,
//! optionally, its forward-mode rule). `nabla::testing::check_grad` then compares both rules with
//! finite differences, and `check_grad2` the second derivatives (the backward rule is written with
//! tensor operations, so it is differentiable again).
//!
//! Run it with `cargo run --example custom_op`.

use nabla::testing::{check_grad, check_grad2};
use nabla::{CustomOp, Tensor, grad, jvp};

/// `log(1 + eˣ)` elementwise, stable for any `x`.
struct Log1pExp;

impl CustomOp for Log1pExp {
    fn name(&self) -> &str {
        "log1p_exp"
    }

    /// `max(x, 0) + log(1 + e^-|x|)`: the exponential never overflows.
    fn forward(&self, inputs: &[Tensor]) -> Tensor {
        let x = &inputs[0];
        x.clamp_min(0.0) + (-x.abs()).exp().log1p()
    }

    /// d/dx log(1 + eˣ) = sigmoid(x), which nabla computes without overflow.
    fn backward(&self, inputs: &[Tensor], _output: &Tensor, g: &Tensor) -> Vec<Option<Tensor>> {
        vec![Some(g * &inputs[0].sigmoid())]
    }

    /// Optional: the forward-mode rule (otherwise derived from `backward`).
    fn jvp(&self, inputs: &[Tensor], tangents: &[Option<Tensor>]) -> Option<Tensor> {
        let t = tangents[0].as_ref()?;
        Some(t * &inputs[0].sigmoid())
    }
}

/// The user-facing function.
fn log1p_exp(x: &Tensor) -> Tensor {
    Log1pExp.apply(std::slice::from_ref(x))
}

fn main() {
    let x = Tensor::from_vec(vec![-800.0f64, -3.0, 0.0, 2.5, 800.0], [5]);

    // The naive composition breaks at the ends; the custom op does not.
    let naive = |x: &Tensor| x.exp().log1p();
    let naive_grad = grad(|x: &Tensor| naive(x).sum())(&x);
    let stable_grad = grad(|x: &Tensor| log1p_exp(x).sum())(&x);
    println!("x                    {:?}", x.to_vec::<f64>());
    println!("naive  value         {:?}", naive(&x).to_vec::<f64>());
    println!("custom value         {:?}", log1p_exp(&x).to_vec::<f64>());
    println!("naive  gradient      {:?}", naive_grad.to_vec::<f64>());
    println!("custom gradient      {:?}", stable_grad.to_vec::<f64>());
    assert!(naive_grad.to_vec::<f64>()[4].is_nan());
    assert_eq!(stable_grad.to_vec::<f64>()[4], 1.0);
    assert_eq!(log1p_exp(&x).to_vec::<f64>()[4], 800.0);

    // It agrees with the built-in `softplus`, in value and gradient.
    let g_builtin = grad(|x: &Tensor| x.softplus().sum())(&x);
    assert!((&stable_grad - &g_builtin).abs().max().item() < 1e-15);

    // Forward mode uses our `jvp`: the tangent of the output along a direction.
    let (_, t) = jvp(
        |xs: &[Tensor]| log1p_exp(&xs[0]),
        std::slice::from_ref(&x),
        &[x.ones_like()],
    );
    println!("jvp along ones       {:?}", t.to_vec::<f64>());

    // Check both rules, and second derivatives, against central finite differences.
    let probe = Tensor::from_vec(vec![-4.0f64, -0.7, 0.3, 1.9, 6.0], [5]);
    check_grad(
        |xs: &[Tensor]| log1p_exp(&xs[0]) * &xs[0],
        std::slice::from_ref(&probe),
    )
    .expect("first derivatives agree with finite differences");
    check_grad2(|xs: &[Tensor]| log1p_exp(&xs[0]), &[probe])
        .expect("second derivatives agree with finite differences");
    println!("check_grad and check_grad2: ok");
}

#[cfg(test)]
#[test]
fn runs() {
    main();
}
