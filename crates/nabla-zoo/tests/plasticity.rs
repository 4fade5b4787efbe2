//! `plasticity`: the meta-gradient through whole inner episodes of the learned local rule against
//! central finite differences (f64), the hand-written rules, and the quick mode learning.

use nabla::rand::{SeedableRng, rngs::StdRng};
use nabla::testing::check_grad;
use nabla::{DType, Tensor};
use nabla_zoo::experiment::{Config, Silent};
use nabla_zoo::plasticity::{Rule, RuleNet, Tasks, episode, evaluate};

fn tasks() -> Tasks {
    Tasks::sample(3, 3, 2, 4, 5, &mut StdRng::seed_from_u64(7)).to_dtype(DType::F64)
}

#[test]
fn meta_gradient_through_an_episode_matches_finite_differences() {
    let net = RuleNet {
        hidden: 4,
        scale: 0.3,
    };
    let t = tasks();
    let theta = net.init(&mut StdRng::seed_from_u64(3)).to_dtype(DType::F64);
    check_grad(
        |p: &[Tensor]| t.query_loss(&episode(&Rule::Learned(&net, &p[0]), &t, 6)),
        &[theta],
    )
    .unwrap();
}

#[test]
fn backprop_and_hebbian_baselines_learn_the_map() {
    let t = Tasks::sample(200, 4, 2, 10, 20, &mut StdRng::seed_from_u64(9));
    let zero = evaluate(&Rule::Hebbian(0.0), &t, 20);
    let bp = evaluate(&Rule::Backprop(0.2), &t, 20);
    let hebb = evaluate(&Rule::Hebbian(0.03), &t, 20);
    assert!(bp < zero / 5.0, "{bp} vs {zero}");
    assert!(hebb < zero * 0.6, "{hebb} vs {zero}");
}

#[test]
fn quick_mode_learns_a_rule_both_ways() {
    // exactly what `nabla run plasticity --quick` runs
    let exp = nabla_zoo::find("plasticity").expect("registered");
    let cfg = Config::new(&exp.spec(), true, 0, None, &[]).unwrap();
    let r = exp.run(&cfg, &mut Silent).unwrap();
    assert!(!r.summary.is_empty() && !r.curves.is_empty() && r.heatmaps.len() == 2);
    let m = |k: &str| r.metrics[k].as_f64().unwrap_or_else(|| panic!("{k}"));
    let (zero, init) = (m("loss_zero_weights"), m("loss_initial_rule"));
    // meta-training by backprop learns a rule far better than doing nothing, and better than Hebb
    assert!(m("loss_learned_rule") < zero / 3.0, "{:?}", r.metrics);
    assert!(m("loss_learned_rule") < init / 3.0, "{:?}", r.metrics);
    assert!(
        m("loss_learned_rule") < m("loss_hebbian"),
        "{:?}",
        r.metrics
    );
    // the evolution strategy learns too (more slowly: its loss starts at the initial rule's)
    assert!(m("loss_learned_rule_es") < zero * 0.7, "{:?}", r.metrics);
    assert!(m("loss_learned_rule_es") < init * 0.7, "{:?}", r.metrics);
    assert!(
        r.metrics["episodes_backprop"].as_f64().is_some(),
        "{:?}",
        r.metrics
    );
}
