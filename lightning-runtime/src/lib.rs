//! The runtime of Lightning for Rust: the traits `#[lightning_module]` implements, the hook table it fills in,
//! and the types hooks take and return. Use it through the `lightning` crate.

mod callback;
mod callbacks;
mod checkpoint;
mod cli;
mod context;
mod context_loggers;
mod data;
mod datamodule;
pub mod distributed;
mod error;
mod json_float;
mod kernels;
mod layer_shapes;
mod log_call;
pub mod loggers;
mod metrics;
mod module;
mod optim;
mod output;
mod precision;
mod submodule;
mod trainer;
mod tuner;
pub mod vision;

pub use callback::{AnyModule, Callback, CallbackResult};
pub use callbacks::{Annealing, EMAWeightAveraging, StochasticWeightAveraging, WeightAveraging};
pub use callbacks::{
    EarlyStopping, EarlyStoppingHandle, LearningRateMonitor, ModelCheckpoint, ModelCheckpointHandle, ModelSummary,
    MonitorMode, OnExceptionCheckpoint, PredictionWriter, ProgressBar, SummaryRow, TensorFiles, WriteInterval,
    WritePredictions,
};
pub use checkpoint::{Checkpoint, LoadOptions, FORMAT_VERSION};
pub use cli::{
    CliConfig, CliData, CliInvocation, CliOutcome, FastDevRun, LightningCli, LimitValue, Subcommand, TrainerConfig,
};
pub use context::{Ctx, LogValue, Stage};
pub use data::{Batch, BatchSource, DataLoader, DataSource, Dataset, Loader, Loaders};
pub use datamodule::{DataHookTable, LightningDataModule};
pub use distributed::{Ddp, ProcessGroup, ReduceOp};
pub use error::{Error, HookError, Result};
pub use layer_shapes::{shape_text, ExampleInput, ExampleOutput, LayerShapes, OpShapes};
pub use log_call::{LogCall, LogDict};
pub use loggers::{Logger, LoggerAny};
pub use metrics::ReduceFx;
pub use module::{
    assert_fit, defined_hooks, Fit, HasConfigureOptimizers, HasPredictStep, HasTestStep, HasTrainingStep,
    HasValidationStep, HookTable, LightningModule, HOOK_NAMES,
};
pub use optim::{
    GradClipAlgorithm, Interval, LrScheduler, Optimizer, Optimizers, ParamGroup, Params, Plateau, StepInfo, UpdateRule,
};
pub use output::{BatchControl, HookOutput, StepOutput};
pub use precision::{Precision, ScalerState};
pub use serde_json;
pub use submodule::{SubPath, Submodule, VarStoreExt};
pub use tch;
pub use trainer::{
    Accelerator, CkptPath, FromHparams, Limit, LoadFromCheckpoint, LoggerChoice, NonFinite, OptimizerClosure,
    SimpleProfiler, SingleDevice, Strategy, Trainer,
};
pub use tuner::{is_out_of_memory, BatchSizeMode, LrFind, LrFinder, LrMode, ScaleBatchSize, Tuner};

/// What the code `#[lightning_module]` generates names, through one path that does not change with the
/// crate's version. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::context::Logged;
    pub use crate::layer_shapes::{forward_example, LayerShapes};
    pub use crate::Error;
    pub use crate::{
        Batch, BatchControl, Callback, Checkpoint, Ctx, GradClipAlgorithm, HasConfigureOptimizers, HasPredictStep,
        HasTestStep, HasTrainingStep, HasValidationStep, HookError, HookOutput, HookTable, LightningModule, Loader,
        Loaders, LrScheduler, Optimizer, OptimizerClosure, Optimizers, Stage, StepOutput,
    };
    pub use serde_json::Value as JsonValue;
    pub use tch::nn::VarStore;
    pub use tch::{Device, Tensor};

    /// Turns the error of a `Result`-returning hook into the runtime's.
    #[inline]
    pub fn hook_error<E: Into<HookError>>(error: E) -> HookError {
        error.into()
    }

    /// The module's hyper-parameters as JSON (`#[lightning_module(hparams = field)]`).
    #[inline]
    pub fn hparams_json<T: serde::Serialize>(value: &T) -> Option<serde_json::Value> {
        serde_json::to_value(value).ok()
    }

    /// What `#[lightning_datamodule]` generates names: the same as a module's, where `LightningModule` is the
    /// data-module trait (so that the catalogue's `<Self as LightningModule>::Batch` is the data module's).
    pub mod datamodule {
        pub use super::*;
        pub use crate::datamodule::{DataHookTable, LightningDataModule as LightningModule};
    }

    /// Using it raises a deprecation warning at the user's `configure_sharded_model`.
    #[deprecated(note = "`configure_sharded_model` is deprecated since Lightning 2.1: rename it `configure_model`")]
    pub const CONFIGURE_SHARDED_MODEL: () = ();
}
