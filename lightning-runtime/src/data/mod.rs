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
pub trait Batch: Sized + 'static {
    /// The batch with every tensor on `device`.
    fn to_device(self, device: Device) -> Result<Self>;
    /// Another handle on the same tensors (tch's `shallow_clone`: no data is copied).
    fn share(&self) -> Self;
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
}

impl Batch for () {
    fn to_device(self, _: Device) -> Result<Self> {
        Ok(())
    }

    fn share(&self) -> Self {}
}

impl<B: Batch> Batch for Vec<B> {
    fn to_device(self, device: Device) -> Result<Self> {
        self.into_iter().map(|b| b.to_device(device)).collect()
    }

    fn share(&self) -> Self {
        self.iter().map(Batch::share).collect()
    }
}

impl<B: Batch> Batch for Option<B> {
    fn to_device(self, device: Device) -> Result<Self> {
        self.map(|b| b.to_device(device)).transpose()
    }

    fn share(&self) -> Self {
        self.as_ref().map(Batch::share)
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
}

impl<B: Batch + Send> BatchSource<B> for Vec<B> {
    fn batches(&mut self, _epoch: usize) -> Box<dyn Iterator<Item = Result<B>> + '_> {
        Box::new(self.iter().map(|batch| Ok(batch.share())))
    }

    fn len(&self) -> Option<usize> {
        Some(Vec::len(self))
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

    /// Whether it yields nothing.
    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
    }
}

impl<B: Batch + Send> From<Vec<B>> for Loader<B> {
    fn from(batches: Vec<B>) -> Self {
        Loader::new(batches)
    }
}

impl<B, T: Into<Loader<B>>> HookOutput<Loader<B>> for T {
    #[inline]
    fn into_output(self) -> Loader<B> {
        self.into()
    }
}

mod tensor_loader;
pub use tensor_loader::{DataLoader, Dataset};
