//! What an experiment is: a [`Spec`] (name, options and their defaults), a function from a
//! [`Config`] to a [`Report`], and a [`Context`] through which it reports progress and saves or
//! resumes checkpoints. The zoo never prints or touches the terminal; the CLI implements `Context`.

use nabla::nn::Module;
use nabla::optim::Optimizer;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The type of an experiment option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptKind {
    /// A non-negative integer.
    Int,
    /// A real number.
    Float,
    /// A string.
    Str,
    /// A filesystem path (may be absent).
    Path,
}

/// One option of an experiment: `--name VALUE`.
#[derive(Clone, Debug)]
pub struct OptSpec {
    /// The flag name, without dashes.
    pub name: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// Its type.
    pub kind: OptKind,
    /// Its default (`null` for an absent path).
    pub default: Value,
    /// Its value under `--quick`, when different.
    pub quick: Option<Value>,
}

impl OptSpec {
    /// An integer option.
    pub fn int(name: &'static str, help: &'static str, default: u64) -> OptSpec {
        OptSpec {
            name,
            help,
            kind: OptKind::Int,
            default: json!(default),
            quick: None,
        }
    }
    /// A real option.
    pub fn float(name: &'static str, help: &'static str, default: f64) -> OptSpec {
        OptSpec {
            name,
            help,
            kind: OptKind::Float,
            default: json!(default),
            quick: None,
        }
    }
    /// A string option.
    pub fn string(name: &'static str, help: &'static str, default: &str) -> OptSpec {
        OptSpec {
            name,
            help,
            kind: OptKind::Str,
            default: json!(default),
            quick: None,
        }
    }
    /// A path option, absent by default.
    pub fn path(name: &'static str, help: &'static str) -> OptSpec {
        OptSpec {
            name,
            help,
            kind: OptKind::Path,
            default: Value::Null,
            quick: None,
        }
    }
    /// The value used under `--quick`.
    pub fn quick(mut self, v: impl Into<Value>) -> OptSpec {
        self.quick = Some(v.into());
        self
    }
}

/// What the CLI shows about an experiment and which options it takes.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Name used on the command line.
    pub name: &'static str,
    /// One-line description.
    pub summary: &'static str,
    /// Expected run time on a 2-core machine, full and `--quick`.
    pub runtime: &'static str,
    /// Options besides the common ones (`--seed`, `--steps`, `--quick`).
    pub options: Vec<OptSpec>,
}

/// A bad option value.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// The experiment has no such option.
    #[error("{experiment} has no option --{name}")]
    Unknown {
        /// Experiment.
        experiment: String,
        /// Option.
        name: String,
    },
    /// The value does not parse as the option's type.
    #[error("--{name}: expected {expected}, got `{got}`")]
    Invalid {
        /// Option.
        name: String,
        /// Expected type.
        expected: &'static str,
        /// The value given.
        got: String,
    },
    /// A saved configuration that cannot be read.
    #[error("config: {0}")]
    Malformed(String),
}

/// The resolved options of one run. Saved as `config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Experiment name.
    pub experiment: String,
    /// Random seed: the same seed and thread count give the same metrics.
    pub seed: u64,
    /// Quick mode (small settings for tests and the tour).
    pub quick: bool,
    /// Number of training steps, overriding the experiment's default.
    pub steps: Option<u64>,
    values: BTreeMap<String, Value>,
}

fn parse_value(kind: OptKind, name: &str, raw: &str) -> Result<Value, ConfigError> {
    let bad = |expected| ConfigError::Invalid {
        name: name.into(),
        expected,
        got: raw.into(),
    };
    Ok(match kind {
        OptKind::Int => json!(
            raw.parse::<u64>()
                .map_err(|_| bad("a non-negative integer"))?
        ),
        OptKind::Float => {
            let v = raw.parse::<f64>().map_err(|_| bad("a number"))?;
            if !v.is_finite() {
                return Err(bad("a finite number"));
            }
            json!(v)
        }
        OptKind::Str | OptKind::Path => json!(raw),
    })
}

impl Config {
    /// Defaults of `spec` (its quick values under `quick`), with `overrides` given as raw strings.
    pub fn new(
        spec: &Spec,
        quick: bool,
        seed: u64,
        steps: Option<u64>,
        overrides: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let mut values = BTreeMap::new();
        for o in &spec.options {
            let v = if quick {
                o.quick.clone().unwrap_or_else(|| o.default.clone())
            } else {
                o.default.clone()
            };
            values.insert(o.name.to_string(), v);
        }
        for (name, raw) in overrides {
            let o = spec
                .options
                .iter()
                .find(|o| o.name == name)
                .ok_or_else(|| ConfigError::Unknown {
                    experiment: spec.name.into(),
                    name: name.clone(),
                })?;
            values.insert(name.clone(), parse_value(o.kind, name, raw)?);
        }
        Ok(Config {
            experiment: spec.name.into(),
            seed,
            quick,
            steps,
            values,
        })
    }

    fn value(&self, name: &str) -> &Value {
        self.values
            .get(name)
            .unwrap_or_else(|| panic!("{}: no option `{name}` in its spec", self.experiment))
    }

    /// A real option.
    pub fn f64(&self, name: &str) -> f64 {
        self.value(name)
            .as_f64()
            .unwrap_or_else(|| panic!("option `{name}` is not a number"))
    }
    /// An integer option.
    pub fn usize(&self, name: &str) -> usize {
        self.value(name)
            .as_u64()
            .unwrap_or_else(|| panic!("option `{name}` is not an integer")) as usize
    }
    /// A string option.
    pub fn str(&self, name: &str) -> &str {
        self.value(name)
            .as_str()
            .unwrap_or_else(|| panic!("option `{name}` is not a string"))
    }
    /// A path option (`None` when absent).
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.value(name).as_str().map(PathBuf::from)
    }
    /// The step count: `--steps` if given, else `default`.
    pub fn steps_or(&self, default: u64) -> u64 {
        self.steps.unwrap_or(default)
    }

    /// As JSON (`config.json`).
    pub fn to_json(&self) -> Value {
        json!({
            "experiment": self.experiment,
            "seed": self.seed,
            "quick": self.quick,
            "steps": self.steps,
            "options": self.values,
        })
    }

    /// From JSON written by [`to_json`](Config::to_json).
    pub fn from_json(v: &Value) -> Result<Config, ConfigError> {
        let bad = |what: &str| ConfigError::Malformed(format!("missing or invalid `{what}`"));
        Ok(Config {
            experiment: v["experiment"]
                .as_str()
                .ok_or_else(|| bad("experiment"))?
                .to_string(),
            seed: v["seed"].as_u64().ok_or_else(|| bad("seed"))?,
            quick: v["quick"].as_bool().ok_or_else(|| bad("quick"))?,
            steps: v["steps"].as_u64(),
            values: serde_json::from_value(v["options"].clone()).map_err(|_| bad("options"))?,
        })
    }
}

/// One line of a plot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// `(x, y)` points.
    pub points: Vec<(f64, f64)>,
}

/// A plot the CLI writes as a PNG.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Curve {
    /// File name, e.g. `loss.png`.
    pub file: String,
    /// Title.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Lines.
    pub series: Vec<Series>,
    /// Use a logarithmic y axis.
    pub log_y: bool,
}

/// The outcome of a run: final metrics (the `--json` object), a human summary, plots.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Final metrics, e.g. `test_accuracy`.
    pub metrics: BTreeMap<String, Value>,
    /// Lines of human summary.
    pub summary: Vec<String>,
    /// Curves to plot.
    pub curves: Vec<Curve>,
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ZooError {
    /// A data set could not be read.
    #[error("{0}")]
    Data(String),
    /// A checkpoint could not be written or read.
    #[error("{0}")]
    Checkpoint(String),
    /// An option is invalid for this experiment.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The user asked to stop; a checkpoint was saved at `step`.
    #[error("interrupted at step {step}")]
    Interrupted {
        /// Last completed step (saved).
        step: u64,
    },
}

/// What a resumed run gets back: the step it had reached and the extras it saved.
pub type Resumed = (u64, BTreeMap<String, String>);

/// A training state handed to the context for saving or restoring.
pub struct State<'a> {
    /// The model.
    pub model: &'a mut dyn Module,
    /// Its optimiser.
    pub optimizer: &'a mut dyn Optimizer,
    /// Anything else to carry over, as strings (curves so far, counters).
    pub extra: BTreeMap<String, String>,
}

/// How a running experiment talks to the outside world.
pub trait Context {
    /// `done` of `total` steps are complete; `status` is a short line (e.g. `loss 0.12`).
    fn progress(&mut self, done: u64, total: u64, status: &str);
    /// Whether the user asked to stop (Ctrl-C): save and return [`ZooError::Interrupted`].
    fn interrupted(&self) -> bool {
        false
    }
    /// Steps between checkpoints for a run of `total` steps (0: never).
    fn checkpoint_every(&self, total: u64) -> u64 {
        let _ = total;
        0
    }
    /// Saves the state after `step` completed steps.
    fn save(&mut self, step: u64, state: &State<'_>) -> Result<(), ZooError>;
    /// Restores the latest saved state into `state` when resuming; returns its step and extras.
    fn resume(&mut self, state: &mut State<'_>) -> Result<Option<Resumed>, ZooError>;
}

/// A context that reports nothing and keeps no checkpoints: for tests and library use.
#[derive(Default)]
pub struct Silent;

impl Context for Silent {
    fn progress(&mut self, _: u64, _: u64, _: &str) {}
    fn save(&mut self, _: u64, _: &State<'_>) -> Result<(), ZooError> {
        Ok(())
    }
    fn resume(&mut self, _: &mut State<'_>) -> Result<Option<Resumed>, ZooError> {
        Ok(None)
    }
}

/// An experiment of the zoo.
pub trait Experiment: Send + Sync {
    /// Name, summary and options.
    fn spec(&self) -> Spec;
    /// Runs it.
    fn run(&self, config: &Config, ctx: &mut dyn Context) -> Result<Report, ZooError>;
}
