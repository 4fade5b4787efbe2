//! `nabla` with no arguments: a short tour of the zoo in quick mode.

use crate::cli::CliError;
use crate::run::{RunArgs, run as run_experiment};
use std::process::ExitCode;

/// The experiments the tour runs, in order.
pub const TOUR: &[&str] = &["mlp-digits", "lstm-adding"];

pub fn run() -> Result<ExitCode, CliError> {
    println!(
        "nabla: differentiable programming in Rust. A quick tour of the zoo (quick mode, a few seconds each).\n"
    );
    for name in TOUR {
        if nabla_zoo::find(name).is_none() {
            continue;
        }
        run_experiment(RunArgs {
            experiment: name.to_string(),
            quick: true,
            seed: 0,
            seed_given: false,
            steps: None,
            out: Some(std::path::PathBuf::from("runs").join(format!("tour-{name}"))),
            json: false,
            resume: false,
            // the tour's folders are its own: each tour replaces the last
            overwrite: true,
            checkpoint_every: None,
            overrides: vec![],
        })?;
        println!();
    }
    println!("What next:");
    println!("  nabla list                      every experiment, with its run time");
    println!("  nabla run mlp-mnist             a full run (add --json for one line of metrics)");
    println!("  nabla run cnn-mnist --help      an experiment's options and defaults");
    println!("  docs/getting-started.md         differentiate your own code");
    Ok(ExitCode::SUCCESS)
}
