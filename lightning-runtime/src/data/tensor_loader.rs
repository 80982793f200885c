//! A DataLoader over in-memory tensors: PyTorch's `DataLoader(TensorDataset(...))`.
//!
//! The order of an epoch is computed up front from (seed, epoch) alone, so that a run resumed at epoch `e`
//! sees the batches an uninterrupted run would have seen, and so that worker threads can prepare any batch
//! without talking to each other.

use std::fmt;
use std::sync::Arc;

use super::dataset::Dataset;
use super::epoch::{Epoch, Inline, Workers};
use super::{BatchSource, Loader};
use crate::{Error, Result};

pub(super) type MapFn<B> = dyn Fn(B) -> Result<B> + Send + Sync;

/// Builds a [`Loader`] over a [`Dataset`]: batching, a seeded shuffle, and worker threads that prepare
/// batches ahead of the training loop. PyTorch's `DataLoader`.
///
/// The built loader yields `len()` batches per epoch: `ceil(n / batch_size)`, or `floor` with
/// [`drop_last`](DataLoader::drop_last). Batches stay where the dataset's tensors are (the Trainer moves them).
/// A batch is a copy of its rows (PyTorch's collate copies too), so that writing into it cannot change the
/// data; under a Trainer whose module has no hook that takes batches by value, and with no
/// [`map`](DataLoader::map), a run of consecutive rows is handed out as a view instead, with no copy.
///
/// ```
/// use lightning::tch::{Device, Kind, Tensor};
/// use lightning::DataLoader;
///
/// let x = Tensor::randn([10, 3], (Kind::Float, Device::Cpu));
/// let y = Tensor::arange(10, (Kind::Int64, Device::Cpu));
/// let mut loader = DataLoader::new((x, y)).batch_size(4).shuffle(true).seed(7).build()?;
/// assert_eq!(loader.len(), Some(3));
/// let mut seen = Vec::new();
/// for batch in loader.batches(0) {
///     let (x, y) = batch?;
///     assert_eq!(x.size()[0], y.size()[0]);
///     seen.extend(Vec::<i64>::try_from(&y)?);
/// }
/// seen.sort();
/// assert_eq!(seen, (0..10).collect::<Vec<i64>>());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct DataLoader<D: Dataset> {
    dataset: D,
    config: Config,
    workers: usize,
    prefetch: usize,
    map: Option<Arc<MapFn<D::Batch>>>,
}

/// What decides the batches of an epoch.
#[derive(Debug, Clone, Copy)]
pub(super) struct Config {
    pub(super) batch_size: usize,
    pub(super) shuffle: bool,
    pub(super) seed: u64,
    pub(super) drop_last: bool,
    /// `(rank, world)`: this process takes every `world`-th sample of the epoch's order, from `rank`
    /// (PyTorch's `DistributedSampler`, which Lightning puts in every loader of a distributed run).
    pub(super) shard: Option<(usize, usize)>,
}

impl Config {
    /// The samples this process sees per epoch, out of `samples`: the order is padded with its own first
    /// samples up to a multiple of the world size, so that every process runs the same number of batches.
    pub(super) fn samples_here(&self, samples: usize) -> usize {
        match self.shard {
            Some((_, world)) if samples > 0 => samples.div_ceil(world),
            _ => samples,
        }
    }

    /// The number of batches per epoch over `samples` samples.
    pub(super) fn batches(&self, samples: usize) -> usize {
        let samples = self.samples_here(samples);
        if self.drop_last {
            samples / self.batch_size
        } else {
            samples.div_ceil(self.batch_size)
        }
    }
}

impl<D: Dataset> fmt::Debug for DataLoader<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataLoader")
            .field("samples", &self.dataset.len())
            .field("batch_size", &self.config.batch_size)
            .field("shuffle", &self.config.shuffle)
            .field("seed", &self.config.seed)
            .field("drop_last", &self.config.drop_last)
            .field("workers", &self.workers)
            .field("prefetch", &self.prefetch)
            .field("map", &self.map.is_some())
            .finish()
    }
}

impl<D: Dataset> DataLoader<D> {
    /// A loader over `dataset`: batch size 1, in order, seed 0, last partial batch kept, no workers.
    ///
    /// ```
    /// use lightning::tch::Tensor;
    /// use lightning::DataLoader;
    ///
    /// let loader = DataLoader::new(Tensor::from_slice(&[1.0f32, 2.0, 3.0])).build()?;
    /// assert_eq!(loader.len(), Some(3));
    /// # Ok::<(), lightning::Error>(())
    /// ```
    pub fn new(dataset: D) -> Self {
        DataLoader {
            dataset,
            config: Config { batch_size: 1, shuffle: false, seed: 0, drop_last: false, shard: None },
            workers: 0,
            prefetch: 2,
            map: None,
        }
    }

    /// Samples per batch (the last one may be smaller, see [`drop_last`](DataLoader::drop_last)). Must be at
    /// least 1.
    ///
    /// ```
    /// use lightning::tch::{Device, Kind, Tensor};
    /// use lightning::DataLoader;
    ///
    /// let mut loader = DataLoader::new(Tensor::zeros([10], (Kind::Float, Device::Cpu))).batch_size(4).build()?;
    /// let sizes: Vec<i64> = loader.batches(0).map(|b| b.map(|b| b.size()[0])).collect::<Result<_, _>>()?;
    /// assert_eq!(sizes, [4, 4, 2]);
    /// # Ok::<(), lightning::Error>(())
    /// ```
    pub fn batch_size(mut self, n: usize) -> Self {
        self.config.batch_size = n;
        self
    }

    /// Whether each epoch visits the samples in a new random order (a permutation of all of them).
    ///
    /// ```
    /// use lightning::tch::{Device, Kind, Tensor};
    /// use lightning::DataLoader;
    ///
    /// let mut loader = DataLoader::new(Tensor::arange(8, (Kind::Int64, Device::Cpu))).batch_size(8).shuffle(true).build()?;
    /// let order = Vec::<i64>::try_from(&loader.batches(0).next().unwrap()?)?;
    /// let mut sorted = order.clone();
    /// sorted.sort();
    /// assert_eq!(sorted, (0..8).collect::<Vec<i64>>());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shuffle(mut self, on: bool) -> Self {
        self.config.shuffle = on;
        self
    }

    /// The seed of the shuffle's own generator, independent of torch's global RNG (`tch::manual_seed`).
    ///
    /// The order of epoch `e` depends on the seed and `e` only: the same seed gives the same orders on every
    /// run, and a loader asked for epoch `e` straight away (a resumed run) gives the order epoch `e` of an
    /// uninterrupted run had.
    ///
    /// ```
    /// use lightning::tch::{Device, Kind, Tensor};
    /// use lightning::DataLoader;
    ///
    /// let data = Tensor::arange(16, (Kind::Int64, Device::Cpu));
    /// let order = |epoch| -> lightning::Result<Vec<i64>> {
    ///     let mut loader = DataLoader::new(data.shallow_clone()).batch_size(16).shuffle(true).seed(3).build()?;
    ///     let batch = loader.batches(epoch).next().unwrap()?;
    ///     Ok(Vec::<i64>::try_from(&batch)?)
    /// };
    /// assert_eq!(order(5)?, order(5)?);
    /// assert_ne!(order(5)?, order(6)?);
    /// # Ok::<(), lightning::Error>(())
    /// ```
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// Whether to leave out the last batch of an epoch when it would be smaller than the batch size.
    ///
    /// ```
    /// use lightning::tch::{Device, Kind, Tensor};
    /// use lightning::DataLoader;
    ///
    /// let data = Tensor::zeros([10], (Kind::Float, Device::Cpu));
    /// let loader = DataLoader::new(data).batch_size(4).drop_last(true).build()?;
    /// assert_eq!(loader.len(), Some(2));
    /// # Ok::<(), lightning::Error>(())
    /// ```
    pub fn drop_last(mut self, on: bool) -> Self {
        self.config.drop_last = on;
        self
    }

    /// The number of threads that prepare batches (indexing and the [`map`](DataLoader::map) transform)
    /// ahead of the loop; 0 prepares each batch in line when it is asked for.
    ///
    /// Batch `i` is prepared by worker `i % n` and the batches come out in the same order as in line, so
    /// the number of workers never changes what a run sees. Threads are started for each epoch and stopped
    /// (and joined) when its iterator ends or is dropped.
    ///
    /// ```
    /// use lightning::tch::{Device, Kind, Tensor};
    /// use lightning::DataLoader;
    ///
    /// let data = Tensor::arange(10, (Kind::Float, Device::Cpu));
    /// let mut loader = DataLoader::new(data).batch_size(3).workers(2).build()?;
    /// let firsts: Vec<f64> = loader.batches(0).map(|b| b.map(|b| b.double_value(&[0]))).collect::<Result<_, _>>()?;
    /// assert_eq!(firsts, [0.0, 3.0, 6.0, 9.0]);
    /// # Ok::<(), lightning::Error>(())
    /// ```
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// How many finished batches each worker may hold while the loop has not taken them yet (default 2;
    /// PyTorch's `prefetch_factor`). Bounds the memory the workers use. Must be at least 1 when there are
    /// workers.
    ///
    /// ```
    /// use lightning::tch::{Device, Kind, Tensor};
    /// use lightning::DataLoader;
    ///
    /// let data = Tensor::zeros([64, 8], (Kind::Float, Device::Cpu));
    /// let mut loader = DataLoader::new(data).batch_size(8).workers(4).prefetch(1).build()?;
    /// assert_eq!(loader.batches(0).count(), 8);
    /// # Ok::<(), lightning::Error>(())
    /// ```
    pub fn prefetch(mut self, n: usize) -> Self {
        self.prefetch = n;
        self
    }

    /// A transform applied to every batch after indexing (augmentation, costly preparation), on the workers
    /// when there are any. Calling `map` again adds a transform that runs after the previous ones.
    ///
    /// An `Err` it returns comes out of the iterator at that batch, unchanged; a panic comes out as
    /// [`Error::Panic`] naming `DataLoader::map`, the panic's message and the batch. Either ends the epoch's
    /// iterator.
    ///
    /// ```
    /// use lightning::tch::{Device, Kind, Tensor};
    /// use lightning::DataLoader;
    ///
    /// let data = Tensor::ones([6, 2], (Kind::Float, Device::Cpu));
    /// let mut loader = DataLoader::new(data).batch_size(3).map(|x| Ok(x * 2.0)).build()?;
    /// let batch = loader.batches(0).next().unwrap()?;
    /// assert_eq!(batch.double_value(&[0, 0]), 2.0);
    /// # Ok::<(), lightning::Error>(())
    /// ```
    pub fn map<F>(mut self, f: F) -> Self
    where
        F: Fn(D::Batch) -> Result<D::Batch> + Send + Sync + 'static,
    {
        self.map = Some(match self.map.take() {
            None => Arc::new(f),
            Some(previous) => Arc::new(move |batch| f(previous(batch)?)),
        });
        self
    }

    /// The [`Loader`] to hand to the Trainer.
    ///
    /// Fails with [`Error::Config`] when the batch size is 0, when there are workers and `prefetch` is 0, or
    /// when the dataset's [`check`](Dataset::check) fails (tensors of different lengths along dim 0).
    ///
    /// ```
    /// use lightning::tch::{Device, Kind, Tensor};
    /// use lightning::{DataLoader, Error};
    ///
    /// let x = Tensor::zeros([10, 2], (Kind::Float, Device::Cpu));
    /// let y = Tensor::zeros([9], (Kind::Int64, Device::Cpu));
    /// let err = DataLoader::new((x, y)).build().err().expect("the lengths differ");
    /// assert!(matches!(err, Error::Config(ref msg) if msg.contains("10, 9")));
    /// ```
    pub fn build(self) -> Result<Loader<D::Batch>> {
        if self.config.batch_size == 0 {
            return Err(Error::Config("DataLoader batch_size must be at least 1, got 0".into()));
        }
        if self.workers > 0 && self.prefetch == 0 {
            return Err(Error::Config(format!(
                "DataLoader prefetch must be at least 1 with workers({}), got 0",
                self.workers
            )));
        }
        self.dataset.check()?;
        Ok(Loader::new(Source {
            dataset: self.dataset,
            config: self.config,
            workers: self.workers,
            prefetch: self.prefetch,
            map: self.map,
            shared: false,
        }))
    }
}

/// The built loader's source of batches.
pub(super) struct Source<D: Dataset> {
    pub(super) dataset: D,
    pub(super) config: Config,
    pub(super) workers: usize,
    pub(super) prefetch: usize,
    pub(super) map: Option<Arc<MapFn<D::Batch>>>,
    /// Whether batches may share memory with the dataset (the trainer's say; see `get_batch_shared`).
    pub(super) shared: bool,
}

impl<D: Dataset> BatchSource<D::Batch> for Source<D> {
    fn batches(&mut self, epoch: usize) -> Box<dyn Iterator<Item = Result<D::Batch>> + '_> {
        let epoch = Epoch::new(self.config, self.dataset.len(), epoch);
        if self.workers == 0 || epoch.batches == 0 {
            return Box::new(Inline {
                dataset: &self.dataset,
                map: self.map.as_deref(),
                shared: self.shared,
                epoch,
                next: 0,
                failed: false,
            });
        }
        match Workers::spawn(self, epoch) {
            Ok(workers) => Box::new(workers),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    fn len(&self) -> Option<usize> {
        Some(self.config.batches(self.dataset.len()))
    }

    fn allow_shared_batches(&mut self, allowed: bool) {
        self.shared = allowed;
    }

    fn distribute(&mut self, rank: usize, world: usize) -> bool {
        self.config.shard = (world > 1).then_some((rank, world));
        true
    }
}
