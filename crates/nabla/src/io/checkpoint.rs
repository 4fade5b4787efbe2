//! Checkpoints: a model's tensors, an optimiser's state and free-form metadata in one
//! [safetensors](https://github.com/huggingface/safetensors) file, readable by Python's
//! `safetensors` (`safetensors.numpy.load_file`, `safetensors.torch.load_file`).
//!
//! # Layout of the file
//! - `model.<name>`: every tensor the model visits ([`Module::visit`]), parameters and buffers,
//!   under its dotted name with the prefix `model.` (`model.l1.weight`). The prefix keeps the model
//!   and the optimiser in separate namespaces; error messages use the model's own names.
//! - `optim.<name>`: the optimiser's [`state`](Optimizer::state) (`optim.step`,
//!   `optim.l1.weight.exp_avg`, …).
//! - `__metadata__` (strings): the caller's metadata (an experiment's config as JSON, …) under its
//!   own keys, plus nabla's: `nabla.format` (`"1"`), `nabla.version` (the crate version),
//!   `nabla.optimizer` (`"true"` when optimiser state was saved) and `nabla.step` (the optimiser's
//!   step count, when it keeps one). Keys starting with `nabla.` are reserved.
//!
//! Tensors are stored as `F32` or `F64`, little-endian, C order. Files are written atomically.
//!
//! ```
//! use nabla::io::checkpoint::{load_checkpoint, save_checkpoint};
//! use nabla::nn::{Linear, Module};
//! use nabla::optim::{Optimizer, Sgd};
//! use nabla::rand::{rngs::StdRng, SeedableRng};
//! use std::collections::BTreeMap;
//!
//! let dir = std::env::temp_dir().join(format!("nabla-ckpt-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("model.safetensors");
//!
//! let model = Linear::new(3, 2, &mut StdRng::seed_from_u64(0));
//! let opt = Sgd::new(0.1);
//! let meta = BTreeMap::from([("config".to_string(), r#"{"lr": 0.1}"#.to_string())]);
//! save_checkpoint(&path, &model, Some(&opt), &meta).unwrap();
//!
//! let mut fresh = Linear::new(3, 2, &mut StdRng::seed_from_u64(1));
//! let mut opt2 = Sgd::new(0.1);
//! let ckpt = load_checkpoint(&path).unwrap();
//! assert_eq!(ckpt.metadata()["config"], r#"{"lr": 0.1}"#);
//! ckpt.restore(&mut fresh, Some(&mut opt2)).unwrap();
//! assert_eq!(fresh.parameters()[0].to_vec::<f32>(), model.parameters()[0].to_vec::<f32>());
//!
//! // A model of another size is refused, naming the tensor and both shapes.
//! let mut other = Linear::new(4, 2, &mut StdRng::seed_from_u64(0));
//! let err = ckpt.restore(&mut other, None).unwrap_err().to_string();
//! assert!(err.ends_with("tensor \"weight\" has shape [2, 3] but the model expects [2, 4]"), "{err}");
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

use super::{IoError, atomic_write};
use crate::nn::{Module, ParamKind};
use crate::optim::{Optimizer, StateError};
use crate::tensor::cpu::with_dtype;
use crate::{DType, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Prefix of the model's tensors in the file.
pub const MODEL_PREFIX: &str = "model.";
/// Prefix of the optimiser's state in the file.
pub const OPTIM_PREFIX: &str = "optim.";
/// Prefix of the metadata keys that nabla writes itself.
pub const RESERVED_PREFIX: &str = "nabla.";
/// The layout version written in `nabla.format`.
pub const FORMAT_VERSION: &str = "1";

/// A checkpoint that could not be saved, read or restored. Messages are one line that names the
/// file and, where it applies, the tensor:
/// `checkpoint runs/x/model.safetensors: tensor "l1.weight" has shape [128, 784] but the model expects [64, 784]`.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be read or written.
    #[error("checkpoint {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid safetensors checkpoint (truncated, corrupt header, garbage).
    #[error("checkpoint {}: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A tensor the model has is not in the checkpoint.
    #[error("checkpoint {}: tensor \"{name}\" of the model is missing", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// The model's name of the tensor.
        name: String,
    },
    /// The checkpoint has a tensor the model does not have.
    #[error("checkpoint {}: tensor \"{name}\" is not in the model", path.display())]
    Unexpected {
        /// The file.
        path: PathBuf,
        /// The name in the checkpoint (without its `model.` prefix for model tensors).
        name: String,
    },
    /// A tensor's shape differs from the model's.
    #[error(
        "checkpoint {}: tensor \"{name}\" has shape {} but the model expects {}",
        path.display(), dims(.found), dims(.expected)
    )]
    Shape {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its shape in the checkpoint.
        found: Vec<usize>,
        /// Its shape in the model.
        expected: Vec<usize>,
    },
    /// A tensor's element type differs from the model's.
    #[error(
        "checkpoint {}: tensor \"{name}\" has dtype {found} but the model expects {expected} (convert the model with to_dtype)",
        path.display()
    )]
    DType {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its dtype in the checkpoint.
        found: DType,
        /// Its dtype in the model.
        expected: DType,
    },
    /// A tensor of an element type nabla cannot hold (`F16`, `I64`, …).
    #[error(
        "checkpoint {}: tensor \"{name}\" has dtype {dtype}, but nabla reads only F32 and F64",
        path.display()
    )]
    UnsupportedDType {
        /// The file.
        path: PathBuf,
        /// The name in the file.
        name: String,
        /// The safetensors dtype.
        dtype: String,
    },
    /// An optimiser was given to restore, but the checkpoint was saved without one.
    #[error("checkpoint {}: it holds no optimiser state (saved without an optimiser)", path.display())]
    NoOptimizerState {
        /// The file.
        path: PathBuf,
    },
    /// The optimiser refused the saved state (another optimiser type, or another model).
    #[error("checkpoint {}: {source}", path.display())]
    Optimizer {
        /// The file.
        path: PathBuf,
        /// What the optimiser said.
        #[source]
        source: StateError,
    },
    /// Metadata that cannot be saved: a key in nabla's reserved `nabla.` namespace.
    #[error("checkpoint {}: metadata key \"{key}\" is reserved (keys starting with \"nabla.\" are written by nabla)", path.display())]
    ReservedMetadata {
        /// The file.
        path: PathBuf,
        /// The offending key.
        key: String,
    },
    /// Two tensors of the model (or of the optimiser state) have the same name.
    #[error("checkpoint {}: two tensors are named \"{name}\"", path.display())]
    DuplicateName {
        /// The file.
        path: PathBuf,
        /// The name in the file.
        name: String,
    },
}

fn dims(d: &[usize]) -> String {
    format!(
        "[{}]",
        d.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

impl CheckpointError {
    fn from_io(e: IoError) -> CheckpointError {
        match e {
            IoError::Io { path, source } => CheckpointError::Io { path, source },
            other => CheckpointError::Format {
                path: other.path().to_path_buf(),
                reason: other.to_string(),
            },
        }
    }
}

/// One tensor as safetensors bytes.
struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl Entry {
    fn new(t: &Tensor) -> Entry {
        let (dtype, bytes) = with_dtype!(t.dtype(), {
            let data = t.contiguous_data::<T>();
            let mut bytes = Vec::with_capacity(data.len() * std::mem::size_of::<T>());
            for v in data.iter() {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            (
                if t.dtype() == DType::F32 {
                    Dtype::F32
                } else {
                    Dtype::F64
                },
                bytes,
            )
        });
        Entry {
            dtype,
            shape: t.dims().to_vec(),
            bytes,
        }
    }
}

impl View for &Entry {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Saves `model`'s tensors, `optimizer`'s state (when given) and `metadata` to a safetensors file
/// at `path`, atomically: the file is written beside `path` and renamed over it once complete, so
/// an existing checkpoint is never left half-overwritten. See the [module docs](self) for the
/// layout.
pub fn save_checkpoint(
    path: impl AsRef<Path>,
    model: &dyn Module,
    optimizer: Option<&dyn Optimizer>,
    metadata: &BTreeMap<String, String>,
) -> Result<(), CheckpointError> {
    let path = path.as_ref();
    let mut info: HashMap<String, String> = HashMap::new();
    for (k, v) in metadata {
        if k.starts_with(RESERVED_PREFIX) {
            return Err(CheckpointError::ReservedMetadata {
                path: path.to_path_buf(),
                key: k.clone(),
            });
        }
        info.insert(k.clone(), v.clone());
    }
    info.insert("nabla.format".into(), FORMAT_VERSION.into());
    info.insert("nabla.version".into(), env!("CARGO_PKG_VERSION").into());

    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    let mut duplicate = None;
    model.visit("", &mut |name, t, _| {
        let key = format!("{MODEL_PREFIX}{name}");
        if entries.insert(key.clone(), Entry::new(t)).is_some() {
            duplicate.get_or_insert(key);
        }
    });
    if let Some(opt) = optimizer {
        info.insert("nabla.optimizer".into(), "true".into());
        for (name, t) in opt.state() {
            if name == "step" && t.numel() == 1 {
                info.insert("nabla.step".into(), format!("{}", t.item() as u64));
            }
            let key = format!("{OPTIM_PREFIX}{name}");
            if entries.insert(key.clone(), Entry::new(&t)).is_some() {
                duplicate.get_or_insert(key);
            }
        }
    }
    if let Some(name) = duplicate {
        return Err(CheckpointError::DuplicateName {
            path: path.to_path_buf(),
            name,
        });
    }
    let bytes = safetensors::serialize(entries.iter().map(|(k, e)| (k.as_str(), e)), Some(info))
        .map_err(|e| CheckpointError::Format {
            path: path.to_path_buf(),
            reason: format!("cannot serialise: {e}"),
        })?;
    let bytes = canonical_header(bytes);
    atomic_write(path, |w| w.write_all(&bytes)).map_err(CheckpointError::from_io)
}

/// `bytes` (a safetensors file) with its JSON header rewritten with every object's keys in sorted
/// order: safetensors writes the `__metadata__` map in hash order, so two saves of the same state
/// would differ byte for byte. The data and its offsets are unchanged.
fn canonical_header(bytes: Vec<u8>) -> Vec<u8> {
    fn write(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(k).expect("a string serialises"));
                    out.push(':');
                    write(&m[k], out);
                }
                out.push('}');
            }
            serde_json::Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(x, out);
                }
                out.push(']');
            }
            v => out.push_str(&v.to_string()),
        }
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes[8..8 + n]).expect("safetensors wrote a JSON header");
    let mut text = String::with_capacity(n);
    write(&header, &mut text);
    // the data starts 8-byte aligned, as safetensors writes it
    while !(8 + text.len()).is_multiple_of(8) {
        text.push(' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&bytes[8 + n..]);
    out
}

/// A checkpoint read from disk, ready to [`restore`](Checkpoint::restore) into a model.
#[derive(Clone)]
pub struct Checkpoint {
    path: PathBuf,
    model: BTreeMap<String, Tensor>,
    optimizer: Option<BTreeMap<String, Tensor>>,
    metadata: BTreeMap<String, String>,
    step: Option<u64>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shapes = |m: &BTreeMap<String, Tensor>| {
            m.iter()
                .map(|(k, t)| format!("{k}: {} {}", t.dtype(), t.shape()))
                .collect::<Vec<_>>()
        };
        f.debug_struct("Checkpoint")
            .field("path", &self.path)
            .field("model", &shapes(&self.model))
            .field("optimizer", &self.optimizer.as_ref().map(shapes))
            .field("metadata", &self.metadata)
            .field("step", &self.step)
            .finish()
    }
}

/// Reads a checkpoint written by [`save_checkpoint`]. Fails with a typed error for a missing
/// file, a truncated or corrupt file, a tensor outside the `model.`/`optim.` namespaces, or a dtype
/// other than `F32`/`F64`.
pub fn load_checkpoint(path: impl AsRef<Path>) -> Result<Checkpoint, CheckpointError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| CheckpointError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let format = |reason: String| CheckpointError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| format(format!("not a valid safetensors file: {e}")))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| format(format!("not a valid safetensors file: {e}")))?;
    let mut metadata = BTreeMap::new();
    let mut step = None;
    let mut has_optimizer = false;
    for (k, v) in header.metadata().iter().flatten() {
        match k.as_str() {
            "nabla.step" => {
                step =
                    Some(v.parse::<u64>().map_err(|_| {
                        format(format!("metadata nabla.step is \"{v}\", not a count"))
                    })?)
            }
            "nabla.optimizer" => has_optimizer = v == "true",
            "nabla.format" if v != FORMAT_VERSION => {
                return Err(format(format!(
                    "layout version {v} is not supported (this nabla reads version {FORMAT_VERSION})"
                )));
            }
            _ if k.starts_with(RESERVED_PREFIX) => {}
            _ => {
                metadata.insert(k.clone(), v.clone());
            }
        }
    }
    let mut model = BTreeMap::new();
    let mut optim = BTreeMap::new();
    for (name, view) in st.iter() {
        let tensor = match view.dtype() {
            Dtype::F32 => Tensor::from_vec(
                view.data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect::<Vec<_>>(),
                view.shape().to_vec(),
            ),
            Dtype::F64 => Tensor::from_vec(
                view.data()
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect::<Vec<_>>(),
                view.shape().to_vec(),
            ),
            other => {
                return Err(CheckpointError::UnsupportedDType {
                    path: path.to_path_buf(),
                    name: name.to_string(),
                    dtype: format!("{other:?}"),
                });
            }
        };
        if let Some(n) = name.strip_prefix(MODEL_PREFIX) {
            model.insert(n.to_string(), tensor);
        } else if let Some(n) = name.strip_prefix(OPTIM_PREFIX) {
            optim.insert(n.to_string(), tensor);
        } else {
            return Err(format(format!(
                "tensor \"{name}\" is outside the model.* and optim.* namespaces (not a nabla checkpoint?)"
            )));
        }
    }
    Ok(Checkpoint {
        path: path.to_path_buf(),
        model,
        optimizer: (has_optimizer || !optim.is_empty()).then_some(optim),
        metadata,
        step,
    })
}

impl Checkpoint {
    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The caller's metadata (nabla's own `nabla.*` keys left out).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// The optimiser's step count when it was saved, if it keeps one.
    pub fn step(&self) -> Option<u64> {
        self.step
    }

    /// The model's tensors by name (without the `model.` prefix).
    pub fn model_tensors(&self) -> &BTreeMap<String, Tensor> {
        &self.model
    }

    /// The optimiser's state by name (without the `optim.` prefix), if one was saved.
    pub fn optimizer_state(&self) -> Option<&BTreeMap<String, Tensor>> {
        self.optimizer.as_ref()
    }

    /// Loads the saved tensors into `model` (and the saved state into `optimizer`, when given).
    ///
    /// Checks first, changes after: every tensor the model visits must be in the checkpoint with
    /// the same shape and dtype, and the checkpoint must hold no model tensor the model lacks;
    /// optimiser moments named after a model parameter must match that parameter. Everything is
    /// checked before anything is changed: on an error the model is left as it was (and so are
    /// nabla's optimisers, whose `load_state` replaces their state only when it succeeds). Restored trainable parameters are fresh
    /// variables ([`Tensor::variable`]); buffers are plain tensors.
    pub fn restore(
        &self,
        model: &mut dyn Module,
        optimizer: Option<&mut dyn Optimizer>,
    ) -> Result<(), CheckpointError> {
        let path = || self.path.clone();
        let mut expected: Vec<(String, Vec<usize>, DType, ParamKind)> = Vec::new();
        model.visit("", &mut |n, t, k| {
            expected.push((n.to_string(), t.dims().to_vec(), t.dtype(), k))
        });
        for (name, shape, dtype, _) in &expected {
            check(&self.path, &self.model, name, shape, *dtype)?;
        }
        let known: std::collections::HashSet<&str> =
            expected.iter().map(|(n, ..)| n.as_str()).collect();
        if let Some(extra) = self.model.keys().find(|k| !known.contains(k.as_str())) {
            return Err(CheckpointError::Unexpected {
                path: path(),
                name: extra.clone(),
            });
        }
        if let Some(opt) = optimizer {
            let Some(state) = &self.optimizer else {
                return Err(CheckpointError::NoOptimizerState { path: path() });
            };
            // Moments are named `<parameter>.<slot>`: they must fit their parameter.
            for (name, t) in state {
                let Some((param, _)) = name.rsplit_once('.') else {
                    continue;
                };
                if let Some((_, shape, dtype, _)) = expected
                    .iter()
                    .find(|(n, _, _, k)| n == param && *k == ParamKind::Trainable)
                {
                    let shown = format!("{OPTIM_PREFIX}{name}");
                    if t.dims() != shape.as_slice() {
                        return Err(CheckpointError::Shape {
                            path: path(),
                            name: shown,
                            found: t.dims().to_vec(),
                            expected: shape.clone(),
                        });
                    }
                    if t.dtype() != *dtype {
                        return Err(CheckpointError::DType {
                            path: path(),
                            name: shown,
                            found: t.dtype(),
                            expected: *dtype,
                        });
                    }
                }
            }
            let list: Vec<(String, Tensor)> =
                state.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            opt.load_state(&list)
                .map_err(|source| CheckpointError::Optimizer {
                    path: path(),
                    source,
                })?;
        }
        model.visit_mut("", &mut |n, t, k| {
            let v = self.model[n].clone();
            *t = match k {
                ParamKind::Trainable => v.variable(),
                ParamKind::Buffer => v,
            };
        });
        Ok(())
    }
}

fn check(
    path: &Path,
    saved: &BTreeMap<String, Tensor>,
    name: &str,
    shape: &[usize],
    dtype: DType,
) -> Result<(), CheckpointError> {
    let Some(t) = saved.get(name) else {
        return Err(CheckpointError::Missing {
            path: path.to_path_buf(),
            name: name.to_string(),
        });
    };
    if t.dims() != shape {
        return Err(CheckpointError::Shape {
            path: path.to_path_buf(),
            name: name.to_string(),
            found: t.dims().to_vec(),
            expected: shape.to_vec(),
        });
    }
    if t.dtype() != dtype {
        return Err(CheckpointError::DType {
            path: path.to_path_buf(),
            name: name.to_string(),
            found: t.dtype(),
            expected: dtype,
        });
    }
    Ok(())
}
