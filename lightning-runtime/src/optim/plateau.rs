//! `ReduceLROnPlateau`: the rate is cut by `factor` once the monitored metric has not improved for `patience`
//! steps (PyTorch's rules: a relative threshold, a cooldown, a floor), stepped by the Trainer with the metric's
//! value. Its state (the best value, the bad steps, the current rate) goes into checkpoints.

use serde::{Deserialize, Serialize};

/// Lightning's `{"scheduler": ReduceLROnPlateau(optimizer, ...), "monitor": "val_loss"}`, for
/// [`LrScheduler::reduce_on_plateau`](crate::LrScheduler::reduce_on_plateau).
///
/// ```
/// use lightning::{LrScheduler, Plateau};
/// let scheduler = LrScheduler::reduce_on_plateau(Plateau::new("val_loss").factor(0.5).patience(2));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plateau {
    monitor: String,
    maximize: bool,
    #[serde(with = "crate::json_float")]
    factor: f64,
    patience: usize,
    #[serde(with = "crate::json_float")]
    threshold: f64,
    cooldown: usize,
    #[serde(with = "crate::json_float")]
    min_lr: f64,
    #[serde(with = "crate::json_float::option")]
    best: Option<f64>,
    bad_steps: usize,
    cooldown_left: usize,
    #[serde(with = "crate::json_float::option")]
    lr: Option<f64>,
}

impl Plateau {
    /// Watches `monitor` (a logged metric), lower being better, with PyTorch's defaults: `factor` 0.1,
    /// `patience` 10, a relative `threshold` of 1e-4, no cooldown, no floor.
    pub fn new(monitor: impl Into<String>) -> Self {
        Plateau {
            monitor: monitor.into(),
            maximize: false,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            cooldown: 0,
            min_lr: 0.0,
            best: None,
            bad_steps: 0,
            cooldown_left: 0,
            lr: None,
        }
    }

    /// Higher is better (PyTorch's `mode="max"`).
    pub fn maximize(mut self) -> Self {
        self.maximize = true;
        self
    }

    /// What the rate is multiplied by on a plateau (in (0, 1)).
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }

    /// Steps without improvement before the rate is cut.
    pub fn patience(mut self, patience: usize) -> Self {
        self.patience = patience;
        self
    }

    /// The relative improvement that counts as one.
    pub fn threshold(mut self, threshold: f64) -> Self {
        self.threshold = threshold;
        self
    }

    /// Steps to wait after a cut before counting again.
    pub fn cooldown(mut self, cooldown: usize) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// The rate is never cut below this.
    pub fn min_lr(mut self, min_lr: f64) -> Self {
        self.min_lr = min_lr;
        self
    }

    /// The metric it watches.
    pub fn monitor(&self) -> &str {
        &self.monitor
    }

    pub(super) fn check(&self) -> Result<(), String> {
        if self.monitor.is_empty() {
            return Err("ReduceLROnPlateau needs a metric to monitor".into());
        }
        if !(self.factor > 0.0 && self.factor < 1.0) {
            return Err(format!("factor = {}: it must be within (0, 1)", self.factor));
        }
        super::finite_at_least_zero("threshold", self.threshold)?;
        super::finite_at_least_zero("min_lr", self.min_lr)
    }

    pub(super) fn lr(&self, base: f64) -> f64 {
        self.lr.unwrap_or(base)
    }

    /// One step with the metric's value (PyTorch's `ReduceLROnPlateau.step(metrics)`).
    pub(super) fn observe(&mut self, value: f64, base: f64) {
        let better = match self.best {
            None => !value.is_nan(),
            Some(best) if self.maximize => value > best * (1.0 + self.threshold),
            Some(best) => value < best * (1.0 - self.threshold),
        };
        if better {
            self.best = Some(value);
            self.bad_steps = 0;
        } else {
            self.bad_steps += 1;
        }
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            self.bad_steps = 0;
        }
        if self.bad_steps > self.patience {
            let current = self.lr(base);
            let cut = (current * self.factor).max(self.min_lr);
            // PyTorch's eps: a cut smaller than this is not made.
            if current - cut > 1e-8 {
                self.lr = Some(cut);
            }
            self.cooldown_left = self.cooldown;
            self.bad_steps = 0;
        }
    }
}
