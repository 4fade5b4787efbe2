//! Checkpoints: round trips, resuming training, and every way a checkpoint can be wrong.

use nabla::io::checkpoint::{CheckpointError, load_checkpoint, save_checkpoint};
use nabla::nn::{Forward, Linear, Module};
use nabla::optim::{Adam, Optimizer, Sgd};
use nabla::rand::{SeedableRng, rngs::StdRng};
use nabla::{DType, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Module)]
struct Net {
    l1: Linear,
    l2: Linear,
    #[module(buffer)]
    running_mean: Tensor,
}

impl Net {
    fn new(hidden: usize, seed: u64) -> Net {
        let mut rng = StdRng::seed_from_u64(seed);
        Net {
            l1: Linear::new(4, hidden, &mut rng),
            l2: Linear::new(hidden, 3, &mut rng),
            running_mean: Tensor::rand([hidden], DType::F32, &mut rng),
        }
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        self.l2.forward(&self.l1.forward(x).relu())
    }
}

#[derive(Module)]
struct Small {
    l1: Linear,
}

fn data() -> (Tensor, Tensor) {
    let mut rng = StdRng::seed_from_u64(99);
    (
        Tensor::randn([16, 4], DType::F32, &mut rng),
        Tensor::randn([16, 3], DType::F32, &mut rng),
    )
}

fn train(net: &mut Net, opt: &mut dyn Optimizer, steps: usize) {
    let (x, y) = data();
    for _ in 0..steps {
        let loss = (net.forward(&x) - &y).square().mean();
        let grads = loss.backward();
        opt.step(net, &grads);
    }
}

fn values(m: &dyn Module) -> Vec<(String, Vec<f64>)> {
    m.named_tensors()
        .into_iter()
        .map(|(n, t, _)| (n, t.to_vec::<f64>()))
        .collect()
}

fn meta() -> BTreeMap<String, String> {
    BTreeMap::from([(
        "config".to_string(),
        r#"{"lr": 0.01, "hidden": 8}"#.to_string(),
    )])
}

fn saved(dir: &Path) -> PathBuf {
    let path = dir.join("net.safetensors");
    let mut net = Net::new(8, 1);
    let mut opt = Adam::new(0.01);
    train(&mut net, &mut opt, 2);
    save_checkpoint(&path, &net, Some(&opt), &meta()).unwrap();
    path
}

#[test]
fn round_trip_and_resume_training_identically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    let mut net = Net::new(8, 1);
    let mut opt = Adam::new(0.01);
    train(&mut net, &mut opt, 3);
    save_checkpoint(&path, &net, Some(&opt), &meta()).unwrap();

    let ckpt = load_checkpoint(&path).unwrap();
    assert_eq!(ckpt.step(), Some(3));
    assert_eq!(ckpt.metadata(), &meta());
    assert_eq!(
        ckpt.model_tensors().keys().collect::<Vec<_>>(),
        [
            "l1.bias",
            "l1.weight",
            "l2.bias",
            "l2.weight",
            "running_mean"
        ]
    );
    let mut fresh = Net::new(8, 2);
    let mut opt2 = Adam::new(0.01);
    ckpt.restore(&mut fresh, Some(&mut opt2)).unwrap();
    assert_eq!(values(&fresh), values(&net));
    assert_eq!(opt2.steps(), 3);

    // Trainable parameters are variables again; buffers are plain tensors.
    for (name, t, kind) in fresh.named_tensors() {
        match kind {
            nabla::nn::ParamKind::Trainable => assert!(t.is_leaf(), "{name}"),
            nabla::nn::ParamKind::Buffer => assert!(!t.requires_grad(), "{name}"),
        }
    }

    // Continuing from the checkpoint is bit-identical to never having stopped.
    train(&mut net, &mut opt, 4);
    train(&mut fresh, &mut opt2, 4);
    assert_eq!(values(&fresh), values(&net));
}

#[test]
fn f64_models_and_plain_sgd_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f64.safetensors");
    let mut net = Net::new(5, 3);
    net.to_dtype(DType::F64);
    let opt = Sgd::new(0.1);
    save_checkpoint(&path, &net, Some(&opt), &BTreeMap::new()).unwrap();
    let mut other = Net::new(5, 4);
    other.to_dtype(DType::F64);
    let mut opt2 = Sgd::new(0.1);
    let ckpt = load_checkpoint(&path).unwrap();
    assert!(ckpt.optimizer_state().unwrap().is_empty());
    assert_eq!(ckpt.step(), None);
    ckpt.restore(&mut other, Some(&mut opt2)).unwrap();
    assert_eq!(values(&other), values(&net));
}

fn err_string(e: CheckpointError) -> String {
    e.to_string()
}

#[test]
fn wrong_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.safetensors");
    let e = load_checkpoint(&path).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    );
    assert!(err_string(e).contains("nope.safetensors"));
}

#[test]
fn truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    for keep in [0, 5, 8, 40, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let e = load_checkpoint(&path).unwrap_err();
        assert!(matches!(e, CheckpointError::Format { .. }), "{keep}: {e}");
        let s = e.to_string();
        assert!(
            s.starts_with("checkpoint ") && s.contains("net.safetensors: "),
            "{s}"
        );
        assert!(!s.contains('\n'));
    }
}

#[test]
fn corrupt_header_and_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    // Break the JSON header (it starts at byte 8 with '{').
    bytes[8] = b'#';
    std::fs::write(&path, &bytes).unwrap();
    let e = load_checkpoint(&path).unwrap_err();
    assert!(e.to_string().contains("invalid JSON in header"), "{e}");

    // A header length far beyond the file.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        load_checkpoint(&path).unwrap_err(),
        CheckpointError::Format { .. }
    ));

    // Random bytes.
    let garbage: Vec<u8> = (0..1000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&path, garbage).unwrap();
    let e = load_checkpoint(&path).unwrap_err();
    assert!(matches!(e, CheckpointError::Format { .. }), "{e}");
}

#[test]
fn missing_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.safetensors");
    let mut rng = StdRng::seed_from_u64(0);
    let small = Small {
        l1: Linear::new(4, 8, &mut rng),
    };
    save_checkpoint(&path, &small, None, &BTreeMap::new()).unwrap();
    let mut net = Net::new(8, 0);
    let before = values(&net);
    let e = load_checkpoint(&path)
        .unwrap()
        .restore(&mut net, None)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "checkpoint {}: tensor \"l2.weight\" of the model is missing",
            path.display()
        )
    );
    assert_eq!(values(&net), before, "a failed restore changes nothing");
}

#[test]
fn extra_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path());
    let mut rng = StdRng::seed_from_u64(0);
    let mut small = Small {
        l1: Linear::new(4, 8, &mut rng),
    };
    let e = load_checkpoint(&path)
        .unwrap()
        .restore(&mut small, None)
        .unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Unexpected { name, .. } if name == "l2.bias"),
        "{e}"
    );
    assert!(
        e.to_string()
            .ends_with("tensor \"l2.bias\" is not in the model")
    );
}

#[test]
fn shape_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path());
    let mut wide = Net::new(16, 0);
    let e = load_checkpoint(&path)
        .unwrap()
        .restore(&mut wide, None)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "checkpoint {}: tensor \"l1.weight\" has shape [8, 4] but the model expects [16, 4]",
            path.display()
        )
    );
}

#[test]
fn dtype_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path());
    let mut net = Net::new(8, 0);
    net.to_dtype(DType::F64);
    let e = load_checkpoint(&path)
        .unwrap()
        .restore(&mut net, None)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("tensor \"l1.weight\" has dtype f32 but the model expects f64"),
        "{e}"
    );
}

#[test]
fn unsupported_dtype_and_foreign_names() {
    use safetensors::tensor::{Dtype, TensorView};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign.safetensors");
    let bytes = [0u8; 16];
    let ints = TensorView::new(Dtype::I64, vec![2], &bytes).unwrap();
    std::fs::write(
        &path,
        safetensors::serialize([("model.steps", ints)], None).unwrap(),
    )
    .unwrap();
    let e = load_checkpoint(&path).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("tensor \"model.steps\" has dtype I64, but nabla reads only F32 and F64"),
        "{e}"
    );
    let floats = TensorView::new(Dtype::F32, vec![4], &bytes).unwrap();
    std::fs::write(
        &path,
        safetensors::serialize([("encoder.weight", floats)], None).unwrap(),
    )
    .unwrap();
    let e = load_checkpoint(&path).unwrap_err();
    assert!(
        e.to_string()
            .contains("outside the model.* and optim.* namespaces"),
        "{e}"
    );
}

#[test]
fn optimizer_problems() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path());
    let ckpt = load_checkpoint(&path).unwrap();
    // Adam state into SGD with momentum.
    let mut net = Net::new(8, 0);
    let mut sgd = Sgd::new(0.1).momentum(0.9);
    let e = ckpt.restore(&mut net, Some(&mut sgd)).unwrap_err();
    assert!(matches!(e, CheckpointError::Optimizer { .. }), "{e}");
    assert!(
        e.to_string().contains("optimiser state: unexpected entry"),
        "{e}"
    );

    // Saved without an optimiser.
    let bare = dir.path().join("bare.safetensors");
    save_checkpoint(&bare, &net, None, &BTreeMap::new()).unwrap();
    let mut adam = Adam::new(0.1);
    let e = load_checkpoint(&bare)
        .unwrap()
        .restore(&mut net, Some(&mut adam))
        .unwrap_err();
    assert!(matches!(e, CheckpointError::NoOptimizerState { .. }), "{e}");
    // ... but the weights alone load fine.
    load_checkpoint(&bare)
        .unwrap()
        .restore(&mut net, None)
        .unwrap();
}

#[test]
fn optimizer_moments_must_fit_their_parameters() {
    use safetensors::tensor::{Dtype, TensorView};
    // A hand-made file whose model tensors fit but whose Adam moment for l1.weight does not.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moments.safetensors");
    let net = Net::new(8, 0);
    let owned: Vec<(String, Vec<usize>, Vec<u8>)> = net
        .named_tensors()
        .into_iter()
        .map(|(n, t, _)| {
            let bytes = t
                .to_vec::<f32>()
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            (format!("model.{n}"), t.dims().to_vec(), bytes)
        })
        .chain([
            (
                "optim.step".to_string(),
                vec![],
                1.0f64.to_le_bytes().to_vec(),
            ),
            (
                "optim.l1.weight.exp_avg".to_string(),
                vec![2, 2],
                vec![0; 16],
            ),
            (
                "optim.l1.weight.exp_avg_sq".to_string(),
                vec![2, 2],
                vec![0; 16],
            ),
        ])
        .collect();
    let views = owned.iter().map(|(n, shape, bytes)| {
        let dtype = if n == "optim.step" {
            Dtype::F64
        } else {
            Dtype::F32
        };
        (
            n.as_str(),
            TensorView::new(dtype, shape.clone(), bytes).unwrap(),
        )
    });
    let meta =
        std::collections::HashMap::from([("nabla.optimizer".to_string(), "true".to_string())]);
    std::fs::write(&path, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();

    let ckpt = load_checkpoint(&path).unwrap();
    let mut fresh = Net::new(8, 1);
    let before = values(&fresh);
    let mut adam = Adam::new(0.1);
    let e = ckpt.restore(&mut fresh, Some(&mut adam)).unwrap_err();
    assert!(
        e.to_string().ends_with(
            "tensor \"optim.l1.weight.exp_avg\" has shape [2, 2] but the model expects [8, 4]"
        ),
        "{e}"
    );
    assert_eq!(values(&fresh), before);
    assert_eq!(adam.steps(), 0);
    // Without the optimiser the model loads.
    ckpt.restore(&mut fresh, None).unwrap();
    assert_eq!(values(&fresh), values(&net));
}

#[test]
fn reserved_metadata_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let net = Net::new(8, 0);
    let meta = BTreeMap::from([("nabla.step".to_string(), "7".to_string())]);
    let e = save_checkpoint(&path, &net, None, &meta).unwrap_err();
    assert!(matches!(e, CheckpointError::ReservedMetadata { .. }));
    assert!(!path.exists());
}

#[test]
fn failed_save_leaves_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    // An existing checkpoint is replaced only by a complete new one...
    let path = saved(dir.path());
    let old = std::fs::read(&path).unwrap();
    let net = Net::new(8, 5);
    save_checkpoint(&path, &net, None, &BTreeMap::new()).unwrap();
    assert_ne!(std::fs::read(&path).unwrap(), old);
    load_checkpoint(&path).unwrap();

    // ... and a save that fails at the final rename (the destination is a non-empty folder)
    // leaves the folder as it was and no temporary file behind.
    let blocked = dir.path().join("blocked.safetensors");
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("keep"), b"x").unwrap();
    let e = save_checkpoint(&blocked, &net, None, &BTreeMap::new()).unwrap_err();
    assert!(matches!(e, CheckpointError::Io { .. }), "{e}");
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["blocked.safetensors", "net.safetensors"]);

    // A missing folder is an I/O error naming the path.
    let e = save_checkpoint(
        dir.path().join("no/such/dir/x.safetensors"),
        &net,
        None,
        &BTreeMap::new(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("no/such/dir/x.safetensors"), "{e}");
}

/// The repository root and the Python of the Python tests: `NABLA_PYTHON`, else the reference venv.
fn repo_and_python() -> (PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = std::env::var_os("NABLA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("bench/reference/.venv/bin/python"));
    (root, python)
}

/// Python's `safetensors` (and PyTorch) read nabla's checkpoints. Needs a Python with
/// `safetensors` and `numpy`: `NABLA_PYTHON=/path/to/python cargo test -p nabla --test
/// io_checkpoint -- --ignored` (default: `bench/reference/.venv/bin/python`, set up by
/// `bench/reference/setup.sh`).
#[test]
#[ignore = "needs a Python with safetensors and numpy"]
fn python_reads_checkpoint() {
    let (root, python) = repo_and_python();
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path());
    let out = std::process::Command::new(&python)
        .arg(root.join("scripts/inspect_checkpoint.py"))
        .arg("--json")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");
    for needle in [
        r#""model.l1.weight": {"#,
        r#""shape": [8, 4]"#,
        r#""optim.l1.weight.exp_avg""#,
        r#""optim.step""#,
        r#""dtype": "float32""#,
        r#""nabla.step": "2""#,
        r#""config": "{\"lr\": 0.01, \"hidden\": 8}""#,
    ] {
        assert!(stdout.contains(needle), "missing {needle} in\n{stdout}");
    }
}

/// The other direction: Python loads a nabla checkpoint with `safetensors.numpy`, changes it
/// (every model weight doubled) and writes it back with `save_file`, metadata kept; nabla loads
/// Python's file into a fresh model and optimiser. Same requirements as `python_reads_checkpoint`.
#[test]
#[ignore = "needs a Python with safetensors and numpy"]
fn python_written_checkpoint_loads_in_nabla() {
    let (_, python) = repo_and_python();
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path());
    let copy = dir.path().join("from_python.safetensors");
    let script = r#"
import sys
from safetensors import safe_open
from safetensors.numpy import load_file, save_file
src, dst = sys.argv[1], sys.argv[2]
tensors = load_file(src)
with safe_open(src, framework="numpy") as f:
    meta = f.metadata()
out = {k: (v * 2 if k.startswith("model.l") else v) for k, v in tensors.items()}
save_file(out, dst, metadata=meta)
"#;
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(&path)
        .arg(&copy)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let original = load_checkpoint(&path).unwrap();
    let mut net = Net::new(8, 5);
    original.restore(&mut net, None).unwrap();
    let ckpt = load_checkpoint(&copy).unwrap();
    assert_eq!(ckpt.step(), Some(2));
    assert_eq!(ckpt.metadata(), &meta());
    let mut fresh = Net::new(8, 6);
    let mut opt = Adam::new(0.01);
    ckpt.restore(&mut fresh, Some(&mut opt)).unwrap();
    assert_eq!(opt.steps(), 2);
    for ((name, a), (_, b)) in values(&net).into_iter().zip(values(&fresh)) {
        let k = if name.starts_with('l') { 2.0 } else { 1.0 };
        assert!(
            a.iter().zip(&b).all(|(x, y)| x * k == *y),
            "{name}: {a:?} vs {b:?}"
        );
    }
}

#[test]
fn identical_states_save_to_identical_bytes() {
    // Many metadata keys: in hash order, their order would vary from one save to the next.
    let mut m = meta();
    for k in 0..12 {
        m.insert(format!("key{k}"), format!("value {k}"));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for i in 0..6 {
        let mut net = Net::new(8, 1);
        let mut opt = Adam::new(0.01);
        train(&mut net, &mut opt, 2);
        let path = dir.path().join(format!("n{i}.safetensors"));
        save_checkpoint(&path, &net, Some(&opt), &m).unwrap();
        files.push(std::fs::read(&path).unwrap());
    }
    assert!(files.iter().all(|f| *f == files[0]));
    // and still a checkpoint that loads with its metadata
    let ck = load_checkpoint(dir.path().join("n0.safetensors")).unwrap();
    assert_eq!(ck.metadata()["key11"], "value 11");
    let mut net = Net::new(8, 2);
    let mut opt = Adam::new(0.01);
    ck.restore(&mut net, Some(&mut opt)).unwrap();
}
