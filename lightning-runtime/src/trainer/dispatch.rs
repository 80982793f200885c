//! The one place through which every hook is called (Lightning's `trainer/call.py`): each callback's hook
//! first, in order, then the module's through its hook table. Each call records which hook is running (for
//! logging rules and panic messages), wraps errors with the hook's name, and turns a forbidden `ctx.log` into
//! an error. Absent module hooks cost one `Option` test on a constant.

use std::any::Any;

use tch::{Device, Tensor};

use super::checkpoint_writer::CheckpointWriter;
use super::closure::OptimizerClosure;
use crate::callback::{AnyModule, Callback, CallbackResult};
use crate::checkpoint::Checkpoint;
use crate::context::{Ctx, HookInfo, Stage};
use crate::error::HookError;
use crate::loggers::Logger;
use crate::module::{hook_info as info, LightningModule};
use crate::optim::{GradClipAlgorithm, LrScheduler, Optimizer, Optimizers};
use crate::output::{BatchControl, StepOutput};
use crate::{Batch, Error, Loader, Result};

/// The callbacks, the context and the loggers of one run.
pub(crate) struct Dispatch {
    pub callbacks: Vec<Box<dyn Callback>>,
    pub ctx: Ctx,
    pub loggers: Vec<Box<dyn Logger>>,
    /// Writes checkpoints behind the training thread; `None`: written synchronously.
    pub writer: Option<CheckpointWriter>,
    /// While set, checkpoints hooks ask for wait (see `on_train_epoch_end`).
    saves_deferred: bool,
}

impl Dispatch {
    /// A dispatcher with no callbacks and no loggers, for hooks called outside a Trainer run.
    pub fn standalone(device: Device) -> Self {
        Dispatch::new(Vec::new(), Ctx::new(device), Vec::new(), None)
    }

    pub fn new(
        callbacks: Vec<Box<dyn Callback>>,
        ctx: Ctx,
        loggers: Vec<Box<dyn Logger>>,
        writer: Option<CheckpointWriter>,
    ) -> Self {
        Dispatch { callbacks, ctx, loggers, writer, saves_deferred: false }
    }

    /// Runs `f` with `section` recorded as what is running (a loader fetching a batch, say), so that a panic in it
    /// is reported under its name; the previous one is restored after.
    #[inline]
    pub fn section<R>(&mut self, section: HookInfo, f: impl FnOnce() -> R) -> R {
        let outer = std::mem::replace(&mut self.ctx.hook, section);
        let value = f();
        self.ctx.hook = outer;
        value
    }

    /// Runs `f` for every callback (skipping monitoring ones when `monitors` is `Some(false)`, or only them
    /// when `Some(true)`).
    fn each_callback_where(
        &mut self,
        hook: HookInfo,
        module: &mut dyn AnyModule,
        monitors: Option<bool>,
        mut f: impl FnMut(&mut dyn Callback, &mut Ctx, &mut dyn AnyModule) -> CallbackResult,
    ) -> Result<()> {
        let outer = self.ctx.hook;
        for callback in self.callbacks.iter_mut() {
            if monitors.is_some_and(|wanted| callback.monitors() != wanted) {
                continue;
            }
            self.ctx.hook = hook;
            f(callback.as_mut(), &mut self.ctx, module).map_err(|source| Error::Callback {
                callback: callback.name(),
                hook: hook.name,
                source,
            })?;
            take_log_error(&mut self.ctx)?;
            // Restored after each call (not left set on error or panic, which report the hook themselves), so that
            // a hook called from inside another one leaves the outer one recorded.
            self.ctx.hook = outer;
        }
        Ok(())
    }

    fn each_callback<M: LightningModule>(
        &mut self,
        hook: HookInfo,
        module: &mut M,
        f: impl FnMut(&mut dyn Callback, &mut Ctx, &mut dyn AnyModule) -> CallbackResult,
    ) -> Result<()> {
        if self.callbacks.is_empty() {
            return Ok(());
        }
        self.each_callback_where(hook, module, None, f)?;
        self.flush_saves(module)
    }

    /// Calls the module's hook `hook` if it defines it; `None` if it does not.
    #[inline]
    fn module<M: LightningModule, F: Copy, R>(
        &mut self,
        hook: HookInfo,
        module: &mut M,
        pointer: Option<F>,
        call: impl FnOnce(F, &mut M, &mut Ctx) -> std::result::Result<R, HookError>,
    ) -> Result<Option<R>> {
        let Some(f) = pointer else { return Ok(None) };
        let outer = std::mem::replace(&mut self.ctx.hook, hook);
        let value = call(f, module, &mut self.ctx).map_err(|source| Error::Hook { hook: hook.name, source })?;
        take_log_error(&mut self.ctx)?;
        self.ctx.hook = outer;
        self.flush_saves(module)?;
        Ok(Some(value))
    }

    /// Writes the checkpoints hooks asked for (`ctx.save_checkpoint`), once the asking hook has returned on every
    /// callback (or on the module).
    #[inline]
    fn flush_saves<M: LightningModule>(&mut self, module: &mut M) -> Result<()> {
        if self.ctx.pending_saves.is_empty() || self.saves_deferred {
            return Ok(());
        }
        self.write_pending_checkpoints(module)
    }

    /// The values loggers have not seen, sent now (a device sync, so only every `log_every_n_steps`).
    pub fn flush_step_logs(&mut self) -> Result<()> {
        if self.loggers.is_empty() || !self.ctx.metrics.has_unsent_steps() {
            return Ok(());
        }
        let mut values = self.ctx.metrics.take_step_values();
        // Lightning adds the epoch to every set of logged values.
        values.push(("epoch".to_string(), self.ctx.current_epoch as f64));
        let step = self.ctx.global_step;
        for logger in &mut self.loggers {
            logger.log_metrics(&values, step)?;
        }
        Ok(())
    }

    /// Sends an epoch's reduced values to the loggers.
    pub fn send_epoch_logs(&mut self, values: Vec<(String, f64)>) -> Result<()> {
        if values.is_empty() || self.ctx.sanity_checking {
            return Ok(());
        }
        let mut values = values;
        values.push(("epoch".to_string(), self.ctx.current_epoch as f64));
        let step = self.ctx.global_step;
        for logger in &mut self.loggers {
            logger.log_metrics(&values, step)?;
        }
        Ok(())
    }
}

fn take_log_error(ctx: &mut Ctx) -> Result<()> {
    match ctx.log_error.take() {
        Some(message) => Err(Error::Log(message)),
        None => Ok(()),
    }
}

/// Hooks every callback and the module share, with no arguments but the context.
macro_rules! paired {
    ($($name:ident),* $(,)?) => {$(
        pub fn $name<M: LightningModule + 'static>(&mut self, module: &mut M) -> Result<()> {
            self.each_callback(info::$name, module, |cb, ctx, m| cb.$name(ctx, m))?;
            self.module(info::$name, module, M::HOOKS.$name, |f, m, ctx| f(m, ctx)).map(drop)
        }
    )*};
}

/// Module hooks with no callback counterpart and no default behaviour.
macro_rules! module_only {
    ($($name:ident),* $(,)?) => {$(
        pub fn $name<M: LightningModule>(&mut self, module: &mut M) -> Result<()> {
            self.module(info::$name, module, M::HOOKS.$name, |f, m, ctx| f(m, ctx)).map(drop)
        }
    )*};
}

/// Hooks only callbacks have.
macro_rules! callback_only {
    ($($name:ident),* $(,)?) => {$(
        pub fn $name<M: LightningModule + 'static>(&mut self, module: &mut M) -> Result<()> {
            self.each_callback(HookInfo::callback_only(stringify!($name)), module, |cb, ctx, m| cb.$name(ctx, m))
        }
    )*};
}

impl Dispatch {
    paired!(
        on_fit_start,
        on_fit_end,
        on_train_start,
        on_train_end,
        on_train_epoch_start,
        on_validation_start,
        on_validation_end,
        on_validation_epoch_start,
        on_validation_epoch_end,
        on_test_start,
        on_test_end,
        on_test_epoch_start,
        on_test_epoch_end,
        on_predict_start,
        on_predict_end,
        on_predict_epoch_start,
        on_predict_epoch_end,
        on_after_backward,
    );
    module_only!(
        prepare_data,
        configure_sharded_model,
        configure_model,
        on_validation_model_train,
        on_test_model_train
    );
    callback_only!(on_sanity_check_start, on_sanity_check_end);

    /// `on_train_epoch_end`: non-monitoring callbacks, the module, then (once the epoch's metrics are
    /// reduced by `between`) the monitoring callbacks, as Lightning 2.x orders them.
    ///
    /// A checkpoint asked for anywhere in it is taken when all of it has run: the epoch has ended for every
    /// callback (early stopping's patience, the checkpoint callbacks' top-k) and for the module, so a run resumed
    /// from it starts the next epoch exactly as the uninterrupted run does, whoever asked. (Lightning takes it
    /// at once, with the state of the callbacks that have not run yet one epoch behind.)
    pub fn on_train_epoch_end<M: LightningModule + 'static>(
        &mut self,
        module: &mut M,
        between: impl FnOnce(&mut Self) -> Result<()>,
    ) -> Result<()> {
        let hook = info::on_train_epoch_end;
        self.saves_deferred = true;
        let ran = (|| {
            self.each_callback_where(hook, module, Some(false), |cb, ctx, m| cb.on_train_epoch_end(ctx, m))?;
            self.module(hook, module, M::HOOKS.on_train_epoch_end, |f, m, ctx| f(m, ctx))?;
            between(self)?;
            self.each_callback_where(hook, module, Some(true), |cb, ctx, m| cb.on_train_epoch_end(ctx, m))
        })();
        self.saves_deferred = false;
        ran?;
        self.flush_saves(module)
    }

    /// Every callback's `state_dict`, then `Callback.on_save_checkpoint`, then the module's
    /// `on_save_checkpoint`, in Lightning's order.
    pub fn on_save_checkpoint<M: LightningModule>(
        &mut self,
        module: &mut M,
        checkpoint: &mut Checkpoint,
    ) -> Result<()> {
        for callback in &self.callbacks {
            if let Some(state) = callback.state_dict() {
                checkpoint.meta.callbacks.insert(callback.state_key(), state);
            }
        }
        self.each_callback_where(info::on_save_checkpoint, module, None, |cb, ctx, m| {
            cb.on_save_checkpoint(ctx, m, checkpoint)
        })?;
        self.module(info::on_save_checkpoint, module, M::HOOKS.on_save_checkpoint, |f, m, ctx| f(m, checkpoint, ctx))
            .map(drop)
    }

    /// The module's `on_load_checkpoint` (before the weights are loaded).
    pub fn on_load_checkpoint_module<M: LightningModule>(
        &mut self,
        module: &mut M,
        checkpoint: &mut Checkpoint,
    ) -> Result<()> {
        self.module(info::on_load_checkpoint, module, M::HOOKS.on_load_checkpoint, |f, m, ctx| f(m, checkpoint, ctx))
            .map(drop)
    }

    /// Every callback's `on_load_checkpoint`, then each one's `load_state_dict` with its saved state.
    pub fn on_load_checkpoint_callbacks<M: LightningModule>(
        &mut self,
        module: &mut M,
        checkpoint: &mut Checkpoint,
    ) -> Result<()> {
        self.each_callback_where(info::on_load_checkpoint, module, None, |cb, ctx, m| {
            cb.on_load_checkpoint(ctx, m, checkpoint)
        })?;
        for callback in self.callbacks.iter_mut() {
            if let Some(state) = checkpoint.meta.callbacks.get(&callback.state_key()) {
                let name = callback.name();
                callback.load_state_dict(state.clone()).map_err(|source| Error::Callback {
                    callback: name,
                    hook: "load_state_dict",
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// The module's `configure_callbacks`, then Lightning's callback order: the checkpointing callbacks after
    /// every other, so that the state of the others they save is the one after the hook that saves.
    pub fn configure_callbacks<M: LightningModule>(&mut self, module: &mut M) -> Result<()> {
        let added =
            self.module(info::configure_callbacks, module, M::HOOKS.configure_callbacks, |f, m, ctx| f(m, ctx))?;
        // A callback the module configures replaces the Trainer's callback of the same type.
        for callback in added.into_iter().flatten() {
            let name = callback.name();
            self.callbacks.retain(|existing| existing.name() != name);
            self.callbacks.push(callback);
        }
        // Stable: the order among the checkpointing callbacks, and among the others, is kept.
        self.callbacks.sort_by_key(|callback| callback.saves_checkpoints());
        Ok(())
    }

    pub fn setup<M: LightningModule + 'static>(&mut self, module: &mut M, stage: Stage) -> Result<()> {
        self.each_callback(info::setup, module, |cb, ctx, m| cb.setup(ctx, m, stage))?;
        self.module(info::setup, module, M::HOOKS.setup, |f, m, ctx| f(m, stage, ctx)).map(drop)
    }

    pub fn teardown<M: LightningModule + 'static>(&mut self, module: &mut M, stage: Stage) -> Result<()> {
        self.each_callback(info::teardown, module, |cb, ctx, m| cb.teardown(ctx, m, stage))?;
        self.module(info::teardown, module, M::HOOKS.teardown, |f, m, ctx| f(m, stage, ctx)).map(drop)
    }

    pub fn on_exception<M: LightningModule + 'static>(&mut self, module: &mut M, error: &Error) -> Result<()> {
        self.each_callback(HookInfo::callback_only("on_exception"), module, |cb, ctx, m| cb.on_exception(ctx, m, error))
    }

    pub fn configure_optimizers<M: LightningModule>(&mut self, module: &mut M) -> Result<Optimizers> {
        let optimizers =
            self.module(info::configure_optimizers, module, M::HOOKS.configure_optimizers, |f, m, ctx| f(m, ctx))?;
        Ok(optimizers.unwrap_or_default())
    }

    /// A loader from the module's `*_dataloader` hook, if it defines it.
    pub fn dataloader<M: LightningModule>(
        &mut self,
        module: &mut M,
        which: Stage,
        for_training: bool,
    ) -> Result<Option<Loader<M::Batch>>> {
        let hooks = &M::HOOKS;
        match (which, for_training) {
            (Stage::Fit, true) => {
                self.module(info::train_dataloader, module, hooks.train_dataloader, |f, m, ctx| f(m, ctx))
            }
            (Stage::Fit | Stage::Validate, _) => {
                self.module(info::val_dataloader, module, hooks.val_dataloader, |f, m, ctx| f(m, ctx))
            }
            (Stage::Test, _) => {
                self.module(info::test_dataloader, module, hooks.test_dataloader, |f, m, ctx| f(m, ctx))
            }
            (Stage::Predict, _) => {
                self.module(info::predict_dataloader, module, hooks.predict_dataloader, |f, m, ctx| f(m, ctx))
            }
        }
    }

    /// The three batch-transfer hooks; the default transfer moves every tensor to the device.
    pub fn transfer_batch<M: LightningModule>(
        &mut self,
        module: &mut M,
        batch: M::Batch,
        dataloader_idx: usize,
    ) -> Result<M::Batch> {
        let hooks = &M::HOOKS;
        let device = self.ctx.device;
        let batch = match hooks.on_before_batch_transfer {
            Some(f) => self
                .module(info::on_before_batch_transfer, module, Some(f), |f, m, ctx| f(m, batch, dataloader_idx, ctx))?
                .expect("defined"),
            None => batch,
        };
        let batch = match hooks.transfer_batch_to_device {
            Some(f) => self
                .module(info::transfer_batch_to_device, module, Some(f), |f, m, ctx| {
                    f(m, batch, device, dataloader_idx, ctx)
                })?
                .expect("defined"),
            None => batch.to_device(device)?,
        };
        let batch = match hooks.on_after_batch_transfer {
            Some(f) => self
                .module(info::on_after_batch_transfer, module, Some(f), |f, m, ctx| f(m, batch, dataloader_idx, ctx))?
                .expect("defined"),
            None => batch,
        };
        self.ctx.batch_size = batch.batch_size();
        Ok(batch)
    }

    pub fn on_train_batch_start<M: LightningModule + 'static>(
        &mut self,
        module: &mut M,
        batch: &M::Batch,
        batch_idx: usize,
    ) -> Result<BatchControl> {
        self.each_callback(info::on_train_batch_start, module, |cb, ctx, m| {
            cb.on_train_batch_start(ctx, m, batch as &dyn Any, batch_idx)
        })?;
        let control = self.module(info::on_train_batch_start, module, M::HOOKS.on_train_batch_start, |f, m, ctx| {
            f(m, batch, batch_idx, ctx)
        })?;
        Ok(control.unwrap_or_default())
    }

    pub fn on_train_batch_end<M: LightningModule + 'static>(
        &mut self,
        module: &mut M,
        outputs: &StepOutput,
        batch: &M::Batch,
        batch_idx: usize,
    ) -> Result<()> {
        self.each_callback(info::on_train_batch_end, module, |cb, ctx, m| {
            cb.on_train_batch_end(ctx, m, outputs, batch as &dyn Any, batch_idx)
        })?;
        self.module(info::on_train_batch_end, module, M::HOOKS.on_train_batch_end, |f, m, ctx| {
            f(m, outputs, batch, batch_idx, ctx)
        })
        .map(drop)
    }

    pub fn training_step<M: LightningModule>(
        &mut self,
        module: &mut M,
        batch: &M::Batch,
        batch_idx: usize,
    ) -> Result<StepOutput> {
        let output =
            self.module(info::training_step, module, M::HOOKS.training_step, |f, m, ctx| f(m, batch, batch_idx, ctx))?;
        Ok(output.flatten())
    }

    pub fn on_before_zero_grad<M: LightningModule + 'static>(
        &mut self,
        module: &mut M,
        optimizer: &mut Optimizer,
    ) -> Result<()> {
        self.each_callback(info::on_before_zero_grad, module, |cb, ctx, m| cb.on_before_zero_grad(ctx, m, optimizer))?;
        self.module(info::on_before_zero_grad, module, M::HOOKS.on_before_zero_grad, |f, m, ctx| f(m, optimizer, ctx))
            .map(drop)
    }

    pub fn optimizer_zero_grad<M: LightningModule>(
        &mut self,
        module: &mut M,
        batch_idx: usize,
        optimizer: &mut Optimizer,
    ) -> Result<()> {
        let epoch = self.ctx.current_epoch;
        match M::HOOKS.optimizer_zero_grad {
            Some(f) => self
                .module(info::optimizer_zero_grad, module, Some(f), |f, m, ctx| f(m, epoch, batch_idx, optimizer, ctx))
                .map(drop),
            None => optimizer.zero_grad(),
        }
    }

    /// `on_before_backward`, `backward` (default `loss.backward()`), `on_after_backward`.
    pub fn backward<M: LightningModule + 'static>(&mut self, module: &mut M, loss: &Tensor) -> Result<()> {
        self.each_callback(info::on_before_backward, module, |cb, ctx, m| cb.on_before_backward(ctx, m, loss))?;
        self.module(info::on_before_backward, module, M::HOOKS.on_before_backward, |f, m, ctx| f(m, loss, ctx))?;
        match M::HOOKS.backward {
            Some(f) => {
                self.module(info::backward, module, Some(f), |f, m, ctx| f(m, loss, ctx))?;
            }
            None => loss.f_backward()?,
        }
        self.on_after_backward(module)
    }

    /// `on_before_optimizer_step`, then `configure_gradient_clipping` (default: clip with the Trainer's settings).
    pub fn before_optimizer_step<M: LightningModule + 'static>(
        &mut self,
        module: &mut M,
        optimizer: &mut Optimizer,
        clip: (Option<f64>, GradClipAlgorithm),
    ) -> Result<()> {
        self.each_callback(info::on_before_optimizer_step, module, |cb, ctx, m| {
            cb.on_before_optimizer_step(ctx, m, optimizer)
        })?;
        self.module(info::on_before_optimizer_step, module, M::HOOKS.on_before_optimizer_step, |f, m, ctx| {
            f(m, optimizer, ctx)
        })?;
        let (value, algorithm) = clip;
        match M::HOOKS.configure_gradient_clipping {
            Some(f) => self
                .module(info::configure_gradient_clipping, module, Some(f), |f, m, ctx| {
                    f(m, optimizer, value, Some(algorithm), ctx)
                })
                .map(drop),
            None => optimizer.clip_gradients(value, Some(algorithm)),
        }
    }

    /// `optimizer_step` (default: run the closure, then step). The caller records it as the running hook.
    pub fn optimizer_step<M: LightningModule>(
        module: &mut M,
        epoch: usize,
        batch_idx: usize,
        optimizer: &mut Optimizer,
        closure: &mut OptimizerClosure<'_, M>,
    ) -> Result<()> {
        match M::HOOKS.optimizer_step {
            Some(f) => {
                // The closure holds the context while it runs, so this hook records itself by name only.
                f(module, epoch, batch_idx, optimizer, closure)
                    .map_err(|source| Error::Hook { hook: info::optimizer_step.name, source })?;
                if !closure.has_run() {
                    return Err(Error::Config(
                        "`optimizer_step` returned without running its closure: call `optimizer.step_with(closure, self)`".into(),
                    ));
                }
                Ok(())
            }
            None => optimizer.step_with(closure, module),
        }
    }

    /// `lr_scheduler_step` (default: advance the schedule), then the new rate goes to its optimizer.
    pub fn lr_scheduler_step<M: LightningModule>(
        &mut self,
        module: &mut M,
        index: usize,
        metric: Option<f64>,
    ) -> Result<()> {
        let mut scheduler = std::mem::replace(&mut self.ctx.schedulers[index], LrScheduler::step_lr(1, 1.0));
        let result = match M::HOOKS.lr_scheduler_step {
            Some(f) => self
                .module(info::lr_scheduler_step, module, Some(f), |f, m, ctx| f(m, &mut scheduler, metric, ctx))
                .map(drop),
            None => {
                scheduler.step();
                Ok(())
            }
        };
        let lr = scheduler.lr();
        let optimizer = scheduler.optimizer;
        self.ctx.schedulers[index] = scheduler;
        result?;
        // A rate that is not a finite number, 0 or more, would turn the weights to NaN and the error would blame
        // the loss: it is named here instead.
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(Error::Config(format!(
                "LR scheduler {index} set the learning rate of optimizer {optimizer} to {lr}: it must be a finite number, 0 or more"
            )));
        }
        if let Some(optimizer) = self.ctx.optimizers.get_mut(optimizer) {
            optimizer.set_lr(lr);
        }
        Ok(())
    }

    /// `on_validation_model_zero_grad` (default: zero the module's gradients).
    pub fn on_validation_model_zero_grad<M: LightningModule>(&mut self, module: &mut M) -> Result<()> {
        match M::HOOKS.on_validation_model_zero_grad {
            Some(f) => {
                self.module(info::on_validation_model_zero_grad, module, Some(f), |f, m, ctx| f(m, ctx)).map(drop)
            }
            None => zero_grad(module),
        }
    }

    /// `on_{validation,test,predict}_model_eval` (default: eval mode).
    pub fn model_eval<M: LightningModule>(&mut self, module: &mut M, stage: Stage) -> Result<()> {
        let (hook, pointer) = match stage {
            Stage::Fit | Stage::Validate => (info::on_validation_model_eval, M::HOOKS.on_validation_model_eval),
            Stage::Test => (info::on_test_model_eval, M::HOOKS.on_test_model_eval),
            Stage::Predict => (info::on_predict_model_eval, M::HOOKS.on_predict_model_eval),
        };
        if self.module(hook, module, pointer, |f, m, ctx| f(m, ctx))?.is_none() {
            self.ctx.training = false;
        }
        Ok(())
    }

    pub fn on_predict_batch_start<M: LightningModule + 'static>(
        &mut self,
        module: &mut M,
        batch: &M::Batch,
        batch_idx: usize,
    ) -> Result<()> {
        self.each_callback(info::on_predict_batch_start, module, |cb, ctx, m| {
            cb.on_predict_batch_start(ctx, m, batch as &dyn Any, batch_idx, 0)
        })?;
        self.module(info::on_predict_batch_start, module, M::HOOKS.on_predict_batch_start, |f, m, ctx| {
            f(m, batch, batch_idx, 0, ctx)
        })
        .map(drop)
    }

    pub fn predict_step<M: LightningModule>(
        &mut self,
        module: &mut M,
        batch: &M::Batch,
        batch_idx: usize,
    ) -> Result<M::Prediction> {
        let prediction =
            self.module(info::predict_step, module, M::HOOKS.predict_step, |f, m, ctx| f(m, batch, batch_idx, 0, ctx))?;
        prediction.ok_or_else(|| Error::Config("`predict` needs a module with `predict_step`".into()))
    }

    pub fn on_predict_batch_end<M: LightningModule + 'static>(
        &mut self,
        module: &mut M,
        outputs: &M::Prediction,
        batch: &M::Batch,
        batch_idx: usize,
    ) -> Result<()>
    where
        M::Prediction: 'static,
    {
        self.each_callback(info::on_predict_batch_end, module, |cb, ctx, m| {
            cb.on_predict_batch_end(ctx, m, outputs as &dyn Any, batch as &dyn Any, batch_idx, 0)
        })?;
        self.module(info::on_predict_batch_end, module, M::HOOKS.on_predict_batch_end, |f, m, ctx| {
            f(m, outputs, batch, batch_idx, 0, ctx)
        })
        .map(drop)
    }
}

/// The validation and test loops' per-batch hooks, chosen once per loop.
pub(crate) mod eval_hooks {
    use super::*;
    use crate::trainer::evaluation::Kind;

    impl Dispatch {
        pub fn eval_batch_start<M: LightningModule + 'static>(
            &mut self,
            kind: Kind,
            module: &mut M,
            batch: &M::Batch,
            batch_idx: usize,
        ) -> Result<()> {
            let any = batch as &dyn Any;
            match kind {
                Kind::Validation => {
                    self.each_callback(info::on_validation_batch_start, module, |cb, ctx, m| {
                        cb.on_validation_batch_start(ctx, m, any, batch_idx, 0)
                    })?;
                    self.module(
                        info::on_validation_batch_start,
                        module,
                        M::HOOKS.on_validation_batch_start,
                        |f, m, ctx| f(m, batch, batch_idx, 0, ctx),
                    )
                    .map(drop)
                }
                Kind::Test => {
                    self.each_callback(info::on_test_batch_start, module, |cb, ctx, m| {
                        cb.on_test_batch_start(ctx, m, any, batch_idx, 0)
                    })?;
                    self.module(info::on_test_batch_start, module, M::HOOKS.on_test_batch_start, |f, m, ctx| {
                        f(m, batch, batch_idx, 0, ctx)
                    })
                    .map(drop)
                }
            }
        }

        pub fn eval_step<M: LightningModule>(
            &mut self,
            kind: Kind,
            module: &mut M,
            batch: &M::Batch,
            batch_idx: usize,
        ) -> Result<StepOutput> {
            let (hook, pointer) = match kind {
                Kind::Validation => (info::validation_step, M::HOOKS.validation_step),
                Kind::Test => (info::test_step, M::HOOKS.test_step),
            };
            Ok(self.module(hook, module, pointer, |f, m, ctx| f(m, batch, batch_idx, 0, ctx))?.flatten())
        }

        pub fn eval_batch_end<M: LightningModule + 'static>(
            &mut self,
            kind: Kind,
            module: &mut M,
            outputs: &StepOutput,
            batch: &M::Batch,
            batch_idx: usize,
        ) -> Result<()> {
            let any = batch as &dyn Any;
            match kind {
                Kind::Validation => {
                    self.each_callback(info::on_validation_batch_end, module, |cb, ctx, m| {
                        cb.on_validation_batch_end(ctx, m, outputs, any, batch_idx, 0)
                    })?;
                    self.module(info::on_validation_batch_end, module, M::HOOKS.on_validation_batch_end, |f, m, ctx| {
                        f(m, outputs, batch, batch_idx, 0, ctx)
                    })
                    .map(drop)
                }
                Kind::Test => {
                    self.each_callback(info::on_test_batch_end, module, |cb, ctx, m| {
                        cb.on_test_batch_end(ctx, m, outputs, any, batch_idx, 0)
                    })?;
                    self.module(info::on_test_batch_end, module, M::HOOKS.on_test_batch_end, |f, m, ctx| {
                        f(m, outputs, batch, batch_idx, 0, ctx)
                    })
                    .map(drop)
                }
            }
        }

        /// `on_{validation,test}_model_train` if the module defines it; whether it did.
        pub fn eval_model_train<M: LightningModule>(&mut self, kind: Kind, module: &mut M) -> Result<bool> {
            let defined = match kind {
                Kind::Validation => M::HOOKS.on_validation_model_train.is_some(),
                Kind::Test => M::HOOKS.on_test_model_train.is_some(),
            };
            match kind {
                Kind::Validation => self.on_validation_model_train(module)?,
                Kind::Test => self.on_test_model_train(module)?,
            }
            Ok(defined)
        }
    }
}

/// The batches of `loader` for `epoch`. They may share memory with the loader's data unless the module defines
/// a hook that takes batches by value and so could write into them in place (the batch-transfer hooks).
pub(crate) fn batches<'l, M: LightningModule>(
    loader: &'l mut Loader<M::Batch>,
    epoch: usize,
) -> Box<dyn Iterator<Item = Result<M::Batch>> + 'l> {
    let hooks = &M::HOOKS;
    let by_value = hooks.on_before_batch_transfer.is_some()
        || hooks.transfer_batch_to_device.is_some()
        || hooks.on_after_batch_transfer.is_some();
    loader.allow_shared_batches(!by_value);
    loader.batches(epoch)
}

/// Clears every gradient of the module's variables (Lightning's `module.zero_grad()`, which sets them to None).
pub(crate) fn zero_grad<M: LightningModule>(module: &mut M) -> Result<()> {
    crate::kernels::set_grads_to_none(&module.var_store().trainable_variables())
}

/// Moves the module's variables to `device`.
pub(crate) fn to_device<M: LightningModule>(module: &mut M, device: Device) {
    module.var_store_mut().set_device(device);
}
