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
/// # use lightning_runtime::{LoadFromCheckpoint, LightningModule};
/// # fn demo<M: LightningModule + 'static>(fresh: M) -> lightning_runtime::Result<()> {
/// let model = fresh.load_from_checkpoint("checkpoints/last.ckpt")?;
/// # Ok(()) }
/// ```
pub trait LoadFromCheckpoint: LightningModule + Sized + 'static {
    /// This module with the checkpoint's weights, strictly.
    fn load_from_checkpoint(self, path: impl AsRef<Path>) -> Result<Self> {
        self.load_from_checkpoint_with(path, LoadOptions::default())
    }

    /// This module with the checkpoint's weights, with `options`.
    fn load_from_checkpoint_with(mut self, path: impl AsRef<Path>, options: LoadOptions) -> Result<Self> {
        let path = path.as_ref();
        let mut checkpoint = Checkpoint::read(path)?;
        let mut dispatch = Dispatch::standalone(self.var_store().device());
        dispatch.configure_sharded_model(&mut self)?;
        dispatch.configure_model(&mut self)?;
        dispatch.on_load_checkpoint_module(&mut self, &mut checkpoint)?;
        load_weights(path, &checkpoint, self.var_store_mut(), options)?;
        Ok(self)
    }
}

impl<M: LightningModule + 'static> LoadFromCheckpoint for M {}
