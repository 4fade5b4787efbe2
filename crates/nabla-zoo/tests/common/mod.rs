//! What the zoo's experiment tests share: running an experiment as a library call (the options
//! `--quick` ships, or the full ones, plus `--name value` overrides) and reading its metrics.

#![allow(dead_code)]

use nabla_zoo::experiment::{Config, Report, Silent, ZooError};
use serde_json::{Map, Value};

/// An experiment's final metrics, as `--json` prints them.
pub type Metrics = Map<String, Value>;

/// Runs experiment `name` (registered) with `seed`, `steps` (None: the experiment's own) and the
/// `overrides` a command line would give; checks that it reports a summary and at least one curve.
pub fn try_run(
    name: &str,
    quick: bool,
    seed: u64,
    steps: Option<u64>,
    overrides: &[(&str, &str)],
) -> Result<Report, ZooError> {
    let exp = nabla_zoo::find(name).expect("registered");
    let o: Vec<(String, String)> = overrides
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let cfg = Config::new(&exp.spec(), quick, seed, steps, &o)?;
    let report = exp.run(&cfg, &mut Silent)?;
    assert!(
        !report.summary.is_empty() && !report.curves.is_empty(),
        "{name}: a run must report a summary and curves"
    );
    Ok(report)
}

/// [`try_run`] that must succeed, reduced to its metrics.
pub fn run(name: &str, quick: bool, seed: u64, overrides: &[(&str, &str)]) -> Metrics {
    metrics(try_run(name, quick, seed, None, overrides).unwrap())
}

/// A report's metrics as a JSON map.
pub fn metrics(report: Report) -> Metrics {
    report.metrics.into_iter().collect()
}

/// Metric `k` as a number (panics, naming it, when it is missing or not a number).
pub fn metric(m: &Metrics, k: &str) -> f64 {
    m.get(k)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{k} missing from {m:?}"))
}
