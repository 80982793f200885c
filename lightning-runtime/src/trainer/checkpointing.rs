//! Checkpoints inside a run: capturing the whole run's state when a hook asks for one, and restoring it when
//! `fit` resumes, in Lightning's order (`on_load_checkpoint` and the weights before `configure_optimizers`,
//! the optimizers' state right after it).

use std::path::Path;

use super::call::Dispatch;
use super::checkpoint_writer::write_and_replace;
use super::entry::Run;
use super::profiler::Action;
use crate::checkpoint::{load_weights, Checkpoint, LoadOptions, Progress};
use crate::module::LightningModule;
use crate::{Error, Result};

impl Dispatch<'_> {
    /// Writes each requested checkpoint, then deletes the files its request replaces: on the background writer
    /// when the run has one, else here.
    pub(crate) fn write_pending_checkpoints<M: LightningModule>(&mut self, module: &mut M) -> Result<()> {
        for request in std::mem::take(&mut self.ctx.pending_saves) {
            let mut checkpoint = self.capture(module);
            // Lightning's order: every callback's `state_dict`, the data module's, the callbacks'
            // `on_save_checkpoint`, the module's.
            for callback in &self.callbacks {
                if let Some(state) = callback.state_dict() {
                    checkpoint.meta.callbacks.insert(callback.state_key(), state);
                }
            }
            if let Some((key, state)) = self.datamodule_state()? {
                checkpoint.meta.datamodule.insert(key, state);
            }
            self.on_save_checkpoint_callbacks(module, &mut checkpoint)?;
            self.on_save_checkpoint_module(module, &mut checkpoint)?;
            if !self.writes_files {
                continue;
            }
            // Profiled: the snapshot (every tensor copied to CPU bytes, on the training thread), then what
            // training waited for: the whole write in line, or with the background writer only the hand-over
            // (which waits while the previous write is still going).
            let started = self.profile_start();
            let encoded = checkpoint.encode(&request.path)?;
            let encoded_at = self.profile_start();
            if let (Some(profiler), Some(started), Some(encoded_at)) = (&mut self.profiler, started, encoded_at) {
                profiler.record_span(Action::Loop("checkpoint snapshot"), started, encoded_at, String::new);
            }
            let waited = if self.writer.is_some() { "checkpoint hand-over to the writer" } else { "checkpoint write" };
            match &mut self.writer {
                Some(writer) => writer.submit(encoded, request.then_remove)?,
                None => write_and_replace(encoded, &request.then_remove)?,
            }
            self.profile_end(Action::Loop(waited), encoded_at);
        }
        Ok(())
    }

    /// The run's state as a checkpoint (before the callbacks and the module add theirs).
    fn capture<M: LightningModule>(&self, module: &M) -> Checkpoint {
        let ctx = &self.ctx;
        let mut checkpoint = Checkpoint::default();
        let mut variables: Vec<_> = module.var_store().variables().into_iter().collect();
        variables.sort_by(|a, b| a.0.cmp(&b.0));
        checkpoint.tensors = variables.into_iter().map(|(name, t)| (format!("model.{name}"), t)).collect();
        if self.progress.accumulating {
            // The gradients accumulated so far in the open window, so that a resumed run steps on the same sum.
            let mut grads: Vec<_> = module
                .var_store()
                .variables()
                .into_iter()
                .map(|(name, t)| (format!("grad.{name}"), t.grad()))
                .filter(|(_, g)| g.defined())
                .collect();
            grads.sort_by(|a, b| a.0.cmp(&b.0));
            checkpoint.tensors.extend(grads);
        }
        for (index, optimizer) in ctx.optimizers.iter().enumerate() {
            let (state, tensors) = optimizer.export(index);
            checkpoint.meta.optimizers.push(state);
            checkpoint.tensors.extend(tensors);
        }
        checkpoint.meta.schedulers = ctx.schedulers.clone();
        if let Some(scaler) = &ctx.scaler {
            checkpoint.meta.scaler = scaler.lock().unwrap_or_else(|p| p.into_inner()).state().ok();
        }
        checkpoint.meta.progress = Progress {
            epoch: self.progress.epoch,
            global_step: self.progress.global_step,
            batches_done: self.progress.batches_done,
            epoch_finished: self.progress.epoch_finished,
        };
        checkpoint.meta.seed = ctx.seed;
        checkpoint.meta.metrics = self.frozen_metrics.clone().unwrap_or_else(|| ctx.metrics.export());
        checkpoint.meta.hparams = module.hparams();
        checkpoint
    }
}

/// Where a resumed `fit` starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ResumeAt {
    /// Training batches of the first epoch to skip.
    pub batches_done: usize,
}

impl<M: LightningModule> Run<'_, M> {
    /// The module's `on_load_checkpoint`, the weights (strictly), then the callbacks' `on_load_checkpoint` and
    /// state: what Lightning restores before `configure_optimizers`.
    pub(crate) fn restore_model(&mut self, path: &Path, checkpoint: &mut Checkpoint) -> Result<()> {
        self.hooks.on_load_checkpoint_module(self.module, checkpoint)?;
        load_weights(path, checkpoint, self.module.var_store_mut(), LoadOptions::default())?;
        // Lightning's order: the model, the data module, then the callbacks.
        self.hooks.load_datamodule_state(checkpoint)?;
        self.hooks.on_load_checkpoint_callbacks(self.module, checkpoint)?;
        self.hooks.load_callback_states(checkpoint)
    }

    /// An evaluation stage's `ckpt_path`: the module's `on_load_checkpoint`, then the weights (Lightning restores
    /// only the model outside `fit`).
    pub(crate) fn restore_weights(&mut self, path: &Path, checkpoint: &mut Checkpoint) -> Result<()> {
        self.hooks.on_load_checkpoint_module(self.module, checkpoint)?;
        load_weights(path, checkpoint, self.module.var_store_mut(), LoadOptions::default())?;
        self.hooks.load_datamodule_state(checkpoint)
    }

    /// The optimizers' and schedulers' state, the loop's position, the seed and the epoch's partial metrics.
    pub(crate) fn restore_training(&mut self, path: &Path, checkpoint: &Checkpoint) -> Result<ResumeAt> {
        let meta = &checkpoint.meta;
        let ctx = &mut self.hooks.ctx;
        let fail = |problem: String| Error::Checkpoint { path: path.to_path_buf(), problem };
        if meta.optimizers.len() != ctx.optimizers.len() {
            return Err(fail(format!(
                "holds {} optimizer(s), but `configure_optimizers` returned {}",
                meta.optimizers.len(),
                ctx.optimizers.len()
            )));
        }
        let tensor = |name: &str| checkpoint.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t.shallow_clone());
        for (index, (optimizer, state)) in ctx.optimizers.iter_mut().zip(&meta.optimizers).enumerate() {
            optimizer.import(index, state, tensor).map_err(fail)?;
        }
        if meta.schedulers.len() != ctx.schedulers.len() {
            return Err(fail(format!(
                "holds {} LR scheduler(s), but `configure_optimizers` returned {}",
                meta.schedulers.len(),
                ctx.schedulers.len()
            )));
        }
        // What a checkpoint cannot hold (a lambda schedule's function) comes from the configured schedulers.
        let mut restored = meta.schedulers.clone();
        for (saved, configured) in restored.iter_mut().zip(&ctx.schedulers) {
            saved.take_functions_from(configured);
        }
        for (index, scheduler) in restored.iter().enumerate() {
            scheduler
                .check()
                .map_err(|problem| fail(format!("LR scheduler {index} has an invalid setting: {problem}")))?;
            if scheduler.optimizer >= ctx.optimizers.len() {
                return Err(fail(format!(
                    "LR scheduler {index} drives optimizer {}, but there are {}",
                    scheduler.optimizer,
                    ctx.optimizers.len()
                )));
            }
            let lr = scheduler.lr();
            if !(lr.is_finite() && lr >= 0.0) {
                return Err(fail(format!("LR scheduler {index} sets the learning rate to {lr}")));
            }
        }
        ctx.schedulers = restored;
        // (A run switched to 16-mixed starts its scaler afresh; one switched away drops the saved state.)
        if let (Some(scaler), Some(state)) = (&ctx.scaler, &meta.scaler) {
            scaler.lock().unwrap_or_else(|p| p.into_inner()).load(state)?;
        }
        for scheduler in &ctx.schedulers {
            if let Some(optimizer) = ctx.optimizers.get_mut(scheduler.optimizer) {
                optimizer.set_lr(scheduler.lr());
            }
        }
        let accumulating = restore_grads(path, checkpoint, self.module.var_store())?;
        let saved = &meta.progress;
        ctx.seed = meta.seed;
        let progress = &mut self.hooks.progress;
        (progress.global_step, progress.accumulating) = (saved.global_step, accumulating);
        if saved.epoch_finished {
            progress.epoch = saved.epoch + 1;
            Ok(ResumeAt::default())
        } else {
            // Set now, not when the epoch starts: a checkpoint taken before then (`on_fit_start`, the sanity
            // check) must say where the run stands.
            (progress.epoch, progress.batches_done) = (saved.epoch, saved.batches_done);
            ctx.metrics.import(&meta.metrics);
            Ok(ResumeAt { batches_done: saved.batches_done })
        }
    }
}

/// Gives the variables the gradients a checkpoint taken inside an accumulation window saved (`grad.<name>`);
/// whether there were any.
fn restore_grads(path: &Path, checkpoint: &Checkpoint, vs: &tch::nn::VarStore) -> Result<bool> {
    let variables = vs.variables();
    let mut any = false;
    for (name, grad) in &checkpoint.tensors {
        let Some(variable) = name.strip_prefix("grad.") else { continue };
        let fail = |problem: String| Error::Checkpoint { path: path.to_path_buf(), problem };
        let param = variables
            .get(variable)
            .ok_or_else(|| fail(format!("holds the gradient of `{variable}`, which the model does not have")))?;
        if grad.size() != param.size() || grad.kind() != param.kind() {
            return Err(fail(format!(
                "the gradient of `{variable}` is {:?} {:?}, but the variable is {:?} {:?}",
                grad.kind(),
                grad.size(),
                param.kind(),
                param.size()
            )));
        }
        crate::kernels::set_grad(param, &grad.f_to_device(param.device())?)?;
        any = true;
    }
    Ok(any)
}
