//! `learned-optimizer`: the meta-gradient through an unrolled optimisation by the LSTM optimiser
//! against central finite differences (f64, second order through the optimisee's gradient), and
//! the quick mode learning.

use nabla::meta::Order;
use nabla::nn::Module;
use nabla::rand::{SeedableRng, rngs::StdRng};
use nabla::testing::check_grad;
use nabla::{DType, Tensor};
use nabla_zoo::experiment::{Config, Silent};
use nabla_zoo::lstm_optimizer::{LstmOptimizer, preprocess, unroll};

/// A small LSTM optimiser in f64 with the given weights.
fn net(weights: &[Tensor]) -> LstmOptimizer {
    let mut n = LstmOptimizer::new(3, 0.1, &mut StdRng::seed_from_u64(5));
    n.to_dtype(DType::F64);
    n.set_parameters(weights);
    n
}

#[test]
fn meta_gradient_through_an_unroll_matches_finite_differences() {
    let mut rng = StdRng::seed_from_u64(1);
    let w = Tensor::randn([2, 3, 3], DType::F64, &mut rng);
    let y = Tensor::randn([2, 3], DType::F64, &mut rng);
    let theta0 = Tensor::randn([2, 3], DType::F64, &mut rng);
    let f = move |_: usize, th: &Tensor| {
        ((&w * th.unsqueeze(1)).sum_axis(-1, false) - &y)
            .square()
            .sum()
    };
    let mut start = LstmOptimizer::new(3, 0.1, &mut StdRng::seed_from_u64(5));
    start.to_dtype(DType::F64);
    let weights: Vec<Tensor> = start.parameters().iter().map(|t| t.detach()).collect();
    let meta = |ws: &[Tensor]| {
        let n = net(ws);
        let s = n.zero_state(theta0.numel());
        unroll(&n, &theta0, &s, 0, 3, &f, Order::Second).0
    };
    // reverse mode (what meta-training uses) and forward mode (jvp around the recorded inner
    // gradient and loss feeding the LSTM)
    check_grad(meta, &weights).unwrap();
}

#[test]
fn first_order_drops_only_the_second_derivative() {
    // on a linear objective the gradient is constant, so both orders agree exactly
    let mut rng = StdRng::seed_from_u64(2);
    let c = Tensor::randn([4], DType::F64, &mut rng);
    let theta0 = Tensor::randn([4], DType::F64, &mut rng);
    let f = move |_: usize, th: &Tensor| (&c * th).sum();
    let mut start = LstmOptimizer::new(3, 0.1, &mut StdRng::seed_from_u64(5));
    start.to_dtype(DType::F64);
    let grads = |order: Order| {
        let n = net(&start.parameters());
        let s = n.zero_state(4);
        let loss = unroll(&n, &theta0, &s, 0, 4, &f, order).0;
        let g = loss.backward();
        n.parameters()
            .iter()
            .flat_map(|p| g.get_or_zeros(p).to_vec::<f64>())
            .collect::<Vec<f64>>()
    };
    let (a, b) = (grads(Order::Second), grads(Order::First));
    assert!(a.iter().any(|v| v.abs() > 1e-8));
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-10 * (1.0 + x.abs()), "{x} vs {y}");
    }
}

#[test]
fn preprocessing_is_the_papers_log_sign_scheme() {
    let g = Tensor::from_vec(vec![1.0f64, -1e-2, 1e-6, -1e-5], [4]);
    let f = preprocess(&g).to_vec::<f64>();
    let p = 10.0f64;
    assert!((f[0] - 0.0).abs() < 1e-12 && f[1] == 1.0);
    assert!((f[2] - (1e-2f64).ln() / p).abs() < 1e-12 && f[3] == -1.0);
    // below e^-10 ≈ 4.5e-5: (-1, e^p g)
    assert!(f[4] == -1.0 && (f[5] - 1e-6 * p.exp()).abs() < 1e-12);
    assert!(f[6] == -1.0 && (f[7] + 1e-5 * p.exp()).abs() < 1e-12);
}

#[test]
fn quick_mode_meta_learns_and_beats_its_untrained_self() {
    // exactly what `nabla run learned-optimizer --quick` runs
    let exp = nabla_zoo::find("learned-optimizer").expect("registered");
    let cfg = Config::new(&exp.spec(), true, 0, None, &[]).unwrap();
    let r = exp.run(&cfg, &mut Silent).unwrap();
    assert!(!r.summary.is_empty() && r.curves.len() == 3);
    let m = |k: &str| r.metrics[k].as_f64().unwrap_or_else(|| panic!("{k}"));
    let start = m("initial_loss");
    for k in ["final_loss_learned", "final_loss_learned_first_order"] {
        // a small fraction of the starting loss, and far below the untrained LSTM's
        assert!(m(k) < start / 20.0, "{k}: {:?}", r.metrics);
        assert!(
            m(k) < m("final_loss_untrained") / 10.0,
            "{k}: {:?}",
            r.metrics
        );
    }
    // the meta-training loss fell
    let meta = &r.curves[2].series[0].points;
    assert!(meta.last().unwrap().1 < meta[0].1 / 3.0, "{meta:?}");
    // the transfer to the digits MLP trains it
    assert!(m("mlp_digits_loss_learned") < m("mlp_digits_initial_loss") / 2.0);
}
