//! Loading a checkpoint's weights into a model: strict by default, checked whole before anything changes.
//! (`LoadFromCheckpoint`, which runs the module's hooks around it, is the Trainer's: `trainer/load.rs`.)

use std::collections::HashMap;
use std::path::Path;

use tch::nn::VarStore;
use tch::Tensor;

use super::Checkpoint;
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
