//! The module system and the optimisers.

use nabla::nn::{Dropout, Forward, Linear, Module, ParamKind, Relu, Sequential};
use nabla::optim::{Adagrad, Adam, AdamW, Optimizer, RmsProp, Sgd};
use nabla::rand::{SeedableRng, rngs::StdRng};
use nabla::{DType, Tensor};

#[derive(Module)]
struct Block {
    lin: Linear,
    #[module(buffer)]
    running: Tensor,
    #[module(skip)]
    _label: String,
    scale: f64,
}

#[derive(Module)]
struct Net {
    blocks: Vec<Block>,
    head: Option<Linear>,
    extra: Tensor,
    drop: Dropout,
}

#[derive(Module)]
struct Pair(Linear, Linear);

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

fn net(r: &mut StdRng) -> Net {
    let block = |r: &mut StdRng| Block {
        lin: Linear::new(3, 3, r),
        running: Tensor::zeros([3], DType::F32),
        _label: "b".into(),
        scale: 1.0,
    };
    Net {
        blocks: vec![block(r), block(r)],
        head: Some(Linear::with_options(3, 1, false, DType::F32, r)),
        extra: Tensor::ones([2], DType::F32).variable(),
        drop: Dropout::new(0.5, r),
    }
}

#[test]
fn derive_names_every_tensor() {
    let mut r = rng();
    let n = net(&mut r);
    let names: Vec<(String, ParamKind)> = n
        .named_tensors()
        .into_iter()
        .map(|(s, _, k)| (s, k))
        .collect();
    let want = [
        ("blocks.0.lin.weight", ParamKind::Trainable),
        ("blocks.0.lin.bias", ParamKind::Trainable),
        ("blocks.0.running", ParamKind::Buffer),
        ("blocks.1.lin.weight", ParamKind::Trainable),
        ("blocks.1.lin.bias", ParamKind::Trainable),
        ("blocks.1.running", ParamKind::Buffer),
        ("head.weight", ParamKind::Trainable),
        ("extra", ParamKind::Trainable),
        ("drop.rng_state", ParamKind::Buffer),
    ];
    assert_eq!(
        names,
        want.iter()
            .map(|(s, k)| (s.to_string(), *k))
            .collect::<Vec<_>>()
    );
    assert_eq!(n.parameters().len(), 6);
    assert_eq!(n.num_parameters(), 2 * (9 + 3) + 3 + 2);
    let p = Pair(Linear::new(1, 1, &mut r), Linear::new(1, 1, &mut r));
    assert_eq!(p.named_parameters()[2].0, "1.weight");
}

#[test]
fn training_mode_reaches_nested_layers() {
    let mut r = rng();
    let mut n = net(&mut r);
    let x = Tensor::ones([100], DType::F32);
    assert!(n.drop.forward(&x).to_vec::<f32>().contains(&0.0));
    n.eval();
    assert_eq!(n.drop.forward(&x).to_vec::<f32>(), vec![1.0; 100]);
    n.train();
    assert!(n.drop.forward(&x).to_vec::<f32>().contains(&0.0));
}

#[test]
fn to_dtype_and_set_parameters() {
    let mut r = rng();
    let mut n = net(&mut r);
    n.to_dtype(DType::F64);
    assert!(
        n.named_tensors()
            .iter()
            .all(|(_, t, _)| t.dtype() == DType::F64)
    );
    assert!(n.parameters().iter().all(|p| p.requires_grad()));
    let zeros: Vec<Tensor> = n.parameters().iter().map(|p| p.zeros_like()).collect();
    n.set_parameters(&zeros);
    assert!(n.parameters().iter().all(|p| p.sum().item() == 0.0));
}

fn regression_loss(model: &Sequential) -> Tensor {
    let x = Tensor::from_vec(vec![0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0], [6, 1]);
    let y = x.sin();
    (model.forward(&x) - y).square().mean()
}

fn fit(opt: &mut dyn Optimizer, steps: usize) -> (f64, f64) {
    let mut r = rng();
    let mut model = Sequential::new()
        .add(Linear::new(1, 16, &mut r))
        .add(Relu)
        .add(Linear::new(16, 1, &mut r));
    let first = regression_loss(&model).item();
    for _ in 0..steps {
        let loss = regression_loss(&model);
        let grads = loss.backward();
        opt.step(&mut model, &grads);
    }
    (first, regression_loss(&model).item())
}

#[test]
fn every_optimiser_reduces_a_loss() {
    let opts: Vec<(&str, Box<dyn Optimizer>)> = vec![
        ("sgd", Box::new(Sgd::new(0.05))),
        ("momentum", Box::new(Sgd::new(0.02).momentum(0.9))),
        (
            "nesterov",
            Box::new(
                Sgd::new(0.02)
                    .momentum(0.9)
                    .nesterov(true)
                    .weight_decay(1e-4),
            ),
        ),
        ("adam", Box::new(Adam::new(0.01))),
        ("adamw", Box::new(AdamW::new(0.01))),
        ("rmsprop", Box::new(RmsProp::new(0.005))),
        ("adagrad", Box::new(Adagrad::new(0.1))),
    ];
    for (name, mut opt) in opts {
        let (first, last) = fit(opt.as_mut(), 300);
        assert!(last < 0.5 * first, "{name}: loss {first} -> {last}");
    }
}

#[test]
fn adam_matches_the_formula() {
    // one parameter, constant gradient 2: after t steps m̂ = 2, v̂ = 4, step = lr * 2 / (2 + eps)
    let mut p = Tensor::scalar(1.0f64).variable();
    let mut opt = Adam::new(0.1);
    for _ in 0..3 {
        let loss = &p * 2.0;
        let g = loss.backward();
        opt.step(&mut p, &g);
    }
    assert!((p.item() - (1.0 - 3.0 * 0.1 * 2.0 / (2.0 + 1e-8))).abs() < 1e-12);
    assert!(p.requires_grad());
}

#[test]
fn optimiser_state_round_trips() {
    let mut a = Adam::new(0.01);
    fit(&mut a, 5);
    let state = a.state();
    assert!(state.iter().any(|(n, _)| n == "step"));
    assert!(state.iter().any(|(n, _)| n == "0.weight.exp_avg"));
    let mut b = Adam::new(0.01);
    b.load_state(&state).unwrap();
    assert_eq!(b.steps(), 5);
    let mut bad = state.clone();
    bad.push(("0.weight.nonsense".into(), Tensor::scalar(0.0f64)));
    assert!(b.load_state(&bad).is_err());
}

#[test]
fn in_place_updates_when_the_graph_is_gone() {
    let mut r = rng();
    let mut model = Linear::new(4, 4, &mut r);
    let mut opt = Sgd::new(0.1);
    let x = Tensor::ones([2, 4], DType::F32);
    let grads = {
        let loss = model.forward(&x).sum();
        loss.backward()
    }; // graph dropped here: the parameters are owned by the model alone
    let before = model.weight.to_vec::<f32>();
    opt.step(&mut model, &grads);
    let after = model.weight.to_vec::<f32>();
    assert!(
        before
            .iter()
            .zip(&after)
            .all(|(b, a)| (b - a - 0.2).abs() < 1e-6)
    );
}

#[test]
fn dropout_state_restores_the_mask_sequence() {
    let mut r = rng();
    let a = Dropout::new(0.5, &mut r);
    let x = Tensor::ones([64], DType::F32);
    let _ = a.forward(&x);
    // copy a's state (seed and draw count) into a fresh layer: the next masks agree
    let state = a.named_tensors()[0].1.clone();
    let mut b = Dropout::new(0.5, &mut StdRng::seed_from_u64(99));
    b.visit_mut("", &mut |_, t, _| *t = state.clone());
    assert_eq!(a.forward(&x).to_vec::<f32>(), b.forward(&x).to_vec::<f32>());
}
