//! Batches and where they come from.

use tch::{Device, Tensor};

use crate::output::HookOutput;
use crate::Result;

/// A batch the runtime can move to a device: a `Tensor`, or tuples, arrays, `Vec`s and `Option`s of batches.
///
/// Implement it for your own batch struct by moving each tensor field.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used as a batch",
    note = "a batch is a `Tensor`, or a tuple, array, `Vec` or `Option` of batches; implement `Batch` for your own type"
)]
pub trait Batch: Sized + Send + 'static {
    /// The batch with every tensor on `device`.
    fn to_device(self, device: Device) -> Result<Self>;
    /// Another handle on the same tensors (tch's `shallow_clone`: no data is copied).
    fn share(&self) -> Self;
    /// Calls `f` on every tensor of the batch.
    fn for_each_tensor(&self, f: &mut dyn FnMut(&Tensor));

    /// Casts every floating-point tensor of the batch to `kind`: what the `*-true` precisions
    /// ([`Precision`](crate::Precision)) do to batches in the default `transfer_batch_to_device`. The default
    /// leaves the batch as it is; a batch type of your own that holds floating-point tensors implements it.
    fn to_float_kind(self, _kind: tch::Kind) -> Result<Self> {
        Ok(self)
    }
    /// The number of samples: the first tensor's first dimension (1 for a scalar or a batch without tensors).
    fn batch_size(&self) -> usize {
        let mut size = None;
        self.for_each_tensor(&mut |t| {
            if size.is_none() {
                size = Some(t.size().first().map_or(1, |&n| n.max(0) as usize));
            }
        });
        size.unwrap_or(1)
    }
}

impl Batch for Tensor {
    fn to_device(self, device: Device) -> Result<Self> {
        if self.device() == device {
            Ok(self)
        } else {
            Ok(self.f_to_device(device)?)
        }
    }

    fn share(&self) -> Self {
        self.shallow_clone()
    }

    fn for_each_tensor(&self, f: &mut dyn FnMut(&Tensor)) {
        f(self)
    }

    fn to_float_kind(self, kind: tch::Kind) -> Result<Self> {
        if self.is_floating_point() && self.kind() != kind {
            Ok(self.f_to_kind(kind)?)
        } else {
            Ok(self)
        }
    }
}

impl Batch for () {
    fn to_device(self, _: Device) -> Result<Self> {
        Ok(())
    }

    fn share(&self) -> Self {}

    fn for_each_tensor(&self, _: &mut dyn FnMut(&Tensor)) {}
}

impl<B: Batch> Batch for Vec<B> {
    fn to_device(self, device: Device) -> Result<Self> {
        self.into_iter().map(|b| b.to_device(device)).collect()
    }

    fn share(&self) -> Self {
        self.iter().map(Batch::share).collect()
    }

    fn for_each_tensor(&self, f: &mut dyn FnMut(&Tensor)) {
        self.iter().for_each(|b| b.for_each_tensor(f))
    }

    fn to_float_kind(self, kind: tch::Kind) -> Result<Self> {
        self.into_iter().map(|b| b.to_float_kind(kind)).collect()
    }
}

impl<B: Batch> Batch for Option<B> {
    fn to_device(self, device: Device) -> Result<Self> {
        self.map(|b| b.to_device(device)).transpose()
    }

    fn share(&self) -> Self {
        self.as_ref().map(Batch::share)
    }

    fn for_each_tensor(&self, f: &mut dyn FnMut(&Tensor)) {
        if let Some(b) = self {
            b.for_each_tensor(f)
        }
    }

    fn to_float_kind(self, kind: tch::Kind) -> Result<Self> {
        self.map(|b| b.to_float_kind(kind)).transpose()
    }
}

impl<B: Batch, const N: usize> Batch for [B; N] {
    fn to_device(self, device: Device) -> Result<Self> {
        let moved: Vec<B> = self.into_iter().map(|b| b.to_device(device)).collect::<Result<_>>()?;
        Ok(moved.try_into().unwrap_or_else(|_| unreachable!("the length is unchanged")))
    }
    fn share(&self) -> Self {
        std::array::from_fn(|i| self[i].share())
    }

    fn for_each_tensor(&self, f: &mut dyn FnMut(&Tensor)) {
        self.iter().for_each(|b| b.for_each_tensor(f))
    }

    fn to_float_kind(self, kind: tch::Kind) -> Result<Self> {
        let cast: Vec<B> = self.into_iter().map(|b| b.to_float_kind(kind)).collect::<Result<_>>()?;
        Ok(cast.try_into().unwrap_or_else(|_| unreachable!("the length is unchanged")))
    }
}

macro_rules! tuple_batch {
    ($($name:ident)+) => {
        impl<$($name: Batch),+> Batch for ($($name,)+) {
            #[allow(non_snake_case)]
            fn to_device(self, device: Device) -> Result<Self> {
                let ($($name,)+) = self;
                Ok(($($name.to_device(device)?,)+))
            }

            #[allow(non_snake_case)]
            fn share(&self) -> Self {
                let ($($name,)+) = self;
                ($($name.share(),)+)
            }

            #[allow(non_snake_case)]
            fn for_each_tensor(&self, f: &mut dyn FnMut(&Tensor)) {
                let ($($name,)+) = self;
                $($name.for_each_tensor(f);)+
            }

            #[allow(non_snake_case)]
            fn to_float_kind(self, kind: tch::Kind) -> Result<Self> {
                let ($($name,)+) = self;
                Ok(($($name.to_float_kind(kind)?,)+))
            }
        }
    };
}
tuple_batch!(A);
tuple_batch!(A B);
tuple_batch!(A B C);
tuple_batch!(A B C D);
tuple_batch!(A B C D E);
tuple_batch!(A B C D E F);

/// Data to run on: a source of batches that can be iterated once per epoch.
pub struct Loader<B> {
    source: Box<dyn BatchSource<B>>,
}

/// Something the runtime can draw batches from, epoch after epoch.
pub trait BatchSource<B>: Send {
    /// The batches of epoch `epoch`.
    fn batches(&mut self, epoch: usize) -> Box<dyn Iterator<Item = Result<B>> + '_>;
    /// The number of batches per epoch, if known.
    fn len(&self) -> Option<usize>;
    /// Whether it yields nothing.
    fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// The trainer says, before it draws an epoch, whether the batches may share memory with the source's
    /// data: `true` when no hook of the module takes batches by value (the batch-transfer hooks), so that
    /// nothing can write into them. A source that copies its batches only to protect its data may then skip
    /// the copy, as [`DataLoader`]'s does. The default ignores it.
    fn allow_shared_batches(&mut self, _allowed: bool) {}

    /// Makes this process see only its share of every epoch in a distributed run of `world` processes, of which
    /// it is `rank` (PyTorch's `DistributedSampler`: every process the same number of batches). Returns
    /// whether the source can; one that cannot (a loader made from a closure) gives every process the same
    /// batches, and the Trainer says so once. The default cannot.
    fn distribute(&mut self, _rank: usize, _world: usize) -> bool {
        false
    }
}

/// A list of batches made up front; in a distributed run each process takes every `world`-th batch.
struct Batches<B> {
    batches: Vec<B>,
    shard: Option<(usize, usize)>,
}

impl<B: Batch + Send> BatchSource<B> for Batches<B> {
    fn batches(&mut self, _epoch: usize) -> Box<dyn Iterator<Item = Result<B>> + '_> {
        match self.shard {
            None => Box::new(self.batches.iter().map(|batch| Ok(batch.share()))),
            Some((rank, world)) => {
                // Padded with the first batches, as the samples of a `DataLoader` are.
                let len = self.batches.len();
                let here = len.div_ceil(world);
                Box::new((0..here).map(move |k| Ok(self.batches[(rank + k * world) % len].share())))
            }
        }
    }

    fn len(&self) -> Option<usize> {
        let len = self.batches.len();
        Some(match self.shard {
            Some((_, world)) => len.div_ceil(world),
            None => len,
        })
    }

    fn distribute(&mut self, rank: usize, world: usize) -> bool {
        self.shard = (world > 1).then_some((rank, world));
        true
    }
}

impl<B> Loader<B> {
    /// A loader over any source of batches.
    pub fn new(source: impl BatchSource<B> + 'static) -> Self {
        Loader { source: Box::new(source) }
    }

    /// The batches of epoch `epoch`.
    pub fn batches(&mut self, epoch: usize) -> Box<dyn Iterator<Item = Result<B>> + '_> {
        self.source.batches(epoch)
    }

    /// The number of batches per epoch, if known.
    pub fn len(&self) -> Option<usize> {
        self.source.len()
    }

    /// See [`BatchSource::allow_shared_batches`].
    pub(crate) fn allow_shared_batches(&mut self, allowed: bool) {
        self.source.allow_shared_batches(allowed);
    }

    pub(crate) fn distribute(&mut self, rank: usize, world: usize) -> bool {
        self.source.distribute(rank, world)
    }

    /// Whether it yields nothing.
    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
    }
}

/// A loader over any iterator of batches, made anew for each epoch: `Loader::from_fn(|epoch| make(epoch))`.
struct FromFn<F> {
    make: F,
    len: Option<usize>,
}

impl<B: 'static, F, I> BatchSource<B> for FromFn<F>
where
    F: FnMut(usize) -> I + Send,
    I: IntoIterator<Item = B>,
    I::IntoIter: 'static,
{
    fn batches(&mut self, epoch: usize) -> Box<dyn Iterator<Item = Result<B>> + '_> {
        Box::new((self.make)(epoch).into_iter().map(Ok))
    }

    fn len(&self) -> Option<usize> {
        self.len
    }
}

impl<B: 'static> Loader<B> {
    /// A loader that calls `make(epoch)` for each epoch's batches: bring any iterator. Its length is unknown
    /// (so fractional batch limits cannot apply to it) unless given with [`Loader::from_fn_with_len`].
    pub fn from_fn<F, I>(make: F) -> Self
    where
        F: FnMut(usize) -> I + Send + 'static,
        I: IntoIterator<Item = B>,
        I::IntoIter: 'static,
    {
        Loader::new(FromFn { make, len: None })
    }

    /// Like [`Loader::from_fn`], with a known number of batches per epoch.
    pub fn from_fn_with_len<F, I>(len: usize, make: F) -> Self
    where
        F: FnMut(usize) -> I + Send + 'static,
        I: IntoIterator<Item = B>,
        I::IntoIter: 'static,
    {
        Loader::new(FromFn { make, len: Some(len) })
    }
}

impl<B: Batch + Send> From<Vec<B>> for Loader<B> {
    fn from(batches: Vec<B>) -> Self {
        Loader::new(Batches { batches, shard: None })
    }
}

impl<B, T: Into<Loader<B>>> HookOutput<Loader<B>> for T {
    #[inline]
    fn into_output(self) -> Loader<B> {
        self.into()
    }
}

mod dataset;
mod epoch;
mod loaders;
mod tensor_loader;
pub use dataset::Dataset;
pub use loaders::{DataSource, Loaders};
pub use tensor_loader::DataLoader;
