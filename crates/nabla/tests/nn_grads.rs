//! Finite-difference checks (`check_grad`, f64) of the building blocks whose gradients had none:
//! dropout and alpha dropout (and dropout's 1/(1-p) scaling), the losses with every reduction and
//! k-d inputs, batch norm's affine parameters and evaluation mode, attention called directly and
//! through `MultiHeadAttention` with a key padding mask and dropout, and the recurrent layers at
//! sizes beyond the tiny one of `rnn.rs`.

use nabla::nn::{
    AlphaDropout, BatchNorm, ClassLossOpts, Dropout, Forward, Gru, Lstm, Module,
    MultiHeadAttention, Reduction, Rnn, RnnNonlinearity, RnnOptions,
    binary_cross_entropy_with_logits, cross_entropy_with, mse_loss, nll_loss_with,
    scaled_dot_product_attention,
};
use nabla::rand::{SeedableRng, rngs::StdRng};
use nabla::testing::{check_grad, check_grad2};
use nabla::{DType, Indices, Tensor};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape.to_vec(), DType::F64, &mut StdRng::seed_from_u64(seed))
}

fn f64_module<M: Module>(mut m: M) -> M {
    m.to_dtype(DType::F64);
    m
}

/// `run(module with parameters xs[n..], xs[..n])` checked against finite differences with
/// respect to its `n` inputs and every parameter. `make` must build the same module (same
/// random masks) each time.
fn check_module<M: Module>(
    make: impl Fn() -> M,
    inputs: Vec<Tensor>,
    run: impl Fn(&M, &[Tensor]) -> Tensor,
) {
    let n = inputs.len();
    let mut all = inputs;
    all.extend(make().parameters().iter().map(|p| p.detach()));
    let f = |xs: &[Tensor]| {
        let mut m = make();
        m.set_parameters(&xs[n..]);
        run(&m, &xs[..n])
    };
    check_grad(f, &all).unwrap();
}

// ----- dropout -----------------------------------------------------------------------------------

#[test]
fn dropout_scales_kept_elements_by_one_over_keep_probability() {
    for p in [0.1, 0.5, 0.8] {
        let x = randn(&[4000], 1);
        let d = Dropout::new(p, &mut StdRng::seed_from_u64(2));
        let y = d.forward(&x).to_vec::<f64>();
        let xv = x.to_vec::<f64>();
        let mut kept = 0;
        for (a, b) in xv.iter().zip(&y) {
            if *b != 0.0 {
                kept += 1;
                assert!((b - a / (1.0 - p)).abs() < 1e-12, "p {p}: {a} -> {b}");
            }
        }
        // the kept fraction is 1 - p (4000 draws: within 4 standard deviations)
        let sd = (4000.0 * p * (1.0 - p)).sqrt();
        assert!(
            (kept as f64 - 4000.0 * (1.0 - p)).abs() < 4.0 * sd,
            "p {p}: kept {kept}"
        );
    }
}

#[test]
fn dropout_gradient_matches_finite_differences() {
    let x = randn(&[3, 7], 3);
    // a fresh layer from the same seed draws the same mask at every evaluation
    let f = |xs: &[Tensor]| {
        Dropout::new(0.4, &mut StdRng::seed_from_u64(4))
            .forward(&xs[0])
            .square()
    };
    check_grad(f, std::slice::from_ref(&x)).unwrap();
    check_grad2(f, std::slice::from_ref(&x)).unwrap();
    let g = nabla::grad(|x: &Tensor| {
        Dropout::new(0.4, &mut StdRng::seed_from_u64(4))
            .forward(x)
            .sum()
    })(&x)
    .to_vec::<f64>();
    assert!(
        g.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.6).abs() < 1e-12),
        "{g:?}"
    );
}

#[test]
fn alpha_dropout_keeps_mean_and_variance_and_its_gradient_matches() {
    let x = randn(&[20000], 5);
    let mut d = AlphaDropout::new(0.2, &mut StdRng::seed_from_u64(6));
    let y = d.forward(&x).to_vec::<f64>();
    let n = y.len() as f64;
    let mean = y.iter().sum::<f64>() / n;
    let var = y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    assert!(
        mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
        "mean {mean} var {var}"
    );
    // dropped elements all take one value (the most frequent); kept ones are one affine map of
    // the input
    let xv = x.to_vec::<f64>();
    let mut sorted = y.clone();
    sorted.sort_by(f64::total_cmp);
    let dropped_value = sorted[..]
        .chunk_by(|a, b| a == b)
        .max_by_key(|c| c.len())
        .unwrap()[0];
    let kept: Vec<(f64, f64)> = xv
        .iter()
        .zip(&y)
        .filter(|(_, b)| **b != dropped_value)
        .map(|(a, b)| (*a, *b))
        .collect();
    let dropped = y.len() - kept.len();
    assert!((3400..4600).contains(&dropped), "{dropped}");
    let ((x0, y0), (x1, y1)) = (kept[0], kept[1]);
    let slope = (y1 - y0) / (x1 - x0);
    // Klambauer et al.: a = (q + α'² q p)^(-1/2), α' = -λα of SELU, dropped value α' a + b
    let (p, q) = (0.2f64, 0.8f64);
    let alpha_p = -1.050_700_987_355_480_5 * 1.673_263_242_354_377_3;
    let a = 1.0 / (q + alpha_p * alpha_p * q * p).sqrt();
    let b = -a * alpha_p * p;
    assert!((slope - a).abs() < 1e-9, "{slope} vs {a}");
    assert!((y0 - (a * x0 + b)).abs() < 1e-9);
    assert!(
        (dropped_value - (a * alpha_p + b)).abs() < 1e-9,
        "{dropped_value}"
    );
    for (a, b) in &kept {
        assert!((b - (y0 + slope * (a - x0))).abs() < 1e-9, "{a} -> {b}");
    }
    d.eval();
    assert_eq!(d.forward(&x).to_vec::<f64>(), xv);
    let f = |xs: &[Tensor]| {
        AlphaDropout::new(0.3, &mut StdRng::seed_from_u64(7))
            .forward(&xs[0])
            .tanh()
    };
    check_grad(f, &[randn(&[4, 5], 8)]).unwrap();
    check_grad2(f, &[randn(&[4, 5], 8)]).unwrap();
}

// ----- losses ------------------------------------------------------------------------------------

#[test]
fn mse_loss_gradient() {
    let f = |xs: &[Tensor]| mse_loss(&xs[0], &xs[1]);
    check_grad(f, &[randn(&[3, 4], 10), randn(&[3, 4], 11)]).unwrap();
    check_grad2(f, &[randn(&[2, 3, 2], 12), randn(&[2, 3, 2], 13)]).unwrap();
}

#[test]
fn classification_losses_with_every_reduction_and_kd_inputs() {
    // [N, C] and [N, C, d1, d2]
    for (shape, tshape) in [(vec![5, 4], vec![5]), (vec![2, 3, 2, 3], vec![2, 2, 3])] {
        let n: usize = tshape.iter().product();
        let t: Vec<usize> = (0..n).map(|i| (i * 7 + 1) % shape[1]).collect();
        let t = Indices::from_slice(&t).reshape(tshape.as_slice());
        let w = Tensor::from_vec((0..shape[1]).map(|c| 0.5 + c as f64).collect(), [shape[1]]);
        for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
            for weight in [None, Some(w.clone())] {
                for label_smoothing in [0.0, 0.1] {
                    let opts = ClassLossOpts {
                        weight: weight.clone(),
                        label_smoothing,
                        reduction,
                    };
                    let x = randn(&shape, 20);
                    let ce = |xs: &[Tensor]| cross_entropy_with(&xs[0], &t, &opts);
                    check_grad(ce, std::slice::from_ref(&x)).unwrap();
                    let nll = |xs: &[Tensor]| nll_loss_with(&xs[0].log_softmax(1), &t, &opts);
                    check_grad(nll, std::slice::from_ref(&x)).unwrap();
                    if reduction == Reduction::None {
                        assert_eq!(ce(std::slice::from_ref(&x)).dims(), tshape.as_slice());
                    }
                }
            }
        }
        // Sum is N times Mean (no weights), None holds the per-element losses
        let x = randn(&shape, 21);
        let per = |r| {
            cross_entropy_with(
                &x,
                &t,
                &ClassLossOpts {
                    reduction: r,
                    ..ClassLossOpts::default()
                },
            )
        };
        let (mean, sum, none) = (
            per(Reduction::Mean),
            per(Reduction::Sum),
            per(Reduction::None),
        );
        assert!((sum.item() - mean.item() * n as f64).abs() < 1e-10);
        assert!((none.sum().item() - sum.item()).abs() < 1e-10);
    }
}

#[test]
fn binary_cross_entropy_with_logits_gradient_without_and_with_pos_weight() {
    let t = Tensor::from_vec(vec![1.0, 0.0, 1.0, 0.0, 0.3, 0.9], [2, 3]);
    let x = randn(&[2, 3], 30).scale(3.0);
    let f = |xs: &[Tensor]| binary_cross_entropy_with_logits(&xs[0], &t, None);
    check_grad(f, std::slice::from_ref(&x)).unwrap();
    check_grad2(f, std::slice::from_ref(&x)).unwrap();
    // with respect to the targets too
    check_grad(
        |xs: &[Tensor]| binary_cross_entropy_with_logits(&xs[0], &xs[1], None),
        &[x.clone(), t.clone()],
    )
    .unwrap();
    let pw = Tensor::from_vec(vec![2.0, 0.5, 1.5], [3]);
    check_grad(
        |xs: &[Tensor]| binary_cross_entropy_with_logits(&xs[0], &t, Some(&pw)),
        &[x],
    )
    .unwrap();
}

// ----- batch norm --------------------------------------------------------------------------------

#[test]
fn batch_norm_gradients_in_training_and_evaluation_mode() {
    let make = || {
        let mut bn = BatchNorm::new(3, DType::F64);
        // non-trivial affine parameters and running statistics
        bn.weight = Tensor::from_vec(vec![0.5, 1.5, -2.0], [3]).variable();
        bn.bias = Tensor::from_vec(vec![0.1, -0.3, 0.7], [3]).variable();
        bn.visit_mut("", &mut |n, t, _| {
            if n == "running_mean" {
                *t = Tensor::from_vec(vec![0.2, -0.1, 0.4], [3]);
            } else if n == "running_var" {
                *t = Tensor::from_vec(vec![1.5, 0.5, 2.0], [3]);
            }
        });
        bn
    };
    for shape in [vec![4, 3], vec![2, 3, 2, 2]] {
        let x = randn(&shape, 40);
        // training: the statistics of the batch, gradients through them
        check_module(make, vec![x.clone()], |m, xs| m.forward(&xs[0]).tanh());
        // evaluation: the running statistics, an affine map per channel
        let eval = || {
            let mut m = make();
            m.eval();
            m
        };
        check_module(eval, vec![x.clone()], |m, xs| m.forward(&xs[0]).tanh());
        let m = eval();
        let y = m.forward(&x).to_vec::<f64>();
        let xv = x.to_vec::<f64>();
        let (mean, var, w, b) = (
            [0.2, -0.1, 0.4],
            [1.5, 0.5, 2.0],
            [0.5, 1.5, -2.0],
            [0.1, -0.3, 0.7],
        );
        let inner: usize = shape[2..].iter().product();
        for (i, (a, got)) in xv.iter().zip(&y).enumerate() {
            let c = (i / inner) % 3;
            let want = (a - mean[c]) / (var[c] + 1e-5f64).sqrt() * w[c] + b[c];
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
    }
}

// ----- attention ---------------------------------------------------------------------------------

#[test]
fn scaled_dot_product_attention_gradient() {
    let (q, k, v) = (
        randn(&[2, 3, 4], 50),
        randn(&[2, 5, 4], 51),
        randn(&[2, 5, 2], 52),
    );
    let out = |xs: &[Tensor]| {
        let (o, w) = scaled_dot_product_attention(&xs[0], &xs[1], &xs[2], None);
        Tensor::concat(&[o.flatten(0, -1), w.flatten(0, -1)], 0)
    };
    check_grad(out, &[q.clone(), k.clone(), v.clone()]).unwrap();
    check_grad2(out, &[q.clone(), k.clone(), v.clone()]).unwrap();
    // with a mask blocking some keys (never all of a row)
    let mask = Tensor::from_vec(
        (0..15)
            .map(|i| if i % 4 == 1 { 1.0 } else { 0.0 })
            .collect(),
        [3, 5],
    );
    let masked =
        |xs: &[Tensor]| scaled_dot_product_attention(&xs[0], &xs[1], &xs[2], Some(&mask)).0;
    check_grad(masked, &[q, k, v]).unwrap();
}

#[test]
fn multi_head_attention_with_key_padding_mask_and_dropout() {
    let make = || {
        f64_module(
            MultiHeadAttention::new(4, 2, &mut StdRng::seed_from_u64(60))
                .with_dropout(0.25, &mut StdRng::seed_from_u64(61)),
        )
    };
    let (q, kv) = (randn(&[2, 3, 4], 62), randn(&[2, 5, 4], 63));
    // sample 0 ignores its last two keys, sample 1 its first
    let pad = Tensor::from_vec(
        vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0],
        [2, 5],
    );
    check_module(make, vec![q.clone(), kv.clone()], |m, xs| {
        let (y, w) = m.forward_qkv(&xs[0], &xs[1], &xs[1], Some(&pad), None);
        Tensor::concat(&[y.flatten(0, -1), w.flatten(0, -1)], 0)
    });
    // padded keys get no weight
    let (_, w) = make().forward_qkv(&q, &kv, &kv, Some(&pad), None);
    let w = w.to_vec::<f64>();
    for qi in 0..3 {
        assert_eq!((w[qi * 5 + 3], w[qi * 5 + 4]), (0.0, 0.0));
        assert_eq!(w[15 + qi * 5], 0.0);
    }
}

// ----- recurrent layers beyond the tiny size ----------------------------------------------------

#[test]
fn recurrent_layers_at_larger_sizes() {
    // sizes past the SIMD widths (8 lanes) and with more steps than layers
    let (i, h, b, t) = (5, 11, 3, 6);
    let opts = || RnnOptions::default().dtype(DType::F64);
    let x = randn(&[b, t, i], 70);
    let h0 = randn(&[1, b, h], 71);
    let c0 = randn(&[1, b, h], 72);
    check_module(
        || Lstm::with_options(i, h, opts(), &mut StdRng::seed_from_u64(73)),
        vec![x.clone(), h0.clone(), c0],
        |m, xs| {
            let (o, (hn, cn)) = m.forward_with_state(&xs[0], Some((&xs[1], &xs[2])));
            Tensor::concat(&[o.flatten(0, -1), hn.flatten(0, -1), cn.flatten(0, -1)], 0)
        },
    );
    check_module(
        || Gru::with_options(i, h, opts(), &mut StdRng::seed_from_u64(74)),
        vec![x.clone(), h0.clone()],
        |m, xs| {
            let (o, hn) = m.forward_with_state(&xs[0], Some(&xs[1]));
            Tensor::concat(&[o.flatten(0, -1), hn.flatten(0, -1)], 0)
        },
    );
    check_module(
        || {
            Rnn::with_options(
                i,
                h,
                RnnNonlinearity::Tanh,
                opts(),
                &mut StdRng::seed_from_u64(75),
            )
        },
        vec![x, h0],
        |m, xs| {
            let (o, hn) = m.forward_with_state(&xs[0], Some(&xs[1]));
            Tensor::concat(&[o.flatten(0, -1), hn.flatten(0, -1)], 0)
        },
    );
    // a wider hidden state, one sample
    let (i, h) = (3, 20);
    check_module(
        || Lstm::with_options(i, h, opts(), &mut StdRng::seed_from_u64(76)),
        vec![randn(&[1, 4, i], 77)],
        |m, xs| m.forward_with_state(&xs[0], None).0,
    );
}
