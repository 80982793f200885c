//! One method per hook: each callback's, then the module's (with its default behaviour when it does not define
//! the hook). No method here calls two different hooks: their order is the loops'.

use std::any::Any;

use tch::Tensor;

use super::Dispatch;
use crate::checkpoint::Checkpoint;
use crate::context::Stage;
use crate::module::{hook_info as info, LightningModule};
use crate::optim::{GradClipAlgorithm, LrScheduler, Optimizer, Optimizers};
use crate::output::{BatchControl, StepOutput};
use crate::trainer::loops::zero_grad;
use crate::trainer::profiler::Action;
use crate::trainer::OptimizerClosure;
use crate::{Error, Result};

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
            self.each_callback(info::callback::$name, module, |cb, ctx, m| cb.$name(ctx, m))
        }
    )*};
}

impl Dispatch<'_> {
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
    module_only!(configure_sharded_model, configure_model, on_validation_model_train, on_test_model_train);
    callback_only!(on_sanity_check_start, on_sanity_check_end);

    /// `on_train_epoch_end` of the callbacks that monitor metrics (`monitoring`), or of the others.
    pub fn on_train_epoch_end_callbacks<M: LightningModule + 'static>(
        &mut self,
        module: &mut M,
        monitoring: bool,
    ) -> Result<()> {
        let hook = info::on_train_epoch_end;
        self.each_callback_where(hook, module, Some(monitoring), |cb, ctx, m| cb.on_train_epoch_end(ctx, m))?;
        self.flush_saves(module)
    }

    /// The module's `on_train_epoch_end`.
    pub fn on_train_epoch_end_module<M: LightningModule>(&mut self, module: &mut M) -> Result<()> {
        self.module(info::on_train_epoch_end, module, M::HOOKS.on_train_epoch_end, |f, m, ctx| f(m, ctx)).map(drop)
    }

    /// Every callback's `on_save_checkpoint`.
    pub fn on_save_checkpoint_callbacks<M: LightningModule>(
        &mut self,
        module: &mut M,
        checkpoint: &mut Checkpoint,
    ) -> Result<()> {
        self.each_callback_where(info::on_save_checkpoint, module, None, |cb, ctx, m| {
            cb.on_save_checkpoint(ctx, m, checkpoint)
        })
    }

    /// The module's `on_save_checkpoint`.
    pub fn on_save_checkpoint_module<M: LightningModule>(
        &mut self,
        module: &mut M,
        checkpoint: &mut Checkpoint,
    ) -> Result<()> {
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

    /// Every callback's `on_load_checkpoint`.
    pub fn on_load_checkpoint_callbacks<M: LightningModule>(
        &mut self,
        module: &mut M,
        checkpoint: &mut Checkpoint,
    ) -> Result<()> {
        self.each_callback_where(info::on_load_checkpoint, module, None, |cb, ctx, m| {
            cb.on_load_checkpoint(ctx, m, checkpoint)
        })
    }

    /// Each callback's `load_state_dict`, with the state saved under its `state_key` if there is one.
    pub fn load_callback_states(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        for callback in self.callbacks.iter_mut() {
            if let Some(state) = checkpoint.meta.callbacks.get(&callback.state_key()) {
                let name = callback.name();
                callback.load_state_dict(state.clone()).map_err(|source| Error::Callback {
                    callback: name,
                    hook: info::callback::load_state_dict.name,
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

    pub fn configure_optimizers<M: LightningModule>(&mut self, module: &mut M) -> Result<Optimizers> {
        let optimizers =
            self.module(info::configure_optimizers, module, M::HOOKS.configure_optimizers, |f, m, ctx| f(m, ctx))?;
        Ok(optimizers.unwrap_or_default())
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
        let _autocast = self.autocast.map(|a| a.enter()).transpose()?;
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
        let epoch = self.progress.epoch;
        match M::HOOKS.optimizer_zero_grad {
            Some(f) => self
                .module(info::optimizer_zero_grad, module, Some(f), |f, m, ctx| f(m, epoch, batch_idx, optimizer, ctx))
                .map(drop),
            None => optimizer.zero_grad(),
        }
    }

    pub fn on_before_backward<M: LightningModule + 'static>(&mut self, module: &mut M, loss: &Tensor) -> Result<()> {
        self.each_callback(info::on_before_backward, module, |cb, ctx, m| cb.on_before_backward(ctx, m, loss))?;
        self.module(info::on_before_backward, module, M::HOOKS.on_before_backward, |f, m, ctx| f(m, loss, ctx))
            .map(drop)
    }

    /// `backward` (default: `loss.backward()`). With `sync_gradients` in a distributed run, the gradients are
    /// averaged over the processes during it (not inside an accumulation window: DDP's `no_sync`).
    pub fn backward<M: LightningModule>(&mut self, module: &mut M, loss: &Tensor, sync_gradients: bool) -> Result<()> {
        if let (Some(gradients), true) = (&mut self.ctx.gradient_sync, sync_gradients) {
            gradients.before_backward(loss)?;
        }
        match M::HOOKS.backward {
            Some(f) => self.module(info::backward, module, Some(f), |f, m, ctx| f(m, loss, ctx)).map(drop),
            None => {
                let started = self.profile_start();
                loss.f_backward()?;
                self.profile_end(Action::Loop("backward"), started);
                Ok(())
            }
        }
    }

    pub fn on_before_optimizer_step<M: LightningModule + 'static>(
        &mut self,
        module: &mut M,
        optimizer: &mut Optimizer,
    ) -> Result<()> {
        self.each_callback(info::on_before_optimizer_step, module, |cb, ctx, m| {
            cb.on_before_optimizer_step(ctx, m, optimizer)
        })?;
        self.module(info::on_before_optimizer_step, module, M::HOOKS.on_before_optimizer_step, |f, m, ctx| {
            f(m, optimizer, ctx)
        })
        .map(drop)
    }

    /// `configure_gradient_clipping` (default: clip with the Trainer's settings).
    pub fn configure_gradient_clipping<M: LightningModule>(
        &mut self,
        module: &mut M,
        optimizer: &mut Optimizer,
        clip: (Option<f64>, Option<GradClipAlgorithm>),
    ) -> Result<()> {
        let (value, algorithm) = clip;
        match M::HOOKS.configure_gradient_clipping {
            Some(f) => self
                .module(info::configure_gradient_clipping, module, Some(f), |f, m, ctx| {
                    f(m, optimizer, value, algorithm, ctx)
                })
                .map(drop),
            // By norm when the algorithm was not set (Lightning's default).
            None => optimizer.clip_gradients(value, algorithm),
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
            None => scheduler.step_with(metric),
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
        dataloader_idx: usize,
    ) -> Result<()> {
        self.each_callback(info::on_predict_batch_start, module, |cb, ctx, m| {
            cb.on_predict_batch_start(ctx, m, batch as &dyn Any, batch_idx, dataloader_idx)
        })?;
        self.module(info::on_predict_batch_start, module, M::HOOKS.on_predict_batch_start, |f, m, ctx| {
            f(m, batch, batch_idx, dataloader_idx, ctx)
        })
        .map(drop)
    }

    pub fn predict_step<M: LightningModule>(
        &mut self,
        module: &mut M,
        batch: &M::Batch,
        batch_idx: usize,
        dataloader_idx: usize,
    ) -> Result<M::Prediction> {
        let _autocast = self.autocast.map(|a| a.enter()).transpose()?;
        let prediction = self.module(info::predict_step, module, M::HOOKS.predict_step, |f, m, ctx| {
            f(m, batch, batch_idx, dataloader_idx, ctx)
        })?;
        prediction.ok_or_else(|| Error::Config("`predict` needs a module with `predict_step`".into()))
    }

    pub fn on_predict_batch_end<M: LightningModule + 'static>(
        &mut self,
        module: &mut M,
        outputs: &M::Prediction,
        batch: &M::Batch,
        batch_idx: usize,
        dataloader_idx: usize,
    ) -> Result<()>
    where
        M::Prediction: 'static,
    {
        self.each_callback(info::on_predict_batch_end, module, |cb, ctx, m| {
            cb.on_predict_batch_end(ctx, m, outputs as &dyn Any, batch as &dyn Any, batch_idx, dataloader_idx)
        })?;
        self.module(info::on_predict_batch_end, module, M::HOOKS.on_predict_batch_end, |f, m, ctx| {
            f(m, outputs, batch, batch_idx, dataloader_idx, ctx)
        })
        .map(drop)
    }
}
