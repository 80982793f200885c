//! One epoch of a `DataLoader`: its order (from the seed and the epoch alone), and its batches made in line or
//! on worker threads, with panics in the dataset or the transform turned into errors.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::dataset::Dataset;
use super::tensor_loader::{Config, MapFn, Source};
use super::Batch;
use crate::error::panic_message;
use crate::{Error, Result};

/// The batches of one epoch, as sample indices.
pub(super) struct Epoch {
    pub(super) index: usize,
    order: Vec<i64>,
    batch_size: usize,
    pub(super) batches: usize,
}

impl Epoch {
    pub(super) fn new(config: Config, samples: usize, index: usize) -> Self {
        let mut order: Vec<i64> = (0..samples as i64).collect();
        if config.shuffle {
            // ChaCha's 64-bit stream number keys the epoch: every (seed, epoch) gets an independent stream,
            // and no state carries from one epoch to the next, which is what makes resuming exact.
            let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
            rng.set_stream(index as u64);
            order.shuffle(&mut rng);
        }
        if let Some((rank, world)) = config.shard {
            // Every process shuffles alike and takes its stride; the order is first padded with its own start
            // (DistributedSampler's rule), so that no process runs out of batches before the others.
            let padded = config.samples_here(samples) * world;
            let extra: Vec<i64> = order.iter().copied().cycle().take(padded - samples).collect();
            order.extend(extra);
            order = order.into_iter().skip(rank).step_by(world).collect();
        }
        Epoch { index, order, batch_size: config.batch_size, batches: config.batches(samples) }
    }

    fn indices(&self, batch: usize) -> &[i64] {
        let start = batch * self.batch_size;
        &self.order[start..self.order.len().min(start + self.batch_size)]
    }
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
pub(super) struct Inline<'a, D: Dataset> {
    pub(super) dataset: &'a D,
    pub(super) map: Option<&'a MapFn<D::Batch>>,
    pub(super) shared: bool,
    pub(super) epoch: Epoch,
    pub(super) next: usize,
    pub(super) failed: bool,
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
pub(super) struct Workers<B> {
    receivers: Vec<Receiver<Result<B>>>,
    handles: Vec<Option<JoinHandle<()>>>,
    stop: Arc<AtomicBool>,
    epoch: usize,
    batches: usize,
    next: usize,
    failed: bool,
}

impl<B: Batch + Send> Workers<B> {
    pub(super) fn spawn<D: Dataset<Batch = B>>(source: &Source<D>, epoch: Epoch) -> Result<Self> {
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
            Some(Err(payload)) => panic_message(&*payload),
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
