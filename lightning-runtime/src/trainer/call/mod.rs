//! The one place through which every hook is called (Lightning's `trainer/call.py`): each callback's hook
//! first, in order, then the module's through its hook table. A method here calls one hook (with its default
//! behaviour when the module does not define it); the order in which hooks run is the loops' (`loops/`).
//!
//! What every call does: records which hook is running, and restores the outer one after it (for logging rules
//! and panic reports, nested calls included); wraps errors with the hook's name; turns a forbidden `ctx.log` into
//! an error; and writes the checkpoints the hook asked for once it has returned on every callback (or on the
//! module), unless the loop has deferred them. Absent module hooks cost one `Option` test on a constant.

mod data_hooks;
mod eval_hooks;
mod hooks;
mod lent;

use tch::Device;

use super::checkpoint_writer::CheckpointWriter;
use super::loops::RunProgress;
use crate::callback::{AnyModule, Callback, CallbackResult};
use crate::context::{Ctx, HookInfo, SaveRequest};
use crate::error::HookError;
use crate::loggers::Logger;
use crate::metrics::MetricState;
use crate::module::LightningModule;
use crate::trainer::profiler::Action;
use crate::{Error, Result};

/// The callbacks and the context (which holds the loggers, for hooks to reach) of one run, and the data module
/// it was given.
pub(crate) struct Dispatch<'d> {
    pub callbacks: Vec<Box<dyn Callback>>,
    pub ctx: Ctx,
    /// Writes checkpoints behind the training thread; `None`: written synchronously.
    pub writer: Option<CheckpointWriter>,
    /// The loops' progress: only they advance it; hooks see its epoch and step through the context.
    pub progress: RunProgress,
    /// While set, checkpoints hooks ask for wait (see `defer_saves`).
    saves_deferred: bool,
    /// Requests held back until the training batch they were made in has run to its end (see `hold_saves`).
    held_saves: Vec<SaveRequest>,
    /// The training epoch's partial metric sums as they were before the epoch's values were reduced, for
    /// checkpoints taken in the `on_train_epoch_end` of an epoch cut short (which resume inside it).
    pub frozen_metrics: Option<Vec<MetricState>>,
    /// Whether this process writes the checkpoints hooks ask for (rank 0 of a distributed run; the others run
    /// the same hooks and write nothing, as Lightning's).
    pub writes_files: bool,
    /// How the processes of a distributed run agree on a stop signal (see `Run::check_interrupt`).
    pub interrupt_vote: crate::distributed::InterruptVote,
    /// A distributed run's agreed `max_time` verdict (see `Run::out_of_time`).
    pub time_up: bool,
    /// The last evaluation epoch's logged values, as the loggers got them.
    pub epoch_results: Vec<(String, f64)>,
    /// `*-mixed`: the steps run under this autocast.
    pub autocast: Option<crate::precision::Autocast>,
    /// `*-true`: the dtype the default batch transfer casts floating-point tensors to.
    pub batch_kind: Option<tch::Kind>,
    /// Times every hook and section when set (`Trainer::profiler`).
    pub profiler: Option<crate::trainer::profiler::Recorder>,
    /// The data module the entry point was given, if any.
    pub datamodule: Option<&'d mut (dyn crate::datamodule::AnyDataModule + 'static)>,
}

impl Dispatch<'_> {
    /// A dispatcher with no callbacks and no loggers, for hooks called outside a Trainer run.
    pub fn standalone(device: Device) -> Self {
        Dispatch::new(Vec::new(), Ctx::new(device), Vec::new(), None)
    }

    pub fn new(
        callbacks: Vec<Box<dyn Callback>>,
        mut ctx: Ctx,
        loggers: Vec<Box<dyn Logger>>,
        writer: Option<CheckpointWriter>,
    ) -> Self {
        // Added to those the context holds: a context lent to a dispatcher of its own (manual optimization's
        // `ctx.manual_backward`) keeps the run's loggers.
        ctx.loggers.extend(loggers);
        Dispatch {
            callbacks,
            ctx,
            writer,
            progress: RunProgress::default(),
            saves_deferred: false,
            held_saves: Vec::new(),
            frozen_metrics: None,
            writes_files: true,
            interrupt_vote: Default::default(),
            time_up: false,
            epoch_results: Vec::new(),
            autocast: None,
            batch_kind: None,
            profiler: None,
            datamodule: None,
        }
    }

    /// When a profiled call starts: `None`, and no clock read, without a profiler.
    #[inline]
    pub(crate) fn profile_start(&self) -> Option<std::time::Instant> {
        self.profiler.as_ref().map(|_| std::time::Instant::now())
    }

    /// Records a call of `action` from `started` (from [`profile_start`](Self::profile_start)) to now.
    #[inline]
    pub(crate) fn profile_end(&mut self, action: Action, started: Option<std::time::Instant>) {
        if let (Some(profiler), Some(started)) = (&mut self.profiler, started) {
            profiler.record(action, started, String::new);
        }
    }

    /// Runs `f` with `section` recorded as what is running (a loader fetching a batch, say), so that a panic in it
    /// is reported under its name; the previous one is restored after.
    #[inline]
    pub fn section<R>(&mut self, section: HookInfo, f: impl FnOnce() -> R) -> R {
        let outer = std::mem::replace(&mut self.ctx.hook, section);
        let started = self.profile_start();
        let value = f();
        self.profile_end(Action::Loop(section.name), started);
        self.ctx.hook = outer;
        value
    }

    /// Runs `f` for every callback (skipping monitoring ones when `monitors` is `Some(false)`, or only them
    /// when `Some(true)`).
    pub fn each_callback_where(
        &mut self,
        hook: HookInfo,
        module: &mut dyn AnyModule,
        monitors: Option<bool>,
        mut f: impl FnMut(&mut dyn Callback, &mut Ctx, &mut dyn AnyModule) -> CallbackResult,
    ) -> Result<()> {
        let outer = self.ctx.hook;
        self.publish_progress();
        for (index, callback) in self.callbacks.iter_mut().enumerate() {
            if monitors.is_some_and(|wanted| callback.monitors() != wanted) {
                continue;
            }
            self.ctx.hook = hook;
            // By field, not `profile_start`/`profile_end`: `self.callbacks` is borrowed by the loop, and the
            // callback's name is asked for only the first time its action is seen.
            let started = self.profiler.as_ref().map(|_| std::time::Instant::now());
            let result = f(callback.as_mut(), &mut self.ctx, module);
            if let (Some(profiler), Some(started)) = (&mut self.profiler, started) {
                profiler.record(Action::Callback(index, hook.name), started, || callback.name());
            }
            result.map_err(|source| Error::Callback { callback: callback.name(), hook: hook.name, source })?;
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
        self.publish_progress();
        let started = self.profile_start();
        let value = call(f, module, &mut self.ctx);
        self.profile_end(Action::Module(hook.name), started);
        let value = value.map_err(|source| Error::Hook { hook: hook.name, source })?;
        take_log_error(&mut self.ctx)?;
        self.ctx.hook = outer;
        self.flush_saves(module)?;
        Ok(Some(value))
    }

    /// What hooks see of the loops' progress, brought up to date before a call.
    #[inline]
    fn publish_progress(&mut self) {
        let (ctx, progress) = (&mut self.ctx, &self.progress);
        (ctx.current_epoch, ctx.global_step, ctx.batches_done) =
            (progress.epoch, progress.global_step, progress.batches_done);
    }

    /// Holds the checkpoints hooks ask for until [`release_saves`](Self::release_saves): a loop that runs
    /// several hooks as one step (the end of a training epoch) has them taken once all have run.
    pub fn defer_saves(&mut self) {
        self.saves_deferred = true;
    }

    /// Ends [`defer_saves`](Self::defer_saves) and writes what was asked for meanwhile.
    pub fn release_saves<M: LightningModule>(&mut self, module: &mut M) -> Result<()> {
        self.saves_deferred = false;
        self.flush_saves(module)
    }

    /// Ends [`defer_saves`](Self::defer_saves) without writing: after a failure, the requests stay for the
    /// failure path (`Run::fail`), which writes them after `on_exception`.
    pub fn end_deferral(&mut self) {
        self.saves_deferred = false;
        self.ctx.pending_saves.append(&mut self.held_saves);
    }

    /// Ends [`defer_saves`](Self::defer_saves) keeping what was asked for meanwhile until
    /// [`release_held_saves`](Self::release_held_saves): requests made in a training step are taken once the
    /// whole batch (its `on_train_batch_end`, a validation run after it) is done, so that a run resumed from them
    /// starts cleanly at the next batch. Requests made after this are written as usual.
    pub fn hold_saves(&mut self) {
        self.saves_deferred = false;
        self.held_saves.append(&mut self.ctx.pending_saves);
    }

    /// Writes what [`hold_saves`](Self::hold_saves) kept.
    pub fn release_held_saves<M: LightningModule>(&mut self, module: &mut M) -> Result<()> {
        if self.held_saves.is_empty() {
            return Ok(());
        }
        self.ctx.pending_saves.append(&mut self.held_saves);
        self.flush_saves(module)
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
        if self.ctx.loggers.is_empty() || !self.ctx.metrics.has_unsent_steps() {
            return Ok(());
        }
        let mut values = self.ctx.metrics.take_step_values();
        // Lightning adds the epoch to every set of logged values.
        values.push(("epoch".to_string(), self.progress.epoch as f64));
        let step = self.progress.global_step;
        for logger in &mut self.ctx.loggers {
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
        values.push(("epoch".to_string(), self.progress.epoch as f64));
        let step = self.progress.global_step;
        for logger in &mut self.ctx.loggers {
            logger.log_metrics(&values, step)?;
        }
        Ok(())
    }
}

fn take_log_error(ctx: &mut Ctx) -> Result<()> {
    if let Some(error) = ctx.sync_error.take() {
        return Err(error);
    }
    match ctx.log_error.take() {
        Some(message) => Err(Error::Log(message)),
        None => Ok(()),
    }
}
