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
    pub hooks: Dispatch<'t>,
    pub cfg: &'t Config,
    pub strategy: &'t mut dyn Strategy,
    pub stage: Stage,
    torn_down: bool,
}

impl Trainer {
    pub(crate) fn run_stage<M: LightningModule + 'static, R>(
        &mut self,
        module: &mut M,
        datamodule: Option<&mut (dyn crate::datamodule::AnyDataModule + 'static)>,
        stage: Stage,
        body: impl FnOnce(&mut Run<'_, M>) -> Result<R>,
    ) -> Result<R> {
        self.cfg.check()?;
        let requested = self.cfg.accelerator.resolve()?;
        if !self.strategy_set && self.cfg.devices * self.cfg.num_nodes > 1 {
            // Lightning's choice for several devices.
            self.strategy = Box::new(crate::Ddp::default());
        }
        let device = self.strategy.setup_environment(self.cfg.devices, self.cfg.num_nodes, requested)?;
        if let Some(seed) = self.cfg.seed {
            tch::manual_seed(seed as i64);
        }
        let precision = self.cfg.precision;
        precision.check_device(device)?;
        let mut ctx = Ctx::new(device);
        if precision.scales_loss() {
            ctx.scaler = Some(crate::precision::GradScaler::new(device)?.shared());
        }
        ctx.stage = Some(stage);
        ctx.fast_dev_run = self.cfg.fast_dev_run.is_some();
        ctx.max_epochs = if ctx.fast_dev_run { Some(1) } else { self.cfg.max_epochs };
        ctx.process_group = self.strategy.process_group();
        ctx.local_rank = self.strategy.local_rank();
        // Checkpoints, loggers, the progress bar and the model summary belong to rank 0 (Lightning's
        // `rank_zero_only`); the other processes run every other callback and hook alike.
        let global_zero = self.strategy.is_global_zero();
        self.add_lightning_defaults(stage, global_zero, &mut ctx)?;
        if global_zero {
            self.add_default_callbacks(stage);
        }
        let (callbacks, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.callbacks)
            .into_iter()
            .partition(|c| global_zero || !matches!(c.name().as_str(), "ProgressBar" | "ModelSummary"));
        let loggers = if global_zero { std::mem::take(&mut self.loggers) } else { Vec::new() };
        ctx.hook = HookInfo::runtime("the Trainer");
        let mut hooks =
            Dispatch::new(callbacks, ctx, loggers, self.cfg.async_checkpointing.then(CheckpointWriter::default));
        hooks.writes_files = global_zero;
        hooks.datamodule = datamodule;
        hooks.autocast = precision.autocast_kind().map(|kind| crate::precision::Autocast::new(device, kind));
        hooks.batch_kind = precision.true_kind();
        // Rank 0's table only, as Lightning's profilers.
        hooks.profiler = self.profiler.clone().filter(|_| global_zero).map(super::profiler::Recorder::new);
        let mut run = Run { module, hooks, cfg: &self.cfg, strategy: &mut *self.strategy, stage, torn_down: false };
        let _signals = super::interrupt::arm(self.cfg.handle_interrupts);
        let outcome = catch_unwind(AssertUnwindSafe(|| body(&mut run)));
        let mut result = match outcome {
            Ok(result) => result,
            Err(payload) => Err(Error::Panic { hook: run.hooks.ctx.hook.name, message: panic_message(&*payload) }),
        };
        // The Reducer's hooks on the parameters go when the stage does, and parameters a failed step left
        // toggled off (`ctx.toggle_optimizer`) require gradients again.
        run.hooks.ctx.gradient_sync = None;
        for param in std::mem::take(&mut run.hooks.ctx.toggled) {
            let _ = param.f_set_requires_grad(true);
        }
        if let Err(error) = result {
            // The context's handle goes first, so that the strategy's disconnect closes this process's
            // connections (the others, waiting on it, fail at once).
            run.hooks.ctx.process_group = None;
            // The other processes learn of the failure first (they may be waiting on this one), then
            // `on_exception` sees the error that started it all.
            let error = run.strategy.on_failure(error);
            run.fail(&error);
            result = Err(error);
        }
        // Every checkpoint asked for is on disk before the stage returns (`on_exception`'s too).
        if let Some(writer) = &mut run.hooks.writer {
            let written = writer.finish();
            if let (Ok(_), Err(error)) = (&result, written) {
                result = Err(error);
            }
        }
        for logger in &mut run.hooks.ctx.loggers {
            let finalized = logger.finalize();
            if result.is_ok() {
                if let Err(error) = finalized {
                    result = Err(error);
                }
            }
        }
        if result.is_ok() {
            run.strategy.teardown();
        }
        if let Some(profiler) = &run.hooks.profiler {
            // Lightning's `dirpath` left unset: relative file names go into `trainer.log_dir`, the first logger's
            // folder, else `default_root_dir`.
            let ctx = &run.hooks.ctx;
            let log_dir = ctx.loggers.first().and_then(|l| l.log_dir()).unwrap_or_else(|| ctx.default_root_dir.clone());
            if let (Ok(_), Err(error)) = (&result, profiler.finish(&stage.to_string(), &log_dir)) {
                result = Err(error);
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
        self.callbacks.extend(kept);
        if global_zero {
            self.loggers = hooks.ctx.loggers;
        }
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
        // The other processes of a machine use what local rank 0 prepared: they wait for it.
        self.strategy.barrier()?;
        self.hooks.setup(self.module, self.stage)?;
        self.hooks.configure_sharded_model(self.module)?;
        self.hooks.configure_model(self.module)?;
        if let Some(kind) = self.cfg.precision.true_kind() {
            // `*-true`: the floating-point weights (and buffers) take the precision's dtype, once.
            match kind {
                tch::Kind::Half => self.module.var_store_mut().half(),
                tch::Kind::BFloat16 => self.module.var_store_mut().bfloat16(),
                _ => self.module.var_store_mut().double(),
            }
        }
        to_device(self.module, self.hooks.ctx.device);
        let store = self.module.var_store();
        let trainable = store.trainable_variables();
        let mut variables: Vec<_> = store.variables().into_iter().collect();
        // By name: every process sends its variables in the same order.
        variables.sort_by(|a, b| a.0.cmp(&b.0));
        let variables: Vec<_> = variables.into_iter().map(|(_, t)| t).collect();
        self.hooks.ctx.gradient_sync = self.strategy.setup_module(&trainable, &variables, self.stage == Stage::Fit)?;
        Ok(())
    }

    /// `loader` as this process sees it: its share of each epoch in a distributed run.
    pub fn distributed(&self, mut loader: crate::Loader<M::Batch>) -> crate::Loader<M::Batch> {
        let (rank, world) = (self.hooks.ctx.global_rank(), self.hooks.ctx.world_size());
        if world > 1 && !loader.distribute(rank, world) && rank == 0 {
            eprintln!(
                "lightning: a loader made from a closure cannot be split between the {world} processes: each \
                 process gets the same batches (use a `DataLoader` or a `Vec` of batches to split them)"
            );
        }
        loader
    }

    /// Sums the epoch values logged with `sync_dist` over the processes of a distributed run.
    pub fn sync_epoch_metrics(&mut self, scope: crate::metrics::Scope) -> Result<()> {
        match self.hooks.ctx.process_group.clone() {
            Some(group) => self.hooks.ctx.metrics.sync_epoch(scope, &group),
            None => Ok(()),
        }
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
        // A panic inside a manual-optimization step leaves the callbacks lent to the context.
        self.hooks.reclaim_callbacks();
        let _ = catch_unwind(AssertUnwindSafe(|| self.hooks.on_exception(self.module, error)));
        let _ = catch_unwind(AssertUnwindSafe(|| self.hooks.release_saves(self.module)));
        if !self.torn_down {
            self.torn_down = true;
            let _ = catch_unwind(AssertUnwindSafe(|| self.hooks.teardown(self.module, self.stage)));
        }
    }

    /// An error when Ctrl-C was pressed or SIGTERM came: checked at batch boundaries. The processes of a
    /// distributed run stop together, at the boundary after the first of them saw the signal.
    #[inline]
    pub fn check_interrupt(&mut self) -> Result<()> {
        // Without its own handlers, a run does not act on a request another run's handlers recorded.
        let here = self.cfg.handle_interrupts && super::interrupt::requested();
        let stop = match &self.hooks.ctx.process_group {
            Some(group) if self.cfg.handle_interrupts || self.cfg.max_time.is_some() => {
                let [stop, time_up] = self.hooks.interrupt_vote.decide(group, here, self.out_of_time_here())?;
                self.hooks.time_up = time_up;
                stop
            }
            _ => here,
        };
        if stop {
            return Err(Error::Interrupted {
                signal: super::interrupt::signal_name(),
                epoch: self.hooks.progress.epoch,
                global_step: self.hooks.progress.global_step,
            });
        }
        Ok(())
    }

    /// Whether `max_time` has run out: in a distributed run, as the processes agreed at a batch boundary (each
    /// clock differs, and they must stop together).
    pub fn out_of_time(&self) -> bool {
        match self.hooks.ctx.process_group {
            Some(_) => self.hooks.time_up,
            None => self.out_of_time_here(),
        }
    }

    /// Whether `max_time` has run out by this process's clock.
    fn out_of_time_here(&self) -> bool {
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
