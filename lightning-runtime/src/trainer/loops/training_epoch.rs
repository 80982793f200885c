//! The batches of one training epoch (Lightning's `_TrainingEpochLoop`): transfer, `on_train_batch_start`
//! (which may end the epoch), the optimization step, scheduler steps, `on_train_batch_end`, logging, and
//! validation within and at the end of the epoch.

use super::{batches, Evaluation};
use crate::context::HookInfo;
use crate::module::LightningModule;
use crate::optim::Interval;
use crate::output::BatchControl;
use crate::trainer::entry::Run;
use crate::trainer::Limit;
use crate::{Error, Loader, Result};

impl<M: LightningModule + 'static> Run<'_, M> {
    /// Runs the epoch's batches from `start` (the batches a resumed checkpoint had already run); whether the
    /// epoch ran to its end (not cut short by `max_steps` or `max_time`).
    pub fn training_epoch(
        &mut self,
        train: &mut Loader<M::Batch>,
        val: &mut Option<Vec<Loader<M::Batch>>>,
        start: usize,
    ) -> Result<bool> {
        let epoch = self.hooks.progress.epoch;
        let total = self.train_limit().resolve(train.len(), "train")?;
        let val_every = self.val_every(total)?;
        let validate_this_epoch =
            val.is_some() && self.cfg.check_val_every_n_epoch.is_none_or(|n| (epoch + 1) % n == 0);

        let mut batches = batches::<M>(train, epoch, self.hooks.datamodule_takes_batches()).skip(start).peekable();
        let mut batch_idx = start;
        let mut skipped = false;
        let mut epoch_schedulers_stepped = false;
        let mut cut_short = false;
        let mut stopped_before_a_batch = false;
        while total.is_none_or(|n| batch_idx < n) {
            // A stop asked for before any batch of this epoch ran (in `on_train_epoch_start`): Lightning's epoch
            // loop is done before it fetches one.
            if batch_idx == start && self.stop_requested_mid_epoch() {
                stopped_before_a_batch = true;
                break;
            }
            let Some(batch) = self.next_batch(TRAINING_LOADER, &mut batches) else { break };
            // Randomness (dropout, noise) is drawn from a generator seeded for this very batch, so a run resumed
            // from a checkpoint draws exactly what the uninterrupted run would have.
            tch::manual_seed(batch_seed(self.hooks.ctx.seed, epoch, batch_idx, self.hooks.ctx.global_rank()));
            let batch = self.transfer_batch(batch?, 0)?;
            if batch_idx == start {
                self.check_batch_device(&batch, "training")?;
            }
            if self.hooks.on_train_batch_start(self.module, &batch, batch_idx)? == BatchControl::SkipRestOfEpoch {
                skipped = true;
                break;
            }
            let is_last = match total {
                Some(n) => batch_idx + 1 == n,
                // A loader of unknown length: the next batch is fetched now, to know.
                None => self.hooks.section(TRAINING_LOADER, || batches.peek().is_none()),
            };
            let steps_before = self.hooks.progress.global_step;
            // A checkpoint asked for while the batch's step runs (in `training_step`, around backward, by a
            // scheduler hook) is taken once the whole batch is done (its `on_train_batch_end`, a validation run
            // after it): the optimizers are back in the context, the gradients and the position agree, and a run
            // resumed from it goes on with the next batch.
            self.hooks.defer_saves();
            let outputs = if self.hooks.ctx.forward_only {
                self.forward_only_step(&batch, batch_idx)?
            } else if M::AUTOMATIC_OPTIMIZATION {
                self.automatic_step(&batch, batch_idx, is_last)?
            } else {
                self.manual_step(&batch, batch_idx)?
            };
            if self.hooks.progress.global_step > steps_before {
                self.step_schedulers(Interval::Step, self.hooks.progress.global_step)?;
            }
            if is_last && !self.hooks.ctx.forward_only {
                // Lightning steps epoch-interval schedulers on the epoch's last batch, before on_train_batch_end.
                // (A forward-only epoch trains nothing: its schedulers stay.)
                self.step_schedulers(Interval::Epoch, epoch + 1)?;
                epoch_schedulers_stepped = true;
            }
            self.hooks.progress.batches_done = batch_idx + 1;
            self.hooks.hold_saves();
            self.hooks.on_train_batch_end(self.module, &outputs, &batch, batch_idx)?;
            if self.hooks.progress.global_step > steps_before
                && self.hooks.progress.global_step % self.cfg.log_every_n_steps == 0
            {
                self.hooks.flush_step_logs()?;
            }
            batch_idx += 1;
            let at_interval = match val_every {
                Some(every) => batch_idx % every == 0,
                None => is_last,
            };
            // A stop asked for during the batch validates once more before the epoch ends (Lightning's
            // `_should_check_val_fx`), so that the epoch's validation metrics are there for the callbacks.
            if validate_this_epoch && (at_interval || self.stop_requested_mid_epoch()) {
                self.validate_in_fit(val)?;
            }
            self.hooks.release_held_saves(self.module)?;
            self.check_interrupt()?;
            if self.max_steps_reached() || self.out_of_time() || self.stop_requested_mid_epoch() {
                // A limit hit before the epoch's last batch leaves the epoch unfinished: a checkpoint written now
                // must resume inside it, not at the next one.
                cut_short = !is_last;
                break;
            }
        }
        drop(batches);
        if batch_idx == 0 && start == 0 && !skipped && !stopped_before_a_batch {
            return Err(Error::Config(format!("the training loader yielded no batches in epoch {epoch}")));
        }
        // Resumed after the epoch's last batch had run (a checkpoint from its `on_train_batch_end`): the
        // epoch-interval schedulers stepped on that batch, before the checkpoint was taken.
        let resumed_at_end = start > 0 && batch_idx == start && !skipped && total.is_none_or(|n| start >= n);
        if !epoch_schedulers_stepped && !resumed_at_end && !cut_short && !self.hooks.ctx.forward_only {
            // "The learning rate scheduler will still be stepped at the end of epoch" (on_train_batch_start).
            self.step_schedulers(Interval::Epoch, epoch + 1)?;
        }
        Ok(!cut_short)
    }

    /// A stop asked for during a batch (`ctx.request_stop()` in a batch hook or a validation run) ends the epoch
    /// after that batch once `min_epochs` and `min_steps` are met, as Lightning's epoch loop does. In a
    /// distributed run the processes agree on stopping when the epoch ends instead (a per-batch vote would cost a
    /// collective per batch).
    fn stop_requested_mid_epoch(&self) -> bool {
        let progress = &self.hooks.progress;
        self.hooks.ctx.should_stop
            && self.hooks.ctx.process_group.is_none()
            && progress.epoch >= self.cfg.min_epochs
            && progress.global_step >= self.cfg.min_steps
    }

    /// How many training batches an epoch runs.
    pub fn train_limit(&self) -> Limit {
        match self.cfg.fast_dev_run {
            Some(n) => Limit::Batches(n),
            None => self.cfg.limit_train,
        }
    }

    /// Validate every this many batches (`None`: at the end of the epoch).
    fn val_every(&self, total: Option<usize>) -> Result<Option<usize>> {
        match self.cfg.val_check_interval {
            None | Some(Limit::All) => Ok(None),
            Some(Limit::Batches(0)) => Err(Error::Config("val_check_interval must be at least 1 batch".into())),
            Some(Limit::Batches(n)) => Ok(Some(n)),
            Some(Limit::Fraction(f)) => {
                let total = total.ok_or_else(|| {
                    Error::Config(
                        "a fractional val_check_interval needs a training loader that knows its length".into(),
                    )
                })?;
                Ok(Some(((total as f64 * f) as usize).max(1)))
            }
        }
    }

    /// A validation run inside `fit`: `on_validation_model_zero_grad`, then the validation loop.
    fn validate_in_fit(&mut self, val: &mut Option<Vec<Loader<M::Batch>>>) -> Result<()> {
        let Some(loaders) = val.as_mut() else { return Ok(()) };
        // Lightning frees the gradients before validating, unless an accumulation window is open: those
        // gradients are the next optimizer step's (Lightning's PR #18710).
        if !self.hooks.progress.accumulating {
            self.hooks.on_validation_model_zero_grad(self.module)?;
        }
        let limit = match self.cfg.fast_dev_run {
            Some(n) => Limit::Batches(n),
            None => self.cfg.limit_val,
        };
        let limits = loaders.iter().map(|l| limit.resolve(l.len(), "val")).collect::<Result<Vec<_>>>()?;
        self.evaluation_loop(Evaluation::Validation, loaders, &limits)
    }
}

/// What runs while the training loader makes a batch.
pub(super) const TRAINING_LOADER: HookInfo = HookInfo::runtime("the training loader");

/// The seed of one training batch's randomness: SplitMix64 over the run's seed, the epoch, the batch and the
/// process's rank (each process of a distributed run draws its own dropout masks; rank 0 draws what a
/// single-process run does).
fn batch_seed(seed: u64, epoch: usize, batch_idx: usize, rank: usize) -> i64 {
    let mut z = seed
        ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (batch_idx as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
        ^ (rank as u64).wrapping_mul(0x8CB9_2BA7_2F3D_8DD7);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 1) as i64
}
