//! The learning-rate range test (Leslie Smith, 2015; Lightning's `Tuner.lr_find`): a short fit whose learning
//! rate grows from `min_lr` to `max_lr` step by step, recording the smoothed training loss; the suggestion is the
//! rate where the loss falls fastest.

use std::sync::{Arc, Mutex};

use super::{trial_config, Saved, Tuner};
use crate::context::Ctx;
use crate::data::DataSource;
use crate::module::{HasConfigureOptimizers, HasTrainingStep};
use crate::output::StepOutput;
use crate::{AnyModule, Callback, CallbackResult, Error, NonFinite, Result};

/// How the rate grows between `min_lr` and `max_lr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LrMode {
    /// Geometrically (Lightning's default).
    #[default]
    Exponential,
    /// Arithmetically.
    Linear,
}

/// The range test's settings, Lightning's defaults: from 1e-8 to 1 over 100 steps, exponentially, stopping
/// once the smoothed loss is 4 times the best seen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrFind {
    /// The first rate tried.
    pub min_lr: f64,
    /// The last rate tried.
    pub max_lr: f64,
    /// How many steps (rates) to try.
    pub num_training: usize,
    /// Exponential or linear growth.
    pub mode: LrMode,
    /// Stop when the smoothed loss exceeds this many times the best (`None`: never stop early).
    pub early_stop_threshold: Option<f64>,
}

impl Default for LrFind {
    fn default() -> Self {
        LrFind {
            min_lr: 1e-8,
            max_lr: 1.0,
            num_training: 100,
            mode: LrMode::Exponential,
            early_stop_threshold: Some(4.0),
        }
    }
}

impl LrFind {
    /// The rates to try, from `min_lr` to `max_lr`.
    pub fn range(mut self, min_lr: f64, max_lr: f64) -> Self {
        (self.min_lr, self.max_lr) = (min_lr, max_lr);
        self
    }

    /// How many steps (rates) to try.
    pub fn num_training(mut self, steps: usize) -> Self {
        self.num_training = steps;
        self
    }

    /// Exponential or linear growth.
    pub fn mode(mut self, mode: LrMode) -> Self {
        self.mode = mode;
        self
    }

    /// When to stop early (`None`: never).
    pub fn early_stop_threshold(mut self, threshold: Option<f64>) -> Self {
        self.early_stop_threshold = threshold;
        self
    }

    /// The rate of the step after `steps` steps: Lightning's `_ExponentialLR`/`_LinearLR`, whose first step runs
    /// at `min_lr` and whose last at `max_lr`.
    fn lr(&self, steps: usize) -> f64 {
        if steps == 0 {
            return self.min_lr;
        }
        let r = (steps + 1) as f64 / self.num_training as f64;
        match self.mode {
            LrMode::Exponential => self.min_lr * (self.max_lr / self.min_lr).powf(r),
            LrMode::Linear => self.min_lr + r * (self.max_lr - self.min_lr),
        }
    }

    fn check(&self) -> Result<()> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !(positive(self.min_lr) && positive(self.max_lr) && self.min_lr < self.max_lr) {
            return Err(Error::Config(format!(
                "lr_find: the range {}..{} must be finite, above 0 and increasing",
                self.min_lr, self.max_lr
            )));
        }
        if self.num_training < 2 {
            return Err(Error::Config("lr_find: num_training must be at least 2".into()));
        }
        if self.early_stop_threshold.is_some_and(|t| !(t.is_finite() && t > 0.0)) {
            return Err(Error::Config("lr_find: early_stop_threshold must be a finite number above 0".into()));
        }
        Ok(())
    }
}

/// What a range test found: the rate of each step and the smoothed loss after it.
#[derive(Clone, Debug, PartialEq)]
pub struct LrFinder {
    /// The rate of each step, in order.
    pub lrs: Vec<f64>,
    /// The smoothed training losses (NaN where a step gave no loss).
    pub losses: Vec<f64>,
    /// How the rate grew (the plot's rate axis is logarithmic for `Exponential`).
    pub mode: LrMode,
}

impl LrFinder {
    /// Lightning's suggestion: the rate where the loss falls fastest, skipping the first 10 and the last point.
    pub fn suggestion(&self) -> Option<f64> {
        self.suggestion_skipping(10, 1)
    }

    /// The rate where the loss falls fastest (the most negative gradient of the loss over the rate, as
    /// `torch.gradient` computes it on unevenly spaced points), among the finite losses after skipping
    /// `skip_begin` points at the start and `skip_end` at the end; `None` with fewer than two such points.
    pub fn suggestion_skipping(&self, skip_begin: usize, skip_end: usize) -> Option<f64> {
        self.optimal_index(skip_begin, skip_end).map(|i| self.lrs[i])
    }

    fn optimal_index(&self, skip_begin: usize, skip_end: usize) -> Option<usize> {
        let end = self.losses.len().min(self.lrs.len()).saturating_sub(skip_end);
        let points: Vec<(usize, f64, f64)> = (skip_begin..end)
            .filter(|&i| self.losses[i].is_finite())
            .map(|i| (i, self.lrs[i], self.losses[i]))
            .collect();
        if points.len() < 2 {
            return None;
        }
        let n = points.len();
        let gradient = |k: usize| -> f64 {
            let (x, f) = (|j: usize| points[j].1, |j: usize| points[j].2);
            match k {
                0 => (f(1) - f(0)) / (x(1) - x(0)),
                k if k == n - 1 => (f(k) - f(k - 1)) / (x(k) - x(k - 1)),
                k => {
                    // Second-order central differences on uneven spacing (torch.gradient's interior formula).
                    let (hl, hr) = (x(k) - x(k - 1), x(k + 1) - x(k));
                    (hl * hl * f(k + 1) - hr * hr * f(k - 1) + (hr * hr - hl * hl) * f(k)) / (hl * hr * (hl + hr))
                }
            }
        };
        // (Two equal rates give 0/0: such a point is left out rather than chosen.)
        let best = (0..n).filter(|&k| gradient(k).is_finite()).min_by(|&a, &b| gradient(a).total_cmp(&gradient(b)))?;
        Some(points[best].0)
    }

    /// Saves the curve (loss over learning rate, the rate on a log scale for the exponential test) with the
    /// suggestion marked, as an SVG image.
    pub fn plot(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        let suggested = self.optimal_index(10, 1).map(|i| (self.lrs[i], self.losses[i]));
        super::plot::lr_curve(path.as_ref(), &self.lrs, &self.losses, self.mode == LrMode::Exponential, suggested)
    }
}

impl Tuner<'_> {
    /// Runs the range test on `train` (a loader, or a data module; `None`: the module's `train_dataloader`): a
    /// fit of `num_training` steps from the module's current weights with the rate set before each step,
    /// recording the smoothed loss; then puts the module's weights and the Trainer back as they were. The
    /// module's `configure_optimizers` must return one optimizer (its schedulers are left out); validation does
    /// not run.
    pub fn lr_find<'d, M: HasTrainingStep + HasConfigureOptimizers + 'static>(
        &mut self,
        module: &mut M,
        train: impl Into<DataSource<'d, M::Batch>>,
        options: LrFind,
    ) -> Result<LrFinder> {
        options.check()?;
        if self.trainer.cfg.fast_dev_run.is_some() {
            return Err(Error::Config("lr_find does not run under fast_dev_run".into()));
        }
        let saved = Saved::take(self.trainer, module)?;
        trial_config(self.trainer, options.num_training);
        self.trainer.cfg.lr_finding = true;
        // A diverging loss is what the test looks for: it ends the test, not the program.
        self.trainer.cfg.nonfinite = NonFinite::Off;
        let curve = Arc::new(Mutex::new(Curve::default()));
        let accumulate = self.trainer.cfg.accumulate_grad_batches;
        self.trainer.callbacks.push(Box::new(Recorder { options, curve: curve.clone(), beta: 0.98, accumulate }));
        let ran = self.trainer.fit(module, train, None);
        let restored = saved.restore(self.trainer, module);
        ran?;
        restored?;
        let curve = std::mem::take(&mut *curve.lock().unwrap_or_else(|p| p.into_inner()));
        Ok(LrFinder { lrs: curve.lrs, losses: curve.losses, mode: options.mode })
    }
}

#[derive(Default)]
struct Curve {
    lrs: Vec<f64>,
    losses: Vec<f64>,
    avg_loss: f64,
    best_loss: f64,
}

/// Sets the rate before each step and records the smoothed loss after it (Lightning's `_LRCallback`).
struct Recorder {
    options: LrFind,
    curve: Arc<Mutex<Curve>>,
    beta: f64,
    accumulate: usize,
}

impl Recorder {
    /// Whether this batch ends an accumulation window (only those are recorded, as in Lightning).
    fn steps_here(&self, batch_idx: usize) -> bool {
        (batch_idx + 1) % self.accumulate == 0
    }
}

impl Callback for Recorder {
    fn name(&self) -> String {
        "LrFinder".to_string()
    }

    fn logged_names(&self, _: &Ctx) -> Option<Vec<String>> {
        Some(Vec::new())
    }

    fn on_train_batch_start(
        &mut self,
        ctx: &mut Ctx,
        _: &mut dyn AnyModule,
        _: &dyn std::any::Any,
        batch_idx: usize,
    ) -> CallbackResult {
        let lr = self.options.lr(ctx.global_step());
        if let Some(optimizer) = ctx.optimizers().first_mut() {
            optimizer.set_lr(lr);
        }
        if self.steps_here(batch_idx) {
            self.curve.lock().unwrap_or_else(|p| p.into_inner()).lrs.push(lr);
        }
        Ok(())
    }

    fn on_train_batch_end(
        &mut self,
        ctx: &mut Ctx,
        _: &mut dyn AnyModule,
        outputs: &StepOutput,
        _: &dyn std::any::Any,
        batch_idx: usize,
    ) -> CallbackResult {
        if !self.steps_here(batch_idx) {
            return Ok(());
        }
        let mut curve = self.curve.lock().unwrap_or_else(|p| p.into_inner());
        let Some(loss) = outputs else {
            // No loss (a skipped batch): a point the suggestion leaves out.
            curve.losses.push(f64::NAN);
            return Ok(());
        };
        let loss = loss.f_double_value(&[])?;
        let step = ctx.global_step();
        curve.avg_loss = self.beta * curve.avg_loss + (1.0 - self.beta) * loss;
        let smoothed = curve.avg_loss / (1.0 - self.beta.powi(step as i32 + 1));
        if let Some(threshold) = self.options.early_stop_threshold {
            // A NaN loss diverged too.
            if step > 1 && (smoothed.is_nan() || smoothed > threshold * curve.best_loss) {
                ctx.request_stop();
            }
        }
        if smoothed < curve.best_loss || step == 1 {
            curve.best_loss = smoothed;
        }
        curve.losses.push(smoothed);
        Ok(())
    }
}
