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
    pub checkpoint_every: Option<u64>,
    pub overrides: Vec<(String, String)>,
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
        std::process::id()
    ));
    let result = (|| {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
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

fn read_config(out: &Path) -> Result<Config, CliError> {
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
    Config::from_json(&v).map_err(|e| CliError::Run(format!("{}: {e}", path.display())))
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
        let c = read_config(&out)?;
        if c.experiment != spec.name {
            return Err(CliError::Run(format!(
                "{} holds a run of {}, not {}",
                out.display(),
                c.experiment,
                spec.name
            )));
        }
        c
    } else {
        Config::new(&spec, args.quick, args.seed, args.steps, &args.overrides)
            .map_err(|e| CliError::Usage(e.to_string()))?
    };
    std::fs::create_dir_all(&out).map_err(|e| {
        CliError::Run(format!(
            "cannot create output folder {}: {e}",
            out.display()
        ))
    })?;
    let config_text = serde_json::to_string_pretty(&config.to_json()).expect("serialisable");
    write_atomic(&out.join("config.json"), config_text.as_bytes()).map_err(|e| {
        CliError::Run(format!(
            "cannot write to output folder {}: {e}",
            out.display()
        ))
    })?;

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
        Err(ZooError::Interrupted { step }) => {
            return Err(CliError::Interrupted(format!(
                "interrupted at step {step}; checkpoint saved; continue with: nabla run {} --resume --out {}",
                spec.name,
                out.display()
            )));
        }
        Err(e) => return Err(CliError::Run(e.to_string())),
    };
    let seconds = started.elapsed().as_secs_f64();

    let mut files = vec!["config.json".to_string(), "metrics.json".to_string()];
    for c in &report.curves {
        plot::write_png(c, &out.join(&c.file)).map_err(CliError::Run)?;
        files.push(c.file.clone());
    }
    if out.join(CHECKPOINT).is_file() {
        files.push(CHECKPOINT.into());
    }
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
    write_atomic(
        &out.join("metrics.json"),
        serde_json::to_string_pretty(&metrics)
            .expect("serialisable")
            .as_bytes(),
    )
    .map_err(|e| {
        CliError::Run(format!(
            "cannot write {}: {e}",
            out.join("metrics.json").display()
        ))
    })?;

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
