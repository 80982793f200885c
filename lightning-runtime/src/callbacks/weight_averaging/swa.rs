//! `StochasticWeightAveraging` (Lightning's callback of that name): from a chosen epoch on, the equally weighted
//! average of the weights at the start of every remaining epoch, with the learning rate annealed to `swa_lr`;
//! the module gets the average when the last epoch ends, and a model with batch norm one more epoch that only
//! runs forward, to recompute the running statistics for the averaged weights.

use serde_json::json;

use super::average::{Averaged, AvgFn};
use super::batch_norm::{BatchNormLayers, Before};
use crate::callback::{AnyModule, Callback, CallbackResult};
use crate::checkpoint::Checkpoint;
use crate::context::{Ctx, Stage};

/// How [`StochasticWeightAveraging`] moves the learning rate to `swa_lr` (PyTorch's `SWALR` strategies).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Annealing {
    /// `(1 - cos(pi t)) / 2` of the way at fraction `t` of the annealing epochs (the default).
    #[default]
    Cos,
    /// `t` of the way.
    Linear,
}

/// When averaging starts.
#[derive(Clone, Copy, Debug, PartialEq)]
enum EpochStart {
    /// The `n`-th epoch, counted from 1.
    Epoch(usize),
    /// `int(fraction * max_epochs)`-th epoch, counted from 1.
    Fraction(f64),
}

/// Stochastic Weight Averaging (Lightning's `StochasticWeightAveraging`, Izmailov et al. 2018): from epoch
/// `swa_epoch_start` on, the weights at the start of every epoch up to the last are averaged with equal weights,
/// while the learning rate anneals from its value when averaging starts to `swa_lr` over `annealing_epochs`
/// epochs (cosine by default) and then stays there, replacing what the module's scheduler would set. When the
/// last epoch (`max_epochs`) ends, the module takes the averaged weights. The average and the annealing's state
/// are saved in checkpoints (`swa.<variable>` tensors and the callback's state), so a resumed run continues
/// exactly. Validation during `fit` sees the trained weights, as in Lightning (the [`WeightAveraging`]
/// callbacks validate on the average).
///
/// Needs `max_epochs`, one optimizer and at most one scheduler.
///
/// A model with batch-norm layers (variables `<layer>.running_mean` and `<layer>.running_var`, as tch's
/// `nn::batch_norm*d` make them) gets one more epoch after the last, as in Lightning: at its start the module
/// takes the averaged weights and every layer's running statistics are reset; its batches run `training_step`
/// forward only (no gradients, backward, optimizer or scheduler step; the global step stays), and after each
/// batch the statistics are set to the mean over the epoch's batches so far of the batches' own statistics
/// (PyTorch's `momentum=None`). The statistics so end as the average over one epoch of the SWA weights. During
/// `fit`, `ctx.max_epochs()` counts that epoch, and `current_epoch` is `max_epochs + 1` when `fit` returns (both
/// as Lightning's). tch fixes a layer's momentum when it is built, so the callback recovers each batch's
/// statistics from how far the layer moved its running values: [`batch_norm_momentum`] must be the layers'
/// momentum (tch's default, 0.1, unless set in `BatchNormConfig`), each layer must run once per batch in
/// training mode, and the module must use automatic optimization.
///
/// [`batch_norm_momentum`]: StochasticWeightAveraging::batch_norm_momentum
///
/// [`WeightAveraging`]: crate::WeightAveraging
///
/// ```
/// use lightning_runtime::{Annealing, StochasticWeightAveraging, Trainer};
/// let swa = StochasticWeightAveraging::new(1e-2).swa_epoch_start(8).annealing_epochs(2).annealing(Annealing::Linear);
/// let trainer = Trainer::new().max_epochs(10).callback(swa);
/// ```
pub struct StochasticWeightAveraging {
    swa_lr: f64,
    start: EpochStart,
    annealing_epochs: usize,
    annealing: Annealing,
    averaged: Option<Averaged>,
    /// Restored from a checkpoint before the average exists.
    pending: Option<(u64, Vec<(String, tch::Tensor)>)>,
    /// The epoch averaging began in and the learning rate then (`None` until it begins).
    began: Option<(usize, f64)>,
    latest_update_epoch: Option<usize>,
    /// The last epoch (zero-based), from `max_epochs` when `fit` starts.
    swa_end: usize,
    /// The momentum the model's batch-norm layers were built with.
    bn_momentum: f64,
    /// The model's batch-norm layers (`None` without any: no extra epoch).
    bn: Option<BatchNormLayers>,
    /// The batches of the batch-norm epoch folded into the statistics so far, while that epoch runs.
    bn_batches: Option<u64>,
    /// The statistics before the running batch of the batch-norm epoch.
    bn_before: Option<Before>,
}

impl StochasticWeightAveraging {
    /// Averaging with the learning rate annealed to `swa_lr`, from 80% of `max_epochs` on, over 10 epochs,
    /// cosine (Lightning's defaults).
    pub fn new(swa_lr: f64) -> Self {
        StochasticWeightAveraging {
            swa_lr,
            start: EpochStart::Fraction(0.8),
            annealing_epochs: 10,
            annealing: Annealing::Cos,
            averaged: None,
            pending: None,
            began: None,
            latest_update_epoch: None,
            swa_end: 0,
            bn_momentum: 0.1,
            bn: None,
            bn_batches: None,
            bn_before: None,
        }
    }

    /// The momentum the model's batch-norm layers were built with (tch's `BatchNormConfig::momentum`, default
    /// 0.1, which is this setting's default too), within (0, 1]. The batch-norm epoch recovers each batch's
    /// statistics from how far a layer moved its running values, which depends on it.
    pub fn batch_norm_momentum(mut self, momentum: f64) -> Self {
        self.bn_momentum = momentum;
        self
    }

    /// Start averaging at this epoch, counted from 1 (Lightning's integer `swa_epoch_start`).
    pub fn swa_epoch_start(mut self, epoch: usize) -> Self {
        self.start = EpochStart::Epoch(epoch);
        self
    }

    /// Start averaging at this fraction of `max_epochs` (Lightning's float `swa_epoch_start`, within [0, 1]).
    pub fn swa_epoch_start_fraction(mut self, fraction: f64) -> Self {
        self.start = EpochStart::Fraction(fraction);
        self
    }

    /// Epochs over which the learning rate moves to `swa_lr` (default 10; 0 sets it at once).
    pub fn annealing_epochs(mut self, epochs: usize) -> Self {
        self.annealing_epochs = epochs;
        self
    }

    /// The annealing's shape (default cosine).
    pub fn annealing(mut self, annealing: Annealing) -> Self {
        self.annealing = annealing;
        self
    }

    /// The first averaged epoch, zero-based.
    fn swa_start(&self, max_epochs: usize) -> usize {
        let start = match self.start {
            EpochStart::Epoch(epoch) => epoch,
            EpochStart::Fraction(f) => (max_epochs as f64 * f) as usize,
        };
        start.saturating_sub(1)
    }

    /// The learning rate for `epoch`, once averaging began at `began` with rate `base` (PyTorch's `SWALR`,
    /// stepped once per epoch).
    fn lr(&self, epoch: usize, began: usize, base: f64) -> f64 {
        let t = if self.annealing_epochs == 0 {
            1.0
        } else {
            ((epoch - began) as f64 / self.annealing_epochs as f64).min(1.0)
        };
        let alpha = match self.annealing {
            Annealing::Cos => (1.0 - (std::f64::consts::PI * t).cos()) / 2.0,
            Annealing::Linear => t,
        };
        if alpha >= 1.0 {
            self.swa_lr
        } else {
            self.swa_lr * alpha + base * (1.0 - alpha)
        }
    }

    /// Sets the annealed learning rate for the current epoch, once averaging has begun.
    fn set_lr(&self, ctx: &mut Ctx) {
        if let Some((began, base)) = self.began {
            let lr = self.lr(ctx.current_epoch().max(began), began, base);
            if let Some(optimizer) = ctx.optimizers().first_mut() {
                optimizer.set_lr(lr);
            }
        }
    }

    fn averaged(&mut self, module: &dyn AnyModule) -> CallbackResult {
        if self.averaged.is_none() {
            // Lightning's SWA averages the parameters only.
            let mut averaged = Averaged::of(module.var_store(), false);
            if let Some((n, tensors)) = self.pending.take() {
                // (A checkpoint taken before anything was averaged may hold no average: nothing to load then.)
                if n > 0 || !tensors.is_empty() {
                    averaged.load(|name| tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t.shallow_clone()))?;
                }
                averaged.n_averaged = n;
            }
            self.averaged = Some(averaged);
        }
        Ok(())
    }
}

impl Callback for StochasticWeightAveraging {
    fn state_dict(&self) -> Option<serde_json::Value> {
        Some(json!({
            "n_averaged": self.averaged.as_ref().map_or(0, |a| a.n_averaged),
            "latest_update_epoch": self.latest_update_epoch,
            "began_epoch": self.began.map(|b| b.0),
            "base_lr": self.began.map(|b| b.1),
            // Inside the batch-norm epoch: the batches whose statistics the module's running values average.
            "bn_batches": self.bn_batches,
        }))
    }

    fn load_state_dict(&mut self, state: serde_json::Value) -> CallbackResult {
        let n =
            state["n_averaged"].as_u64().ok_or_else(|| format!("the saved SWA state {state} lacks `n_averaged`"))?;
        self.latest_update_epoch = state["latest_update_epoch"].as_u64().map(|e| e as usize);
        self.began = match (state["began_epoch"].as_u64(), state["base_lr"].as_f64()) {
            (Some(epoch), Some(lr)) => Some((epoch as usize, lr)),
            _ => None,
        };
        self.bn_batches = state["bn_batches"].as_u64();
        match (&mut self.averaged, &mut self.pending) {
            (Some(averaged), _) => averaged.n_averaged = n,
            (None, Some(pending)) => pending.0 = n,
            (None, None) => self.pending = Some((n, Vec::new())),
        }
        Ok(())
    }

    fn setup(&mut self, _ctx: &mut Ctx, _module: &mut dyn AnyModule, stage: Stage) -> CallbackResult {
        if stage == Stage::Fit {
            (self.averaged, self.pending, self.began, self.latest_update_epoch) = (None, None, None, None);
            (self.bn, self.bn_batches, self.bn_before) = (None, None, None);
        }
        Ok(())
    }

    fn on_fit_start(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        let max_epochs = ctx
            .max_epochs
            .ok_or("StochasticWeightAveraging needs the Trainer's `max_epochs`: it averages up to the last epoch")?;
        if ctx.optimizers.len() != 1 {
            return Err(format!(
                "StochasticWeightAveraging works with one optimizer; `configure_optimizers` returned {}",
                ctx.optimizers.len()
            )
            .into());
        }
        if ctx.schedulers.len() > 1 {
            return Err("StochasticWeightAveraging works with at most one LR scheduler".into());
        }
        match self.start {
            EpochStart::Epoch(0) => return Err("swa_epoch_start must be at least 1 (epochs count from 1)".into()),
            EpochStart::Fraction(f) if !(0.0..=1.0).contains(&f) => {
                return Err(format!("swa_epoch_start_fraction = {f}: it must be within [0, 1]").into())
            }
            _ => {}
        }
        if !(self.swa_lr.is_finite() && self.swa_lr > 0.0) {
            return Err(format!("swa_lr = {}: it must be a positive number", self.swa_lr).into());
        }
        self.swa_end = max_epochs.saturating_sub(1);
        let layers = BatchNormLayers::of(module.var_store());
        if !layers.is_empty() {
            // Checked under `fast_dev_run` too: a dev run is there to catch what the real run would refuse.
            if !ctx.automatic_optimization {
                return Err("StochasticWeightAveraging of a model with batch norm needs automatic optimization: its \
                            extra epoch runs `training_step` without training"
                    .into());
            }
            if !(self.bn_momentum > 0.0 && self.bn_momentum <= 1.0) {
                return Err(format!("batch_norm_momentum = {}: it must be within (0, 1]", self.bn_momentum).into());
            }
        }
        // Under `fast_dev_run` the run stops after its few batches, as Lightning's does on its `max_steps`, so no
        // batch-norm epoch follows.
        if !layers.is_empty() && !ctx.fast_dev_run {
            // Lightning's `fit_loop.max_epochs += 1`: the epoch that recomputes the statistics, after the last.
            ctx.max_epochs = Some(max_epochs + 1);
            // Resumed inside that epoch: it goes on forward only (its start, which set this, does not run again).
            ctx.forward_only = self.bn_batches.is_some();
            self.bn = Some(layers);
        }
        self.averaged(module)
    }

    fn on_train_epoch_start(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        let epoch = ctx.current_epoch();
        let max_epochs = self.swa_end + 1;
        let in_range = (self.swa_start(max_epochs)..=self.swa_end).contains(&epoch);
        if in_range && self.began.is_none() {
            let base = ctx.optimizers().first().map_or(self.swa_lr, |o| o.lr());
            self.began = Some((epoch, base));
        }
        self.set_lr(ctx);
        if in_range && self.latest_update_epoch.is_none_or(|latest| epoch > latest) {
            self.averaged(module)?;
            if let Some(averaged) = &mut self.averaged {
                averaged.update(module.var_store(), AvgFn::Mean)?;
            }
            self.latest_update_epoch = Some(epoch);
        }
        if let (Some(layers), true) = (&self.bn, epoch == self.swa_end + 1) {
            // Lightning's batch-norm epoch: the module takes the average, the statistics start afresh, and the
            // epoch only runs forward.
            if let Some(averaged) = self.averaged.as_ref().filter(|a| a.n_averaged > 0) {
                averaged.copy_to(module.var_store())?;
            }
            layers.reset()?;
            self.bn_batches = Some(0);
            ctx.forward_only = true;
        }
        Ok(())
    }

    fn on_train_batch_start(
        &mut self,
        ctx: &mut Ctx,
        _module: &mut dyn AnyModule,
        _batch: &dyn std::any::Any,
        _batch_idx: usize,
    ) -> CallbackResult {
        // The annealed rate holds over the module's scheduler, whose steps would otherwise move it mid-epoch.
        self.set_lr(ctx);
        if let (Some(layers), Some(_)) = (&self.bn, self.bn_batches) {
            self.bn_before = Some(layers.snapshot());
        }
        Ok(())
    }

    fn on_train_batch_end(
        &mut self,
        _ctx: &mut Ctx,
        _module: &mut dyn AnyModule,
        _outputs: &crate::output::StepOutput,
        _batch: &dyn std::any::Any,
        _batch_idx: usize,
    ) -> CallbackResult {
        if let (Some(layers), Some(k), Some(before)) = (&self.bn, self.bn_batches, self.bn_before.take()) {
            // After every batch, not only at the epoch's end: a validation run or a checkpoint within the epoch
            // sees the average so far, as with PyTorch's cumulative average.
            layers.fold(&before, k, self.bn_momentum)?;
            self.bn_batches = Some(k + 1);
        }
        Ok(())
    }

    fn on_train_epoch_end(&mut self, _ctx: &mut Ctx, _module: &mut dyn AnyModule) -> CallbackResult {
        // The batch-norm epoch is over: its statistics are final.
        self.bn_batches = None;
        Ok(())
    }

    fn on_train_end(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        if self.bn.is_some() {
            // Lightning's `fit_loop.max_epochs -= 1`: the Trainer's own count again.
            ctx.max_epochs = ctx.max_epochs.map(|m| m.saturating_sub(1));
        }
        // Only a run that trained its last epoch gets the average (a run stopped early keeps its weights).
        let finished = ctx.current_epoch() > self.swa_end || self.latest_update_epoch == Some(self.swa_end);
        if let (true, Some(averaged)) = (finished, &self.averaged) {
            if averaged.n_averaged > 0 {
                averaged.copy_to(module.var_store())?;
            }
        }
        Ok(())
    }

    fn on_save_checkpoint(
        &mut self,
        _ctx: &mut Ctx,
        _module: &mut dyn AnyModule,
        checkpoint: &mut Checkpoint,
    ) -> CallbackResult {
        if let Some(averaged) = &self.averaged {
            checkpoint
                .tensors
                .extend(averaged.tensors.iter().map(|(name, t)| (format!("swa.{name}"), t.shallow_clone())));
        }
        Ok(())
    }

    fn on_load_checkpoint(
        &mut self,
        ctx: &mut Ctx,
        _module: &mut dyn AnyModule,
        checkpoint: &mut Checkpoint,
    ) -> CallbackResult {
        if ctx.stage() != Some(Stage::Fit) {
            return Ok(());
        }
        let tensors: Vec<_> = checkpoint
            .tensors
            .iter()
            .filter_map(|(name, t)| name.strip_prefix("swa.").map(|n| (n.to_string(), t.shallow_clone())))
            .collect();
        self.averaged = None;
        if !tensors.is_empty() {
            self.pending = Some((0, tensors));
        }
        Ok(())
    }
}
