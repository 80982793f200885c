//! Callbacks: code that runs at the hooks of any module, before the module's own (Lightning's `Callback`).

use std::any::Any;

use tch::nn::VarStore;
use tch::Tensor;

use crate::checkpoint::Checkpoint;
use crate::context::{Ctx, Stage};
use crate::error::HookError;
use crate::module::LightningModule;
use crate::optim::Optimizer;
use crate::output::StepOutput;

/// What a callback hook returns: an error ends the run, naming the callback and the hook.
pub type CallbackResult = Result<(), HookError>;

/// The module, as a callback sees it: its variables, the hooks it defines, and a way back to its own type.
pub trait AnyModule {
    /// The module's variables.
    fn var_store(&self) -> &VarStore;
    /// The module's variables, mutably.
    fn var_store_mut(&mut self) -> &mut VarStore;
    /// The names of the hooks it defines.
    fn defined_hooks(&self) -> Vec<&'static str>;
    /// Its `example_input_array` run through its `forward` and recorded (`None` when it defines no
    /// `example_input_array`): what `ModelSummary` shows as each submodule's input and output shapes.
    fn layer_shapes(&mut self) -> Option<crate::Result<crate::LayerShapes>> {
        None
    }
    /// The module, to downcast to its concrete type.
    fn as_any(&self) -> &dyn Any;
    /// The module, mutably, to downcast to its concrete type.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<M: LightningModule + 'static> AnyModule for M {
    fn var_store(&self) -> &VarStore {
        LightningModule::var_store(self)
    }
    fn var_store_mut(&mut self) -> &mut VarStore {
        LightningModule::var_store_mut(self)
    }
    fn defined_hooks(&self) -> Vec<&'static str> {
        M::HOOKS.defined()
    }
    fn layer_shapes(&mut self) -> Option<crate::Result<crate::LayerShapes>> {
        let forward = M::HOOKS.example_input_array?;
        Some(forward(self).map_err(|source| crate::Error::Hook { hook: "example_input_array", source }))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// A callback. Every hook has a no-op default; the Trainer calls each callback's hook, in the order the
/// callbacks were added, before the module's hook of the same name. Batches arrive as `&dyn Any` (downcast to
/// the module's batch type), since one callback serves modules of any batch type.
///
/// ```
/// use lightning::{AnyModule, Callback, CallbackResult, Ctx};
///
/// #[derive(Default)]
/// struct CountEpochs(usize);
///
/// impl Callback for CountEpochs {
///     fn on_train_epoch_end(&mut self, _ctx: &mut Ctx, _module: &mut dyn AnyModule) -> CallbackResult {
///         self.0 += 1;
///         Ok(())
///     }
/// }
/// ```
#[allow(unused_variables)]
pub trait Callback: Send {
    /// The callback's name in messages; a callback the module configures replaces the Trainer's callback of
    /// the same name (Lightning replaces by type). The type's name by default.
    fn name(&self) -> String {
        short_type_name(std::any::type_name::<Self>())
    }

    /// The key of the callback's state in checkpoints (Lightning's `state_key`): its `name` unless two callbacks
    /// of one type must keep apart (several `ModelCheckpoint`s with different settings).
    fn state_key(&self) -> String {
        self.name()
    }

    /// This callback as a [`ModelCheckpoint`](crate::ModelCheckpoint), if it is one: where `ckpt_path = "best"` and
    /// `"last"` look for checkpoints.
    fn as_model_checkpoint(&self) -> Option<&crate::ModelCheckpoint> {
        None
    }

    /// The metric it monitors, if any (`ModelCheckpoint`'s and `EarlyStopping`'s `monitor`): `fit` checks before
    /// the first training step that the module logs it, when the module's and the callbacks' logged names are all
    /// known (see [`logged_names`](Self::logged_names)).
    fn monitor(&self) -> Option<String> {
        None
    }

    /// Every name it logs with `ctx.log` (`Some(vec![])` for none), or `None` when it cannot say (the default):
    /// with a callback that cannot say, `fit` leaves the check of monitored metrics to run time.
    fn logged_names(&self, ctx: &Ctx) -> Option<Vec<String>> {
        let _ = ctx;
        None
    }

    /// Whether it monitors metrics at the end of a training epoch (early stopping, checkpointing): such
    /// callbacks run their `on_train_epoch_end` after the module's, once the epoch's metrics are reduced.
    fn monitors(&self) -> bool {
        false
    }

    /// Whether it writes checkpoints (Lightning's `Checkpoint` callbacks: `ModelCheckpoint`,
    /// `OnExceptionCheckpoint`). Such callbacks run after every other callback, keeping their order among
    /// themselves, as Lightning orders them: the other callbacks' state they save is then the state after the hook
    /// that saves.
    fn saves_checkpoints(&self) -> bool {
        false
    }

    /// The callback's state, saved in checkpoints under its `name` (`None`: nothing to save).
    fn state_dict(&self) -> Option<serde_json::Value> {
        None
    }

    /// Restores what `state_dict` saved, after every callback's `on_load_checkpoint`.
    fn load_state_dict(&mut self, state: serde_json::Value) -> CallbackResult {
        Ok(())
    }

    /// At the start of every entry point, before the module's `setup`.
    fn setup(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule, stage: Stage) -> CallbackResult {
        Ok(())
    }
    /// Last of all in every entry point, before the module's `teardown`; also after an error.
    fn teardown(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule, stage: Stage) -> CallbackResult {
        Ok(())
    }
    /// At the start of `fit`.
    fn on_fit_start(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        Ok(())
    }
    /// At the end of `fit`.
    fn on_fit_end(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        Ok(())
    }
    /// Before the sanity check's validation run (callbacks only).
    fn on_sanity_check_start(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        Ok(())
    }
    /// After the sanity check's validation run (callbacks only).
    fn on_sanity_check_end(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        Ok(())
    }
    /// Before the first training epoch.
    fn on_train_start(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        Ok(())
    }
    /// After the last training epoch.
    fn on_train_end(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        Ok(())
    }
    /// At the start of each training epoch.
    fn on_train_epoch_start(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        Ok(())
    }
    /// At the end of each training epoch.
    fn on_train_epoch_end(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        Ok(())
    }
    /// Before each training batch (its return value cannot skip the epoch; only the module's can).
    fn on_train_batch_start(
        &mut self,
        ctx: &mut Ctx,
        module: &mut dyn AnyModule,
        batch: &dyn Any,
        batch_idx: usize,
    ) -> CallbackResult {
        Ok(())
    }
    /// After each training batch's optimization step.
    fn on_train_batch_end(
        &mut self,
        ctx: &mut Ctx,
        module: &mut dyn AnyModule,
        outputs: &StepOutput,
        batch: &dyn Any,
        batch_idx: usize,
    ) -> CallbackResult {
        Ok(())
    }
    /// At the start of each validation run.
    fn on_validation_start(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        Ok(())
    }
    /// At the end of each validation run.
    fn on_validation_end(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        Ok(())
    }
    /// Before the first validation batch.
    fn on_validation_epoch_start(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        Ok(())
    }
    /// After the last validation batch.
    fn on_validation_epoch_end(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        Ok(())
    }
    /// Before each `validation_step`.
    fn on_validation_batch_start(
        &mut self,
        ctx: &mut Ctx,
        module: &mut dyn AnyModule,
        batch: &dyn Any,
        batch_idx: usize,
        dataloader_idx: usize,
    ) -> CallbackResult {
        Ok(())
    }
    /// After each `validation_step`.
    fn on_validation_batch_end(
        &mut self,
        ctx: &mut Ctx,
        module: &mut dyn AnyModule,
        outputs: &StepOutput,
        batch: &dyn Any,
        batch_idx: usize,
        dataloader_idx: usize,
    ) -> CallbackResult {
        Ok(())
    }
    /// At the start of `test`.
    fn on_test_start(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        Ok(())
    }
    /// At the end of `test`.
    fn on_test_end(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        Ok(())
    }
    /// Before the first test batch.
    fn on_test_epoch_start(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        Ok(())
    }
    /// After the last test batch.
    fn on_test_epoch_end(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        Ok(())
    }
    /// Before each `test_step`.
    fn on_test_batch_start(
        &mut self,
        ctx: &mut Ctx,
        module: &mut dyn AnyModule,
        batch: &dyn Any,
        batch_idx: usize,
        dataloader_idx: usize,
    ) -> CallbackResult {
        Ok(())
    }
    /// After each `test_step`.
    fn on_test_batch_end(
        &mut self,
        ctx: &mut Ctx,
        module: &mut dyn AnyModule,
        outputs: &StepOutput,
        batch: &dyn Any,
        batch_idx: usize,
        dataloader_idx: usize,
    ) -> CallbackResult {
        Ok(())
    }
    /// At the start of `predict`.
    fn on_predict_start(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        Ok(())
    }
    /// At the end of `predict`.
    fn on_predict_end(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        Ok(())
    }
    /// Before the first prediction batch.
    fn on_predict_epoch_start(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        Ok(())
    }
    /// After the last prediction batch.
    fn on_predict_epoch_end(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        Ok(())
    }
    /// Before each `predict_step`.
    fn on_predict_batch_start(
        &mut self,
        ctx: &mut Ctx,
        module: &mut dyn AnyModule,
        batch: &dyn Any,
        batch_idx: usize,
        dataloader_idx: usize,
    ) -> CallbackResult {
        Ok(())
    }
    /// After each `predict_step`; `outputs` is the module's `Prediction`.
    fn on_predict_batch_end(
        &mut self,
        ctx: &mut Ctx,
        module: &mut dyn AnyModule,
        outputs: &dyn Any,
        batch: &dyn Any,
        batch_idx: usize,
        dataloader_idx: usize,
    ) -> CallbackResult {
        Ok(())
    }
    /// Before `backward`.
    fn on_before_backward(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule, loss: &Tensor) -> CallbackResult {
        Ok(())
    }
    /// After `backward`.
    fn on_after_backward(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        Ok(())
    }
    /// Before gradient clipping and the optimizer step.
    fn on_before_optimizer_step(
        &mut self,
        ctx: &mut Ctx,
        module: &mut dyn AnyModule,
        optimizer: &mut Optimizer,
    ) -> CallbackResult {
        Ok(())
    }
    /// Before the gradients are zeroed.
    fn on_before_zero_grad(
        &mut self,
        ctx: &mut Ctx,
        module: &mut dyn AnyModule,
        optimizer: &mut Optimizer,
    ) -> CallbackResult {
        Ok(())
    }
    /// When a checkpoint is written, before the module's `on_save_checkpoint`.
    fn on_save_checkpoint(
        &mut self,
        ctx: &mut Ctx,
        module: &mut dyn AnyModule,
        checkpoint: &mut Checkpoint,
    ) -> CallbackResult {
        Ok(())
    }
    /// When a checkpoint is restored, after the module's `on_load_checkpoint`.
    fn on_load_checkpoint(
        &mut self,
        ctx: &mut Ctx,
        module: &mut dyn AnyModule,
        checkpoint: &mut Checkpoint,
    ) -> CallbackResult {
        Ok(())
    }
    /// When the run ends with an error or a panic (callbacks only), before the teardown hooks.
    fn on_exception(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule, error: &crate::Error) -> CallbackResult {
        Ok(())
    }
}

impl crate::output::HookOutput<Vec<Box<dyn Callback>>> for Vec<Box<dyn Callback>> {
    #[inline]
    fn into_output(self) -> Vec<Box<dyn Callback>> {
        self
    }
}

/// A type's name without module paths, its generic arguments kept (`Saver<Tensor>`, not `Tensor>`): two
/// instances of one generic callback with different arguments get different names.
pub(crate) fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut segment = String::new();
    let flush = |segment: &mut String, out: &mut String| {
        out.push_str(segment.rsplit("::").next().unwrap_or(segment));
        segment.clear();
    };
    for c in full.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            segment.push(c);
        } else {
            flush(&mut segment, &mut out);
            out.push(c);
        }
    }
    flush(&mut segment, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::short_type_name;

    #[test]
    fn type_names_lose_their_paths_but_not_their_arguments() {
        assert_eq!(short_type_name("my_crate::callbacks::Saver"), "Saver");
        assert_eq!(short_type_name("my_crate::Saver<alloc::string::String>"), "Saver<String>");
        assert_eq!(short_type_name("a::Pair<a::b::X, (u8, &c::Y)>, [d::Z; 2]"), "Pair<X, (u8, &Y)>, [Z; 2]");
    }
}
