//! Optimisers, learning-rate schedules and gradient clipping step for step against PyTorch.
//!
//! The fixture `fixtures/optim_torch.json` comes from `fixtures/gen_optim_fixtures.py` (float64):
//! for each configuration, the parameter after each of 12 steps on the loss
//! `sum(a * p² + b * sin(p))`, whose gradient depends on `p`, so any difference in an update rule
//! makes the trajectories drift apart. Each test here builds the configuration of the same name.
//!
//! The last tests check, on a large f32 parameter, that the parallel, chunked update writes the
//! same bits whether the parameter is updated in place or, while the loss's graph still holds it,
//! into a fresh buffer.

use nabla::optim::{
    Adagrad, Adam, AdamW, ConstantLr, CosineLr, ExponentialLr, LinearWarmup, LrSchedule, Optimizer,
    RmsProp, Sgd, StepLr, clip_grad_norm, clip_grad_value,
};
use nabla::{Grads, Tensor};
use serde_json::Value;
use std::sync::OnceLock;

fn fixture() -> &'static Value {
    static F: OnceLock<Value> = OnceLock::new();
    F.get_or_init(|| {
        serde_json::from_str(include_str!("fixtures/optim_torch.json")).expect("fixture")
    })
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn loss(p: &Tensor, a: &Tensor, b: &Tensor) -> Tensor {
    (a * &p.square() + b * &p.sin()).sum()
}

fn close(x: f64, y: f64, tol: f64) -> bool {
    (x - y).abs() <= tol * (1.0 + y.abs())
}

/// Gradient clipping applied between `backward` and `step`.
enum Clip {
    None,
    Value(f64),
    Norm(f64),
}

/// Runs `opt` on the fixture problem the way the script drives PyTorch and compares the learning
/// rate, the gradient norm (when clipping by norm) and the parameter at every step.
fn check(name: &str, mut opt: impl Optimizer, schedule: Option<&dyn LrSchedule>, clip: Clip) {
    check_tol(name, &mut opt, schedule, clip, 1e-10)
}

fn check_tol(
    name: &str,
    opt: &mut dyn Optimizer,
    schedule: Option<&dyn LrSchedule>,
    clip: Clip,
    tol: f64,
) {
    let f = fixture();
    let case = &f["configs"][name];
    assert!(case.is_object(), "no fixture for `{name}`");
    let n = floats(&f["p0"]).len();
    let a = Tensor::from_vec(floats(&f["a"]), [n]);
    let b = Tensor::from_vec(floats(&f["b"]), [n]);
    let mut p = Tensor::from_vec(floats(&f["p0"]), [n]).variable();
    let params = case["params"].as_array().expect("params");
    let lrs = floats(&case["lrs"]);
    assert_eq!(params.len(), f["steps"].as_u64().unwrap() as usize);
    for (step, want) in params.iter().enumerate() {
        if let Some(s) = schedule {
            opt.set_learning_rate(s.lr(step));
        }
        assert!(
            close(opt.learning_rate(), lrs[step], 1e-12),
            "{name}: learning rate at step {step}: {} vs torch {}",
            opt.learning_rate(),
            lrs[step]
        );
        let mut grads: Grads = loss(&p, &a, &b).backward();
        match clip {
            Clip::None => {}
            Clip::Value(v) => clip_grad_value(&mut grads, v),
            Clip::Norm(max) => {
                let norm = clip_grad_norm(&mut grads, max);
                let want = case["grad_norms"][step].as_f64().expect("grad norm");
                // exact at the first step; later, the parameters differ by up to `tol`
                let norm_tol = if step == 0 { 1e-12 } else { tol };
                assert!(
                    close(norm, want, norm_tol),
                    "{name}: gradient norm at step {step}: {norm} vs torch {want}"
                );
            }
        }
        opt.step(&mut p, &grads);
        assert!(p.requires_grad(), "{name}: parameter no longer a variable");
        let got = p.to_vec::<f64>();
        let want = floats(want);
        for (i, (x, y)) in got.iter().zip(&want).enumerate() {
            assert!(
                close(*x, *y, tol),
                "{name}: step {} element {i}: nabla {x} vs torch {y} (diff {:e})",
                step + 1,
                (x - y).abs()
            );
        }
    }
}

// ---- SGD ----

#[test]
fn sgd() {
    check("sgd", Sgd::new(0.1), None, Clip::None);
}

#[test]
fn sgd_weight_decay() {
    check(
        "sgd_weight_decay",
        Sgd::new(0.1).weight_decay(0.05),
        None,
        Clip::None,
    );
}

#[test]
fn sgd_momentum() {
    check(
        "sgd_momentum",
        Sgd::new(0.1).momentum(0.9),
        None,
        Clip::None,
    );
}

#[test]
fn sgd_nesterov() {
    check(
        "sgd_nesterov",
        Sgd::new(0.1).momentum(0.9).nesterov(true),
        None,
        Clip::None,
    );
}

#[test]
fn sgd_momentum_weight_decay() {
    // torch: dampening 0 (nabla has no dampening)
    check(
        "sgd_momentum_weight_decay",
        Sgd::new(0.1).momentum(0.9).weight_decay(0.01),
        None,
        Clip::None,
    );
}

#[test]
fn sgd_nesterov_weight_decay() {
    check(
        "sgd_nesterov_weight_decay",
        Sgd::new(0.05)
            .momentum(0.8)
            .nesterov(true)
            .weight_decay(0.1),
        None,
        Clip::None,
    );
}

// ---- Adam, AdamW ----

#[test]
fn adam() {
    check("adam", Adam::new(0.1), None, Clip::None);
}

#[test]
fn adam_betas_eps() {
    check(
        "adam_betas_eps",
        Adam::new(0.05).betas(0.8, 0.95).eps(1e-3),
        None,
        Clip::None,
    );
}

#[test]
fn adam_weight_decay_is_l2() {
    check(
        "adam_weight_decay",
        Adam::new(0.1).weight_decay(0.1),
        None,
        Clip::None,
    );
}

#[test]
fn adamw_default_weight_decay() {
    // both default to λ = 0.01
    check("adamw_default", AdamW::new(0.1), None, Clip::None);
}

#[test]
fn adamw() {
    check("adamw", AdamW::new(0.1).weight_decay(0.1), None, Clip::None);
}

#[test]
fn adamw_betas_eps() {
    check(
        "adamw_betas_eps",
        AdamW::new(0.05)
            .betas(0.85, 0.9)
            .eps(1e-2)
            .weight_decay(0.3),
        None,
        Clip::None,
    );
}

// ---- RMSprop, Adagrad ----

#[test]
fn rmsprop() {
    check(
        "rmsprop",
        RmsProp::new(0.01).alpha(0.99).eps(1e-8),
        None,
        Clip::None,
    );
}

#[test]
fn rmsprop_alpha_eps_weight_decay() {
    check(
        "rmsprop_alpha_eps_weight_decay",
        RmsProp::new(0.02).alpha(0.9).eps(1e-3).weight_decay(0.05),
        None,
        Clip::None,
    );
}

#[test]
fn adagrad() {
    check("adagrad", Adagrad::new(0.5), None, Clip::None);
}

#[test]
fn adagrad_weight_decay() {
    check(
        "adagrad_weight_decay",
        Adagrad::new(0.5).weight_decay(0.1),
        None,
        Clip::None,
    );
}

// ---- learning-rate schedules (torch's scheduler.step() after each optimizer.step()) ----

#[test]
fn sgd_momentum_step_lr() {
    // torch StepLR(step_size=4, gamma=0.5)
    let s = StepLr {
        base: 0.1,
        step_size: 4,
        gamma: 0.5,
    };
    check(
        "sgd_momentum_step_lr",
        Sgd::new(0.1).momentum(0.9),
        Some(&s),
        Clip::None,
    );
}

#[test]
fn adam_exponential_lr() {
    // torch ExponentialLR(gamma=0.8)
    let s = ExponentialLr {
        base: 0.1,
        gamma: 0.8,
    };
    check("adam_exponential_lr", Adam::new(0.1), Some(&s), Clip::None);
}

#[test]
fn adam_cosine_lr() {
    // torch CosineAnnealingLR(T_max=11, eta_min=0.01); the 12th step runs at eta_min
    let s = CosineLr {
        base: 0.1,
        min: 0.01,
        total: 11,
    };
    check("adam_cosine_lr", Adam::new(0.1), Some(&s), Clip::None);
}

#[test]
fn sgd_linear_warmup() {
    // torch LinearLR(start_factor=1/4, end_factor=1, total_iters=3)
    let s = LinearWarmup::new(4, ConstantLr(0.1));
    check("sgd_linear_warmup", Sgd::new(0.1), Some(&s), Clip::None);
}

#[test]
fn adamw_warmup_cosine() {
    // torch SequentialLR([LinearLR(1/3, 1, total_iters=2), CosineAnnealingLR(T_max=8,
    // eta_min=0.005)], milestones=[3])
    let s = LinearWarmup::new(
        3,
        CosineLr {
            base: 0.1,
            min: 0.005,
            total: 8,
        },
    );
    check("adamw_warmup_cosine", AdamW::new(0.1), Some(&s), Clip::None);
}

// ---- gradient clipping (torch.nn.utils.clip_grad_value_ / clip_grad_norm_) ----

#[test]
fn sgd_momentum_clip_value() {
    check(
        "sgd_momentum_clip_value",
        Sgd::new(0.1).momentum(0.9),
        None,
        Clip::Value(0.5),
    );
}

#[test]
fn sgd_momentum_clip_norm() {
    check_tol(
        "sgd_momentum_clip_norm",
        &mut Sgd::new(0.5).momentum(0.9),
        None,
        Clip::Norm(1.0),
        1e-10,
    );
}

// ---- large parameter: parallel split and chunked fresh-buffer path ----

/// More than 2 · 2^15 elements, so `par_apply` splits twice, and an odd length so neither the
/// halves nor the 4096-element chunks come out even.
const BIG: usize = 100_003;

fn big_problem(range: std::ops::Range<usize>) -> (Vec<f32>, Tensor, Tensor) {
    let p0 = range
        .clone()
        .map(|i| ((i * 7919) % 2000) as f32 / 1000.0 - 1.0)
        .collect();
    let a: Vec<f32> = range.clone().map(|i| 0.5 + (i % 13) as f32 * 0.1).collect();
    let b: Vec<f32> = range.map(|i| ((i % 7) as f32 - 3.0) * 0.4).collect();
    let n = a.len();
    (p0, Tensor::from_vec(a, [n]), Tensor::from_vec(b, [n]))
}

/// The parameter after each of `steps` steps. With `keep_graph`, the loss (and with it the
/// parameter's buffer) stays alive across `opt.step`, and a clone of the parameter taken before the
/// step must keep the old values.
fn big_run(
    mut opt: impl Optimizer,
    range: std::ops::Range<usize>,
    steps: usize,
    keep_graph: bool,
) -> Vec<Vec<f32>> {
    let (p0, a, b) = big_problem(range);
    let n = p0.len();
    let mut p = Tensor::from_vec(p0, [n]).variable();
    let mut out = Vec::new();
    for _ in 0..steps {
        if keep_graph {
            let l = loss(&p, &a, &b);
            let grads = l.backward();
            let old = p.clone();
            let before = old.to_vec::<f32>();
            opt.step(&mut p, &grads);
            assert_eq!(
                old.to_vec::<f32>(),
                before,
                "the step wrote the shared buffer"
            );
            assert_ne!(p.to_vec::<f32>(), before, "the step did nothing");
            // the graph still works on the old values
            let again = l.backward();
            assert_eq!(
                again.get(&old).expect("gradient").to_vec::<f32>(),
                grads.get(&old).expect("gradient").to_vec::<f32>()
            );
        } else {
            let grads = {
                let l = loss(&p, &a, &b);
                l.backward()
            }; // graph dropped: the parameter's buffer is the optimiser's to overwrite
            opt.step(&mut p, &grads);
        }
        assert!(p.requires_grad());
        out.push(p.to_vec::<f32>());
    }
    out
}

fn check_big<O: Optimizer>(make: impl Fn() -> O) {
    const STEPS: usize = 4;
    let in_place = big_run(make(), 0..BIG, STEPS, false);
    let fresh = big_run(make(), 0..BIG, STEPS, true);
    for (s, (x, y)) in in_place.iter().zip(&fresh).enumerate() {
        let same = x.iter().zip(y).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(
            same,
            "step {}: in-place and fresh-buffer updates differ",
            s + 1
        );
    }
    // Elementwise rules: a slice run on its own (small enough for one unsplit leaf) gives the
    // same bits, both at the start and across the split points (BIG / 2 and BIG / 4).
    for range in [
        0..5000,
        BIG / 2 - 2500..BIG / 2 + 2500,
        BIG / 4 - 10..BIG / 4 + 10,
    ] {
        let small = big_run(make(), range.clone(), STEPS, false);
        for (s, (whole, part)) in in_place.iter().zip(&small).enumerate() {
            let same = whole[range.clone()]
                .iter()
                .zip(part)
                .all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "step {}: slice {range:?} differs", s + 1);
        }
    }
}

#[test]
fn large_adam_in_place_and_fresh_buffer_agree_bitwise() {
    check_big(|| Adam::new(0.01));
}

#[test]
fn large_adamw_in_place_and_fresh_buffer_agree_bitwise() {
    check_big(|| AdamW::new(0.01).weight_decay(0.1));
}

#[test]
fn large_sgd_in_place_and_fresh_buffer_agree_bitwise() {
    // no buffers (plain) and one buffer (momentum)
    check_big(|| Sgd::new(0.05));
    check_big(|| Sgd::new(0.05).momentum(0.9).nesterov(true));
}

#[test]
fn large_rmsprop_and_adagrad_in_place_and_fresh_buffer_agree_bitwise() {
    check_big(|| RmsProp::new(0.01));
    check_big(|| Adagrad::new(0.1));
}
