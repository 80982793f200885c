//! The hook catalogue: every hook a `#[lightning_module]` may define, the one source of truth.
//!
//! The signature checks (`check.rs`), the generated shims and hook table (`expand.rs`), the runtime's
//! `HookTable` struct (`table.rs`), the error messages and the rustdoc hook table (`HOOKS.md`, checked by a
//! test) are all read off [`HOOKS`], so they cannot drift apart.
//!
//! Every hook is a method. Its parameters are Lightning's, in Lightning's order, with Rust types; every hook
//! also takes an optional last parameter `ctx: &mut Ctx` (Lightning's `self.log` and `self.trainer`), except
//! `optimizer_step`, whose closure owns the context while it runs.

/// One hook.
pub struct Hook {
    pub name: &'static str,
    /// Which section of the hook reference it belongs to (read by the docs generator, `docs.rs`).
    #[cfg_attr(not(test), allow(dead_code))]
    pub group: Group,
    pub receiver: Receiver,
    pub params: &'static [Param],
    /// Whether the optional trailing `ctx: &mut Ctx` may be written.
    pub takes_ctx: bool,
    pub ret: Ret,
    /// When the runtime calls it.
    pub when: &'static str,
    /// A note for hooks Lightning has deprecated but still calls.
    pub deprecated: Option<&'static str>,
    /// Where `ctx.log` may be called in it (Lightning 2.x's `fx_validator.py`).
    pub log: Log,
    /// The marker trait a module that defines it implements (`HasTrainingStep`, ...), which the Trainer's entry
    /// points require.
    pub marker: Option<&'static str>,
}

impl Hook {
    /// The same hook, where logging follows `log`.
    const fn logs(self, log: Log) -> Hook {
        Hook { log, ..self }
    }

    /// The same hook, earning the marker trait `marker`.
    const fn marks(self, marker: &'static str) -> Hook {
        Hook { marker: Some(marker), ..self }
    }
}

/// The hook reference's sections, in the order the docs list them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Group {
    Step,
    Configure,
    Optimization,
    Model,
    Data,
    Checkpoint,
}

#[cfg_attr(not(test), allow(dead_code))]
impl Group {
    pub const ALL: [Group; 6] =
        [Group::Step, Group::Configure, Group::Optimization, Group::Model, Group::Data, Group::Checkpoint];

    pub fn title(self) -> &'static str {
        match self {
            Group::Step => "Steps",
            Group::Configure => "Configuration",
            Group::Optimization => "Optimization",
            Group::Model => "Model hooks",
            Group::Data => "Data hooks",
            Group::Checkpoint => "Checkpoint hooks",
        }
    }
}

/// The receivers a hook accepts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Receiver {
    /// `&self` or `&mut self`: the runtime holds the module mutably, so either works.
    Either,
    /// Only `&mut self`: the hook exists to change the module (or must hand it on mutably).
    Mut,
}

pub use crate::hook_types::{Param, Passing, Ret, Ty};

pub(crate) const fn p(name: &'static str, ty: Ty) -> Param {
    Param { name, ty, optional: false }
}

const fn opt(name: &'static str, ty: Ty) -> Param {
    Param { name, ty, optional: true }
}

const BATCH_IDX: Param = opt("batch_idx", Ty::Usize);
const DATALOADER_IDX: Param = opt("dataloader_idx", Ty::Usize);

pub(crate) const fn hook(
    name: &'static str,
    group: Group,
    params: &'static [Param],
    ret: Ret,
    when: &'static str,
) -> Hook {
    Hook {
        name,
        group,
        receiver: Receiver::Either,
        params,
        takes_ctx: true,
        ret,
        when,
        deprecated: None,
        log: Log::Never,
        marker: None,
    }
}

pub(crate) const fn mut_hook(
    name: &'static str,
    group: Group,
    params: &'static [Param],
    ret: Ret,
    when: &'static str,
) -> Hook {
    Hook { receiver: Receiver::Mut, ..hook(name, group, params, ret, when) }
}

use Group::*;
use Ty::*;

/// Every hook, in the order of the reference docs.
pub const HOOKS: &[Hook] = &[
    // Steps.
    hook(
        "training_step",
        Step,
        &[p("batch", BatchRef), BATCH_IDX],
        Ret::Output,
        "once per training batch; inside the optimizer closure in automatic optimization",
    )
    .logs(Log::StepDefault)
    .marks("HasTrainingStep"),
    hook(
        "validation_step",
        Step,
        &[p("batch", BatchRef), BATCH_IDX, DATALOADER_IDX],
        Ret::Output,
        "once per validation batch, under `no_grad` with `ctx.is_training() == false`",
    )
    .logs(Log::EpochDefault)
    .marks("HasValidationStep"),
    hook(
        "test_step",
        Step,
        &[p("batch", BatchRef), BATCH_IDX, DATALOADER_IDX],
        Ret::Output,
        "once per test batch, under `no_grad` with `ctx.is_training() == false`",
    )
    .logs(Log::EpochDefault)
    .marks("HasTestStep"),
    hook(
        "predict_step",
        Step,
        &[p("batch", BatchRef), BATCH_IDX, DATALOADER_IDX],
        Ret::Prediction,
        "once per prediction batch, under `no_grad` with `ctx.is_training() == false`",
    )
    .marks("HasPredictStep"),
    // Configuration.
    hook("configure_callbacks", Configure, &[], Ret::Callbacks, "first of all, in every entry point"),
    Hook {
        takes_ctx: false,
        ..hook(
            "example_input_array",
            Configure,
            &[],
            Ret::ExampleInput,
            "by `ModelSummary` when `fit` starts (Lightning's property of that name): `forward` runs on it once",
        )
    },
    hook(
        "configure_optimizers",
        Configure,
        &[],
        Ret::Optimizers,
        "in `fit`, after `configure_model` and the move to the device, before `on_fit_start`",
    )
    .marks("HasConfigureOptimizers"),
    mut_hook(
        "configure_model",
        Configure,
        &[],
        Ret::Unit,
        "after `setup`, before the move to the device, in every entry point; must be idempotent",
    ),
    Hook {
        deprecated: Some("`configure_sharded_model` is deprecated since Lightning 2.1: rename it `configure_model`"),
        ..mut_hook(
            "configure_sharded_model",
            Configure,
            &[],
            Ret::Unit,
            "deprecated alias of `configure_model`, called just before it",
        )
    },
    // Optimization.
    Hook {
        takes_ctx: false,
        ..mut_hook(
            "optimizer_step",
            Optimization,
            &[p("epoch", Usize), p("batch_idx", Usize), p("optimizer", Optimizer), p("optimizer_closure", Closure)],
            Ret::Unit,
            "automatic optimization, once per stepping batch; must run the closure (`optimizer.step(closure, self)`)",
        )
    }
    .logs(Log::StepDefault),
    hook(
        "optimizer_zero_grad",
        Optimization,
        &[p("epoch", Usize), p("batch_idx", Usize), p("optimizer", Optimizer)],
        Ret::Unit,
        "inside the closure after `on_before_zero_grad`, on the first batch of an accumulation window",
    )
    .logs(Log::StepDefault),
    hook(
        "backward",
        Optimization,
        &[p("loss", TensorRef)],
        Ret::Unit,
        "between `on_before_backward` and `on_after_backward`; the default is `loss.backward()`",
    )
    .logs(Log::StepDefault),
    hook(
        "configure_gradient_clipping",
        Optimization,
        &[
            p("optimizer", Optimizer),
            opt("gradient_clip_val", OptionF64),
            opt("gradient_clip_algorithm", ClipAlgorithm),
        ],
        Ret::Unit,
        "after `on_before_optimizer_step`, with the Trainer's clipping settings; the default clips with them",
    )
    .logs(Log::StepDefault),
    hook(
        "lr_scheduler_step",
        Optimization,
        &[p("scheduler", Scheduler), opt("metric", OptionF64)],
        Ret::Unit,
        "when a scheduler's interval comes round; the default steps it",
    ),
    // ModelHooks.
    hook("on_fit_start", Model, &[], Ret::Unit, "at the start of `fit`, after `configure_optimizers`"),
    hook("on_fit_end", Model, &[], Ret::Unit, "at the end of `fit`, before `teardown`"),
    hook("on_train_start", Model, &[], Ret::Unit, "after the sanity check, before the first training epoch")
        .logs(Log::EpochOnly),
    hook("on_train_end", Model, &[], Ret::Unit, "after the last training epoch"),
    hook("on_validation_start", Model, &[], Ret::Unit, "at the start of each validation run").logs(Log::EpochOnly),
    hook("on_validation_end", Model, &[], Ret::Unit, "at the end of each validation run"),
    hook("on_test_start", Model, &[], Ret::Unit, "at the start of `test`").logs(Log::EpochOnly),
    hook("on_test_end", Model, &[], Ret::Unit, "at the end of `test`"),
    hook("on_predict_start", Model, &[], Ret::Unit, "at the start of `predict`"),
    hook("on_predict_end", Model, &[], Ret::Unit, "at the end of `predict`"),
    hook(
        "on_train_batch_start",
        Model,
        &[p("batch", BatchRef), BATCH_IDX],
        Ret::Control,
        "before each training batch, after its transfer to the device",
    )
    .logs(Log::StepDefault),
    hook(
        "on_train_batch_end",
        Model,
        &[p("outputs", OutputRef), p("batch", BatchRef), BATCH_IDX],
        Ret::Unit,
        "after each training batch's optimization step",
    )
    .logs(Log::StepDefault),
    hook(
        "on_validation_batch_start",
        Model,
        &[p("batch", BatchRef), BATCH_IDX, DATALOADER_IDX],
        Ret::Unit,
        "before each `validation_step`",
    )
    .logs(Log::EpochDefault),
    hook(
        "on_validation_batch_end",
        Model,
        &[p("outputs", OutputRef), p("batch", BatchRef), BATCH_IDX, DATALOADER_IDX],
        Ret::Unit,
        "after each `validation_step`",
    )
    .logs(Log::EpochDefault),
    hook(
        "on_test_batch_start",
        Model,
        &[p("batch", BatchRef), BATCH_IDX, DATALOADER_IDX],
        Ret::Unit,
        "before each `test_step`",
    )
    .logs(Log::EpochDefault),
    hook(
        "on_test_batch_end",
        Model,
        &[p("outputs", OutputRef), p("batch", BatchRef), BATCH_IDX, DATALOADER_IDX],
        Ret::Unit,
        "after each `test_step`",
    )
    .logs(Log::EpochDefault),
    hook(
        "on_predict_batch_start",
        Model,
        &[p("batch", BatchRef), BATCH_IDX, DATALOADER_IDX],
        Ret::Unit,
        "before each `predict_step`",
    ),
    hook(
        "on_predict_batch_end",
        Model,
        &[p("outputs", PredictionRef), p("batch", BatchRef), BATCH_IDX, DATALOADER_IDX],
        Ret::Unit,
        "after each `predict_step`",
    ),
    hook(
        "on_validation_model_zero_grad",
        Model,
        &[],
        Ret::Unit,
        "in `fit` only, just before an in-training validation run; the default zeroes the gradients",
    ),
    hook(
        "on_validation_model_eval",
        Model,
        &[],
        Ret::Unit,
        "at the start of a validation run; the default switches to eval mode",
    ),
    hook(
        "on_validation_model_train",
        Model,
        &[],
        Ret::Unit,
        "at the end of a validation run, only if defined; otherwise the previous mode is restored",
    ),
    hook("on_test_model_eval", Model, &[], Ret::Unit, "at the start of `test`; the default switches to eval mode"),
    hook(
        "on_test_model_train",
        Model,
        &[],
        Ret::Unit,
        "at the end of `test`, only if defined; otherwise the previous mode is restored",
    ),
    hook(
        "on_predict_model_eval",
        Model,
        &[],
        Ret::Unit,
        "at the start of `predict`; the default switches to eval mode",
    ),
    hook("on_train_epoch_start", Model, &[], Ret::Unit, "at the start of each training epoch").logs(Log::EpochOnly),
    hook(
        "on_train_epoch_end",
        Model,
        &[],
        Ret::Unit,
        "at the end of each training epoch, after its validation run, before checkpointing callbacks",
    )
    .logs(Log::EpochOnly),
    hook("on_validation_epoch_start", Model, &[], Ret::Unit, "before the first validation batch").logs(Log::EpochOnly),
    hook("on_validation_epoch_end", Model, &[], Ret::Unit, "after the last validation batch").logs(Log::EpochOnly),
    hook("on_test_epoch_start", Model, &[], Ret::Unit, "before the first test batch").logs(Log::EpochOnly),
    hook("on_test_epoch_end", Model, &[], Ret::Unit, "after the last test batch").logs(Log::EpochOnly),
    hook("on_predict_epoch_start", Model, &[], Ret::Unit, "before the first prediction batch"),
    hook("on_predict_epoch_end", Model, &[], Ret::Unit, "after the last prediction batch"),
    hook(
        "on_before_zero_grad",
        Model,
        &[p("optimizer", Optimizer)],
        Ret::Unit,
        "before `optimizer_zero_grad`, after `training_step`",
    )
    .logs(Log::StepDefault),
    hook("on_before_backward", Model, &[p("loss", TensorRef)], Ret::Unit, "before `backward`").logs(Log::StepDefault),
    hook("on_after_backward", Model, &[], Ret::Unit, "after `backward`, before the optimizer step")
        .logs(Log::StepDefault),
    hook(
        "on_before_optimizer_step",
        Model,
        &[p("optimizer", Optimizer)],
        Ret::Unit,
        "after the closure ran, before gradient clipping and the optimizer step",
    )
    .logs(Log::StepDefault),
    // DataHooks.
    hook("prepare_data", Data, &[], Ret::Unit, "once per node before `setup`, to download or write data"),
    hook("setup", Data, &[p("stage", Stage)], Ret::Unit, "at the start of every entry point, in every process"),
    hook("teardown", Data, &[p("stage", Stage)], Ret::Unit, "last of all, in every entry point, also after an error"),
    hook("train_dataloader", Data, &[], Ret::Loader, "in `fit` when no training data was passed"),
    hook("val_dataloader", Data, &[], Ret::Loaders, "in `fit` and `validate` when no validation data was passed"),
    hook("test_dataloader", Data, &[], Ret::Loaders, "in `test` when no data was passed"),
    hook("predict_dataloader", Data, &[], Ret::Loaders, "in `predict` when no data was passed"),
    hook(
        "transfer_batch_to_device",
        Data,
        &[p("batch", Batch), p("device", Device), DATALOADER_IDX],
        Ret::Batch,
        "for every batch; the default moves every tensor to the device",
    ),
    hook(
        "on_before_batch_transfer",
        Data,
        &[p("batch", Batch), DATALOADER_IDX],
        Ret::Batch,
        "for every batch, before `transfer_batch_to_device`",
    ),
    hook(
        "on_after_batch_transfer",
        Data,
        &[p("batch", Batch), DATALOADER_IDX],
        Ret::Batch,
        "for every batch, after `transfer_batch_to_device`",
    ),
    // CheckpointHooks.
    hook(
        "on_save_checkpoint",
        Group::Checkpoint,
        &[p("checkpoint", Ty::Checkpoint)],
        Ret::Unit,
        "when a checkpoint is written, after the callbacks' state; add your own entries",
    ),
    mut_hook(
        "on_load_checkpoint",
        Group::Checkpoint,
        &[p("checkpoint", Ty::Checkpoint)],
        Ret::Unit,
        "when a checkpoint is restored, before the weights are loaded",
    ),
];

/// The hook called `name`, if there is one.
pub fn find(name: &str) -> Option<&'static Hook> {
    HOOKS.iter().find(|hook| hook.name == name)
}

impl Hook {
    /// The full signature, as messages and docs print it.
    pub fn signature(&self) -> String {
        let mut parts = vec!["&mut self".to_string()];
        parts.extend(self.params.iter().map(|param| format!("{}: {}", param.name, param.ty.display())));
        if self.takes_ctx {
            parts.push("ctx: &mut Ctx".to_string());
        }
        let ret = match self.ret {
            Ret::Unit => String::new(),
            ret => format!(" -> {}", ret.display()),
        };
        format!("fn {}({}){ret}", self.name, parts.join(", "))
    }

    /// The parameters that must be written.
    pub fn required_params(&self) -> usize {
        self.params.iter().take_while(|param| !param.optional).count()
    }

    /// Whether the hook takes the batch, so that the batch type can be read off it.
    pub fn batch_param(&self) -> Option<usize> {
        self.params.iter().position(|param| matches!(param.ty, Ty::BatchRef | Ty::Batch))
    }
}

/// Where `ctx.log` may be called, per hook: Lightning's `_FxValidator` table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Log {
    /// Logging raises an error.
    Never,
    /// `on_step` and `on_epoch` are both allowed; by default values are logged per step.
    StepDefault,
    /// `on_step` and `on_epoch` are both allowed; by default values are reduced over the epoch.
    EpochDefault,
    /// Only `on_epoch` is allowed.
    EpochOnly,
}
