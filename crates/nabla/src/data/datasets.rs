//! Loaders for the standard data sets, from files on disk.
//!
//! The repository ships what the tests and demos need under `data/` (see `data/README.md`): the
//! UCI digits, the full MNIST and a 1,000 + 1,000 sample of it. [`bundled_data_dir`] finds that
//! folder from a checkout; any other IDX data set in MNIST's layout (Fashion-MNIST, …) loads with
//! [`mnist`] from its folder.

use super::{DataError, TensorDataset};
use crate::io::{read_digits_csv, read_idx_images, read_idx_labels};
use std::path::{Path, PathBuf};

/// The repository's `data/` folder (as located when nabla was compiled). For demos and tests run
/// from a checkout; programs given a data path should use that instead.
pub fn bundled_data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

/// Finds `name.gz`, else `name`, else the same with `.idx` for `-idx` (some distributions write
/// `train-images.idx3-ubyte`), in `dir`.
fn find(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    let dotted = name.replacen("-idx", ".idx", 1);
    for candidate in [
        format!("{name}.gz"),
        name.to_string(),
        format!("{dotted}.gz"),
        dotted.clone(),
    ] {
        let p = dir.join(&candidate);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(DataError::MissingFile {
        dir: dir.to_path_buf(),
        name: name.to_string(),
    })
}

fn split(dir: &Path, prefix: &str) -> Result<(TensorDataset, PathBuf), DataError> {
    let img_path = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let lbl_path = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let images = read_idx_images(&img_path)?;
    let labels = read_idx_labels(&lbl_path)?;
    let n = images.dims()[0];
    let (h, w) = (images.dims()[1], images.dims()[2]);
    if n == 0 || h == 0 || w == 0 {
        return Err(DataError::Invalid {
            path: img_path,
            reason: format!("holds no images ({n} images of {h}x{w} pixels)"),
        });
    }
    if labels.len() != n {
        return Err(DataError::Invalid {
            path: lbl_path,
            reason: format!(
                "{} labels but {} has {n} images",
                labels.len(),
                img_path.display()
            ),
        });
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, l)| **l > 9) {
        return Err(DataError::Invalid {
            path: lbl_path,
            reason: format!("label {i} is {l}, not a digit 0-9"),
        });
    }
    Ok((
        TensorDataset::new(images.reshape([n, 1, h, w]), labels),
        img_path,
    ))
}

/// MNIST (or any data set in its layout) from the folder `dir`: returns `(train, test)` with
/// images as `f32` `[N, 1, rows, cols]` in `[0, 1]` and labels 0–9.
///
/// Reads the four standard files `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
/// `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each gzipped (`.gz`) or raw.
/// Both sets must hold images, of the same size; the error names the file otherwise.
///
/// ```
/// use nabla::data::datasets::{bundled_data_dir, mnist};
/// let (train, test) = mnist(bundled_data_dir().join("mnist-sample")).unwrap();
/// assert_eq!(train.inputs().dims(), &[1000, 1, 28, 28]);
/// assert_eq!(test.len(), 1000);
/// assert_eq!(train.labels().unwrap()[..4], [5, 0, 4, 1]);
/// ```
pub fn mnist(dir: impl AsRef<Path>) -> Result<(TensorDataset, TensorDataset), DataError> {
    let dir = dir.as_ref();
    let (train, train_path) = split(dir, "train")?;
    let (test, test_path) = split(dir, "t10k")?;
    let (a, b) = (&train.inputs().dims()[1..], &test.inputs().dims()[1..]);
    if a != b {
        return Err(DataError::Invalid {
            path: test_path,
            reason: format!(
                "images are {}x{} pixels but the training images in {} are {}x{}",
                b[1],
                b[2],
                train_path.display(),
                a[1],
                a[2]
            ),
        });
    }
    Ok((train, test))
}

/// The UCI optical digits (scikit-learn's `digits.csv.gz`, gzipped or plain): 1,797 samples with
/// inputs `f32` `[N, 64]` (8×8 pixels scaled from 0–16 to `[0, 1]`) and labels 0–9.
///
/// ```
/// use nabla::data::datasets::{bundled_data_dir, digits};
/// let ds = digits(bundled_data_dir().join("digits/digits.csv.gz")).unwrap();
/// assert_eq!(ds.inputs().dims(), &[1797, 64]);
/// assert_eq!(ds.num_classes(), Some(10));
/// ```
pub fn digits(path: impl AsRef<Path>) -> Result<TensorDataset, DataError> {
    let path = path.as_ref();
    let (x, labels) = read_digits_csv(path)?;
    if x.dims()[1] != 64 {
        return Err(DataError::Invalid {
            path: path.to_path_buf(),
            reason: format!(
                "{} features per line, expected 64 (8×8 pixels)",
                x.dims()[1]
            ),
        });
    }
    if let Some(i) = x
        .to_vec::<f32>()
        .iter()
        .position(|v| !(0.0..=16.0).contains(v))
    {
        return Err(DataError::Invalid {
            path: path.to_path_buf(),
            reason: format!("row {}: pixel {} is outside 0-16", i / 64 + 1, i % 64 + 1),
        });
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, l)| **l > 9) {
        return Err(DataError::Invalid {
            path: path.to_path_buf(),
            reason: format!("row {}: label {l} is not a digit 0-9", i + 1),
        });
    }
    Ok(TensorDataset::new(x.scale(1.0 / 16.0), labels))
}
