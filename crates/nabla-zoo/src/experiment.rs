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

/// One bound of an option's valid range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bound {
    /// The limit.
    pub value: f64,
    /// Whether the limit itself is valid.
    pub inclusive: bool,
}

/// One option of an experiment: `--name VALUE`.
///
/// Its valid range lives here beside its default: the command line and a saved `config.json` are
/// both checked against it before a run starts. Integers are at least 0 and reals finite unless
/// narrowed with [`min`](OptSpec::min), [`max`](OptSpec::max), [`range`](OptSpec::range),
/// [`greater_than`](OptSpec::greater_than) or [`less_than`](OptSpec::less_than).
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
    /// Lower bound of a number (`None`: unbounded; integers are never negative).
    pub lower: Option<Bound>,
    /// Upper bound of a number (`None`: unbounded).
    pub upper: Option<Bound>,
}

impl OptSpec {
    fn new(name: &'static str, help: &'static str, kind: OptKind, default: Value) -> OptSpec {
        OptSpec {
            name,
            help,
            kind,
            default,
            quick: None,
            lower: (kind == OptKind::Int).then_some(Bound {
                value: 0.0,
                inclusive: true,
            }),
            upper: None,
        }
    }
    /// An integer option (at least 0 unless narrowed).
    pub fn int(name: &'static str, help: &'static str, default: u64) -> OptSpec {
        OptSpec::new(name, help, OptKind::Int, json!(default))
    }
    /// A real option (any finite number unless narrowed).
    pub fn float(name: &'static str, help: &'static str, default: f64) -> OptSpec {
        OptSpec::new(name, help, OptKind::Float, json!(default))
    }
    /// A string option.
    pub fn string(name: &'static str, help: &'static str, default: &str) -> OptSpec {
        OptSpec::new(name, help, OptKind::Str, json!(default))
    }
    /// A path option, absent by default.
    pub fn path(name: &'static str, help: &'static str) -> OptSpec {
        OptSpec::new(name, help, OptKind::Path, Value::Null)
    }
    /// The value used under `--quick`.
    pub fn quick(mut self, v: impl Into<Value>) -> OptSpec {
        self.quick = Some(v.into());
        self
    }
    /// Valid values are at least `lo`.
    pub fn min(mut self, lo: impl Into<f64>) -> OptSpec {
        self.lower = Some(Bound {
            value: lo.into(),
            inclusive: true,
        });
        self
    }
    /// Valid values are at most `hi`.
    pub fn max(mut self, hi: impl Into<f64>) -> OptSpec {
        self.upper = Some(Bound {
            value: hi.into(),
            inclusive: true,
        });
        self
    }
    /// Valid values lie in `[lo, hi]` (both ends included).
    pub fn range(self, lo: impl Into<f64>, hi: impl Into<f64>) -> OptSpec {
        self.min(lo).max(hi)
    }
    /// Valid values are greater than `lo` (a learning rate: `greater_than(0.0)`).
    pub fn greater_than(mut self, lo: impl Into<f64>) -> OptSpec {
        self.lower = Some(Bound {
            value: lo.into(),
            inclusive: false,
        });
        self
    }
    /// Valid values are less than `hi` (a dropout probability: `less_than(1.0)`).
    pub fn less_than(mut self, hi: impl Into<f64>) -> OptSpec {
        self.upper = Some(Bound {
            value: hi.into(),
            inclusive: false,
        });
        self
    }

    /// The valid range in words, e.g. `at least 1`, `in [0, 1)`; `None` for strings and paths.
    pub fn range_text(&self) -> Option<String> {
        let n = |b: &Bound| fmt_num(b.value);
        match (&self.lower, &self.upper) {
            (None, None) => None,
            (Some(l), None) => Some(if l.inclusive {
                format!("at least {}", n(l))
            } else {
                format!("greater than {}", n(l))
            }),
            (None, Some(u)) => Some(if u.inclusive {
                format!("at most {}", n(u))
            } else {
                format!("less than {}", n(u))
            }),
            (Some(l), Some(u)) => Some(format!(
                "in {}{}, {}{}",
                if l.inclusive { "[" } else { "(" },
                n(l),
                n(u),
                if u.inclusive { "]" } else { ")" }
            )),
        }
    }

    /// Checks a value of this option (from the command line, a saved config or the spec itself):
    /// its type and its range.
    pub fn check(&self, v: &Value) -> Result<(), ConfigError> {
        let got = match v {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        let invalid = |expected| ConfigError::Invalid {
            name: self.name.into(),
            expected,
            got: got.clone(),
        };
        let x = match self.kind {
            OptKind::Int => match (v.as_u64(), v.as_i64()) {
                (Some(u), _) => u as f64,
                (None, Some(i)) => i as f64,
                _ => return Err(invalid("a non-negative integer")),
            },
            OptKind::Float => match v.as_f64() {
                Some(x) if x.is_finite() => x,
                _ => return Err(invalid("a finite number")),
            },
            OptKind::Str => return v.as_str().map(|_| ()).ok_or_else(|| invalid("a string")),
            OptKind::Path => {
                return (v.is_null() || v.is_string())
                    .then_some(())
                    .ok_or_else(|| invalid("a path"));
            }
        };
        let low = self
            .lower
            .filter(|b| x < b.value || (!b.inclusive && x == b.value));
        let high = self
            .upper
            .filter(|b| x > b.value || (!b.inclusive && x == b.value));
        let words = match (low, high) {
            (Some(b), _) if b.inclusive => format!("at least {}", fmt_num(b.value)),
            (Some(b), _) => format!("greater than {}", fmt_num(b.value)),
            (_, Some(b)) if b.inclusive => format!("at most {}", fmt_num(b.value)),
            (_, Some(b)) => format!("less than {}", fmt_num(b.value)),
            (None, None) => return Ok(()),
        };
        Err(ConfigError::OutOfRange {
            name: self.name.into(),
            bound: words,
            got,
        })
    }
}

/// A bound as a user typed it: `1`, `0.5`, `1e-8`.
fn fmt_num(x: f64) -> String {
    if x == x.trunc() && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
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
    /// The value lies outside the option's range.
    #[error("--{name} must be {bound} (got {got})")]
    OutOfRange {
        /// Option.
        name: String,
        /// The violated bound in words, e.g. `at least 1`.
        bound: String,
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

/// The largest number of training steps a run may take (`--steps`, or epochs times batches).
pub const MAX_STEPS: u64 = 1_000_000_000;

fn parse_value(o: &OptSpec, raw: &str) -> Result<Value, ConfigError> {
    let bad = |expected| ConfigError::Invalid {
        name: o.name.into(),
        expected,
        got: raw.into(),
    };
    let v = match o.kind {
        OptKind::Int => {
            // A negative integer parses, so that its error names the range, not the syntax.
            if let Ok(u) = raw.parse::<u64>() {
                json!(u)
            } else if let Ok(i) = raw.parse::<i64>() {
                json!(i)
            } else {
                return Err(bad("a non-negative integer"));
            }
        }
        OptKind::Float => {
            let v = raw.parse::<f64>().map_err(|_| bad("a number"))?;
            if !v.is_finite() {
                return Err(bad("a finite number"));
            }
            json!(v)
        }
        OptKind::Str | OptKind::Path => json!(raw),
    };
    // the error quotes the value as the user typed it
    o.check(&v).map_err(|e| match e {
        ConfigError::OutOfRange { name, bound, .. } => ConfigError::OutOfRange {
            name,
            bound,
            got: raw.into(),
        },
        e => e,
    })?;
    Ok(v)
}

fn check_steps(steps: Option<u64>) -> Result<(), ConfigError> {
    match steps {
        Some(s) if s == 0 || s > MAX_STEPS => Err(ConfigError::OutOfRange {
            name: "steps".into(),
            bound: format!("in [1, {MAX_STEPS}]"),
            got: s.to_string(),
        }),
        _ => Ok(()),
    }
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
            values.insert(name.clone(), parse_value(o, raw)?);
        }
        check_steps(steps)?;
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

    /// The step count of a run of `epochs` passes of `per_epoch` steps, unless `--steps` gave one;
    /// an error when it exceeds [`MAX_STEPS`] (a run that would never end).
    pub fn steps_for_epochs(&self, epochs: usize, per_epoch: usize) -> Result<u64, ConfigError> {
        if let Some(s) = self.steps {
            return Ok(s);
        }
        match (epochs as u64).checked_mul(per_epoch as u64) {
            Some(s) if s <= MAX_STEPS => Ok(s),
            _ => Err(ConfigError::OutOfRange {
                name: "epochs".into(),
                bound: format!(
                    "at most {} here ({per_epoch} steps per epoch, at most {MAX_STEPS} steps in all)",
                    MAX_STEPS / per_epoch.max(1) as u64
                ),
                got: epochs.to_string(),
            }),
        }
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

    /// From JSON written by [`to_json`](Config::to_json) for an experiment of `spec`, checked
    /// exactly as the command line is: every option of the spec present, none other, each of its
    /// type and in its range.
    pub fn from_json(spec: &Spec, v: &Value) -> Result<Config, ConfigError> {
        let bad = |what: &str| ConfigError::Malformed(format!("missing or invalid `{what}`"));
        let experiment = v["experiment"]
            .as_str()
            .ok_or_else(|| bad("experiment"))?
            .to_string();
        if experiment != spec.name {
            return Err(ConfigError::Malformed(format!(
                "a run of {experiment}, not {}",
                spec.name
            )));
        }
        let steps = match &v["steps"] {
            Value::Null => None,
            s => Some(s.as_u64().ok_or_else(|| bad("steps"))?),
        };
        check_steps(steps)?;
        let options = v["options"].as_object().ok_or_else(|| bad("options"))?;
        let mut values = BTreeMap::new();
        for o in &spec.options {
            let x = options
                .get(o.name)
                .ok_or_else(|| ConfigError::Malformed(format!("option `{}` is missing", o.name)))?;
            o.check(x)?;
            values.insert(o.name.to_string(), x.clone());
        }
        if let Some(name) = options.keys().find(|k| !values.contains_key(*k)) {
            return Err(ConfigError::Unknown {
                experiment,
                name: name.clone(),
            });
        }
        Ok(Config {
            experiment,
            seed: v["seed"].as_u64().ok_or_else(|| bad("seed"))?,
            quick: v["quick"].as_bool().ok_or_else(|| bad("quick"))?,
            steps,
            values,
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
    /// Heat maps to plot.
    pub heatmaps: Vec<Heatmap>,
}

/// A heat map the CLI writes as a PNG: `values[row][col]`, row 0 at the bottom.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Heatmap {
    /// File name, e.g. `weights.png`.
    pub file: String,
    /// Title.
    pub title: String,
    /// X axis label (the columns).
    pub x_label: String,
    /// Y axis label (the rows).
    pub y_label: String,
    /// Label of the colour scale.
    pub value_label: String,
    /// The values, one vector per row, all of one length.
    pub values: Vec<Vec<f64>>,
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
    /// The training loss became NaN or infinite: the run stopped without saving that state.
    #[error("the loss became {loss} at step {step}: training diverged (try a smaller --lr)")]
    Diverged {
        /// The step whose loss was not finite (counted from 1).
        step: u64,
        /// The loss.
        loss: f64,
    },
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
