//! maml-step: one second-order MAML meta-step on sinusoid regression (25 tasks, K = 10, the
//! 1-40-40-1 ReLU network, one inner SGD step with α = 0.01): the meta-loss and its gradient with
//! respect to the initial parameters, by `nabla_zoo::maml` (the code `nabla run maml-sine` trains
//! with). Inputs are the deterministic formulas of bench/reference/maml_ref.py.

use nabla::meta::Order;
use nabla::{DType, Tensor, value_and_grad};
use nabla_zoo::maml::{HIDDEN, meta_loss};

/// Tasks per meta-step.
pub const TASKS: usize = 25;
/// Support (and query) points per task.
pub const K: usize = 10;
/// Inner step size.
pub const ALPHA: f64 = 0.01;

fn frac(v: f64) -> f64 {
    v - v.floor()
}

/// The shared inputs: θ (six tensors `[1, a, b]`) and the support and query sets `[25, 10, 1]`.
pub fn maml_inputs() -> (Vec<Tensor>, [Tensor; 4]) {
    let shapes = [
        (1, HIDDEN),
        (1, HIDDEN),
        (HIDDEN, HIDDEN),
        (1, HIDDEN),
        (HIDDEN, 1),
        (1, 1),
    ];
    let fan_in = [1, 1, HIDDEN, HIDDEN, HIDDEN, HIDDEN];
    let theta = shapes
        .iter()
        .zip(fan_in)
        .enumerate()
        .map(|(j, (&(a, b), fan))| {
            let v: Vec<f32> = (0..a * b)
                .map(|i| {
                    ((0.37 * (i + 1) as f64 + 1.1 * j as f64).sin() / (fan as f64).sqrt()) as f32
                })
                .collect();
            Tensor::from_vec(v, [1, a, b])
        })
        .collect();
    let amp: Vec<f64> = (0..TASKS)
        .map(|t| 0.1 + 4.9 * frac(0.618034 * (t + 1) as f64))
        .collect();
    let phase: Vec<f64> = (0..TASKS)
        .map(|t| std::f64::consts::PI * frac(0.414214 * (t + 1) as f64))
        .collect();
    let points = |c: f64| {
        let x: Vec<f64> = (0..TASKS * K)
            .map(|n| -5.0 + 10.0 * frac(c * (n + 1) as f64))
            .collect();
        let y: Vec<f64> = (0..TASKS * K)
            .map(|n| amp[n / K] * (x[n] - phase[n / K]).sin())
            .collect();
        let to = |v: Vec<f64>| {
            let v: Vec<f32> = v.into_iter().map(|a| a as f32).collect();
            Tensor::from_vec(v, [TASKS, K, 1])
        };
        (to(x), to(y))
    };
    let (xs, ys) = points(0.7548777);
    let (xq, yq) = points(0.5698403);
    (theta, [xs, ys, xq, yq])
}

/// The meta-loss and its (second-order) gradient with respect to θ.
pub fn maml_step(theta: &[Tensor], data: &[Tensor; 4]) -> (Tensor, Vec<Tensor>) {
    let [xs, ys, xq, yq] = data;
    value_and_grad(
        |p: &[Tensor]| meta_loss(p, (xs, ys), (xq, yq), ALPHA, Order::Second),
        theta,
    )
}

/// Cross-check figures: the loss and each gradient's sum.
pub fn maml_xcheck(loss: &Tensor, grads: &[Tensor]) -> Vec<(String, f64)> {
    let mut v = vec![("loss".to_string(), loss.item())];
    for (j, g) in grads.iter().enumerate() {
        v.push((format!("grad_sum_{j}"), g.to_dtype(DType::F64).sum().item()));
    }
    v
}
