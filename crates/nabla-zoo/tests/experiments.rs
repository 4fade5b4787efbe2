//! The zoo's experiments run as library calls. Quick modes run in the test suite; the full runs,
//! which check the figures the experiments promise, are `#[ignore]`d (minutes each):
//! `cargo test --release -p nabla-zoo -- --ignored`.

mod common;

use common::{metric, run};

#[test]
fn every_experiment_is_listed_with_a_spec() {
    let names: Vec<&str> = nabla_zoo::registry()
        .iter()
        .map(|e| e.spec().name)
        .collect();
    assert_eq!(
        names,
        [
            "mlp-digits",
            "mlp-mnist",
            "cnn-mnist",
            "lstm-adding",
            "cartpole",
            "pendulum",
            "trebuchet",
            "hypergrad",
            "maml-sine",
            "learned-optimizer",
            "plasticity",
            "memnn-babi",
            "nalu-arith",
            "dnc-copy",
            "dnc-recall",
            "dnc-scaling",
            "ntp-countries"
        ]
    );
}

#[test]
fn mlp_digits_quick_learns_and_is_deterministic() {
    let a = run("mlp-digits", true, 1, &[]);
    assert!(metric(&a, "test_accuracy") > 0.9, "{a:?}");
    assert_eq!(a, run("mlp-digits", true, 1, &[]));
}

#[test]
fn lstm_adding_quick_solves_short_sequences() {
    let m = run("lstm-adding", true, 0, &[]);
    // solved: the error is a small fraction of what always answering the mean gives (~0.167)
    let (mse, baseline) = (metric(&m, "test_mse"), metric(&m, "baseline_mse"));
    assert!(mse < 0.02 && mse < baseline / 10.0, "{m:?}");
    assert!(metric(&m, "train_mse") < baseline / 5.0, "{m:?}");
}

#[test]
fn mlp_mnist_quick_learns() {
    // exactly what `nabla run mlp-mnist --quick` runs
    let m = run("mlp-mnist", true, 0, &[]);
    assert!(metric(&m, "test_accuracy") > 0.85, "{m:?}");
}

#[test]
fn cnn_mnist_quick_learns() {
    // exactly what `nabla run cnn-mnist --quick` runs
    let m = run("cnn-mnist", true, 0, &[]);
    assert!(metric(&m, "test_accuracy") > 0.8, "{m:?}");
}

#[test]
#[ignore = "full run, seconds in release"]
fn mlp_digits_reaches_97_percent() {
    let m = run("mlp-digits", false, 0, &[]);
    assert!(metric(&m, "test_accuracy") >= 0.97, "{m:?}");
}

#[test]
#[ignore = "full run, about 2 minutes in release"]
fn mlp_mnist_reaches_98_percent() {
    let m = run("mlp-mnist", false, 0, &[]);
    assert!(metric(&m, "test_accuracy") >= 0.98, "{m:?}");
}

#[test]
#[ignore = "full run, several minutes in release"]
fn cnn_mnist_reaches_99_percent() {
    let m = run("cnn-mnist", false, 0, &[]);
    assert!(metric(&m, "test_accuracy") >= 0.99, "{m:?}");
}

#[test]
#[ignore = "full run, under a minute in release"]
fn lstm_adding_reaches_mse_below_001() {
    let m = run("lstm-adding", false, 0, &[]);
    assert!(metric(&m, "test_mse") < 0.01, "{m:?}");
}

#[test]
fn cartpole_quick_solves_by_backprop_and_is_deterministic() {
    let a = run("cartpole", true, 0, &[]);
    assert!(
        a["episodes_to_solve"].as_u64().is_some_and(|n| n <= 10),
        "{a:?}"
    );
    assert!(metric(&a, "eval_mean_steps") >= 195.0, "{a:?}");
    // REINFORCE learns something within its quick budget (untrained: about 10-30 steps)
    assert!(metric(&a, "reinforce_best_eval_mean_steps") > 50.0, "{a:?}");
    assert_eq!(a, run("cartpole", true, 0, &[]));
}

#[test]
fn pendulum_quick_learns_and_is_deterministic() {
    let a = run("pendulum", true, 0, &[]);
    assert!(
        metric(&a, "eval_mean_return") > metric(&a, "initial_eval_mean_return") + 1000.0,
        "{a:?}"
    );
    assert_eq!(a, run("pendulum", true, 0, &[]));
}

#[test]
#[ignore = "full run, seconds in release"]
fn cartpole_solves_within_10_episodes() {
    let m = run("cartpole", false, 0, &[]);
    assert!(
        m["episodes_to_solve"].as_u64().is_some_and(|n| n <= 10),
        "{m:?}"
    );
}

#[test]
#[ignore = "10 training episodes, seconds in release"]
fn pendulum_reaches_minus_200_within_10_episodes() {
    let m = run("pendulum", false, 0, &[]);
    assert!(metric(&m, "training_episodes") <= 10.0, "{m:?}");
    assert!(metric(&m, "eval_mean_return") >= -200.0, "{m:?}");
}

#[test]
fn trebuchet_quick_aims_directly_and_the_network_learns() {
    let m = run("trebuchet", true, 0, &[]);
    // Direct aiming (Newton through the simulator) hits every target it is given.
    assert_eq!(metric(&m, "direct_failed"), 0.0, "{m:?}");
    assert!(metric(&m, "direct_miss_pct") < 0.3, "{m:?}");
    // The network's held-out miss falls far below the untrained network's.
    let (trained, untrained) = (
        metric(&m, "nn_median_miss_pct"),
        metric(&m, "nn_untrained_median_miss_pct"),
    );
    assert!(trained < 0.3 * untrained, "{m:?}");
    // Same seed, same numbers (timings aside).
    let timing = |k: &String| {
        k.ends_with("_ms") || k.ends_with("_us") || k.ends_with("_s") || k == "speedup"
    };
    let strip = |m: serde_json::Map<String, serde_json::Value>| {
        m.into_iter()
            .filter(|(k, _)| !timing(k))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(m), strip(run("trebuchet", true, 0, &[])));
}

#[test]
#[ignore = "full run, several minutes in release"]
fn trebuchet_aims_within_its_targets() {
    let m = run("trebuchet", false, 0, &[]);
    assert_eq!(metric(&m, "direct_failed"), 0.0, "{m:?}");
    assert!(metric(&m, "direct_miss_pct") <= 0.3, "{m:?}");
    assert!(metric(&m, "nn_median_miss_pct") <= 0.5, "{m:?}");
}
