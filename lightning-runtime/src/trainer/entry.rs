//! What every entry point does around its loop: seed, the shared opening hooks, and on any error or panic,
//! `on_exception` and the teardown hooks before the error goes back to the caller.

use std::panic::{catch_unwind, AssertUnwindSafe};

use tch::Device;

use super::call::Dispatch;
use super::checkpoint_writer::CheckpointWriter;
use super::loops::to_device;
use super::{Config, Limit, State, Strategy, Trainer};
use crate::context::{Ctx, HookInfo, Stage};
use crate::error::panic_message;
use crate::module::LightningModule;
use crate::{Batch, Error, Result};

/// One entry point's run: the module, the hooks' dispatcher and the options.
pub(crate) struct Run<'t, M: LightningModule> {
    pub module: &'t mut M,
    /// Every hook is called through it.
    pub hooks: Dispatch,
    pub cfg: &'t Config,
    pub strategy: &'t dyn Strategy,
    pub stage: Stage,
    torn_down: bool,
}

impl Trainer {
    pub(crate) fn run_stage<M: LightningModule + 'static, R>(
        &mut self,
        module: &mut M,
        stage: Stage,
        body: impl FnOnce(&mut Run<'_, M>) -> Result<R>,
    ) -> Result<R> {
        self.cfg.check()?;
        let device = self.cfg.accelerator.resolve()?;
        if let Some(seed) = self.cfg.seed {
            tch::manual_seed(seed as i64);
        }
        let mut ctx = Ctx::new(device);
        ctx.stage = Some(stage);
        ctx.fast_dev_run = self.cfg.fast_dev_run.is_some();
        self.add_default_callbacks(stage);
        ctx.hook = HookInfo::runtime("the Trainer");
        let hooks = Dispatch::new(
            std::mem::take(&mut self.callbacks),
            ctx,
            std::mem::take(&mut self.loggers),
            self.cfg.async_checkpointing.then(CheckpointWriter::default),
        );
        let mut run = Run { module, hooks, cfg: &self.cfg, strategy: &*self.strategy, stage, torn_down: false };
        let _signals = super::interrupt::arm(self.cfg.handle_interrupts);
        let outcome = catch_unwind(AssertUnwindSafe(|| body(&mut run)));
        let mut result = match outcome {
            Ok(result) => result,
            Err(payload) => Err(Error::Panic { hook: run.hooks.ctx.hook.name, message: panic_message(&*payload) }),
        };
        if let Err(error) = &result {
            run.fail(error);
        }
        // Every checkpoint asked for is on disk before the stage returns (`on_exception`'s too).
        if let Some(writer) = &mut run.hooks.writer {
            let written = writer.finish();
            if let (Ok(_), Err(error)) = (&result, written) {
                result = Err(error);
            }
        }
        for logger in &mut run.hooks.loggers {
            let finalized = logger.finalize();
            if result.is_ok() {
                if let Err(error) = finalized {
                    result = Err(error);
                }
            }
        }
        let Run { hooks, .. } = run;
        self.state = State {
            current_epoch: hooks.progress.epoch,
            global_step: hooks.progress.global_step,
            callback_metrics: hooks.ctx.metrics.snapshot(),
            device: Some(device),
        };
        self.callbacks = hooks.callbacks;
        self.loggers = hooks.loggers;
        result
    }
}

impl Trainer {
    /// The callbacks Lightning enables by default, unless turned off or already given.
    fn add_default_callbacks(&mut self, stage: Stage) {
        let has = |callbacks: &[Box<dyn crate::Callback>], name: &str| callbacks.iter().any(|c| c.name() == name);
        if self.cfg.enable_model_summary && stage == Stage::Fit && !has(&self.callbacks, "ModelSummary") {
            self.callbacks.push(Box::new(crate::ModelSummary::default()));
        }
        if self.cfg.enable_progress_bar && !has(&self.callbacks, "ProgressBar") {
            self.callbacks.push(Box::new(crate::ProgressBar::new()));
        }
    }
}

impl Config {
    /// Options that cannot work, whatever the module.
    fn check(&self) -> Result<()> {
        if self.accumulate_grad_batches == 0 {
            return Err(Error::Config("accumulate_grad_batches must be at least 1".into()));
        }
        if self.log_every_n_steps == 0 {
            return Err(Error::Config("log_every_n_steps must be at least 1".into()));
        }
        if self.check_val_every_n_epoch == Some(0) {
            return Err(Error::Config("check_val_every_n_epoch must be at least 1 (or None)".into()));
        }
        if self.fast_dev_run == Some(0) {
            return Err(Error::Config("fast_dev_run must be at least 1 batch".into()));
        }
        if let Some(clip) = self.gradient_clip_val {
            if clip.is_nan() || clip < 0.0 {
                return Err(Error::Config(format!(
                    "gradient_clip_val = {clip}: it must be 0 or more (0 does not clip)"
                )));
            }
        }
        match self.val_check_interval {
            Some(Limit::Fraction(f)) if !(f > 0.0 && f <= 1.0) => {
                return Err(Error::Config(format!(
                    "val_check_interval = {f}: a fraction of the epoch must be within (0, 1]; pass a count of batches for an interval in batches"
                )));
            }
            Some(Limit::Batches(0)) => {
                return Err(Error::Config("val_check_interval must be at least 1 batch".into()));
            }
            _ => {}
        }
        for (what, limit) in [
            ("limit_train_batches", self.limit_train),
            ("limit_val_batches", self.limit_val),
            ("limit_test_batches", self.limit_test),
            ("limit_predict_batches", self.limit_predict),
        ]
        .into_iter()
        .chain(self.overfit_batches.map(|limit| ("overfit_batches", limit)))
        {
            if let Limit::Fraction(f) = limit {
                if !(0.0..=1.0).contains(&f) {
                    return Err(Error::Config(format!("{what} = {f}: a fraction must be within [0, 1]")));
                }
            }
        }
        Ok(())
    }
}

impl<M: LightningModule + 'static> Run<'_, M> {
    /// The hooks every entry point opens with: `configure_callbacks`, `prepare_data` (once per node),
    /// `setup`, `configure_model`, and the move to the device.
    pub fn begin(&mut self) -> Result<()> {
        self.hooks.configure_callbacks(self.module)?;
        if self.strategy.is_local_zero() {
            self.hooks.prepare_data(self.module)?;
        }
        self.hooks.setup(self.module, self.stage)?;
        self.hooks.configure_sharded_model(self.module)?;
        self.hooks.configure_model(self.module)?;
        to_device(self.module, self.hooks.ctx.device);
        Ok(())
    }

    /// The hooks every entry point closes with.
    pub fn end(&mut self) -> Result<()> {
        self.torn_down = true;
        self.hooks.teardown(self.module, self.stage)
    }

    /// After an error or a panic: every callback's `on_exception`, then the teardown hooks, each guarded so
    /// that a second failure cannot hide the first.
    fn fail(&mut self, error: &Error) {
        // A failure inside a step that holds checkpoint requests back (a batch, the end of an epoch) must not keep
        // them, or `on_exception`'s own, from being written: they go out after `on_exception`.
        self.hooks.end_deferral();
        let _ = catch_unwind(AssertUnwindSafe(|| self.hooks.on_exception(self.module, error)));
        let _ = catch_unwind(AssertUnwindSafe(|| self.hooks.release_saves(self.module)));
        if !self.torn_down {
            self.torn_down = true;
            let _ = catch_unwind(AssertUnwindSafe(|| self.hooks.teardown(self.module, self.stage)));
        }
    }

    /// An error when Ctrl-C was pressed or SIGTERM came: checked at batch boundaries.
    #[inline]
    pub fn check_interrupt(&self) -> Result<()> {
        // Without its own handlers, a run does not act on a request another run's handlers recorded.
        if self.cfg.handle_interrupts && super::interrupt::requested() {
            return Err(Error::Interrupted {
                signal: super::interrupt::signal_name(),
                epoch: self.hooks.progress.epoch,
                global_step: self.hooks.progress.global_step,
            });
        }
        Ok(())
    }

    /// Whether `max_time` has run out.
    pub fn out_of_time(&self) -> bool {
        self.cfg.max_time.is_some_and(|max| self.hooks.ctx.started.elapsed() >= max)
    }

    /// The device the run uses.
    pub fn device(&self) -> Device {
        self.hooks.ctx.device
    }

    /// A batch whose tensors are not on the module's device after the transfer hooks cannot be run.
    pub fn check_batch_device(&self, batch: &M::Batch, what: &str) -> Result<()> {
        let device = self.device();
        let mut wrong = None;
        batch.for_each_tensor(&mut |t| {
            if wrong.is_none() && t.device() != device {
                wrong = Some(t.device());
            }
        });
        match wrong {
            Some(found) => Err(Error::Config(format!(
                "a {what} batch has a tensor on {found:?} but the module runs on {device:?}: \
                 `transfer_batch_to_device` must move every tensor of the batch"
            ))),
            None => Ok(()),
        }
    }
}
