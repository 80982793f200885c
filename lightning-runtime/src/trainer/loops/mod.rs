//! The loops, which own the order of hooks (Lightning's `loops/`): every sequence of hook calls is written here,
//! and each call goes through the dispatcher (`call/`).
//!
//! | file | loop |
//! |---|---|
//! | `fit.rs` | `fit`: the opening hooks, the sanity check, the epochs, when to stop (`_FitLoop`) |
//! | `training_epoch.rs` | the batches of one training epoch, validation inside it (`_TrainingEpochLoop`) |
//! | `optimization/automatic.rs` | one automatic optimization step: the closure and the hooks around backward and the optimizer step (`_AutomaticOptimization`) |
//! | `optimization/manual.rs` | one manual optimization step (`_ManualOptimization`) |
//! | `optimization/forward_only.rs` | a batch of a forward-only epoch: `training_step` without gradients (Lightning's `_skip_backward`) |
//! | `evaluation.rs` | validation and test (`_EvaluationLoop`) |
//! | `prediction.rs` | predict (`_PredictionLoop`) |
//! | `fetch.rs` | a batch from the loader to the device: the fetch and the three batch-transfer hooks |

mod evaluation;
mod fetch;
mod fit;
mod optimization;
mod prediction;
mod progress;
mod training_epoch;

pub(crate) use evaluation::Evaluation;
pub(crate) use fetch::{batches, loader_total, stage_total};
pub use optimization::OptimizerClosure;
pub(crate) use progress::RunProgress;

use tch::Device;

use crate::module::LightningModule;
use crate::Result;

/// Clears every gradient of the module's variables (Lightning's `module.zero_grad()`, which sets them to None).
pub(crate) fn zero_grad<M: LightningModule>(module: &mut M) -> Result<()> {
    crate::kernels::set_grads_to_none(&module.var_store().trainable_variables())
}

/// Moves the module's variables to `device`.
pub(crate) fn to_device<M: LightningModule>(module: &mut M, device: Device) {
    module.var_store_mut().set_device(device);
}
