//! What an entry point is given to run on: one loader, several (validation, test and predict take a list, as
//! Lightning's `val_dataloaders=[..]`), or a data module whose hooks give them.

use crate::data::{Batch, Loader};
use crate::datamodule::{AnyDataModule, LightningDataModule};
use crate::output::HookOutput;

/// One or more loaders of the same batch type: what `val_dataloader`, `test_dataloader` and
/// `predict_dataloader` return, and what `validate`, `test`, `predict` and `fit`'s validation take.
///
/// With several, the evaluation loops run them one after the other in one epoch, pass each batch's
/// `dataloader_idx` to the step and batch hooks, and suffix the names of the values logged while a loader runs
/// with `/dataloader_idx_N` (Lightning's keys).
///
/// ```
/// use lightning_runtime::{Loader, Loaders};
/// use lightning_runtime::tch::{kind::FLOAT_CPU, Tensor};
///
/// let clean: Loader<Tensor> = vec![Tensor::zeros([4, 2], FLOAT_CPU)].into();
/// let noisy: Loader<Tensor> = vec![Tensor::ones([4, 2], FLOAT_CPU)].into();
/// let both = Loaders::from(vec![clean, noisy]);
/// assert_eq!(both.len(), 2);
/// ```
pub struct Loaders<B> {
    pub(crate) loaders: Vec<Loader<B>>,
}

impl<B> Loaders<B> {
    /// How many loaders.
    pub fn len(&self) -> usize {
        self.loaders.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.loaders.is_empty()
    }

    /// The loaders, in order.
    pub fn into_vec(self) -> Vec<Loader<B>> {
        self.loaders
    }
}

impl<B> From<Loader<B>> for Loaders<B> {
    fn from(loader: Loader<B>) -> Self {
        Loaders { loaders: vec![loader] }
    }
}

impl<B> From<Vec<Loader<B>>> for Loaders<B> {
    fn from(loaders: Vec<Loader<B>>) -> Self {
        Loaders { loaders }
    }
}

impl<B, const N: usize> From<[Loader<B>; N]> for Loaders<B> {
    fn from(loaders: [Loader<B>; N]) -> Self {
        Loaders { loaders: loaders.into() }
    }
}

/// A list of batches is one loader.
impl<B: Batch + Send> From<Vec<B>> for Loaders<B> {
    fn from(batches: Vec<B>) -> Self {
        Loader::from(batches).into()
    }
}

impl<B, T: Into<Loaders<B>>> HookOutput<Loaders<B>> for T {
    #[inline]
    fn into_output(self) -> Loaders<B> {
        self.into()
    }
}

/// The data an entry point (`fit`, `validate`, `test`, `predict`) runs on: a loader, several, none (`None`: the
/// module's `*_dataloader` hooks give them), or a data module (`&mut dm`, Lightning's `datamodule=dm`), whose
/// hooks then give the data, prepare and set it up, and move its batches (see the `lightning_datamodule`
/// attribute of the `lightning` crate, whose documentation has an example).
pub struct DataSource<'a, B> {
    pub(crate) kind: Source<'a, B>,
}

pub(crate) enum Source<'a, B> {
    /// Nothing given: the module's hooks give the data.
    Hooks,
    Loaders(Vec<Loader<B>>),
    DataModule(&'a mut (dyn AnyDataModule + 'static)),
}

impl<B> From<Loader<B>> for DataSource<'_, B> {
    fn from(loader: Loader<B>) -> Self {
        DataSource { kind: Source::Loaders(vec![loader]) }
    }
}

impl<B> From<Option<Loader<B>>> for DataSource<'_, B> {
    fn from(loader: Option<Loader<B>>) -> Self {
        match loader {
            Some(loader) => loader.into(),
            None => DataSource { kind: Source::Hooks },
        }
    }
}

impl<B> From<Loaders<B>> for DataSource<'_, B> {
    fn from(loaders: Loaders<B>) -> Self {
        DataSource { kind: Source::Loaders(loaders.loaders) }
    }
}

impl<B> From<Vec<Loader<B>>> for DataSource<'_, B> {
    fn from(loaders: Vec<Loader<B>>) -> Self {
        DataSource { kind: Source::Loaders(loaders) }
    }
}

impl<B, const N: usize> From<[Loader<B>; N]> for DataSource<'_, B> {
    fn from(loaders: [Loader<B>; N]) -> Self {
        DataSource { kind: Source::Loaders(loaders.into()) }
    }
}

impl<'a, D: LightningDataModule> From<&'a mut D> for DataSource<'a, D::Batch> {
    fn from(datamodule: &'a mut D) -> Self {
        DataSource { kind: Source::DataModule(datamodule) }
    }
}

impl<'a, B> DataSource<'a, B> {
    /// The data module, taken out (the source then holds nothing).
    pub(crate) fn take_datamodule(&mut self) -> Option<&'a mut (dyn AnyDataModule + 'static)> {
        match std::mem::replace(&mut self.kind, Source::Hooks) {
            Source::DataModule(dm) => Some(dm),
            other => {
                self.kind = other;
                None
            }
        }
    }

    /// The loaders given, if any.
    pub(crate) fn into_loaders(self) -> Option<Vec<Loader<B>>> {
        match self.kind {
            Source::Loaders(loaders) => Some(loaders),
            _ => None,
        }
    }

    pub(crate) fn is_datamodule(&self) -> bool {
        matches!(self.kind, Source::DataModule(_))
    }

    pub(crate) fn is_given(&self) -> bool {
        !matches!(self.kind, Source::Hooks)
    }
}
