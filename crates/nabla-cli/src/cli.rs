//! Command-line parsing: subcommands built from the zoo's experiment specs, so each experiment's
//! options and defaults appear in `nabla run NAME --help`.

use crate::run::{self, RunArgs};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, ArgMatches, Command, value_parser};
use nabla_zoo::experiment::{MAX_STEPS, OptKind, Spec};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

/// Everything that ends a command with an error message.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad command line.
    #[error("{0}")]
    Usage(String),
    /// The run failed (data, files, checkpoints).
    #[error("{0}")]
    Run(String),
    /// Stopped by the user after saving a checkpoint.
    #[error("{0}")]
    Interrupted(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Run(_) => 1,
            CliError::Interrupted(_) => 130,
        }
    }
}

fn experiment_command(spec: &Spec) -> Command {
    let mut cmd = Command::new(spec.name)
        .about(spec.summary)
        .after_help(format!("Expected run time: {}", spec.runtime))
        .arg(Arg::new("quick").long("quick").action(ArgAction::SetTrue).help("Small settings: seconds instead of minutes"))
        .arg(
            Arg::new("seed")
                .long("seed")
                .value_name("N")
                .allow_negative_numbers(true)
                .value_parser(value_parser!(u64))
                .default_value("0")
                .help("Random seed (same seed and thread count, same numbers)"),
        )
        .arg(
            Arg::new("steps")
                .long("steps")
                .value_name("N")
                .allow_negative_numbers(true)
                .value_parser(value_parser!(u64).range(1..=MAX_STEPS))
                .help("Training steps [default: the experiment's]"),
        )
        .arg(
            Arg::new("out")
                .long("out")
                .value_name("DIR")
                .value_parser(value_parser!(PathBuf))
                .help("Output folder [default: runs/NAME-TIMESTAMP]"),
        )
        .arg(
            Arg::new("json")
                .long("json")
                .action(ArgAction::SetTrue)
                .help("Print only the final metrics, as one JSON object on one line of stdout"),
        )
        .arg(
            Arg::new("resume")
                .long("resume")
                .action(ArgAction::SetTrue)
                .help("Continue from the last checkpoint in --out (default: the latest run of this experiment)"),
        )
        .arg(
            Arg::new("overwrite")
                .long("overwrite")
                .action(ArgAction::SetTrue)
                .conflicts_with("resume")
                .help("Start afresh in an --out folder that already holds a run, replacing it"),
        )
        .arg(
            Arg::new("checkpoint-every")
                .long("checkpoint-every")
                .value_name("N")
                .allow_negative_numbers(true)
                .value_parser(value_parser!(u64))
                .help("Steps between checkpoints [default: a tenth of the run]"),
        );
    for o in &spec.options {
        let default = match &o.default {
            serde_json::Value::Null => String::new(),
            v => format!(
                " [default: {}{}]",
                v,
                o.quick
                    .as_ref()
                    .map(|q| format!("; --quick: {q}"))
                    .unwrap_or_default()
            ),
        };
        let range = o
            .range_text()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        // Values stay text here: the zoo checks type and range (the same check as for a saved
        // config.json), and a negative number must reach it rather than look like a flag.
        let arg = Arg::new(o.name)
            .long(o.name)
            .allow_negative_numbers(true)
            .help(format!("{}{default}{range}", o.help));
        let arg = match o.kind {
            OptKind::Int => arg.value_name("N"),
            OptKind::Float => arg.value_name("X"),
            OptKind::Str => arg.value_name("TEXT"),
            OptKind::Path => arg.value_name("PATH"),
        };
        cmd = cmd.arg(arg);
    }
    cmd
}

pub fn command() -> Command {
    let mut run = Command::new("run")
        .about("Run an experiment (see `nabla list`)")
        .subcommand_required(true)
        .subcommand_value_name("EXPERIMENT")
        .subcommand_help_heading("Experiments");
    for e in nabla_zoo::registry() {
        run = run.subcommand(experiment_command(&e.spec()));
    }
    Command::new("nabla")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Differentiable programming in Rust: the experiments of the nabla zoo")
        .after_help("Run with no arguments for a short tour.")
        .subcommand(
            Command::new("list")
                .about("List the experiments with a description and expected run time"),
        )
        .subcommand(run)
}

/// One line for a clap error, with our words for an unknown experiment.
fn one_line(e: &clap::Error) -> String {
    if e.kind() == ErrorKind::InvalidSubcommand
        && let Some(ContextValue::String(name)) = e.get(ContextKind::InvalidSubcommand)
    {
        return format!("unknown experiment or command `{name}` (see `nabla list`)");
    }
    let rendered = e.render().to_string();
    let first = rendered.lines().next().unwrap_or("invalid command line");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    format!("{first} (see `--help`)")
}

pub fn main(args: Vec<OsString>) -> Result<ExitCode, CliError> {
    if args.len() <= 1 {
        return crate::tour::run();
    }
    let matches = match command().try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                let _ = e.print();
                return Ok(ExitCode::SUCCESS);
            }
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                let _ = e.print();
                return Ok(ExitCode::from(2));
            }
            _ => return Err(CliError::Usage(one_line(&e))),
        },
    };
    match matches.subcommand() {
        Some(("list", _)) => {
            list();
            Ok(ExitCode::SUCCESS)
        }
        Some(("run", m)) => {
            let (name, m) = m.subcommand().expect("subcommand required");
            run::run(run_args(name, m))
        }
        _ => unreachable!("clap enforces the subcommands"),
    }
}

fn list() {
    let specs: Vec<Spec> = nabla_zoo::registry().iter().map(|e| e.spec()).collect();
    let w = specs.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in &specs {
        println!("{:w$}  {}  ({})", s.name, s.summary, s.runtime);
    }
    println!(
        "\nRun one with `nabla run NAME` (add --quick for a fast check); `nabla run NAME --help` lists its options."
    );
}

fn run_args(name: &str, m: &ArgMatches) -> RunArgs {
    let spec = nabla_zoo::find(name).expect("registered").spec();
    let mut overrides = Vec::new();
    for o in &spec.options {
        if let Some(raw) = m.get_one::<String>(o.name).cloned() {
            overrides.push((o.name.to_string(), raw));
        }
    }
    RunArgs {
        experiment: name.to_string(),
        quick: m.get_flag("quick"),
        seed: *m.get_one::<u64>("seed").expect("default"),
        seed_given: m.value_source("seed") == Some(clap::parser::ValueSource::CommandLine),
        steps: m.get_one::<u64>("steps").copied(),
        out: m.get_one::<PathBuf>("out").cloned(),
        json: m.get_flag("json"),
        resume: m.get_flag("resume"),
        overwrite: m.get_flag("overwrite"),
        checkpoint_every: m.get_one::<u64>("checkpoint-every").copied(),
        overrides,
    }
}
