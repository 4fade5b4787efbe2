//! Layers against PyTorch reference values (float64 fixtures from `fixtures/gen_nn_fixtures.py`)
//! and against finite differences.

use nabla::nn::{BatchNorm, Forward, LayerNorm, Linear, Module, MultiHeadAttention};
use nabla::rand::{SeedableRng, rngs::StdRng};
use nabla::testing::{check_grad, check_grad2};
use nabla::{DType, Tensor};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/nn_layers.json")).expect("fixture")
}

fn t(v: &Value, shape: &[usize]) -> Tensor {
    let data: Vec<f64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    Tensor::from_vec(data, shape)
}

fn assert_close(a: &Tensor, b: &Tensor, tol: f64) {
    assert_eq!(a.shape(), b.shape());
    for (x, y) in a.to_vec::<f64>().iter().zip(b.to_vec::<f64>()) {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{x} vs {y}");
    }
}

#[test]
fn layer_norm_matches_pytorch() {
    let f = &fixture()["layernorm"];
    let mut ln = LayerNorm::new(&[4], DType::F64);
    ln.set_parameters(&[t(&f["weight"], &[4]), t(&f["bias"], &[4])]);
    assert_close(
        &ln.forward(&t(&f["x"], &[2, 3, 4])),
        &t(&f["y"], &[2, 3, 4]),
        1e-10,
    );
}

#[test]
fn batch_norm_matches_pytorch_in_both_modes() {
    let f = &fixture()["batchnorm"];
    let mut bn = BatchNorm::new(3, DType::F64);
    bn.set_parameters(&[t(&f["weight"], &[3]), t(&f["bias"], &[3])]);
    assert_close(
        &bn.forward(&t(&f["x"], &[4, 3, 2, 2])),
        &t(&f["y"], &[4, 3, 2, 2]),
        1e-10,
    );
    assert_close(&bn.running_mean(), &t(&f["running_mean"], &[3]), 1e-10);
    assert_close(&bn.running_var(), &t(&f["running_var"], &[3]), 1e-10);
    bn.eval();
    assert_close(
        &bn.forward(&t(&f["x2"], &[4, 3, 2, 2])),
        &t(&f["y2"], &[4, 3, 2, 2]),
        1e-10,
    );
}

#[test]
fn multi_head_attention_matches_pytorch_with_masks() {
    let f = &fixture()["mha"];
    let mut rng = StdRng::seed_from_u64(0);
    let mut mha = MultiHeadAttention::new(8, 2, &mut rng);
    mha.to_dtype(DType::F64);
    mha.set_parameters(&[
        t(&f["in_proj_weight"], &[24, 8]),
        t(&f["in_proj_bias"], &[24]),
        t(&f["out_weight"], &[8, 8]),
        t(&f["out_bias"], &[8]),
    ]);
    let (out, w) = mha.forward_qkv(
        &t(&f["q"], &[2, 3, 8]),
        &t(&f["k"], &[2, 5, 8]),
        &t(&f["v"], &[2, 5, 8]),
        Some(&t(&f["key_padding_mask"], &[2, 5])),
        Some(&t(&f["attn_mask"], &[3, 5])),
    );
    assert_close(&out, &t(&f["out"], &[2, 3, 8]), 1e-10);
    assert_close(&w, &t(&f["weights"], &[2, 3, 5]), 1e-10);
}

#[test]
fn layer_gradients_match_finite_differences() {
    let mut rng = StdRng::seed_from_u64(3);
    let x = Tensor::randn([3, 2, 4], DType::F64, &mut rng);
    // layer norm: input, weight and bias
    check_grad(
        |p: &[Tensor]| {
            let mut ln = LayerNorm::new(&[4], DType::F64);
            ln.set_parameters(&[p[1].clone(), p[2].clone()]);
            ln.forward(&p[0])
        },
        &[
            x.clone(),
            Tensor::randn([4], DType::F64, &mut rng),
            Tensor::randn([4], DType::F64, &mut rng),
        ],
    )
    .unwrap();
    check_grad2(
        |p: &[Tensor]| LayerNorm::without_affine(&[2, 4]).forward(&p[0]),
        std::slice::from_ref(&x),
    )
    .unwrap();
    // batch norm in training mode (the batch statistics depend on the input)
    check_grad(
        |p: &[Tensor]| BatchNorm::new(2, DType::F64).forward(&p[0]),
        std::slice::from_ref(&x),
    )
    .unwrap();
    check_grad2(
        |p: &[Tensor]| BatchNorm::new(2, DType::F64).forward(&p[0]),
        std::slice::from_ref(&x),
    )
    .unwrap();
    // attention: inputs and all projections
    let mut mha = MultiHeadAttention::new(4, 2, &mut rng);
    mha.to_dtype(DType::F64);
    let params = mha.parameters();
    let q = Tensor::randn([2, 3, 4], DType::F64, &mut rng);
    let mask = MultiHeadAttention::causal_mask(3, DType::F64);
    let mut inputs = vec![q];
    inputs.extend(params);
    check_grad(
        |p: &[Tensor]| {
            let mut m = MultiHeadAttention::new(4, 2, &mut StdRng::seed_from_u64(0));
            m.to_dtype(DType::F64);
            m.set_parameters(&p[1..]);
            m.forward_qkv(&p[0], &p[0], &p[0], None, Some(&mask)).0
        },
        &inputs,
    )
    .unwrap();
    // linear layer, second order
    let lin = Linear::from_weights(
        Tensor::randn([3, 4], DType::F64, &mut rng),
        Some(Tensor::randn([3], DType::F64, &mut rng)),
    );
    check_grad2(
        |p: &[Tensor]| lin.forward(&p[0]).tanh(),
        std::slice::from_ref(&x),
    )
    .unwrap();
}

mod losses {
    use super::*;
    use nabla::Indices;
    use nabla::nn::{
        ClassLossOpts, Reduction, binary_cross_entropy_with_logits, cross_entropy,
        cross_entropy_with, huber_loss, l1_loss, mse_loss, nll_loss,
    };

    fn idx(v: &Value, shape: &[usize]) -> Indices {
        Indices::new(
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as usize)
                .collect(),
            shape,
        )
    }

    fn close(a: f64, b: &Value) {
        let b = b.as_f64().unwrap();
        assert!((a - b).abs() < 1e-10 * (1.0 + b.abs()), "{a} vs {b}");
    }

    #[test]
    fn classification_losses_match_pytorch() {
        let f = &fixture()["losses"];
        let logits = t(&f["logits"], &[5, 4]);
        let y = idx(&f["targets"], &[5]);
        let w = t(&f["weight"], &[4]);
        close(cross_entropy(&logits, &y).item(), &f["ce"]);
        let with = |weight: Option<&Tensor>, ls: f64, reduction: Reduction| ClassLossOpts {
            weight: weight.cloned(),
            label_smoothing: ls,
            reduction,
        };
        close(
            cross_entropy_with(&logits, &y, &with(Some(&w), 0.0, Reduction::Mean)).item(),
            &f["ce_weighted"],
        );
        close(
            cross_entropy_with(&logits, &y, &with(None, 0.2, Reduction::Mean)).item(),
            &f["ce_smooth"],
        );
        close(
            cross_entropy_with(&logits, &y, &with(Some(&w), 0.1, Reduction::Mean)).item(),
            &f["ce_weighted_smooth"],
        );
        close(
            cross_entropy_with(&logits, &y, &with(None, 0.0, Reduction::Sum)).item(),
            &f["ce_sum"],
        );
        assert_close(
            &cross_entropy_with(&logits, &y, &with(None, 0.0, Reduction::None)),
            &t(&f["ce_none"], &[5]),
            1e-10,
        );
        close(nll_loss(&logits.log_softmax(1), &y).item(), &f["nll"]);
        close(
            cross_entropy(&t(&f["logits3"], &[2, 3, 4]), &idx(&f["targets3"], &[2, 4])).item(),
            &f["ce3"],
        );
        let (bx, bt) = (t(&f["bx"], &[6]), t(&f["bt"], &[6]));
        close(
            binary_cross_entropy_with_logits(&bx, &bt, None).item(),
            &f["bce"],
        );
        close(
            binary_cross_entropy_with_logits(&bx, &bt, Some(&Tensor::scalar(2.5f64))).item(),
            &f["bce_pos"],
        );
        let (p, q) = (t(&f["pred"], &[7]), t(&f["tgt"], &[7]));
        close(mse_loss(&p, &q).item(), &f["mse"]);
        close(l1_loss(&p, &q).item(), &f["l1"]);
        close(huber_loss(&p, &q, 1.5).item(), &f["huber"]);
    }

    #[test]
    fn loss_gradients_match_finite_differences() {
        let f = &fixture()["losses"];
        let y = idx(&f["targets"], &[5]);
        let w = t(&f["weight"], &[4]);
        let opts = ClassLossOpts {
            weight: Some(w),
            label_smoothing: 0.1,
            reduction: Reduction::Mean,
        };
        let logits = t(&f["logits"], &[5, 4]);
        check_grad(
            |p: &[Tensor]| cross_entropy_with(&p[0], &y, &opts),
            std::slice::from_ref(&logits),
        )
        .unwrap();
        check_grad2(
            |p: &[Tensor]| cross_entropy(&p[0], &y),
            std::slice::from_ref(&logits),
        )
        .unwrap();
        let (bx, bt) = (t(&f["bx"], &[6]), t(&f["bt"], &[6]));
        check_grad2(
            |p: &[Tensor]| {
                binary_cross_entropy_with_logits(&p[0], &bt, Some(&Tensor::scalar(2.5f64)))
            },
            &[bx],
        )
        .unwrap();
        let (p, q) = (t(&f["pred"], &[7]), t(&f["tgt"], &[7]));
        check_grad(
            |x: &[Tensor]| huber_loss(&x[0], &q, 1.5),
            std::slice::from_ref(&p),
        )
        .unwrap();
        check_grad(|x: &[Tensor]| l1_loss(&x[0], &q), std::slice::from_ref(&p)).unwrap();
    }

    #[test]
    #[should_panic(expected = "cross_entropy")]
    fn out_of_range_class_panics() {
        let _ = cross_entropy(
            &Tensor::zeros([2, 3], DType::F64),
            &Indices::from(vec![0, 3]),
        );
    }
}
