//! Quick modes of `memnn-babi` and `nalu-arith` (exactly the options `--quick` ships), their
//! determinism, and bad data from outside (`--data`) as typed errors. The full runs are
//! `#[ignore]`d: `cargo test --release -p nabla-zoo --test memory_reasoning -- --ignored`.

mod common;

use common::{Metrics, metric, metrics, try_run};
use nabla_zoo::experiment::ZooError;

fn run(name: &str, quick: bool, overrides: &[(&str, &str)]) -> Result<Metrics, ZooError> {
    try_run(name, quick, 0, None, overrides).map(metrics)
}

#[test]
fn memnn_babi_quick_learns_task_1_and_is_deterministic() {
    let m = run("memnn-babi", true, &[]).unwrap();
    // chance is about 1 in 6 (six places); the quick run answers almost every question
    assert!(metric(&m, "task1_accuracy") > 0.9, "{m:?}");
    assert_eq!(m, run("memnn-babi", true, &[]).unwrap());
}

#[test]
fn memnn_babi_bad_data_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // no files for the task
    let e = run("memnn-babi", true, &[("data", d)]).unwrap_err();
    assert!(
        matches!(e, ZooError::Data(_)) && e.to_string().contains("task 1"),
        "{e}"
    );
    // a malformed file
    std::fs::write(
        dir.path().join("qa1_x_train.txt"),
        "1 Mary went home.\nnot a line\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("qa1_x_test.txt"),
        "1 Mary went home.\n2 Where?\thome\t1\n",
    )
    .unwrap();
    let e = run("memnn-babi", true, &[("data", d)]).unwrap_err();
    assert!(
        matches!(e, ZooError::Data(_)) && e.to_string().contains(":2:"),
        "{e}"
    );
    // a task list out of range
    let e = run("memnn-babi", true, &[("tasks", "0-3")]).unwrap_err();
    assert!(matches!(e, ZooError::Config(_)), "{e}");
}

#[test]
fn memnn_babi_runs_on_user_data_in_the_babi_format() {
    let dir = tempfile::tempdir().unwrap();
    let mut train = String::new();
    let places = ["kitchen", "garden", "office"];
    for i in 0..30 {
        let p = places[i % 3];
        train.push_str(&format!(
            "1 Ann went to the {p}.\n2 Where is Ann?\t{p}\t1\n"
        ));
    }
    std::fs::write(dir.path().join("qa1_tiny_train.txt"), &train).unwrap();
    std::fs::write(dir.path().join("qa1_tiny_test.txt"), &train).unwrap();
    let m = run(
        "memnn-babi",
        true,
        &[("data", dir.path().to_str().unwrap())],
    )
    .unwrap();
    assert!(metric(&m, "task1_accuracy") >= 0.0);
}

/// The quick run trains NAC+ -> NAC+ for one seed on `a + b` and `a - b` (5,000 steps, seconds) and
/// tests it on U[2,6]. The success threshold (the MSE of the exact solution with every weight off
/// by 1e-5, about 6e-5) takes the full run's 30,000 steps; in 5,000 the unit has learned which
/// inputs matter. The best model that cannot tell the 38 inputs in `a` or `b` from the 62 others
/// (y = Σx/2 for `+`, y = 0 for `-`) errs by (26·½² + 12·(3/2)² + 62·½²)·Var U[2,6] ≈ 65 on `+` and
/// 26·Var U[2,6] ≈ 35 on `-`; the quick run must be 30 and 300 times better.
#[test]
fn nalu_arith_quick_nac_learns_add_and_sub() {
    let m = run("nalu-arith", true, &[]).unwrap();
    let add = metric(&m, "nac_add_add_median_extrapolation_mse");
    let sub = metric(&m, "nac_add_sub_median_extrapolation_mse");
    assert!(add < 2.0, "add: {m:?}");
    assert!(sub < 0.1, "sub: {m:?}");
    assert!(!m.contains_key("nac_add_mul_success"), "{m:?}");
}

#[test]
fn nalu_arith_is_deterministic_and_refuses_unknown_models_and_ops() {
    let models = [("models", "nac_add,nalu")];
    let m = try_run("nalu-arith", true, 0, Some(300), &models)
        .map(metrics)
        .unwrap();
    assert!(
        metric(&m, "nalu_sub_median_extrapolation_mse").is_finite(),
        "{m:?}"
    );
    assert_eq!(
        m,
        try_run("nalu-arith", true, 0, Some(300), &models)
            .map(metrics)
            .unwrap()
    );
    let e = run("nalu-arith", true, &[("models", "nac_add,lstm")]).unwrap_err();
    assert!(matches!(e, ZooError::Config(_)), "{e}");
    let e = run("nalu-arith", true, &[("ops", "add,pow")]).unwrap_err();
    assert!(matches!(e, ZooError::Config(_)), "{e}");
}

#[test]
#[ignore]
fn memnn_babi_full_run_solves_task_1() {
    let m = run("memnn-babi", false, &[]).unwrap();
    assert!(metric(&m, "task1_accuracy") >= 0.99, "{m:?}");
}

#[test]
#[ignore]
fn nalu_arith_full_run_nac_add_extrapolates() {
    // seeds follow the model and the operation, so this repeats the full run's NAC+ figures
    let m = run(
        "nalu-arith",
        false,
        &[("models", "nac_add"), ("ops", "add,sub")],
    )
    .unwrap();
    assert!(metric(&m, "nac_add_add_success") >= 0.9, "{m:?}");
    assert!(metric(&m, "nac_add_sub_success") >= 0.9, "{m:?}");
}
