//! The `nabla` binary as a user meets it: listing, running, JSON output, bad input, and resuming an
//! interrupted run.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn nabla() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nabla"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn run(args: &[&str]) -> Output {
    nabla().args(args).output().expect("runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Bad input gives exactly one line on stderr, starting with `error:`, and no backtrace.
fn assert_one_line_error(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains(needle), "`{needle}` not in: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
}

/// A run that fails after it started: progress lines (on stderr when it is not a terminal), then
/// one line of error, and no backtrace.
fn assert_ends_with_one_line_error(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    let last = lines.last().copied().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains(needle),
        "`{needle}` not in: {err}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("error")).count(),
        1,
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
}

#[test]
fn list_shows_every_experiment_with_run_time() {
    let o = run(&["list"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    for name in ["mlp-digits", "mlp-mnist", "cnn-mnist"] {
        assert!(
            out.lines().any(|l| l.starts_with(name) && l.contains('(')),
            "{name} missing: {out}"
        );
    }
}

#[test]
fn help_shows_experiment_options_and_defaults() {
    let o = run(&["run", "mlp-digits", "--help"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    for s in [
        "--hidden",
        "[default: 128]",
        "--quick",
        "--seed",
        "--steps",
        "--out",
        "--json",
        "--resume",
    ] {
        assert!(out.contains(s), "`{s}` missing from help: {out}");
    }
}

#[test]
fn unknown_experiment_is_one_clear_line() {
    assert_one_line_error(
        &run(&["run", "no-such-thing"]),
        2,
        "unknown experiment or command `no-such-thing`",
    );
}

#[test]
fn bad_flag_value_is_one_clear_line() {
    assert_one_line_error(&run(&["run", "mlp-digits", "--lr", "fast"]), 2, "fast");
    assert_one_line_error(
        &run(&["run", "mlp-digits", "--no-such-flag"]),
        2,
        "--no-such-flag",
    );
}

#[test]
fn unwritable_output_folder_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let out = file.join("run");
    let o = run(&[
        "run",
        "mlp-digits",
        "--quick",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_one_line_error(&o, 1, "cannot create output folder");
}

#[test]
fn missing_and_corrupt_checkpoints_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert_one_line_error(
        &run(&["run", "mlp-digits", "--resume", "--out", d]),
        1,
        "no checkpoint to resume from",
    );
    // a real run, then a damaged checkpoint
    let o = run(&["run", "mlp-digits", "--quick", "--json", "--out", d]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(
        dir.path().join("checkpoint.safetensors"),
        b"\x10\x00\x00\x00\x00\x00\x00\x00garbage",
    )
    .unwrap();
    assert_one_line_error(
        &run(&["run", "mlp-digits", "--resume", "--out", d]),
        1,
        "checkpoint",
    );
    // a missing data file
    let o = run(&[
        "run",
        "mlp-digits",
        "--quick",
        "--data",
        "/nonexistent/digits.csv",
        "--out",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert_one_line_error(&o, 1, "/nonexistent/digits.csv");
}

#[test]
fn json_is_one_line_of_metrics_and_outputs_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(&[
        "run",
        "mlp-digits",
        "--quick",
        "--json",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.lines().count(), 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["test_accuracy"].as_f64().unwrap() > 0.9, "{v}");
    for f in [
        "metrics.json",
        "config.json",
        "loss.png",
        "accuracy.png",
        "checkpoint.safetensors",
    ] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    // the same seed gives the same metrics
    let dir2 = tempfile::tempdir().unwrap();
    let o2 = run(&[
        "run",
        "mlp-digits",
        "--quick",
        "--json",
        "--out",
        dir2.path().to_str().unwrap(),
    ]);
    assert_eq!(out, String::from_utf8_lossy(&o2.stdout));
}

fn wait_for(path: &Path, timeout: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < timeout {
        if path.is_file() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Runs mlp-digits uninterrupted, then again stopped by `signal` after its first checkpoint and
/// resumed; both must end with the same metrics.
fn interrupted_run_resumes_to_the_same_metrics(signal: &str) {
    let args = [
        "--steps",
        "4000",
        "--checkpoint-every",
        "200",
        "--seed",
        "5",
        "--json",
    ];
    let full = tempfile::tempdir().unwrap();
    let mut a: Vec<&str> = vec!["run", "mlp-digits"];
    a.extend(args);
    a.extend(["--out", full.path().to_str().unwrap()]);
    let o = run(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    let want = String::from_utf8_lossy(&o.stdout).into_owned();

    let part = tempfile::tempdir().unwrap();
    let mut a: Vec<&str> = vec!["run", "mlp-digits"];
    a.extend(args);
    a.extend(["--out", part.path().to_str().unwrap()]);
    let child = nabla()
        .args(&a)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_for(
            &part.path().join("checkpoint.safetensors"),
            Duration::from_secs(60)
        ),
        "no checkpoint"
    );
    let killed = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let stopped = child.wait_with_output().unwrap();
    assert!(
        !stopped.status.success(),
        "the run finished before it was stopped; make it longer"
    );
    if signal == "-INT" {
        assert_eq!(stopped.status.code(), Some(130));
        assert!(
            stderr(&stopped).contains("--resume"),
            "{}",
            stderr(&stopped)
        );
    }
    let o = run(&[
        "run",
        "mlp-digits",
        "--resume",
        "--json",
        "--out",
        part.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), want);
}

#[test]
fn killed_run_resumes_to_the_same_metrics() {
    interrupted_run_resumes_to_the_same_metrics("-KILL");
}

#[test]
fn ctrl_c_saves_and_resumes_to_the_same_metrics() {
    interrupted_run_resumes_to_the_same_metrics("-INT");
}

#[test]
fn resume_refuses_new_options() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert!(
        run(&["run", "mlp-digits", "--quick", "--json", "--out", d])
            .status
            .success()
    );
    assert_one_line_error(
        &run(&["run", "mlp-digits", "--resume", "--lr", "0.1", "--out", d]),
        2,
        "--resume",
    );
}

#[test]
fn runs_started_in_the_same_second_get_their_own_folders() {
    let dir = tempfile::tempdir().unwrap();
    let runs = |_: ()| {
        Command::new(env!("CARGO_BIN_EXE_nabla"))
            .current_dir(dir.path())
            .args([
                "run",
                "mlp-digits",
                "--quick",
                "--json",
                "--steps",
                "5",
                "--data",
            ])
            .arg(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../data/digits/digits.csv.gz"),
            )
            .output()
            .unwrap()
    };
    assert!(runs(()).status.success());
    assert!(runs(()).status.success());
    let n = std::fs::read_dir(dir.path().join("runs")).unwrap().count();
    assert_eq!(n, 2);
}

#[test]
fn fresh_run_into_an_existing_run_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let first = [
        "run",
        "mlp-digits",
        "--quick",
        "--json",
        "--steps",
        "5",
        "--out",
        d,
    ];
    assert!(run(&first).status.success());
    let config = std::fs::read(dir.path().join("config.json")).unwrap();
    let ckpt = std::fs::read(dir.path().join("checkpoint.safetensors")).unwrap();
    // the same experiment, and another one: both refused, nothing touched
    for exp in ["mlp-digits", "lstm-adding"] {
        let o = run(&[
            "run", exp, "--quick", "--steps", "3", "--seed", "9", "--out", d,
        ]);
        assert_one_line_error(&o, 2, "already holds a run of mlp-digits");
        assert!(stderr(&o).contains("--resume") && stderr(&o).contains("--overwrite"));
    }
    assert_eq!(
        std::fs::read(dir.path().join("config.json")).unwrap(),
        config
    );
    assert_eq!(
        std::fs::read(dir.path().join("checkpoint.safetensors")).unwrap(),
        ckpt
    );
    // --overwrite replaces it
    let o = run(&[
        "run",
        "lstm-adding",
        "--quick",
        "--json",
        "--steps",
        "3",
        "--out",
        d,
        "--overwrite",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(c["experiment"], "lstm-adding");
}

#[test]
fn out_of_range_options_are_one_clear_line_before_the_run() {
    for exp in ["mlp-digits", "mlp-mnist", "cnn-mnist", "lstm-adding"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let o = run(&[
            "run",
            exp,
            "--batch-size",
            "0",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_one_line_error(&o, 2, "--batch-size must be at least 1 (got 0)");
        assert!(!out.exists(), "{exp}: a refused run created its folder");
    }
    let o = run(&["run", "lstm-adding", "--hidden", "-1"]);
    assert_one_line_error(&o, 2, "--hidden must be at least 1 (got -1)");
    let o = run(&["run", "mlp-mnist", "--dropout", "1"]);
    assert_one_line_error(&o, 2, "--dropout must be less than 1 (got 1)");
    let o = run(&["run", "mlp-digits", "--epochs", "18446744073709551615"]);
    assert_one_line_error(&o, 2, "--epochs must be at most");
    let o = run(&["run", "mlp-digits", "--steps", "-1"]);
    assert_one_line_error(&o, 2, "--steps");
    // the range is in the help
    let help = String::from_utf8_lossy(&run(&["run", "mlp-mnist", "--help"]).stdout).into_owned();
    assert!(
        help.contains("(in [0, 1))") && help.contains("(greater than 0)"),
        "{help}"
    );
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn a_diverging_run_stops_with_an_error_and_keeps_its_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let o = run(&[
        "run",
        "mlp-digits",
        "--quick",
        "--lr",
        "1e30",
        "--checkpoint-every",
        "1",
        "--out",
        d,
    ]);
    assert_ends_with_one_line_error(&o, 1, "training diverged");
    assert!(
        stderr(&o).contains("last good checkpoint"),
        "{}",
        stderr(&o)
    );
    assert!(dir.path().join("checkpoint.safetensors").is_file());
    assert!(!dir.path().join("metrics.json").exists());
    // diverging before any checkpoint: an error too, and nothing left behind
    let fresh = dir.path().join("fresh");
    let o = run(&[
        "run",
        "lstm-adding",
        "--quick",
        "--lr",
        "1e30",
        "--out",
        fresh.to_str().unwrap(),
    ]);
    assert_ends_with_one_line_error(&o, 1, "training diverged");
    assert!(!fresh.exists());
}

#[test]
fn a_run_that_fails_before_its_first_checkpoint_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("new");
    let o = run(&[
        "run",
        "mlp-digits",
        "--data",
        "/nonexistent/digits.csv",
        "--out",
        fresh.to_str().unwrap(),
    ]);
    assert_one_line_error(&o, 1, "/nonexistent/digits.csv");
    assert!(!fresh.exists(), "{:?}", names_in(dir.path()));
    // a folder that existed before is kept, emptied of what the run wrote
    let o = run(&[
        "run",
        "mlp-digits",
        "--data",
        "/nonexistent/digits.csv",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        names_in(dir.path()).is_empty(),
        "{:?}",
        names_in(dir.path())
    );
}

#[test]
fn outputs_are_atomic_metrics_come_first_and_io_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    // loss.png cannot be written: a non-empty folder holds its name
    std::fs::create_dir(dir.path().join("loss.png")).unwrap();
    std::fs::write(dir.path().join("loss.png").join("x"), b"x").unwrap();
    let o = run(&[
        "run",
        "mlp-digits",
        "--quick",
        "--steps",
        "20",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_ends_with_one_line_error(&o, 1, "cannot write");
    assert!(stderr(&o).contains("loss.png"), "{}", stderr(&o));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("metrics.json")).unwrap()).unwrap();
    assert!(m["metrics"]["test_accuracy"].is_number(), "{m}");
    assert!(
        names_in(dir.path()).iter().all(|n| !n.ends_with(".tmp")),
        "{:?}",
        names_in(dir.path())
    );
}

#[test]
fn stale_temp_files_of_killed_saves_are_cleared_on_start_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // a process id above Linux's pid_max: certainly dead
    let stale = [
        ".checkpoint.safetensors.4999999.0.tmp",
        ".metrics.json.4999999.7.tmp",
    ];
    for f in stale {
        std::fs::write(dir.path().join(f), b"half").unwrap();
    }
    let o = run(&[
        "run",
        "mlp-digits",
        "--quick",
        "--steps",
        "10",
        "--json",
        "--out",
        d,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in stale {
        assert!(!dir.path().join(f).exists(), "{f} kept on start");
        std::fs::write(dir.path().join(f), b"half").unwrap();
    }
    let o = run(&["run", "mlp-digits", "--resume", "--json", "--out", d]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in stale {
        assert!(!dir.path().join(f).exists(), "{f} kept on resume");
    }
}
