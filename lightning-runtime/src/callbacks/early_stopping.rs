//! `EarlyStopping`: stops `fit` when a monitored metric stops improving (or diverges, or reaches a target).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use super::MonitorMode;
use crate::callback::{AnyModule, Callback, CallbackResult};
use crate::context::Ctx;

/// Lightning's `EarlyStopping`: checked at the end of every training epoch, after validation, once the epoch's
/// metrics are reduced. Monitoring a metric that was never logged is an error that lists the metrics that were.
///
/// ```
/// use lightning::{EarlyStopping, MonitorMode, Trainer};
/// let stop = EarlyStopping::new("val_loss").patience(3).min_delta(1e-4);
/// let trainer = Trainer::new().max_epochs(100).callback(stop);
/// # let _ = MonitorMode::Max;
/// ```
///
/// The callback moves into the Trainer; take a [`handle`](EarlyStopping::handle) first to read after `fit`
/// whether and why it stopped the run.
#[derive(Debug)]
pub struct EarlyStopping {
    monitor: String,
    mode: MonitorMode,
    patience: usize,
    min_delta: f64,
    stopping_threshold: Option<f64>,
    divergence_threshold: Option<f64>,
    check_finite: bool,
    /// Shared with every [`EarlyStoppingHandle`].
    state: Arc<Mutex<State>>,
}

impl Clone for EarlyStopping {
    /// A callback with the same settings and a copy of the state (not shared with this one's handles).
    fn clone(&self) -> Self {
        EarlyStopping { monitor: self.monitor.clone(), state: Arc::new(Mutex::new(lock(&self.state).clone())), ..*self }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic elsewhere while the lock was held leaves plain data behind, still worth reading.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A cheap, cloneable view of an [`EarlyStopping`]'s state that stays readable after the callback has moved into a
/// Trainer (and after `fit`).
///
/// ```
/// use lightning::{EarlyStopping, Trainer};
/// let stop = EarlyStopping::new("val_loss").patience(2);
/// let handle = stop.handle();
/// let trainer = Trainer::new().max_epochs(50).callback(stop);
/// // trainer.fit(..)?;
/// assert_eq!(handle.stopped_epoch(), None); // not run yet
/// ```
#[derive(Clone, Debug)]
pub struct EarlyStoppingHandle {
    state: Arc<Mutex<State>>,
}

impl EarlyStoppingHandle {
    /// The epoch it stopped the run at, if it did.
    pub fn stopped_epoch(&self) -> Option<usize> {
        lock(&self.state).stopped_epoch
    }

    /// Why it stopped the run, if it did.
    pub fn reason(&self) -> Option<String> {
        lock(&self.state).reason.clone()
    }

    /// The best value of the monitored metric seen so far.
    pub fn best_score(&self) -> Option<f64> {
        lock(&self.state).best
    }

    /// Checks in a row without improvement so far.
    pub fn wait_count(&self) -> usize {
        lock(&self.state).wait
    }
}

/// What a checkpoint keeps, so a resumed run keeps counting patience.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct State {
    #[serde(with = "crate::json_float::option")]
    best: Option<f64>,
    wait: usize,
    stopped_epoch: Option<usize>,
    reason: Option<String>,
}

impl EarlyStopping {
    /// Stops when `monitor` has not improved for `patience` (default 3) checks; lower is better unless `mode`.
    pub fn new(monitor: impl Into<String>) -> Self {
        EarlyStopping {
            monitor: monitor.into(),
            mode: MonitorMode::Min,
            patience: 3,
            min_delta: 0.0,
            stopping_threshold: None,
            divergence_threshold: None,
            check_finite: true,
            state: Arc::default(),
        }
    }

    /// Whether lower or higher is better.
    pub fn mode(mut self, mode: MonitorMode) -> Self {
        self.mode = mode;
        self
    }

    /// Checks without improvement before stopping.
    pub fn patience(mut self, patience: usize) -> Self {
        self.patience = patience;
        self
    }

    /// The smallest change that counts as an improvement.
    pub fn min_delta(mut self, delta: f64) -> Self {
        self.min_delta = delta.abs();
        self
    }

    /// Stop at once when the metric reaches this value.
    pub fn stopping_threshold(mut self, value: f64) -> Self {
        self.stopping_threshold = Some(value);
        self
    }

    /// Stop at once when the metric gets worse than this value.
    pub fn divergence_threshold(mut self, value: f64) -> Self {
        self.divergence_threshold = Some(value);
        self
    }

    /// Stop when the metric becomes NaN or infinite (default true).
    pub fn check_finite(mut self, on: bool) -> Self {
        self.check_finite = on;
        self
    }

    /// A view of its state that stays readable after the callback has moved into a Trainer.
    pub fn handle(&self) -> EarlyStoppingHandle {
        EarlyStoppingHandle { state: Arc::clone(&self.state) }
    }

    /// The epoch it stopped the run at, if it did.
    pub fn stopped_epoch(&self) -> Option<usize> {
        lock(&self.state).stopped_epoch
    }

    /// Why it stopped the run, if it did.
    pub fn reason(&self) -> Option<String> {
        lock(&self.state).reason.clone()
    }

    fn better(&self, value: f64, than: f64) -> bool {
        match self.mode {
            MonitorMode::Min => value < than - self.min_delta,
            MonitorMode::Max => value > than + self.min_delta,
        }
    }

    /// Why to stop after seeing `value`, if the run should stop.
    fn check(&mut self, value: f64) -> Option<String> {
        let name = &self.monitor;
        if self.check_finite && !value.is_finite() {
            return Some(format!("`{name}` = {value} is not finite"));
        }
        let beyond = |a: f64, b: f64| match self.mode {
            MonitorMode::Min => a <= b,
            MonitorMode::Max => a >= b,
        };
        if let Some(target) = self.stopping_threshold {
            if beyond(value, target) {
                return Some(format!("`{name}` = {value} reached the stopping threshold {target}"));
            }
        }
        if let Some(limit) = self.divergence_threshold {
            if !beyond(value, limit) && value != limit {
                return Some(format!("`{name}` = {value} diverged past {limit}"));
            }
        }
        let mut state = lock(&self.state);
        match state.best {
            Some(best) if !self.better(value, best) => {
                state.wait += 1;
                (state.wait >= self.patience)
                    .then(|| format!("`{name}` did not improve for {} checks (best {best})", state.wait))
            }
            _ => {
                state.best = Some(value);
                state.wait = 0;
                None
            }
        }
    }
}

impl Callback for EarlyStopping {
    fn monitors(&self) -> bool {
        true
    }

    fn monitor(&self) -> Option<String> {
        Some(self.monitor.clone())
    }

    fn logged_names(&self, _: &Ctx) -> Option<Vec<String>> {
        Some(Vec::new())
    }

    fn on_train_epoch_end(&mut self, ctx: &mut Ctx, _module: &mut dyn AnyModule) -> CallbackResult {
        let metrics = ctx.callback_metrics();
        let Some(&value) = metrics.get(&self.monitor) else {
            let logged: Vec<&str> = metrics.keys().map(String::as_str).collect();
            return Err(format!(
                "EarlyStopping monitors `{}`, which was never logged; the logged metrics are: [{}]",
                self.monitor,
                logged.join(", ")
            )
            .into());
        };
        if let Some(reason) = self.check(value) {
            let mut state = lock(&self.state);
            state.stopped_epoch = Some(ctx.current_epoch());
            state.reason = Some(reason);
            ctx.request_stop();
        }
        Ok(())
    }

    fn state_dict(&self) -> Option<serde_json::Value> {
        serde_json::to_value(&*lock(&self.state)).ok()
    }

    fn load_state_dict(&mut self, state: serde_json::Value) -> CallbackResult {
        *lock(&self.state) = serde_json::from_value(state)?;
        Ok(())
    }
}
