//! Options from outside (the command line, a saved `config.json`) are checked against each
//! option's range before a run starts: bad values are errors with a one-line message, never panics.

use nabla_zoo::experiment::{Config, ConfigError, MAX_STEPS, OptKind, OptSpec};

fn config(name: &str, overrides: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let spec = nabla_zoo::find(name).expect("registered").spec();
    let o: Vec<(String, String)> = overrides
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    Config::new(&spec, false, 0, None, &o)
}

fn message(name: &str, overrides: &[(&str, &str)]) -> String {
    config(name, overrides)
        .expect_err("must be refused")
        .to_string()
}

#[test]
fn every_default_and_quick_value_is_in_its_range() {
    for e in nabla_zoo::registry() {
        let spec = e.spec();
        for o in &spec.options {
            o.check(&o.default)
                .unwrap_or_else(|err| panic!("{}: default: {err}", spec.name));
            if let Some(q) = &o.quick {
                o.check(q)
                    .unwrap_or_else(|err| panic!("{}: quick: {err}", spec.name));
            }
            if matches!(o.kind, OptKind::Int | OptKind::Float) {
                assert!(o.range_text().is_some(), "{} --{}", spec.name, o.name);
            }
        }
    }
}

#[test]
fn batch_size_zero_is_refused_in_every_experiment() {
    for e in nabla_zoo::registry() {
        let spec = e.spec();
        let name = spec.name;
        if !spec.options.iter().any(|o| o.name == "batch-size") {
            continue; // one trajectory per update (cartpole, pendulum): their `--batch` is checked below
        }
        assert_eq!(
            message(name, &[("batch-size", "0")]),
            "--batch-size must be at least 1 (got 0)",
            "{name}"
        );
    }
}

#[test]
fn out_of_range_sizes_and_probabilities_are_refused() {
    for name in ["cartpole", "pendulum"] {
        assert_eq!(
            message(name, &[("batch", "0")]),
            "--batch must be at least 1 (got 0)"
        );
    }
    assert_eq!(
        message("cartpole", &[("gamma", "1.5")]),
        "--gamma must be at most 1 (got 1.5)"
    );
    assert_eq!(
        message("lstm-adding", &[("hidden", "0")]),
        "--hidden must be at least 1 (got 0)"
    );
    assert_eq!(
        message("cnn-mnist", &[("width", "0")]),
        "--width must be at least 1 (got 0)"
    );
    for p in ["1", "2", "1.0"] {
        assert!(
            message("mlp-mnist", &[("dropout", p)]).starts_with("--dropout must be less than 1"),
            "{p}"
        );
    }
    assert_eq!(
        message("mlp-mnist", &[("dropout", "-0.5")]),
        "--dropout must be at least 0 (got -0.5)"
    );
    assert_eq!(
        message("mlp-digits", &[("lr", "-1")]),
        "--lr must be greater than 0 (got -1)"
    );
    assert_eq!(
        message("mlp-digits", &[("hidden", "-1")]),
        "--hidden must be at least 1 (got -1)"
    );
    // the default range of an integer
    let o = OptSpec::int("n", "", 3);
    assert_eq!(
        o.check(&serde_json::json!(-1)).unwrap_err().to_string(),
        "--n must be at least 0 (got -1)"
    );
    // in range: accepted
    assert!(config("mlp-mnist", &[("dropout", "0.99"), ("batch-size", "1")]).is_ok());
}

#[test]
fn huge_epoch_and_step_counts_are_bounded() {
    assert!(
        message("mlp-digits", &[("epochs", "18446744073709551615")])
            .starts_with("--epochs must be at most")
    );
    assert!(message("mlp-digits", &[("epochs", "0")]).starts_with("--epochs must be at least 1"));
    let spec = nabla_zoo::find("mlp-digits").unwrap().spec();
    assert!(Config::new(&spec, false, 0, Some(MAX_STEPS + 1), &[]).is_err());
    assert!(Config::new(&spec, false, 0, Some(0), &[]).is_err());
    // epochs in range, but too many steps in all with this many batches per epoch
    let c = config("mlp-digits", &[("epochs", "1000000")]).unwrap();
    let err = c
        .steps_for_epochs(1_000_000, 10_000)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("--epochs must be at most 100000 here"),
        "{err}"
    );
    assert_eq!(c.steps_for_epochs(1_000_000, 1000).unwrap(), MAX_STEPS);
    assert!(c.steps_for_epochs(usize::MAX, usize::MAX).is_err());
}

// ---- degenerate runs (NaN loss, empty sets) and data of the wrong shape

use nabla_zoo::experiment::{Silent, ZooError};
use std::path::Path;

fn write_idx_images(path: &Path, n: u32, h: u32, w: u32) {
    let mut b = vec![0, 0, 8, 3];
    for d in [n, h, w] {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend((0..n * h * w).map(|i| (i * 7 % 256) as u8));
    std::fs::write(path, b).unwrap();
}

fn write_idx_labels(path: &Path, n: u32) {
    let mut b = vec![0, 0, 8, 1];
    b.extend_from_slice(&n.to_be_bytes());
    b.extend((0..n).map(|i| (i % 10) as u8));
    std::fs::write(path, b).unwrap();
}

/// An MNIST-layout folder with `n` training images of `train` pixels and `m` test images of
/// `test` pixels.
fn idx_folder(n: u32, train: (u32, u32), m: u32, test: (u32, u32)) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write_idx_images(
        &d.path().join("train-images-idx3-ubyte"),
        n,
        train.0,
        train.1,
    );
    write_idx_labels(&d.path().join("train-labels-idx1-ubyte"), n);
    write_idx_images(&d.path().join("t10k-images-idx3-ubyte"), m, test.0, test.1);
    write_idx_labels(&d.path().join("t10k-labels-idx1-ubyte"), m);
    d
}

fn run_err(name: &str, overrides: &[(&str, &str)]) -> ZooError {
    let exp = nabla_zoo::find(name).unwrap();
    let o: Vec<(String, String)> = overrides
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let cfg = Config::new(&exp.spec(), true, 0, None, &o).unwrap();
    match exp.run(&cfg, &mut Silent) {
        Ok(r) => panic!("{name} {overrides:?} ran: {:?}", r.metrics),
        Err(e) => e,
    }
}

#[test]
fn a_loss_that_becomes_nan_stops_the_run() {
    for name in ["mlp-digits", "lstm-adding"] {
        match run_err(name, &[("lr", "1e30")]) {
            ZooError::Diverged { step, loss } => {
                assert!(!loss.is_finite() && step >= 1, "{name}: {step} {loss}")
            }
            e => panic!("{name}: {e}"),
        }
    }
}

#[test]
fn empty_train_or_test_sets_are_refused() {
    let d = idx_folder(100, (28, 28), 0, (28, 28));
    let e = run_err("mlp-mnist", &[("data", d.path().to_str().unwrap())]).to_string();
    assert!(
        e.contains("t10k-images-idx3-ubyte") && e.contains("no images"),
        "{e}"
    );
    let d = idx_folder(0, (28, 28), 10, (28, 28));
    let e = run_err("cnn-mnist", &[("data", d.path().to_str().unwrap())]).to_string();
    assert!(
        e.contains("train-images-idx3-ubyte") && e.contains("no images"),
        "{e}"
    );
    // a digits file too small to hold out any example
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), format!("{}0\n", "1,".repeat(64))).unwrap();
    let e = run_err("mlp-digits", &[("data", f.path().to_str().unwrap())]).to_string();
    assert!(e.contains("empty"), "{e}");
}

#[test]
fn images_of_different_or_zero_size_are_refused_with_file_and_sizes() {
    let d = idx_folder(200, (28, 28), 20, (14, 14));
    for name in ["mlp-mnist", "cnn-mnist"] {
        let e = run_err(name, &[("data", d.path().to_str().unwrap())]).to_string();
        assert!(
            e.contains("t10k-images-idx3-ubyte") && e.contains("14x14") && e.contains("28x28"),
            "{name}: {e}"
        );
    }
    let d = idx_folder(200, (0, 0), 20, (0, 0));
    let e = run_err("mlp-mnist", &[("data", d.path().to_str().unwrap())]).to_string();
    assert!(
        e.contains("train-images-idx3-ubyte") && e.contains("0x0"),
        "{e}"
    );
    // what the CNN expects: square images of at least 4x4
    for (h, w) in [(28, 20), (3, 3)] {
        let d = idx_folder(200, (h, w), 20, (h, w));
        let e = run_err("cnn-mnist", &[("data", d.path().to_str().unwrap())]).to_string();
        assert!(e.contains(&format!("{h}x{w}")), "{e}");
    }
}

// ---- a saved config.json is checked as the command line is

fn saved(name: &str) -> serde_json::Value {
    config(name, &[]).unwrap().to_json()
}

fn from_json_err(name: &str, v: &serde_json::Value) -> String {
    let spec = nabla_zoo::find(name).unwrap().spec();
    Config::from_json(&spec, v)
        .expect_err("must be refused")
        .to_string()
}

#[test]
fn hand_edited_configs_are_validated_like_the_command_line() {
    let spec = nabla_zoo::find("mlp-mnist").unwrap().spec();
    let good = saved("mlp-mnist");
    assert_eq!(
        Config::from_json(&spec, &good).unwrap(),
        config("mlp-mnist", &[]).unwrap()
    );
    let mut v = good.clone();
    v["options"]["batch-size"] = serde_json::json!(0);
    assert_eq!(
        from_json_err("mlp-mnist", &v),
        "--batch-size must be at least 1 (got 0)"
    );
    let mut v = good.clone();
    v["options"]["dropout"] = serde_json::json!("lots");
    assert!(from_json_err("mlp-mnist", &v).contains("--dropout"));
    let mut v = good.clone();
    v["options"]["hidden"] = serde_json::json!(1.5);
    assert!(from_json_err("mlp-mnist", &v).contains("--hidden"));
    let mut v = good.clone();
    v["options"].as_object_mut().unwrap().remove("lr");
    assert!(from_json_err("mlp-mnist", &v).contains("`lr` is missing"));
    let mut v = good.clone();
    v["options"]["colour"] = serde_json::json!("red");
    assert!(from_json_err("mlp-mnist", &v).contains("--colour"));
    let mut v = good.clone();
    v["steps"] = serde_json::json!(0);
    assert!(from_json_err("mlp-mnist", &v).contains("--steps"));
    let mut v = good.clone();
    v["steps"] = serde_json::json!("many");
    assert!(from_json_err("mlp-mnist", &v).contains("steps"));
    let mut v = good.clone();
    v["options"] = serde_json::json!([1, 2]);
    assert!(from_json_err("mlp-mnist", &v).contains("options"));
    assert!(from_json_err("mlp-mnist", &saved("cnn-mnist")).contains("cnn-mnist"));
}
