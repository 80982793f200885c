//! A DataLoader over in-memory tensors: PyTorch's `DataLoader(TensorDataset(...))`.
//!
//! The order of an epoch is computed up front from (seed, epoch) alone, so that a run resumed at epoch `e`
//! sees the batches an uninterrupted run would have seen, and so that worker threads can prepare any batch
//! without talking to each other.

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::Tensor;

use super::{Batch, BatchSource, Loader};
use crate::{Error, Result};

/// Something a [`DataLoader`] can draw batches from by index: PyTorch's `Dataset` with batched access.
///
/// Implemented for a [`Tensor`] and for pairs and triples of tensors (PyTorch's `TensorDataset`), whose
/// samples are the rows along dim 0. Implement it for your own data to feed a [`DataLoader`] from it.
///
/// A dataset is not required to be `Sync`: tch's `Tensor` is only `Send`. Each worker thread gets its own
/// handle from [`share`](Dataset::share) instead, as each of PyTorch's worker processes gets its own copy.
///
/// ```
/// use lightning_runtime::tch::{Device, Kind, Tensor};
/// use lightning_runtime::Dataset;
///
/// let x = Tensor::arange(6, (Kind::Float, Device::Cpu)).view([3, 2]);
/// let y = Tensor::from_slice(&[10i64, 11, 12]);
/// let data = (x, y);
/// assert_eq!(data.len(), 3);
/// let (xb, yb) = data.get_batch(&[2, 0])?;
/// assert_eq!(Vec::<f32>::try_from(xb.flatten(0, -1))?, [4.0, 5.0, 0.0, 1.0]);
/// assert_eq!(Vec::<i64>::try_from(&yb)?, [12, 10]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Dataset: Send + 'static {
    /// What [`get_batch`](Dataset::get_batch) returns: the samples at some indices, stacked.
    type Batch: Batch + Send;

    /// The number of samples (for tensors, the length of dim 0).
    fn len(&self) -> usize;

    /// Whether it holds no sample.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The samples at `indices`, in that order. An index out of range is an `Err`, not a panic.
    ///
    /// The batch must not share memory with the dataset (the tensor impls copy the rows, as PyTorch's collate
    /// does), so that a transform or hook that writes into it in place cannot change the data.
    fn get_batch(&self, indices: &[i64]) -> Result<Self::Batch>;

    /// The samples at `indices`, allowed to share memory with the dataset. A [`DataLoader`] asks for this
    /// instead of [`get_batch`](Dataset::get_batch) when nothing can write into its batches: it has no
    /// [`map`](DataLoader::map) and no hook of the module takes batches by value. The tensor impls then return
    /// a run of consecutive rows (every batch of an unshuffled loader) as a view, with no copy. Defaults to
    /// `get_batch`.
    fn get_batch_shared(&self, indices: &[i64]) -> Result<Self::Batch> {
        self.get_batch(indices)
    }

    /// Another handle on the same data, for a worker thread; for tensors, `shallow_clone` (nothing is copied).
    fn share(&self) -> Self
    where
        Self: Sized;

    /// Checks that the dataset is usable; [`DataLoader::build`] calls it once. The tensor impls check that
    /// every tensor has a dim 0 and that all have the same length along it.
    fn check(&self) -> Result<()> {
        Ok(())
    }
}

/// The rows of one batch: a run of consecutive indices (every batch of an unshuffled loader), or any list.
enum Rows {
    Run { start: i64, len: i64, copy: bool },
    Listed(Tensor),
}

/// Rows `rows` of `data`: a copy (see [`Dataset::get_batch`]), or for a run that may be shared, a view. A
/// copied run is one `narrow_copy`, half the instructions of an `index_select` (no index tensor, no gather).
fn rows(data: &Tensor, rows: &Rows) -> Result<Tensor> {
    match rows {
        Rows::Run { start, len, copy: true } => Ok(data.f_narrow_copy(0, *start, *len)?),
        Rows::Run { start, len, copy: false } => Ok(data.f_narrow(0, *start, *len)?),
        Rows::Listed(index) if index.device() == data.device() => Ok(data.f_index_select(0, index)?),
        Rows::Listed(index) => Ok(data.f_index_select(0, &index.f_to_device(data.device())?)?),
    }
}

/// Runs the indexing without autograd: a batch with a graph back into the dataset tensor would keep that
/// graph alive, and would have worker threads touch the dataset's autograd state at the same time.
fn select<T>(indices: &[i64], copy: bool, f: impl FnOnce(&Rows) -> Result<T>) -> Result<T> {
    let consecutive = indices.windows(2).all(|w| w[1] == w[0] + 1);
    let rows = match indices.first() {
        Some(&start) if consecutive && start >= 0 => Rows::Run { start, len: indices.len() as i64, copy },
        _ => Rows::Listed(Tensor::f_from_slice(indices)?),
    };
    tch::no_grad(|| f(&rows))
}

/// The length along dim 0, if the tensor has one.
fn dim0(t: &Tensor) -> Option<i64> {
    if t.defined() {
        t.size().first().copied()
    } else {
        None
    }
}

fn check_tensors(tensors: &[&Tensor]) -> Result<()> {
    let mut lengths = Vec::with_capacity(tensors.len());
    for (i, t) in tensors.iter().enumerate() {
        match dim0(t) {
            Some(n) => lengths.push(n),
            None if !t.defined() => {
                return Err(Error::Config(format!("dataset tensor {i} is undefined")));
            }
            None => {
                return Err(Error::Config(format!(
                    "dataset tensor {i} is a scalar: samples are indexed along dim 0, so it needs at least one dim"
                )));
            }
        }
    }
    if lengths.windows(2).any(|w| w[0] != w[1]) {
        let lengths: Vec<String> = lengths.iter().map(i64::to_string).collect();
        return Err(Error::Config(format!(
            "the dataset's tensors differ in length along dim 0: {} (each needs one row per sample)",
            lengths.join(", ")
        )));
    }
    Ok(())
}

fn tensor_len(t: &Tensor) -> usize {
    dim0(t).map_or(0, |n| usize::try_from(n).unwrap_or(0))
}

impl Dataset for Tensor {
    type Batch = Tensor;

    fn len(&self) -> usize {
        tensor_len(self)
    }

    fn get_batch(&self, indices: &[i64]) -> Result<Tensor> {
        select(indices, true, |r| rows(self, r))
    }

    fn get_batch_shared(&self, indices: &[i64]) -> Result<Tensor> {
        select(indices, false, |r| rows(self, r))
    }

    fn share(&self) -> Self {
        self.shallow_clone()
    }

    fn check(&self) -> Result<()> {
        check_tensors(&[self])
    }
}

impl Dataset for (Tensor, Tensor) {
    type Batch = (Tensor, Tensor);

    fn len(&self) -> usize {
        tensor_len(&self.0)
    }

    fn get_batch(&self, indices: &[i64]) -> Result<Self::Batch> {
        select(indices, true, |r| Ok((rows(&self.0, r)?, rows(&self.1, r)?)))
    }

    fn get_batch_shared(&self, indices: &[i64]) -> Result<Self::Batch> {
        select(indices, false, |r| Ok((rows(&self.0, r)?, rows(&self.1, r)?)))
    }

    fn share(&self) -> Self {
        (self.0.shallow_clone(), self.1.shallow_clone())
    }

    fn check(&self) -> Result<()> {
        check_tensors(&[&self.0, &self.1])
    }
}

impl Dataset for (Tensor, Tensor, Tensor) {
    type Batch = (Tensor, Tensor, Tensor);

    fn len(&self) -> usize {
        tensor_len(&self.0)
    }

    fn get_batch(&self, indices: &[i64]) -> Result<Self::Batch> {
        select(indices, true, |r| Ok((rows(&self.0, r)?, rows(&self.1, r)?, rows(&self.2, r)?)))
    }

    fn get_batch_shared(&self, indices: &[i64]) -> Result<Self::Batch> {
        select(indices, false, |r| Ok((rows(&self.0, r)?, rows(&self.1, r)?, rows(&self.2, r)?)))
    }

    fn share(&self) -> Self {
        (self.0.shallow_clone(), self.1.shallow_clone(), self.2.shallow_clone())
    }

    fn check(&self) -> Result<()> {
        check_tensors(&[&self.0, &self.1, &self.2])
    }
}

type MapFn<B> = dyn Fn(B) -> Result<B> + Send + Sync;

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
/// use lightning_runtime::tch::{Device, Kind, Tensor};
/// use lightning_runtime::DataLoader;
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
struct Config {
    batch_size: usize,
    shuffle: bool,
    seed: u64,
    drop_last: bool,
}

impl Config {
    /// The number of batches per epoch over `samples` samples.
    fn batches(&self, samples: usize) -> usize {
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
    /// use lightning_runtime::tch::Tensor;
    /// use lightning_runtime::DataLoader;
    ///
    /// let loader = DataLoader::new(Tensor::from_slice(&[1.0f32, 2.0, 3.0])).build()?;
    /// assert_eq!(loader.len(), Some(3));
    /// # Ok::<(), lightning_runtime::Error>(())
    /// ```
    pub fn new(dataset: D) -> Self {
        DataLoader {
            dataset,
            config: Config { batch_size: 1, shuffle: false, seed: 0, drop_last: false },
            workers: 0,
            prefetch: 2,
            map: None,
        }
    }

    /// Samples per batch (the last one may be smaller, see [`drop_last`](DataLoader::drop_last)). Must be at
    /// least 1.
    ///
    /// ```
    /// use lightning_runtime::tch::{Device, Kind, Tensor};
    /// use lightning_runtime::DataLoader;
    ///
    /// let mut loader = DataLoader::new(Tensor::zeros([10], (Kind::Float, Device::Cpu))).batch_size(4).build()?;
    /// let sizes: Vec<i64> = loader.batches(0).map(|b| b.map(|b| b.size()[0])).collect::<Result<_, _>>()?;
    /// assert_eq!(sizes, [4, 4, 2]);
    /// # Ok::<(), lightning_runtime::Error>(())
    /// ```
    pub fn batch_size(mut self, n: usize) -> Self {
        self.config.batch_size = n;
        self
    }

    /// Whether each epoch visits the samples in a new random order (a permutation of all of them).
    ///
    /// ```
    /// use lightning_runtime::tch::{Device, Kind, Tensor};
    /// use lightning_runtime::DataLoader;
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
    /// use lightning_runtime::tch::{Device, Kind, Tensor};
    /// use lightning_runtime::DataLoader;
    ///
    /// let data = Tensor::arange(16, (Kind::Int64, Device::Cpu));
    /// let order = |epoch| -> lightning_runtime::Result<Vec<i64>> {
    ///     let mut loader = DataLoader::new(data.shallow_clone()).batch_size(16).shuffle(true).seed(3).build()?;
    ///     let batch = loader.batches(epoch).next().unwrap()?;
    ///     Ok(Vec::<i64>::try_from(&batch)?)
    /// };
    /// assert_eq!(order(5)?, order(5)?);
    /// assert_ne!(order(5)?, order(6)?);
    /// # Ok::<(), lightning_runtime::Error>(())
    /// ```
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// Whether to leave out the last batch of an epoch when it would be smaller than the batch size.
    ///
    /// ```
    /// use lightning_runtime::tch::{Device, Kind, Tensor};
    /// use lightning_runtime::DataLoader;
    ///
    /// let data = Tensor::zeros([10], (Kind::Float, Device::Cpu));
    /// let loader = DataLoader::new(data).batch_size(4).drop_last(true).build()?;
    /// assert_eq!(loader.len(), Some(2));
    /// # Ok::<(), lightning_runtime::Error>(())
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
    /// use lightning_runtime::tch::{Device, Kind, Tensor};
    /// use lightning_runtime::DataLoader;
    ///
    /// let data = Tensor::arange(10, (Kind::Float, Device::Cpu));
    /// let mut loader = DataLoader::new(data).batch_size(3).workers(2).build()?;
    /// let firsts: Vec<f64> = loader.batches(0).map(|b| b.map(|b| b.double_value(&[0]))).collect::<Result<_, _>>()?;
    /// assert_eq!(firsts, [0.0, 3.0, 6.0, 9.0]);
    /// # Ok::<(), lightning_runtime::Error>(())
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
    /// use lightning_runtime::tch::{Device, Kind, Tensor};
    /// use lightning_runtime::DataLoader;
    ///
    /// let data = Tensor::zeros([64, 8], (Kind::Float, Device::Cpu));
    /// let mut loader = DataLoader::new(data).batch_size(8).workers(4).prefetch(1).build()?;
    /// assert_eq!(loader.batches(0).count(), 8);
    /// # Ok::<(), lightning_runtime::Error>(())
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
    /// use lightning_runtime::tch::{Device, Kind, Tensor};
    /// use lightning_runtime::DataLoader;
    ///
    /// let data = Tensor::ones([6, 2], (Kind::Float, Device::Cpu));
    /// let mut loader = DataLoader::new(data).batch_size(3).map(|x| Ok(x * 2.0)).build()?;
    /// let batch = loader.batches(0).next().unwrap()?;
    /// assert_eq!(batch.double_value(&[0, 0]), 2.0);
    /// # Ok::<(), lightning_runtime::Error>(())
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
    /// use lightning_runtime::tch::{Device, Kind, Tensor};
    /// use lightning_runtime::{DataLoader, Error};
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
struct Source<D: Dataset> {
    dataset: D,
    config: Config,
    workers: usize,
    prefetch: usize,
    map: Option<Arc<MapFn<D::Batch>>>,
    /// Whether batches may share memory with the dataset (the trainer's say; see `get_batch_shared`).
    shared: bool,
}

/// The batches of one epoch, as sample indices.
struct Epoch {
    index: usize,
    order: Vec<i64>,
    batch_size: usize,
    batches: usize,
}

impl Epoch {
    fn new(config: Config, samples: usize, index: usize) -> Self {
        let mut order: Vec<i64> = (0..samples as i64).collect();
        if config.shuffle {
            // ChaCha's 64-bit stream number keys the epoch: every (seed, epoch) gets an independent stream,
            // and no state carries from one epoch to the next, which is what makes resuming exact.
            let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
            rng.set_stream(index as u64);
            order.shuffle(&mut rng);
        }
        Epoch { index, order, batch_size: config.batch_size, batches: config.batches(samples) }
    }

    fn indices(&self, batch: usize) -> &[i64] {
        let start = batch * self.batch_size;
        &self.order[start..self.order.len().min(start + self.batch_size)]
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

fn panicked(hook: &'static str, payload: &(dyn Any + Send), epoch: &Epoch, batch: usize) -> Error {
    Error::Panic { hook, message: format!("{} (batch {batch} of epoch {})", panic_message(payload), epoch.index) }
}

/// Batch `batch` of `epoch`, indexed and transformed. Panics become errors here, so that a panicking
/// transform ends the epoch with an `Err` whether it ran in line or on a worker (whose panic would otherwise
/// only show as a closed channel).
fn prepare<D: Dataset>(
    dataset: &D,
    map: Option<&MapFn<D::Batch>>,
    shared: bool,
    epoch: &Epoch,
    batch: usize,
) -> Result<D::Batch> {
    let indices = epoch.indices(batch);
    // A `map` may write into its batch in place: it gets a copy whatever the trainer allows.
    let fetch = || if shared && map.is_none() { dataset.get_batch_shared(indices) } else { dataset.get_batch(indices) };
    let out =
        catch_unwind(AssertUnwindSafe(fetch)).map_err(|p| panicked("Dataset::get_batch", &*p, epoch, batch))??;
    match map {
        None => Ok(out),
        Some(f) => {
            catch_unwind(AssertUnwindSafe(|| f(out))).map_err(|p| panicked("DataLoader::map", &*p, epoch, batch))?
        }
    }
}

/// An epoch prepared on the caller's thread, batch by batch.
struct Inline<'a, D: Dataset> {
    dataset: &'a D,
    map: Option<&'a MapFn<D::Batch>>,
    shared: bool,
    epoch: Epoch,
    next: usize,
    failed: bool,
}

impl<D: Dataset> Iterator for Inline<'_, D> {
    type Item = Result<D::Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.next >= self.epoch.batches {
            return None;
        }
        let out = prepare(self.dataset, self.map, self.shared, &self.epoch, self.next);
        self.next += 1;
        self.failed = out.is_err();
        Some(out)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = if self.failed { 0 } else { self.epoch.batches - self.next };
        (left.min(1), Some(left))
    }
}

/// An epoch prepared by worker threads. Each worker has its own bounded channel and prepares every
/// `workers`-th batch in order, so reading the channels round-robin gives the in-line order back with no
/// reordering buffer, and a full channel makes its worker wait instead of running ahead without bound.
struct Workers<B> {
    receivers: Vec<Receiver<Result<B>>>,
    handles: Vec<Option<JoinHandle<()>>>,
    stop: Arc<AtomicBool>,
    epoch: usize,
    batches: usize,
    next: usize,
    failed: bool,
}

impl<B: Batch + Send> Workers<B> {
    fn spawn<D: Dataset<Batch = B>>(source: &Source<D>, epoch: Epoch) -> Result<Self> {
        let count = source.workers.min(epoch.batches);
        let mut workers = Workers {
            receivers: Vec::with_capacity(count),
            handles: Vec::with_capacity(count),
            stop: Arc::new(AtomicBool::new(false)),
            epoch: epoch.index,
            batches: epoch.batches,
            next: 0,
            failed: false,
        };
        let epoch = Arc::new(epoch);
        for k in 0..count {
            let (tx, rx) = sync_channel(source.prefetch);
            let dataset = source.dataset.share();
            let (map, shared) = (source.map.clone(), source.shared);
            let epoch = Arc::clone(&epoch);
            let stop = Arc::clone(&workers.stop);
            let work = move || {
                // One intra-op thread per worker, as PyTorch's workers have: the training thread keeps the
                // cores' thread pool, and two workers with teams of their own would oversubscribe them.
                crate::kernels::one_thread_here();
                for batch in (k..epoch.batches).step_by(count) {
                    // The flag spares starting a batch nobody will take; a worker blocked in `send` is
                    // released by the receiver's drop instead.
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let out = prepare(&dataset, map.as_deref(), shared, &epoch, batch);
                    let failed = out.is_err();
                    if tx.send(out).is_err() || failed {
                        return;
                    }
                }
            };
            // On failure, `workers` is dropped on return, which stops and joins the ones already started.
            let handle = thread::Builder::new().name(format!("lightning-data-{k}")).spawn(work).map_err(|e| {
                Error::Config(format!("could not start DataLoader worker {k} of {}: {e}", source.workers))
            })?;
            workers.receivers.push(rx);
            workers.handles.push(Some(handle));
        }
        Ok(workers)
    }
}

impl<B> Workers<B> {
    /// The error for a worker that hung up without sending `batch`: with panics caught in `prepare`, only a
    /// panic outside it (dropping a batch, say) gets here.
    fn lost(&mut self, k: usize, batch: usize) -> Error {
        let why = match self.handles[k].take().map(JoinHandle::join) {
            Some(Err(payload)) => panic_message(&*payload).to_string(),
            _ => "it exited early".to_string(),
        };
        Error::Panic {
            hook: "DataLoader worker",
            message: format!("{why} (worker {k}, before sending batch {batch} of epoch {})", self.epoch),
        }
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receivers fails any `send` a worker is blocked in, so every worker ends within the
        // batch it is preparing, and the joins below cannot deadlock.
        self.receivers.clear();
        for handle in self.handles.drain(..).flatten() {
            // A worker's own panics are caught and sent; one that got past that has nobody left to tell.
            let _ = handle.join();
        }
    }
}

impl<B: Batch + Send> Iterator for Workers<B> {
    type Item = Result<B>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.next >= self.batches {
            return None;
        }
        let batch = self.next;
        let k = batch % self.receivers.len();
        let out = match self.receivers[k].recv() {
            Ok(out) => out,
            Err(_) => Err(self.lost(k, batch)),
        };
        self.next += 1;
        if out.is_err() {
            self.failed = true;
            self.shutdown();
        } else if self.next == self.batches {
            self.shutdown();
        }
        Some(out)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = if self.failed { 0 } else { self.batches - self.next };
        (left.min(1), Some(left))
    }
}

impl<B> Drop for Workers<B> {
    fn drop(&mut self) {
        self.shutdown();
    }
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
}
