//! Soft control flow: learn *which branch to take*.
//!
//! The target is a piecewise function, `y = x²` for `x > 0.5` and `y = 0.25 - (x - 0.5)` below.
//! An `if` on `x` would need to know the threshold; instead the program blends both branches with
//! `soft_select(b, f(x), g(x)) = b·f + (1 - b)·g`, where the gate `b = σ(k·(x - c))` has a learned
//! slope `k` and threshold `c`. Gradients reach `b` through both branches, so plain gradient descent
//! finds where to switch (`c → 0.5`) and sharpens the gate (`k` grows), turning the soft conditional
//! into an almost hard one.
//!
//! Run: `cargo run --example soft_select`.

use nabla::{Tensor, soft_select, value_and_grad};

fn target(x: f64) -> f64 {
    if x > 0.5 { x * x } else { 0.25 - (x - 0.5) }
}

fn main() {
    let xs: Vec<f64> = (0..64).map(|i| i as f64 / 63.0 * 2.0 - 0.5).collect();
    let ys: Vec<f64> = xs.iter().map(|&x| target(x)).collect();
    let x = Tensor::from_vec(xs.clone(), [xs.len()]);
    let y = Tensor::from_vec(ys, [xs.len()]);

    // parameters: log of the gate's slope, and its threshold (starting far from 0.5)
    let mut params = vec![Tensor::scalar(1.0f64), Tensor::scalar(-0.2f64)];
    let loss_fn = |p: &[Tensor]| {
        let b = ((&x - &p[1]) * p[0].exp()).sigmoid(); // the gate, in (0, 1)
        let on_true = &x * &x;
        let on_false = 0.25 - (&x - 0.5);
        let pred = soft_select(&b, &on_true, &on_false);
        (pred - &y).square().mean()
    };
    let (first, _) = value_and_grad(loss_fn, &params);
    let lr = [0.5, 0.05];
    for step in 0..3000 {
        let (loss, g) = value_and_grad(loss_fn, &params);
        for i in 0..2 {
            params[i] = &params[i] - &g[i] * lr[i];
        }
        if step % 500 == 0 {
            println!(
                "step {step:4}: loss {:.2e}, threshold c = {:.4}, slope k = {:.1}",
                loss.item(),
                params[1].item(),
                params[0].exp().item()
            );
        }
    }
    let (last, _) = value_and_grad(loss_fn, &params);
    let (c, k) = (params[1].item(), params[0].exp().item());
    println!(
        "learned: switch at x = {c:.4} (true 0.5), slope {k:.1}; loss {:.2e} -> {:.2e}",
        first.item(),
        last.item()
    );
    assert!((c - 0.5).abs() < 0.02, "threshold {c}");
    assert!(k > 20.0, "slope {k}");
    assert!(last.item() < first.item() / 100.0);
}

#[cfg(test)]
#[test]
fn runs() {
    main();
}
