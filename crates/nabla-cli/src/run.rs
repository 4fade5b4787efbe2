//! `nabla run NAME`: the run folder, the context the experiment reports to (progress, Ctrl-C,
//! checkpoints), and the outputs (metrics.json, plots, config.json, checkpoint).

use crate::cli::CliError;
use crate::plot;
use crate::progress::Progress;
use nabla::io::checkpoint::{load_checkpoint, save_checkpoint};
use nabla_zoo::experiment::{Config, Context, Resumed, State, ZooError};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The checkpoint file inside a run folder.
pub const CHECKPOINT: &str = "checkpoint.safetensors";

pub struct RunArgs {
    pub experiment: String,
    pub quick: bool,
    pub seed: u64,
    pub seed_given: bool,
    pub steps: Option<u64>,
    pub out: Option<PathBuf>,
    pub json: bool,
    pub resume: bool,
    pub overwrite: bool,
    pub checkpoint_every: Option<u64>,
    pub overrides: Vec<(String, String)>,
}

/// Writes `bytes` to `path` atomically (a synced temporary file beside it, then a rename); the
/// error is one line naming the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    nabla::io::atomic_write(path, |w| w.write_all(bytes))
        .map_err(|e| CliError::Run(format!("cannot write {e}")))
}

/// The newest `runs/NAME-*` folder that holds a checkpoint.
fn latest_run(name: &str) -> Result<PathBuf, CliError> {
    let none = || {
        CliError::Run(format!(
            "no earlier run of {name} to resume in runs/ (give the folder with --out)"
        ))
    };
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("runs")
        .map_err(|_| none())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{name}-")))
                && p.join(CHECKPOINT).is_file()
        })
        .collect();
    dirs.sort();
    dirs.pop().ok_or_else(none)
}

fn read_config(out: &Path, spec: &nabla_zoo::experiment::Spec) -> Result<Config, CliError> {
    let path = out.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        CliError::Run(format!(
            "cannot resume from {}: {}: {e}",
            out.display(),
            path.display()
        ))
    })?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| CliError::Run(format!("{}: not valid JSON: {e}", path.display())))?;
    if let Some(other) = v["experiment"].as_str()
        && other != spec.name
    {
        return Err(CliError::Run(format!(
            "{} holds a run of {other}, not {}",
            out.display(),
            spec.name
        )));
    }
    Config::from_json(spec, &v).map_err(|e| CliError::Run(format!("{}: {e}", path.display())))
}

/// The files a run writes into its folder besides plots.
const RUN_FILES: [&str; 3] = ["config.json", "metrics.json", CHECKPOINT];

/// A fresh run into a folder that already holds a run (of any experiment) would replace its
/// configuration and checkpoint: refuse, unless `overwrite`, in which case the old run's files go
/// first (so that no stale checkpoint survives next to the new configuration).
fn refuse_or_clear_existing_run(out: &Path, overwrite: bool) -> Result<(), CliError> {
    let existing: Vec<&str> = RUN_FILES
        .into_iter()
        .filter(|f| out.join(f).exists())
        .collect();
    if existing.is_empty() {
        return Ok(());
    }
    if !overwrite {
        let what = std::fs::read_to_string(out.join("config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["experiment"].as_str().map(|s| format!("a run of {s}")))
            .unwrap_or_else(|| "a run".into());
        return Err(CliError::Usage(format!(
            "{} already holds {what}; continue it with --resume, choose a new --out folder, or replace it with --overwrite",
            out.display()
        )));
    }
    for f in existing {
        std::fs::remove_file(out.join(f))
            .map_err(|e| CliError::Run(format!("cannot remove {}: {e}", out.join(f).display())))?;
    }
    Ok(())
}

/// The step of the checkpoint in `out`, if one is there and readable.
fn checkpoint_step(out: &Path) -> Option<u64> {
    let ck = load_checkpoint(out.join(CHECKPOINT)).ok()?;
    ck.metadata().get("step")?.parse().ok()
}

/// Removes what a fresh run created in `out` (its configuration, and the folder when the run
/// created it and it is now empty), after it failed before its first checkpoint.
fn remove_failed_run(out: &Path, created_dir: bool) {
    for f in RUN_FILES {
        let _ = std::fs::remove_file(out.join(f));
    }
    if created_dir {
        let _ = std::fs::remove_dir(out);
    }
}

/// The one-line message of a run that stopped early.
fn run_error(e: ZooError, spec: &nabla_zoo::experiment::Spec, out: &Path) -> CliError {
    match e {
        ZooError::Interrupted { step } => CliError::Interrupted(format!(
            "interrupted at step {step}; checkpoint saved; continue with: nabla run {} --resume --out {}",
            spec.name,
            out.display()
        )),
        ZooError::Diverged { step, loss } => CliError::Run(match checkpoint_step(out) {
            Some(s) => format!(
                "the loss became {loss} at step {step}: training diverged (try a smaller --lr); the last good checkpoint (step {s}) is kept in {}",
                out.display()
            ),
            None => format!(
                "the loss became {loss} at step {step}: training diverged (try a smaller --lr); no checkpoint had been saved"
            ),
        }),
        ZooError::Config(e) => CliError::Usage(e.to_string()),
        e => CliError::Run(e.to_string()),
    }
}

struct CliContext {
    out: PathBuf,
    progress: Progress,
    stop: Arc<AtomicBool>,
    every: Option<u64>,
    resume: bool,
}

impl Context for CliContext {
    fn progress(&mut self, done: u64, total: u64, status: &str) {
        self.progress.update(done, total, status);
    }
    fn interrupted(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
    fn checkpoint_every(&self, total: u64) -> u64 {
        self.every.unwrap_or((total / 10).max(1))
    }
    fn save(&mut self, step: u64, state: &State<'_>) -> Result<(), ZooError> {
        let mut meta = state.extra.clone();
        meta.insert("step".into(), step.to_string());
        save_checkpoint(
            self.out.join(CHECKPOINT),
            &*state.model,
            Some(&*state.optimizer),
            &meta,
        )
        .map_err(|e| ZooError::Checkpoint(e.to_string()))
    }
    fn resume(&mut self, state: &mut State<'_>) -> Result<Option<Resumed>, ZooError> {
        if !self.resume {
            return Ok(None);
        }
        let ck = load_checkpoint(self.out.join(CHECKPOINT))
            .map_err(|e| ZooError::Checkpoint(e.to_string()))?;
        ck.restore(&mut *state.model, Some(&mut *state.optimizer))
            .map_err(|e| ZooError::Checkpoint(e.to_string()))?;
        let mut meta = ck.metadata().clone();
        let step = meta
            .remove("step")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                ZooError::Checkpoint(format!(
                    "{}: no step recorded",
                    self.out.join(CHECKPOINT).display()
                ))
            })?;
        Ok(Some((step, meta)))
    }
}

pub fn run(args: RunArgs) -> Result<ExitCode, CliError> {
    let exp = nabla_zoo::find(&args.experiment).expect("clap only accepts registered experiments");
    let spec = exp.spec();
    let out = match (&args.out, args.resume) {
        (Some(d), _) => d.clone(),
        (None, true) => latest_run(spec.name)?,
        (None, false) => {
            // runs/NAME-TIMESTAMP, with a suffix when runs start within the same second
            let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
            let base = PathBuf::from("runs").join(format!("{}-{stamp}", spec.name));
            let mut dir = base.clone();
            let mut k = 2;
            while dir.exists() {
                dir = PathBuf::from(format!("{}-{k}", base.display()));
                k += 1;
            }
            dir
        }
    };
    let config = if args.resume {
        if args.quick || args.seed_given || args.steps.is_some() || !args.overrides.is_empty() {
            return Err(CliError::Usage(
                "--resume continues with the run's saved options; give only --out, --json or --checkpoint-every".into(),
            ));
        }
        if !out.join(CHECKPOINT).is_file() {
            return Err(CliError::Run(format!(
                "no checkpoint to resume from in {}",
                out.display()
            )));
        }
        read_config(&out, &spec)?
    } else {
        Config::new(&spec, args.quick, args.seed, args.steps, &args.overrides)
            .map_err(|e| CliError::Usage(e.to_string()))?
    };
    if !args.resume {
        refuse_or_clear_existing_run(&out, args.overwrite)?;
    }
    let created_dir = !out.exists();
    std::fs::create_dir_all(&out).map_err(|e| {
        CliError::Run(format!(
            "cannot create output folder {}: {e}",
            out.display()
        ))
    })?;
    // Temporary files of a process killed while saving (kill -9, power loss) are never renamed:
    // clear those of dead processes before this run writes its own.
    nabla::io::remove_stale_temp_files(&out).map_err(|e| {
        CliError::Run(format!(
            "cannot clear stale temporary files in {}: {e}",
            out.display()
        ))
    })?;
    let config_text = serde_json::to_string_pretty(&config.to_json()).expect("serialisable");
    if let Err(e) = write_atomic(&out.join("config.json"), config_text.as_bytes()) {
        if !args.resume {
            remove_failed_run(&out, created_dir);
        }
        return Err(e);
    }

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // Only fails if a handler is already installed (the tour runs several experiments).
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    let mut ctx = CliContext {
        out: out.clone(),
        progress: Progress::new(spec.name, args.json),
        stop,
        every: args.checkpoint_every,
        resume: args.resume,
    };
    let started = std::time::Instant::now();
    let result = exp.run(&config, &mut ctx);
    ctx.progress.finish();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            // A fresh run that fails before its first checkpoint leaves nothing behind.
            if !args.resume && !out.join(CHECKPOINT).is_file() {
                remove_failed_run(&out, created_dir);
            }
            return Err(run_error(e, &spec, &out));
        }
    };
    let seconds = started.elapsed().as_secs_f64();

    let curves: Vec<serde_json::Value> = report
        .curves
        .iter()
        .map(|c| {
            json!({
                "file": c.file, "title": c.title, "x": c.x_label, "y": c.y_label,
                "series": c.series.iter().map(|s| json!({"label": s.label, "points": s.points})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let metrics = json!({
        "experiment": spec.name,
        "config": config.to_json(),
        "metrics": report.metrics,
        "summary": report.summary,
        "curves": curves,
        "seconds": seconds,
    });
    // The metrics first: plots are optional artefacts drawn from them.
    write_atomic(
        &out.join("metrics.json"),
        serde_json::to_string_pretty(&metrics)
            .expect("serialisable")
            .as_bytes(),
    )?;
    let mut files = vec!["config.json".to_string(), "metrics.json".to_string()];
    if out.join(CHECKPOINT).is_file() {
        files.push(CHECKPOINT.into());
    }
    for c in &report.curves {
        if plot::write_png(c, &out.join(&c.file)).map_err(CliError::Run)? {
            files.push(c.file.clone());
        }
    }
    for h in &report.heatmaps {
        if crate::heatmap::write_heatmap_png(h, &out.join(&h.file)).map_err(CliError::Run)? {
            files.push(h.file.clone());
        }
    }

    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report.metrics).expect("serialisable")
        );
    } else {
        println!("== {} ({:.1} s)", spec.name, seconds);
        for line in &report.summary {
            println!("  {line}");
        }
        println!("  outputs in {}: {}", out.display(), files.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
