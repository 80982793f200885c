//! `LoadFromCheckpoint`: a module built the usual way, with a checkpoint's weights, its hooks called through the
//! one dispatcher as the Trainer calls them.

use std::path::Path;

use super::call::Dispatch;
use crate::checkpoint::{load_weights, Checkpoint, LoadOptions};
use crate::module::LightningModule;
use crate::Result;

/// Loads a checkpoint's weights into a module built the usual way, for inference or fine-tuning (Lightning's
/// `LightningModule.load_from_checkpoint`): `configure_model` runs first, then `on_load_checkpoint`, then the
/// weights are loaded, strictly unless told otherwise.
///
/// ```no_run
/// # use lightning::{LoadFromCheckpoint, LightningModule};
/// # fn demo<M: LightningModule + 'static>(fresh: M) -> lightning::Result<()> {
/// let model = fresh.load_from_checkpoint("checkpoints/last.ckpt")?;
/// # Ok(()) }
/// ```
pub trait LoadFromCheckpoint: LightningModule + Sized + 'static {
    /// This module with the checkpoint's weights, strictly.
    fn load_from_checkpoint(self, path: impl AsRef<Path>) -> Result<Self> {
        self.load_from_checkpoint_with(path, LoadOptions::default())
    }

    /// This module with the checkpoint's weights, with `options`.
    fn load_from_checkpoint_with(self, path: impl AsRef<Path>, options: LoadOptions) -> Result<Self> {
        let path = path.as_ref();
        let checkpoint = Checkpoint::read(path)?;
        load_into(self, path, checkpoint, options)
    }
}

/// `configure_model`, `on_load_checkpoint`, then the weights of `checkpoint` (read from `path`) into `module`.
fn load_into<M: LightningModule + 'static>(
    mut module: M,
    path: &Path,
    mut checkpoint: Checkpoint,
    options: LoadOptions,
) -> Result<M> {
    let mut dispatch = Dispatch::standalone(module.var_store().device());
    dispatch.configure_sharded_model(&mut module)?;
    dispatch.configure_model(&mut module)?;
    dispatch.on_load_checkpoint_module(&mut module, &mut checkpoint)?;
    load_weights(path, &checkpoint, module.var_store_mut(), options)?;
    Ok(module)
}

impl<M: LightningModule + 'static> LoadFromCheckpoint for M {}

/// A module that can be built from its hyper-parameters (what `#[lightning_module(hparams = field)]` saves in
/// checkpoints), so that a checkpoint alone rebuilds it: Lightning's `Model.load_from_checkpoint(path)`, where
/// [`LoadFromCheckpoint`] loads into a module built the usual way.
///
/// ```no_run
/// use lightning::tch::{nn, Device, Kind, Tensor};
/// use lightning::{FromHparams, Optimizer};
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Hyper {
///     lr: f64,
/// }
///
/// struct Net {
///     vs: nn::VarStore,
///     hyper: Hyper,
/// }
///
/// #[lightning::lightning_module(hparams = hyper)]
/// impl Net {
///     fn training_step(&mut self, x: &Tensor) -> Tensor {
///         x.sum(Kind::Float)
///     }
///
///     fn configure_optimizers(&mut self) -> Optimizer {
///         Optimizer::sgd(&self.vs, self.hyper.lr)
///     }
/// }
///
/// impl FromHparams for Net {
///     type Hparams = Hyper;
///
///     fn from_hparams(hyper: Hyper) -> Self {
///         Net { vs: nn::VarStore::new(Device::Cpu), hyper }
///     }
/// }
///
/// let net = Net::from_checkpoint("checkpoints/last.ckpt")?;
/// # Ok::<(), lightning::Error>(())
/// ```
pub trait FromHparams: LightningModule + Sized + 'static {
    /// The hyper-parameters' type, as the module's `hparams` field serializes them.
    type Hparams: serde::de::DeserializeOwned;

    /// The module, with freshly initialized weights, for these hyper-parameters.
    fn from_hparams(hparams: Self::Hparams) -> Self;

    /// The module the checkpoint at `path` was written from: built from the hyper-parameters it holds, then its
    /// weights loaded as [`LoadFromCheckpoint::load_from_checkpoint`] loads them (`configure_model` and
    /// `on_load_checkpoint` run first).
    ///
    /// # Errors
    /// The file's own errors, a file that holds no hyper-parameters, or hyper-parameters of another shape than
    /// `Hparams` (each naming the file).
    fn from_checkpoint(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_checkpoint_with(path, LoadOptions::default())
    }

    /// [`FromHparams::from_checkpoint`] with [`LoadOptions`].
    ///
    /// # Errors
    /// As [`FromHparams::from_checkpoint`].
    fn from_checkpoint_with(path: impl AsRef<Path>, options: LoadOptions) -> Result<Self> {
        let path = path.as_ref();
        let checkpoint = Checkpoint::read(path)?;
        let fail = |problem: String| crate::Error::Checkpoint { path: path.to_path_buf(), problem };
        let hparams = checkpoint.hparams().cloned().ok_or_else(|| {
            fail(
                "holds no hyper-parameters to build the module from: the module that wrote it declared none \
                  (`#[lightning_module(hparams = field)]`); build the module yourself and use `load_from_checkpoint`"
                    .into(),
            )
        })?;
        let hparams: Self::Hparams = serde_json::from_value(hparams).map_err(|e| {
            fail(format!(
                "holds hyper-parameters of another shape than `{}`: {e}",
                std::any::type_name::<Self::Hparams>()
            ))
        })?;
        load_into(Self::from_hparams(hparams), path, checkpoint, options)
    }
}
