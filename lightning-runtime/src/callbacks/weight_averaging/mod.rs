//! Weight averaging (Lightning 2.6's `WeightAveraging` and `EMAWeightAveraging`): an averaged copy of the
//! module's variables, updated after optimizer steps, swapped in for validation, saved as the checkpoint's
//! weights, and given to the module when training ends. `swa.rs` holds the older `StochasticWeightAveraging`,
//! which also anneals the learning rate and, for models with batch norm, recomputes the running statistics in
//! one more epoch (`batch_norm.rs`).

mod average;
mod batch_norm;
mod swa;

use std::any::Any;

use serde_json::json;

pub use swa::{Annealing, StochasticWeightAveraging};

use self::average::{Averaged, AvgFn};
use crate::callback::{AnyModule, Callback, CallbackResult};
use crate::checkpoint::Checkpoint;
use crate::context::{Ctx, Stage};
use crate::output::StepOutput;

/// What both weight-averaging callbacks share: the average, and when it was last updated.
struct Core {
    avg_fn: AvgFn,
    use_buffers: bool,
    averaged: Option<Averaged>,
    /// `n_averaged` from a checkpoint's callback state, for an average not created yet.
    pending_n: Option<u64>,
    /// The optimizer steps taken when the average was last updated (0: never; Lightning's `_latest_update_step`).
    latest_update_step: usize,
    /// The epoch after which it was last updated.
    latest_update_epoch: Option<usize>,
}

impl Core {
    fn new(avg_fn: AvgFn) -> Self {
        Core {
            avg_fn,
            use_buffers: true,
            averaged: None,
            pending_n: None,
            latest_update_step: 0,
            latest_update_epoch: None,
        }
    }

    /// The average, created from the module's current variables if there is none yet (after the module's
    /// `configure_model` and its move to the run's device, so that it holds every variable where they live).
    fn averaged(&mut self, module: &dyn AnyModule) -> &mut Averaged {
        let use_buffers = self.use_buffers;
        let pending = self.pending_n.take();
        let averaged = self.averaged.get_or_insert_with(|| Averaged::of(module.var_store(), use_buffers));
        if let Some(n) = pending {
            averaged.n_averaged = n;
        }
        averaged
    }

    fn state(&self) -> serde_json::Value {
        json!({
            "latest_update_step": self.latest_update_step,
            "latest_update_epoch": self.latest_update_epoch,
            "n_averaged": self.averaged.as_ref().map(|a| a.n_averaged).or(self.pending_n).unwrap_or(0),
        })
    }

    fn load_state(&mut self, state: &serde_json::Value) -> CallbackResult {
        let bad = || format!("the saved weight-averaging state {state} lacks `latest_update_step` or `n_averaged`");
        self.latest_update_step = state["latest_update_step"].as_u64().ok_or_else(bad)? as usize;
        self.latest_update_epoch = state["latest_update_epoch"].as_u64().map(|e| e as usize);
        let n = state["n_averaged"].as_u64().ok_or_else(bad)?;
        match &mut self.averaged {
            Some(averaged) => averaged.n_averaged = n,
            None => self.pending_n = Some(n),
        }
        Ok(())
    }

    /// After a training batch: `should` is the rule's answer for the last optimizer step.
    fn after_step(&mut self, ctx: &Ctx, module: &dyn AnyModule, should: bool) -> CallbackResult {
        // `global_step` counts optimizer steps: with gradient accumulation, batches without a step do not update.
        let step = ctx.global_step();
        if step > self.latest_update_step && should {
            let avg_fn = self.avg_fn;
            self.averaged(module).update(module.var_store(), avg_fn)?;
            self.latest_update_step = step;
        }
        Ok(())
    }

    /// After a training epoch: `should` is the rule's answer for this epoch.
    fn after_epoch(&mut self, ctx: &Ctx, module: &dyn AnyModule, should: bool) -> CallbackResult {
        let epoch = ctx.current_epoch();
        if self.latest_update_epoch.is_none_or(|latest| epoch > latest) && should {
            let avg_fn = self.avg_fn;
            self.averaged(module).update(module.var_store(), avg_fn)?;
            self.latest_update_epoch = Some(epoch);
        }
        Ok(())
    }

    /// Swaps the average in (or back out) around a validation run of `fit`.
    fn swap(&mut self, ctx: &Ctx, module: &dyn AnyModule) -> CallbackResult {
        if ctx.stage() == Some(Stage::Fit) {
            self.averaged(module).swap(module.var_store())?;
        }
        Ok(())
    }
}

/// Implements `Callback` for a weight-averaging callback with a `core` and a `decide(step, epoch)`.
macro_rules! weight_averaging_callback {
    ($ty:ty, $name:literal) => {
        impl Callback for $ty {
            fn name(&self) -> String {
                $name.into()
            }
            fn state_dict(&self) -> Option<serde_json::Value> {
                Some(self.core.state())
            }
            fn load_state_dict(&mut self, state: serde_json::Value) -> CallbackResult {
                self.core.load_state(&state)
            }
            fn setup(&mut self, _ctx: &mut Ctx, _module: &mut dyn AnyModule, stage: Stage) -> CallbackResult {
                if stage == Stage::Fit {
                    // A new average for every `fit`, as Lightning makes a new `AveragedModel` in `setup`.
                    (self.core.averaged, self.core.pending_n) = (None, None);
                }
                Ok(())
            }
            fn on_fit_start(&mut self, _ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
                self.core.averaged(module);
                Ok(())
            }
            fn on_train_batch_end(
                &mut self,
                ctx: &mut Ctx,
                module: &mut dyn AnyModule,
                _outputs: &StepOutput,
                _batch: &dyn Any,
                _batch_idx: usize,
            ) -> CallbackResult {
                let should = self.decide(Some(ctx.global_step().saturating_sub(1)), None);
                self.core.after_step(ctx, module, should)
            }
            fn on_train_epoch_end(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
                let should = self.decide(None, Some(ctx.current_epoch()));
                self.core.after_epoch(ctx, module, should)
            }
            fn on_train_end(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
                // Lightning's: the module leaves `fit` with the averaged weights.
                let _ = ctx;
                self.core.averaged(module).copy_to(module.var_store())
            }
            fn on_validation_epoch_start(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
                self.core.swap(ctx, module)
            }
            fn on_validation_epoch_end(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
                self.core.swap(ctx, module)
            }
            fn on_save_checkpoint(
                &mut self,
                _ctx: &mut Ctx,
                _module: &mut dyn AnyModule,
                checkpoint: &mut Checkpoint,
            ) -> CallbackResult {
                if let Some(averaged) = &self.core.averaged {
                    average::save_into(averaged, checkpoint);
                }
                Ok(())
            }
            fn on_load_checkpoint(
                &mut self,
                ctx: &mut Ctx,
                module: &mut dyn AnyModule,
                checkpoint: &mut Checkpoint,
            ) -> CallbackResult {
                if ctx.stage() != Some(Stage::Fit) {
                    return Ok(());
                }
                // The module holds the checkpoint's `model.*` (the average) now: the average starts from them,
                // and the module takes back its current values.
                self.core.averaged = None;
                self.core.averaged(module);
                let averaged = self.core.averaged.as_mut().expect("created above");
                average::load_from(averaged, module.var_store(), checkpoint)?;
                Ok(())
            }
        }
    };
}

/// Keeps an average of the module's weights during `fit` (Lightning's `WeightAveraging`): by default the
/// equally weighted average of the weights after every optimizer step (SWA's average). Validation during `fit`
/// runs on the averaged weights (swapped in for the validation epoch, swapped back after it); checkpoints hold
/// the averaged weights as the model's (`model.*`, what `load_from_checkpoint` loads) and the trained weights
/// as `current_model.*`, with the callback's counters, so a resumed `fit` continues exactly; when training ends
/// the module is left with the averaged weights.
///
/// ```
/// use lightning_runtime::{Trainer, WeightAveraging};
/// // Average from the 100th optimizer step on.
/// let trainer = Trainer::new().callback(WeightAveraging::new().should_update(|step, _epoch| step.is_some_and(|s| s >= 100)));
/// ```
pub struct WeightAveraging {
    core: Core,
    rule: Box<dyn Fn(Option<usize>, Option<usize>) -> bool + Send>,
}

impl Default for WeightAveraging {
    fn default() -> Self {
        Self::new()
    }
}

impl WeightAveraging {
    /// The equally weighted average, updated after every optimizer step, buffers included.
    pub fn new() -> Self {
        WeightAveraging { core: Core::new(AvgFn::Mean), rule: Box::new(|step, _| step.is_some()) }
    }

    /// When to update (Lightning's overridable `should_update`): called with `(Some(step_idx), None)` after
    /// each optimizer step (the step's zero-based index) and `(None, Some(epoch))` after each training epoch.
    pub fn should_update(mut self, rule: impl Fn(Option<usize>, Option<usize>) -> bool + Send + 'static) -> Self {
        self.rule = Box::new(rule);
        self
    }

    /// Whether variables that do not require gradients (buffers, frozen weights) are averaged too (default true);
    /// with `false` they keep the module's values.
    pub fn use_buffers(mut self, on: bool) -> Self {
        self.core.use_buffers = on;
        self
    }

    fn decide(&self, step: Option<usize>, epoch: Option<usize>) -> bool {
        (self.rule)(step, epoch)
    }
}

weight_averaging_callback!(WeightAveraging, "WeightAveraging");

/// An exponential moving average of the module's weights (Lightning 2.6's `EMAWeightAveraging`):
/// `ema = decay * ema + (1 - decay) * weights` after every `update_every_n_steps`-th optimizer step, the first
/// update copying the weights. Validation, checkpoints, resume and the end of `fit` as [`WeightAveraging`]:
/// validation during `fit` sees the EMA weights, checkpoints save them as the model's weights, and the module
/// holds them when `fit` returns.
///
/// ```
/// use lightning_runtime::{EMAWeightAveraging, Trainer};
/// let ema = EMAWeightAveraging::new().decay(0.99).update_every_n_steps(2).update_starting_at_step(100);
/// let trainer = Trainer::new().max_epochs(10).callback(ema);
/// ```
pub struct EMAWeightAveraging {
    core: Core,
    decay: f64,
    update_every_n_steps: usize,
    update_starting_at_step: Option<usize>,
    update_starting_at_epoch: Option<usize>,
}

impl Default for EMAWeightAveraging {
    fn default() -> Self {
        Self::new()
    }
}

impl EMAWeightAveraging {
    /// Lightning's defaults: decay 0.999, an update after every optimizer step from the first, buffers included.
    pub fn new() -> Self {
        EMAWeightAveraging {
            core: Core::new(AvgFn::Ema(0.999)),
            decay: 0.999,
            update_every_n_steps: 1,
            update_starting_at_step: None,
            update_starting_at_epoch: None,
        }
    }

    /// The decay (the weight of the old average), within [0, 1]; a value outside is clamped into it.
    pub fn decay(mut self, decay: f64) -> Self {
        self.decay = if decay.is_nan() { 0.999 } else { decay.clamp(0.0, 1.0) };
        self.core.avg_fn = AvgFn::Ema(self.decay);
        self
    }

    /// Update after every `n`-th optimizer step (step indices divisible by `n`; 0 never updates on steps).
    pub fn update_every_n_steps(mut self, n: usize) -> Self {
        self.update_every_n_steps = n;
        self
    }

    /// Update only from this zero-based optimizer step on.
    pub fn update_starting_at_step(mut self, step: usize) -> Self {
        self.update_starting_at_step = Some(step);
        self
    }

    /// Also update at the end of every epoch from this one on (Lightning's `update_starting_at_epoch`).
    pub fn update_starting_at_epoch(mut self, epoch: usize) -> Self {
        self.update_starting_at_epoch = Some(epoch);
        self
    }

    /// Whether variables that do not require gradients are averaged too (default true).
    pub fn use_buffers(mut self, on: bool) -> Self {
        self.core.use_buffers = on;
        self
    }

    /// Lightning's `EMAWeightAveraging.should_update`.
    fn decide(&self, step: Option<usize>, epoch: Option<usize>) -> bool {
        let on_step = step.is_some_and(|step| {
            self.update_starting_at_step.is_none_or(|start| step >= start)
                && self.update_every_n_steps > 0
                && step % self.update_every_n_steps == 0
        });
        let on_epoch = epoch.is_some_and(|epoch| self.update_starting_at_epoch.is_some_and(|start| epoch >= start));
        on_step || on_epoch
    }
}

weight_averaging_callback!(EMAWeightAveraging, "EMAWeightAveraging");
