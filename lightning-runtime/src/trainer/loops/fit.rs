//! `fit`: the checks before training, the opening hooks, the sanity check, the epochs, and when to stop
//! (Lightning's `FitLoop`).

use std::path::PathBuf;

use super::training_epoch::TRAINING_LOADER;
use super::{batches, zero_grad, Evaluation};
use crate::checkpoint::Checkpoint;
use crate::context::Stage;
use crate::metrics::Scope;
use crate::module::LightningModule;
use crate::optim::Interval;
use crate::trainer::checkpointing::ResumeAt;
use crate::trainer::entry::Run;
use crate::trainer::Limit;
use crate::{DataSource, Error, Loader, Result};

impl<M: LightningModule + 'static> Run<'_, M> {
    pub fn fit_resuming(
        &mut self,
        train: DataSource<'_, M::Batch>,
        val: DataSource<'_, M::Batch>,
        resume: Option<(PathBuf, Checkpoint)>,
    ) -> Result<()> {
        let (train, val) = self.check_fit(train, val)?;
        let train = train.map(|l| self.distributed(l));
        let val = val.map(|loaders| loaders.into_iter().map(|l| self.distributed(l)).collect::<Vec<_>>());
        // Without a seed, the run still draws from one, so that a checkpoint can resume it exactly.
        self.hooks.ctx.seed = self.cfg.seed.unwrap_or_else(random_seed);
        if let Some(group) = &self.hooks.ctx.process_group {
            // Every process draws from rank 0's seed (each adds its rank per batch: see `batch_seed`).
            let seed = tch::Tensor::from(self.hooks.ctx.seed as i64);
            group.broadcast(std::slice::from_ref(&seed), 0)?;
            self.hooks.ctx.seed = seed.int64_value(&[]) as u64;
        }
        self.hooks.ctx.automatic_optimization = M::AUTOMATIC_OPTIMIZATION;
        self.begin()?;
        let mut resume = resume;
        if let Some((path, checkpoint)) = resume.as_mut() {
            self.restore_model(path, checkpoint)?;
        }
        self.configure_optimizers()?;
        let mut resume_at = match &resume {
            Some((path, checkpoint)) => self.restore_training(path, checkpoint)?,
            None => ResumeAt::default(),
        };
        self.check_monitored_metrics()?;
        if let Some(hparams) = self.module.hparams() {
            for logger in &mut self.hooks.ctx.loggers {
                logger.log_hyperparams(&hparams)?;
            }
        }
        self.hooks.on_fit_start(self.module)?;
        if !self.hooks.progress.accumulating {
            // (A checkpoint taken inside an accumulation window brought back its gradients: they stay.)
            zero_grad(self.module)?;
        }

        let validating = self.validating();
        let mut val = val;
        let sanity_steps = if self.cfg.fast_dev_run.is_some() { 0 } else { self.cfg.num_sanity_val_steps };
        if validating && sanity_steps > 0 {
            self.hooks.on_sanity_check_start(self.module)?;
            let loaders = self.val_loaders(&mut val)?;
            // Lightning's `num_sanity_val_steps` batches of every loader.
            let limits = loaders
                .iter()
                .map(|l| {
                    let limit = self.cfg.limit_val.resolve(l.len(), "val")?;
                    Ok(Some(limit.map_or(sanity_steps, |n| n.min(sanity_steps))))
                })
                .collect::<Result<Vec<_>>>()?;
            self.hooks.ctx.sanity_checking = true;
            let checked = self.evaluation_loop(Evaluation::Validation, loaders, &limits);
            self.hooks.ctx.sanity_checking = false;
            checked?;
            self.hooks.on_sanity_check_end(self.module)?;
        }
        let mut train = match train {
            Some(train) => train,
            None => {
                let loader = self.hooks.train_dataloader(self.module)?;
                loader.map(|l| self.distributed(l)).ok_or_else(|| {
                    Error::Config("`fit` has no training data: pass a loader or define `train_dataloader`".into())
                })?
            }
        };
        if validating && val.is_none() {
            self.val_loaders(&mut val)?;
        }
        if train.is_empty() {
            return Err(Error::Config("the training loader has no batches".into()));
        }
        if validating {
            let loaders = val.as_deref().unwrap_or_default();
            if let Some(index) = loaders.iter().position(Loader::is_empty) {
                let which = if loaders.len() > 1 { format!(" {index}") } else { String::new() };
                return Err(Error::Config(format!("the validation loader{which} has no batches")));
            }
        }
        if let (true, Some(Limit::Batches(every)), Some(_)) =
            (validating, self.cfg.val_check_interval, self.cfg.check_val_every_n_epoch)
        {
            // Lightning raises too: validation would never run within an epoch.
            if let Some(total) = self.train_limit().resolve(train.len(), "train")? {
                if every > total {
                    return Err(Error::Config(format!(
                        "val_check_interval = {every} batches, but an epoch trains {total}: it must be at most the \
                         epoch's batches (or set `check_val_every_n_epoch(None)` to count batches across epochs, \
                         or `limit_val_batches(0)` to not validate)"
                    )));
                }
            }
        }
        if let Some(limit) = self.cfg.overfit_batches {
            let n = limit.resolve(train.len(), "overfit")?.unwrap_or(usize::MAX);
            // Lightning trains and validates on the same first batches, in the same order, every epoch.
            let mut source = batches::<M>(&mut train, 0, self.hooks.datamodule_takes_batches()).take(n);
            let batches = self.hooks.section(TRAINING_LOADER, || source.by_ref().collect::<Result<Vec<_>>>())?;
            drop(source);
            if validating {
                val = Some(vec![Loader::from(batches.iter().map(crate::Batch::share).collect::<Vec<_>>())]);
            }
            train = Loader::from(batches);
        }

        self.hooks.on_train_start(self.module)?;
        while !self.done() {
            let skip = std::mem::take(&mut resume_at.batches_done);
            self.hooks.ctx.metrics.scope = Scope::Train;
            if skip == 0 {
                self.hooks.ctx.metrics.start_epoch(Scope::Train);
            }
            (self.hooks.progress.batches_done, self.hooks.progress.epoch_finished) = (skip, false);
            self.hooks.ctx.total_batches = self.train_limit().resolve(train.len(), "train")?;
            // A run resumed inside an epoch goes on with it: the epoch has started already (Lightning calls no
            // `on_train_epoch_start` then either).
            if skip == 0 {
                self.hooks.on_train_epoch_start(self.module)?;
            }
            self.hooks.progress.epoch_finished = self.training_epoch(&mut train, &mut val, skip)?;
            self.train_epoch_end()?;
            // A forward-only epoch (SWA's batch-norm epoch) is that epoch only.
            self.hooks.ctx.forward_only = false;
            if self.hooks.ctx.process_group.is_some() {
                // One process asking to stop (early stopping on its own metrics) stops them all, together.
                self.hooks.ctx.should_stop =
                    self.strategy.reduce_boolean_decision(self.hooks.ctx.should_stop, false)?;
            }
            // The next epoch has not started: a checkpoint taken now (`on_train_end`, `on_fit_end`) resumes at
            // its beginning, not one epoch further on.
            self.hooks.progress.epoch += 1;
            (self.hooks.progress.batches_done, self.hooks.progress.epoch_finished) = (0, false);
        }
        self.hooks.on_train_end(self.module)?;
        self.hooks.on_fit_end(self.module)?;
        self.end()
    }

    /// `on_train_epoch_end`, as Lightning 2.x orders it: the callbacks that do not monitor metrics, the module,
    /// then (once the epoch's metrics are reduced and logged) the monitoring callbacks. A checkpoint asked for
    /// anywhere in it is taken when all of it has run: the epoch has then ended for every callback (early
    /// stopping's patience, the checkpoint callbacks' top-k) and for the module, so that a run resumed from it
    /// starts the next epoch exactly as the uninterrupted run does, whoever asked. (Lightning takes it at once,
    /// with the callbacks that have not run yet one epoch behind.)
    fn train_epoch_end(&mut self) -> Result<()> {
        // An epoch cut short (`max_steps`, `max_time`) resumes inside it, from its partial metric sums: those
        // are only in a checkpoint taken before the epoch's metrics are reduced, so such saves are not held.
        let defer = self.hooks.progress.epoch_finished;
        if defer {
            self.hooks.defer_saves();
        }
        self.hooks.on_train_epoch_end_callbacks(self.module, false)?;
        self.hooks.on_train_epoch_end_module(self.module)?;
        if !defer {
            // The monitoring callbacks (checkpointing among them) run after the values are reduced: what they
            // save of the epoch's metrics is the partial sums from before.
            self.hooks.frozen_metrics = Some(self.hooks.ctx.metrics.export());
        }
        self.sync_epoch_metrics(Scope::Train)?;
        let values = self.hooks.ctx.metrics.end_epoch(Scope::Train);
        self.hooks.send_epoch_logs(values)?;
        let monitored = self.hooks.on_train_epoch_end_callbacks(self.module, true);
        self.hooks.frozen_metrics = None;
        monitored?;
        if defer && !self.hooks.ctx.forward_only {
            // Plateau schedulers step on the epoch's metrics once every callback has seen them, and before the
            // checkpoints asked for in `on_train_epoch_end` are taken, so that those hold the stepped state.
            // (A forward-only epoch trained nothing: no scheduler steps.)
            self.step_plateau_schedulers(self.hooks.progress.epoch + 1)?;
        }
        if defer {
            self.hooks.release_saves(self.module)?;
        }
        Ok(())
    }

    /// Mistakes that would only show later, caught before any hook runs; the training loader and the validation
    /// loaders given.
    #[allow(clippy::type_complexity)]
    fn check_fit(
        &self,
        train: DataSource<'_, M::Batch>,
        val: DataSource<'_, M::Batch>,
    ) -> Result<(Option<Loader<M::Batch>>, Option<Vec<Loader<M::Batch>>>)> {
        let cfg = self.cfg;
        if cfg.max_epochs.is_none() && cfg.max_steps.is_none() && cfg.fast_dev_run.is_none() {
            return Err(Error::Config(
                "the Trainer has nothing to stop on: set `max_epochs` or `max_steps` (or `fast_dev_run`)".into(),
            ));
        }
        if val.is_datamodule() {
            return Err(Error::Config(
                "a data module goes in `fit`'s first data argument: `fit(&mut model, &mut data, None)`".into(),
            ));
        }
        let datamodule = self.hooks.has_datamodule();
        if datamodule && val.is_given() {
            // Lightning refuses both too.
            return Err(Error::Config(
                "`fit` was given a data module and validation loaders: the data module's `val_dataloader` gives \
                 them (pass `None`)"
                    .into(),
            ));
        }
        let train = match train.into_loaders() {
            None => None,
            Some(mut loaders) if loaders.len() == 1 => loaders.pop(),
            Some(loaders) => {
                return Err(Error::Config(format!(
                    "`fit` trains on one loader, but was given {}: combine them into one loader",
                    loaders.len()
                )));
            }
        };
        let val = val.into_loaders();
        if val.as_ref().is_some_and(Vec::is_empty) {
            return Err(Error::Config(
                "`fit` was given an empty list of validation loaders: pass `None` to train without validation data"
                    .into(),
            ));
        }
        let owner = if datamodule { " on the data module" } else { "" };
        if train.is_none() && !self.hooks.defines_train_dataloader::<M>() {
            return Err(Error::Config(format!(
                "`fit` has no training data: pass a loader or define `train_dataloader`{owner}"
            )));
        }
        let hooks = &M::HOOKS;
        let has_val_data = val.is_some() || self.hooks.defines_val_dataloader::<M>();
        let val_off = cfg.limit_val == Limit::Batches(0);
        if has_val_data && hooks.validation_step.is_none() && !val_off && self.hooks.ctx.is_global_zero() {
            // Lightning's warning: the data is never drawn.
            eprintln!("lightning: validation data was given, but the module defines no `validation_step`: validation is skipped");
        }
        if !has_val_data && hooks.validation_step.is_some() && !val_off {
            return Err(Error::Config(format!(
                "the module defines `validation_step` but `fit` has no validation data: pass a validation loader, define `val_dataloader`{owner}, or set `limit_val_batches(0)`"
            )));
        }
        Ok((train, val))
    }

    /// Whether this fit validates at all.
    fn validating(&self) -> bool {
        M::HOOKS.validation_step.is_some() && self.cfg.limit_val != Limit::Batches(0)
    }

    /// The validation loaders, from the `val_dataloader` hook (the data module's when the run has one) when none
    /// were passed.
    fn val_loaders<'v>(&mut self, val: &'v mut Option<Vec<Loader<M::Batch>>>) -> Result<&'v mut [Loader<M::Batch>]> {
        if val.is_none() {
            let loaders = self.hooks.eval_dataloaders(self.module, Stage::Fit)?;
            *val = loaders.map(|loaders| loaders.into_iter().map(|l| self.distributed(l)).collect());
        }
        match val.as_deref_mut() {
            Some([]) => Err(Error::Config("`val_dataloader` returned an empty list of loaders".into())),
            Some(loaders) => Ok(loaders),
            None => Err(Error::Config("no validation data: pass a loader or define `val_dataloader`".into())),
        }
    }

    fn configure_optimizers(&mut self) -> Result<()> {
        let configured = self.hooks.configure_optimizers(self.module)?;
        let (mut optimizers, mut schedulers) = (configured.optimizers, configured.schedulers);
        if optimizers.is_empty() {
            return Err(Error::Config("`configure_optimizers` returned no optimizer".into()));
        }
        if self.cfg.lr_finding {
            // The tuner sets the learning rate itself (Lightning's `lr_find` replaces the schedulers too).
            if optimizers.len() != 1 {
                return Err(Error::Config(format!(
                    "`configure_optimizers` returned {} optimizers, but the learning-rate finder works with one",
                    optimizers.len()
                )));
            }
            schedulers.clear();
        }
        if M::AUTOMATIC_OPTIMIZATION && optimizers.len() > 1 {
            return Err(Error::Config(format!(
                "`configure_optimizers` returned {} optimizers, but automatic optimization steps one: \
                 use `#[lightning_module(manual_optimization)]` and step them in `training_step`",
                optimizers.len()
            )));
        }
        for (index, optimizer) in optimizers.iter().enumerate() {
            optimizer.check().map_err(|problem| {
                Error::Config(format!("optimizer {index} from `configure_optimizers`: {problem}"))
            })?;
        }
        for (index, scheduler) in schedulers.iter_mut().enumerate() {
            scheduler.check().map_err(|problem| {
                Error::Config(format!("LR scheduler {index} from `configure_optimizers`: {problem}"))
            })?;
            let count = optimizers.len();
            let optimizer = optimizers.get_mut(scheduler.optimizer).ok_or_else(|| {
                Error::Config(format!(
                    "an LR scheduler drives optimizer {}, but there are {count} optimizers",
                    scheduler.optimizer
                ))
            })?;
            scheduler.set_base_lr(optimizer.lr());
            // As PyTorch's schedulers do when they are made: the rate of step 0 (a warm-up's start, one-cycle's
            // initial rate).
            optimizer.set_lr(scheduler.lr());
        }
        for optimizer in &mut optimizers {
            optimizer.scaler = self.hooks.ctx.scaler.clone();
        }
        self.hooks.ctx.optimizers = optimizers;
        self.hooks.ctx.schedulers = schedulers;
        Ok(())
    }

    /// Steps the schedulers of `interval` whose frequency comes round at `count` (epochs or steps done), except
    /// epoch-interval plateau schedulers, which step once the epoch has ended (`step_plateau_schedulers`).
    pub fn step_schedulers(&mut self, interval: Interval, count: usize) -> Result<()> {
        self.step_schedulers_where(interval, count, |s| interval == Interval::Step || s.monitor().is_none())
    }

    /// Steps the epoch-interval `ReduceLROnPlateau` schedulers, after the epoch's validation and
    /// `on_train_epoch_end` (Lightning's `update_plateau_schedulers`), on the metric each monitors.
    pub fn step_plateau_schedulers(&mut self, count: usize) -> Result<()> {
        self.step_schedulers_where(Interval::Epoch, count, |s| s.monitor().is_some())
    }

    fn step_schedulers_where(
        &mut self,
        interval: Interval,
        count: usize,
        which: impl Fn(&crate::LrScheduler) -> bool,
    ) -> Result<()> {
        if !M::AUTOMATIC_OPTIMIZATION {
            return Ok(());
        }
        for index in 0..self.hooks.ctx.schedulers.len() {
            let scheduler = &self.hooks.ctx.schedulers[index];
            if scheduler.interval == interval && count % scheduler.frequency == 0 && which(scheduler) {
                let metric = match scheduler.monitor() {
                    Some(name) => Some(self.monitored(index, name)?),
                    None => None,
                };
                self.hooks.lr_scheduler_step(self.module, index, metric)?;
            }
        }
        Ok(())
    }

    /// The value of the metric a plateau scheduler monitors, or an error listing the metrics that were logged.
    fn monitored(&self, index: usize, name: &str) -> Result<f64> {
        self.hooks.ctx.metrics.get(name).ok_or_else(|| {
            let logged: Vec<String> = self.hooks.ctx.metrics.snapshot().into_keys().collect();
            Error::Config(format!(
                "ReduceLROnPlateau (LR scheduler {index}) monitors `{name}`, which was not logged; the logged metrics \
                 are {logged:?}: log it with `ctx.log(\"{name}\", ..)` or monitor one of these"
            ))
        })
    }

    /// Lightning's `FitLoop.done`: a step or epoch limit reached, or a stop requested once the minimums are met.
    /// The epoch limit is the context's (the Trainer's, plus what a callback added: SWA's batch-norm epoch).
    fn done(&self) -> bool {
        let ctx = &self.hooks.ctx;
        let max_epochs = ctx.max_epochs;
        if self.max_steps_reached() || self.out_of_time() {
            return true;
        }
        let progress = &self.hooks.progress;
        if max_epochs.is_some_and(|max| progress.epoch >= max) {
            return true;
        }
        ctx.should_stop && progress.epoch >= self.cfg.min_epochs && progress.global_step >= self.cfg.min_steps
    }

    pub fn max_steps_reached(&self) -> bool {
        let max_steps = if self.cfg.fast_dev_run.is_some() { None } else { self.cfg.max_steps };
        max_steps.is_some_and(|max| self.hooks.progress.global_step >= max)
    }
}

/// A seed for a run that was given none: different each run, recorded in its checkpoints.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    hasher.finish()
}
