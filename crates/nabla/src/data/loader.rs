//! Mini-batches over a [`TensorDataset`], in order or in a seeded shuffled order per epoch.

use super::{Targets, TensorDataset};
use crate::Tensor;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// Splits a data set into mini-batches.
///
/// In order by default; with [`shuffle(seed)`](DataLoader::shuffle) each epoch visits the samples
/// in its own random order, a function of the seed and the epoch number only: the same seed gives
/// the same batches in every run, and each epoch still sees every sample exactly once. The last
/// batch may be smaller than the batch size unless [`drop_last`](DataLoader::drop_last) is set.
///
/// ```
/// use nabla::data::{DataLoader, TensorDataset};
/// use nabla::{DType, Tensor};
/// let x = Tensor::arange(0.0, 10.0, 1.0, DType::F32).reshape([10, 1]);
/// let ds = TensorDataset::new(x, (0..10).collect::<Vec<usize>>());
///
/// let loader = DataLoader::new(ds.clone(), 4);
/// let sizes: Vec<usize> = loader.epoch(0).map(|(x, _)| x.dims()[0]).collect();
/// assert_eq!(sizes, [4, 4, 2]);
///
/// let loader = DataLoader::new(ds, 4).shuffle(1).drop_last(true);
/// assert_eq!(loader.num_batches(), 2);
/// let a: Vec<usize> = loader.epoch(0).flat_map(|(_, y)| y.labels().unwrap().to_vec()).collect();
/// let b: Vec<usize> = loader.epoch(0).flat_map(|(_, y)| y.labels().unwrap().to_vec()).collect();
/// assert_eq!(a, b); // same seed and epoch, same batches
/// ```
#[derive(Clone, Debug)]
pub struct DataLoader {
    dataset: TensorDataset,
    batch_size: usize,
    seed: Option<u64>,
    drop_last: bool,
}

impl DataLoader {
    /// Batches of `batch_size` samples of `dataset`, in order, keeping a smaller last batch.
    ///
    /// # Panics
    /// If `batch_size` is 0.
    pub fn new(dataset: TensorDataset, batch_size: usize) -> DataLoader {
        if batch_size == 0 {
            panic!("DataLoader: batch size must be at least 1");
        }
        DataLoader {
            dataset,
            batch_size,
            seed: None,
            drop_last: false,
        }
    }

    /// Shuffles the samples at every epoch, with an order drawn from `seed` and the epoch number.
    pub fn shuffle(mut self, seed: u64) -> DataLoader {
        self.seed = Some(seed);
        self
    }

    /// Visits the samples in their stored order (the default).
    pub fn sequential(mut self) -> DataLoader {
        self.seed = None;
        self
    }

    /// Drops the last batch when it is smaller than the batch size.
    pub fn drop_last(mut self, drop: bool) -> DataLoader {
        self.drop_last = drop;
        self
    }

    /// The data set.
    pub fn dataset(&self) -> &TensorDataset {
        &self.dataset
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Number of batches per epoch.
    pub fn num_batches(&self) -> usize {
        let n = self.dataset.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// The order in which epoch `epoch` visits the samples (before batching).
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if let Some(seed) = self.seed {
            let mut rng = StdRng::seed_from_u64(mix(seed, epoch));
            order.shuffle(&mut rng);
        }
        order
    }

    /// The batches of epoch `epoch`: `(inputs, targets)` with inputs `[B, …]`.
    pub fn epoch(&self, epoch: u64) -> Batches<'_> {
        Batches {
            loader: self,
            order: self.order(epoch),
            next: 0,
            end: self.num_batches(),
        }
    }
}

/// A seed for epoch `epoch` of a run seeded with `seed` (SplitMix64 finaliser over both), so that
/// nearby seeds and epochs give unrelated orders.
fn mix(seed: u64, epoch: u64) -> u64 {
    fn splitmix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    splitmix(seed ^ splitmix(epoch))
}

/// The batches of one epoch (see [`DataLoader::epoch`]).
pub struct Batches<'a> {
    loader: &'a DataLoader,
    order: Vec<usize>,
    next: usize,
    end: usize,
}

impl Iterator for Batches<'_> {
    type Item = (Tensor, Targets);

    fn next(&mut self) -> Option<(Tensor, Targets)> {
        if self.next >= self.end {
            return None;
        }
        let bs = self.loader.batch_size;
        let start = self.next * bs;
        let stop = (start + bs).min(self.order.len());
        self.next += 1;
        Some(self.loader.dataset.get(&self.order[start..stop]))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.end - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Batches<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    fn ds(n: usize) -> TensorDataset {
        let x = Tensor::arange(0.0, n as f64, 1.0, DType::F32).reshape([n, 1]);
        TensorDataset::new(x, (0..n).collect::<Vec<_>>())
    }

    #[test]
    fn batch_counts() {
        let l = DataLoader::new(ds(10), 3);
        assert_eq!(l.num_batches(), 4);
        assert_eq!(l.epoch(0).len(), 4);
        assert_eq!(l.clone().drop_last(true).num_batches(), 3);
        assert_eq!(DataLoader::new(ds(0), 3).epoch(0).count(), 0);
        let order: Vec<usize> = l
            .epoch(5)
            .flat_map(|(_, y)| y.labels().unwrap().to_vec())
            .collect();
        assert_eq!(order, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn mix_separates_neighbours() {
        assert_ne!(mix(0, 1), mix(1, 0));
        assert_ne!(mix(0, 0), mix(0, 1));
    }
}
