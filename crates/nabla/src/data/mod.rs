//! Data sets held in memory, seeded mini-batch loading and image augmentation.
//!
//! ```
//! use nabla::data::{datasets, Augment, DataLoader};
//! use nabla::rand::{rngs::StdRng, SeedableRng};
//!
//! let digits = datasets::digits(datasets::bundled_data_dir().join("digits/digits.csv.gz")).unwrap();
//! let (train, val) = digits.split(0.8, 42);
//! assert_eq!((train.len(), val.len()), (1438, 359));
//!
//! let loader = DataLoader::new(train, 64).shuffle(7);
//! let augment = Augment::new().noise(0.05);
//! let mut rng = StdRng::seed_from_u64(0);
//! let mut seen = 0;
//! for (x, y) in loader.epoch(0) {
//!     let x = augment.apply(&x, &mut rng);
//!     assert_eq!(x.dims()[1], 64);
//!     seen += y.len();
//! }
//! assert_eq!(seen, 1438);
//! ```

mod augment;
pub mod datasets;
mod loader;

pub use augment::Augment;
pub use loader::{Batches, DataLoader};

use crate::Tensor;
use crate::io::IoError;
use crate::tensor::{cpu::with_dtype, storage};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use std::path::PathBuf;

/// A data set that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read or is malformed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// A required file is not in the folder.
    #[error("{}: no file {name} (looked for {name}.gz and {name})", dir.display())]
    MissingFile {
        /// The folder searched.
        dir: PathBuf,
        /// The file's standard name.
        name: String,
    },
    /// Files that are valid on their own but do not fit the data set (counts differ, labels out
    /// of range, wrong number of features).
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// What a data set's samples are mapped to.
#[derive(Clone, Debug)]
pub enum Targets {
    /// A class index per sample.
    Labels(Vec<usize>),
    /// A tensor whose first dimension runs over the samples (regression targets, one-hot rows).
    Tensor(Tensor),
}

impl Targets {
    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            Targets::Labels(l) => l.len(),
            Targets::Tensor(t) => t.dims().first().copied().unwrap_or(1),
        }
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The class labels, if the targets are labels.
    pub fn labels(&self) -> Option<&[usize]> {
        match self {
            Targets::Labels(l) => Some(l),
            Targets::Tensor(_) => None,
        }
    }

    /// The target tensor, if the targets are a tensor.
    pub fn tensor(&self) -> Option<&Tensor> {
        match self {
            Targets::Labels(_) => None,
            Targets::Tensor(t) => Some(t),
        }
    }

    /// The targets of the samples at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Targets {
        match self {
            Targets::Labels(l) => Targets::Labels(indices.iter().map(|&i| l[i]).collect()),
            Targets::Tensor(t) => Targets::Tensor(gather_rows(t, indices)),
        }
    }
}

impl From<Vec<usize>> for Targets {
    fn from(v: Vec<usize>) -> Targets {
        Targets::Labels(v)
    }
}

impl From<Tensor> for Targets {
    fn from(t: Tensor) -> Targets {
        Targets::Tensor(t)
    }
}

/// Samples held in memory: an input tensor whose first dimension runs over the samples, and one
/// target per sample.
///
/// ```
/// use nabla::data::TensorDataset;
/// use nabla::{DType, Tensor};
/// let x = Tensor::arange(0.0, 12.0, 1.0, DType::F32).reshape([6, 2]);
/// let ds = TensorDataset::new(x, vec![0, 1, 0, 1, 0, 1]);
/// let sub = ds.subset(&[5, 0]);
/// assert_eq!(sub.inputs().to_vec::<f32>(), vec![10.0, 11.0, 0.0, 1.0]);
/// assert_eq!(sub.labels().unwrap(), &[1, 0]);
/// let (train, val) = ds.split(0.5, 0);
/// assert_eq!((train.len(), val.len()), (3, 3));
/// ```
#[derive(Clone, Debug)]
pub struct TensorDataset {
    inputs: Tensor,
    targets: Targets,
}

impl TensorDataset {
    /// A data set of `inputs` (`[N, …]`) and `targets` (labels or a `[N, …]` tensor). The inputs
    /// are detached from any graph and stored contiguously.
    ///
    /// # Panics
    /// If `inputs` is 0-d, or the number of targets is not `N`.
    pub fn new(inputs: Tensor, targets: impl Into<Targets>) -> TensorDataset {
        let targets = targets.into();
        if inputs.rank() == 0 {
            panic!("TensorDataset: inputs must have a sample dimension, got a scalar");
        }
        if let Targets::Tensor(t) = &targets
            && t.rank() == 0
        {
            panic!("TensorDataset: target tensor must have a sample dimension, got a scalar");
        }
        if targets.len() != inputs.dims()[0] {
            panic!(
                "TensorDataset: {} inputs ({}) but {} targets",
                inputs.dims()[0],
                inputs.shape(),
                targets.len()
            );
        }
        let targets = match targets {
            Targets::Tensor(t) => Targets::Tensor(t.detach().contiguous()),
            l => l,
        };
        TensorDataset {
            inputs: inputs.detach().contiguous(),
            targets,
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.inputs.dims()[0]
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All inputs, `[N, …]`.
    pub fn inputs(&self) -> &Tensor {
        &self.inputs
    }

    /// All targets.
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// The class labels, if the targets are labels.
    pub fn labels(&self) -> Option<&[usize]> {
        self.targets.labels()
    }

    /// One more than the largest label (0 when empty), if the targets are labels.
    pub fn num_classes(&self) -> Option<usize> {
        self.labels().map(|l| l.iter().max().map_or(0, |&m| m + 1))
    }

    /// The inputs and targets of the samples at `indices`, in that order (a mini-batch).
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn get(&self, indices: &[usize]) -> (Tensor, Targets) {
        (
            gather_rows(&self.inputs, indices),
            self.targets.select(indices),
        )
    }

    /// The samples at `indices`, in that order, as a new data set.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn subset(&self, indices: &[usize]) -> TensorDataset {
        let (inputs, targets) = self.get(indices);
        TensorDataset { inputs, targets }
    }

    /// Shuffles the samples with a generator seeded by `seed` and splits them into
    /// `(train, validation)`: the first has `round(train_fraction × N)` samples, the second the
    /// rest. The same seed gives the same split.
    ///
    /// # Panics
    /// If `train_fraction` is not in `[0, 1]`.
    pub fn split(&self, train_fraction: f64, seed: u64) -> (TensorDataset, TensorDataset) {
        if !(0.0..=1.0).contains(&train_fraction) {
            panic!("TensorDataset::split: fraction must be in [0, 1], got {train_fraction}");
        }
        let n = self.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        let k = ((train_fraction * n as f64).round() as usize).min(n);
        (self.subset(&order[..k]), self.subset(&order[k..]))
    }

    /// Takes the data set apart.
    pub fn into_parts(self) -> (Tensor, Targets) {
        (self.inputs, self.targets)
    }
}

/// Rows `indices` of `t` along its first dimension, copied row by row into a new contiguous
/// tensor (`memcpy` per row; large gathers are split across threads).
///
/// # Panics
/// If an index is out of range.
pub(crate) fn gather_rows(t: &Tensor, indices: &[usize]) -> Tensor {
    let n = t.dims()[0];
    if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
        panic!(
            "gather_rows: index {bad} is out of range for {n} samples (shape {})",
            t.shape()
        );
    }
    let mut dims = t.dims().to_vec();
    dims[0] = indices.len();
    let row = t.numel().checked_div(n).unwrap_or(0);
    with_dtype!(t.dtype(), {
        let src = t.contiguous_data::<T>();
        let data = storage::build(indices.len() * row, |out: &mut [T]| {
            if row == 0 {
                return;
            }
            let copy = |(o, &i): (&mut [T], &usize)| {
                o.copy_from_slice(&src[i * row..(i + 1) * row]);
            };
            if out.len() >= 1 << 16 {
                out.par_chunks_mut(row)
                    .zip(indices.par_iter())
                    .for_each(copy);
            } else {
                out.chunks_mut(row).zip(indices.iter()).for_each(copy);
            }
        });
        Tensor::from_arc(data, dims.into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    #[test]
    fn gather_rows_copies_whole_rows() {
        let t = Tensor::arange(0.0, 24.0, 1.0, DType::F64).reshape([4, 3, 2]);
        let g = gather_rows(&t, &[3, 1, 3]);
        assert_eq!(g.dims(), &[3, 3, 2]);
        let v = g.to_vec::<f64>();
        assert_eq!(&v[..6], &[18.0, 19.0, 20.0, 21.0, 22.0, 23.0]);
        assert_eq!(&v[6..12], &[6.0, 7.0, 8.0, 9.0, 10.0, 11.0]);
        // non-contiguous input, large enough for the parallel path
        let big = Tensor::arange(0.0, 200_000.0, 1.0, DType::F32).reshape([1000, 200]);
        let tt = big.t().contiguous().t(); // same values, transposed layout
        let idx: Vec<usize> = (0..1000).rev().collect();
        let g = gather_rows(&tt, &idx);
        assert_eq!(g.dims(), &[1000, 200]);
        assert_eq!(g.to_vec::<f32>()[..3], [199_800.0, 199_801.0, 199_802.0]);
        assert_eq!(gather_rows(&t, &[]).dims(), &[0, 3, 2]);
    }

    #[test]
    #[should_panic(expected = "index 4 is out of range for 4 samples")]
    fn gather_rows_checks_indices() {
        gather_rows(&Tensor::zeros([4, 2], DType::F32), &[0, 4]);
    }

    #[test]
    fn split_is_seeded_and_disjoint() {
        let x = Tensor::arange(0.0, 10.0, 1.0, DType::F32).reshape([10, 1]);
        let ds = TensorDataset::new(x, (0..10).collect::<Vec<_>>());
        let (a, b) = ds.split(0.7, 3);
        let (a2, _) = ds.split(0.7, 3);
        assert_eq!(a.labels(), a2.labels());
        assert_eq!((a.len(), b.len()), (7, 3));
        let mut all: Vec<usize> = a.labels().unwrap().to_vec();
        all.extend(b.labels().unwrap());
        // inputs follow their labels
        assert_eq!(
            a.inputs().to_vec::<f32>(),
            a.labels()
                .unwrap()
                .iter()
                .map(|&l| l as f32)
                .collect::<Vec<_>>()
        );
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        let (c, _) = ds.split(0.7, 4);
        assert_ne!(a.labels(), c.labels());
    }

    #[test]
    fn tensor_targets_are_gathered() {
        let x = Tensor::zeros([3, 2], DType::F32);
        let y = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], [3]);
        let ds = TensorDataset::new(x, y);
        let (_, t) = ds.get(&[2, 0]);
        assert_eq!(t.tensor().unwrap().to_vec::<f32>(), vec![3.0, 1.0]);
        assert_eq!(ds.num_classes(), None);
    }

    #[test]
    #[should_panic(expected = "3 inputs ([3, 2]) but 2 targets")]
    fn length_mismatch_panics() {
        TensorDataset::new(Tensor::zeros([3, 2], DType::F32), vec![0, 1]);
    }
}
