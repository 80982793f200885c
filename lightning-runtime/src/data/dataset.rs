//! `Dataset`: what a `DataLoader` draws batches from by index, and its implementations for tensors (PyTorch's
//! `TensorDataset`).

use tch::Tensor;

use super::Batch;
use crate::{Error, Result};

/// Something a [`DataLoader`](super::DataLoader) can draw batches from by index: PyTorch's `Dataset` with batched access.
///
/// Implemented for a [`Tensor`] and for pairs and triples of tensors (PyTorch's `TensorDataset`), whose
/// samples are the rows along dim 0. Implement it for your own data to feed a [`DataLoader`](super::DataLoader) from it.
///
/// A dataset is not required to be `Sync`: tch's `Tensor` is only `Send`. Each worker thread gets its own
/// handle from [`share`](Dataset::share) instead, as each of PyTorch's worker processes gets its own copy.
///
/// ```
/// use lightning::tch::{Device, Kind, Tensor};
/// use lightning::Dataset;
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

    /// The samples at `indices`, allowed to share memory with the dataset. A [`DataLoader`](super::DataLoader) asks for this
    /// instead of [`get_batch`](Dataset::get_batch) when nothing can write into its batches: it has no
    /// [`map`](super::DataLoader::map) and no hook of the module takes batches by value. The tensor impls then return
    /// a run of consecutive rows (every batch of an unshuffled loader) as a view, with no copy. Defaults to
    /// `get_batch`.
    fn get_batch_shared(&self, indices: &[i64]) -> Result<Self::Batch> {
        self.get_batch(indices)
    }

    /// Another handle on the same data, for a worker thread; for tensors, `shallow_clone` (nothing is copied).
    fn share(&self) -> Self
    where
        Self: Sized;

    /// Checks that the dataset is usable; [`DataLoader::build`](super::DataLoader::build) calls it once. The tensor impls check that
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
        // The fast view where it applies; anything else (or a failure making it) narrows as usual.
        Rows::Run { start, len, copy: false } => match crate::kernels::rows_view(data, *start, *len) {
            Ok(Some(view)) => Ok(view),
            _ => Ok(data.f_narrow(0, *start, *len)?),
        },
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
