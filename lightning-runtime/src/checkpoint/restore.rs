//! Loading a checkpoint's weights into a model: strict by default, checked whole before anything changes.

use std::collections::HashMap;
use std::path::Path;

use tch::nn::VarStore;
use tch::Tensor;

use super::Checkpoint;
use crate::module::LightningModule;
use crate::trainer::dispatch::Dispatch;
use crate::{Error, Result};

/// How weights are loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// Whether a variable the model has but the checkpoint lacks, or the reverse, is an error (default `true`).
    /// Shape and dtype mismatches are errors either way.
    pub strict: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { strict: true }
    }
}

/// Copies the checkpoint's `model.*` tensors into `vs`. Every mismatch is listed in one error, and nothing is
/// copied unless everything fits.
pub(crate) fn load_weights(
    path: &Path,
    checkpoint: &Checkpoint,
    vs: &mut VarStore,
    options: LoadOptions,
) -> Result<()> {
    let saved: HashMap<&str, &Tensor> =
        checkpoint.tensors.iter().filter_map(|(name, t)| name.strip_prefix("model.").map(|n| (n, t))).collect();
    let variables = vs.variables();
    let mut problems = Vec::new();
    let mut missing: Vec<&str> = variables.keys().map(String::as_str).filter(|n| !saved.contains_key(n)).collect();
    let mut unexpected: Vec<&str> = saved.keys().copied().filter(|n| !variables.contains_key(*n)).collect();
    missing.sort_unstable();
    unexpected.sort_unstable();
    if options.strict && !missing.is_empty() {
        problems.push(format!("missing keys (in the model, not in the checkpoint): {}", missing.join(", ")));
    }
    if options.strict && !unexpected.is_empty() {
        problems.push(format!("unexpected keys (in the checkpoint, not in the model): {}", unexpected.join(", ")));
    }
    let mut names: Vec<&String> = variables.keys().collect();
    names.sort_unstable();
    for name in &names {
        let Some(tensor) = saved.get(name.as_str()) else { continue };
        let variable = &variables[*name];
        if tensor.size() != variable.size() {
            problems.push(format!(
                "shape mismatch for `{name}`: {:?} in the checkpoint, {:?} in the model",
                tensor.size(),
                variable.size()
            ));
        } else if tensor.kind() != variable.kind() {
            problems.push(format!(
                "dtype mismatch for `{name}`: {:?} in the checkpoint, {:?} in the model",
                tensor.kind(),
                variable.kind()
            ));
        }
    }
    if !problems.is_empty() {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            problem: format!("does not fit this model: {}", problems.join("; ")),
        });
    }
    tch::no_grad(|| -> Result<()> {
        for name in names {
            if let Some(tensor) = saved.get(name.as_str()) {
                let mut variable = variables[name].shallow_clone();
                variable.f_copy_(&tensor.f_to_device(variable.device())?)?;
            }
        }
        Ok(())
    })
}

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
