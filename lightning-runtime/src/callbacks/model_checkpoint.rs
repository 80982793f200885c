//! `ModelCheckpoint`: saves checkpoints during `fit`, keeps the best `k` by a monitored metric, and writes
//! `last.ckpt` (Lightning's `lightning.pytorch.callbacks.ModelCheckpoint`).
//!
//! What it decides and what the Trainer does are split: the callback picks the file name and the files that
//! fall out of the top `k`, then asks with [`Ctx::save_checkpoint_replacing`]; the Trainer writes the new file
//! atomically when the hook returns and only then deletes the old ones, so a crash never leaves fewer than `k`
//! good checkpoints. The bookkeeping lives behind an `Arc<Mutex<_>>` so that a [`ModelCheckpointHandle`] taken
//! before the callback moves into the Trainer reads it after `fit`.

mod filename;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use self::filename::{RenderError, Template, Value};
use crate::callback::{AnyModule, Callback, CallbackResult};
use crate::context::{Ctx, Stage};
use crate::output::StepOutput;

/// Which way a monitored metric improves: `Min` for losses and errors, `Max` for accuracies and scores.
///
/// It also parses from Lightning's strings (`"min"`, `"max"`), for configuration files and command lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MonitorMode {
    /// Lower is better (the default, as in Lightning).
    #[default]
    Min,
    /// Higher is better.
    Max,
}

impl MonitorMode {
    /// Whether `a` is strictly better than `b`. A NaN or infinite `a` never is: a diverged run must not
    /// replace a good checkpoint (Lightning's `torch.lt`/`torch.gt` would let `-inf` win in `min` mode).
    fn better(self, a: f64, b: f64) -> bool {
        a.is_finite()
            && match self {
                MonitorMode::Min => a < b,
                MonitorMode::Max => a > b,
            }
    }

    /// The score that every other beats: what a NaN or infinite value is recorded as.
    fn worst(self) -> f64 {
        match self {
            MonitorMode::Min => f64::INFINITY,
            MonitorMode::Max => f64::NEG_INFINITY,
        }
    }
}

impl fmt::Display for MonitorMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MonitorMode::Min => "min",
            MonitorMode::Max => "max",
        })
    }
}

impl FromStr for MonitorMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "min" => Ok(MonitorMode::Min),
            "max" => Ok(MonitorMode::Max),
            other => Err(format!("`mode` can be min or max, but got {other:?}")),
        }
    }
}

/// Saves checkpoints during `fit`: every epoch (or every `n` epochs, training steps, or interval of time),
/// keeping the `save_top_k` best by a monitored metric, and optionally `last.ckpt` (Lightning's
/// `ModelCheckpoint`, with the same defaults: `save_top_k = 1`, `mode = min`, every epoch, file names
/// `epoch={epoch}-step={step}.ckpt`).
///
/// The options chain; mistakes in them (a `save_top_k` without a monitor, two saving schedules at once, a
/// malformed file name template) end the run in `setup` with an error naming the problem. Monitoring a metric
/// the module never logs is an error too, at the first save where it should be there.
///
/// The callback moves into the Trainer; take a [`handle`](ModelCheckpoint::handle) first to read the best
/// checkpoint after `fit`:
///
/// ```no_run
/// use lightning_runtime::{ModelCheckpoint, Trainer};
///
/// let checkpoint = ModelCheckpoint::new("checkpoints")
///     .monitor("val_loss")
///     .save_top_k(3)
///     .save_last(true)
///     .filename("{epoch}-{val_loss:.3f}"); // → checkpoints/epoch=7-val_loss=0.123.ckpt
/// let best = checkpoint.handle();
/// let trainer = Trainer::new().max_epochs(20).callback(checkpoint);
/// // trainer.fit(&mut model, train, val)?;
/// if let Some(path) = best.best_model_path() {
///     println!("best: {} ({:?})", path.display(), best.best_model_score());
/// }
/// ```
///
/// Files: top-`k` checkpoints are written atomically and a file that falls out of the top `k` is deleted only
/// after its replacement is safely on disk. A name that collides with an existing file gets `-v1`, `-v2`, ...
/// (Lightning's version counter); only `last.ckpt` is overwritten in place.
///
/// Differences from Lightning: checkpoints are always taken at the end of the training epoch (after that
/// epoch's validation) rather than at the end of validation; `{name}` in a template is not given a second
/// `name=` when the template already has one; a template or monitor naming a metric that is not logged is an
/// error rather than a warning or a `0` (except before the first validation run, which may still log it); a
/// NaN or infinite score never beats a finite one; there is no `save_weights_only`; and with `fast_dev_run`
/// it saves as usual (Lightning saves nothing), since the context does not tell callbacks about it.
#[derive(Debug)]
pub struct ModelCheckpoint {
    settings: Settings,
    /// The parsed template and schedule, once `setup` has checked the settings.
    plan: Option<Plan>,
    /// What one `fit` has seen so far (not saved in checkpoints).
    fit: FitProgress,
    shared: Arc<Mutex<Tracker>>,
}

/// The options, as the builder sets them.
#[derive(Clone, Debug)]
struct Settings {
    dirpath: PathBuf,
    filename: Option<String>,
    monitor: Option<String>,
    mode: MonitorMode,
    save_top_k: i64,
    save_last: bool,
    every_n_epochs: Option<usize>,
    every_n_train_steps: Option<usize>,
    train_time_interval: Option<Duration>,
    auto_insert_metric_name: bool,
    verbose: bool,
}

/// When to save, resolved as Lightning's `__init_triggers` does: every epoch unless another schedule is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Triggers {
    every_n_epochs: usize,
    every_n_train_steps: usize,
    train_time_interval: Option<Duration>,
}

#[derive(Clone, Debug)]
struct Plan {
    /// Shared so that taking the plan at every batch end costs a reference count, not a copy.
    template: Arc<Template>,
    triggers: Triggers,
}

#[derive(Debug, Default)]
struct FitProgress {
    /// A validation run is coming (the sanity check ran, or a validation run started).
    validation_expected: bool,
    /// A validation run (not the sanity check) has ended: every metric validation logs exists now.
    validation_finished: bool,
    /// Training epochs that have ended in this `fit`.
    epochs_ended: usize,
    /// Metrics already warned about as not logged yet.
    warned: BTreeSet<String>,
    /// When the time-based schedule last saved (or training started).
    last_time_checked: Option<Instant>,
}

/// The bookkeeping a resumed run needs, shared with every [`ModelCheckpointHandle`].
#[derive(Clone, Debug, Default)]
struct Tracker {
    /// The kept top-`k` checkpoints and their scores, in the order they were saved (ties keep the first).
    best_k_models: Vec<(PathBuf, f64)>,
    best_model_path: Option<PathBuf>,
    best_model_score: Option<f64>,
    current_score: Option<f64>,
    last_model_path: Option<PathBuf>,
    /// The global step of the last save: a second save at the same step is skipped (Lightning's
    /// `_last_global_step_saved`, 0 at first since nothing is worth saving before the first step).
    last_global_step_saved: usize,
}

impl Tracker {
    /// The index of the worst kept checkpoint (the first of equals, as Python's `max(dict, key=...)`). Kept
    /// scores are finite or the mode's worst value, never NaN, so plain comparisons order them.
    fn worst_index(&self, mode: MonitorMode) -> Option<usize> {
        let mut worst: Option<usize> = None;
        for (i, (_, score)) in self.best_k_models.iter().enumerate() {
            let current_worst = worst.map(|w| self.best_k_models[w].1);
            let is_worse = current_worst.is_none_or(|w| match mode {
                MonitorMode::Min => *score > w,
                MonitorMode::Max => *score < w,
            });
            if is_worse {
                worst = Some(i);
            }
        }
        worst
    }

    /// Recomputes the best path and score from the kept checkpoints.
    fn update_best(&mut self, mode: MonitorMode) {
        let mut best: Option<usize> = None;
        for (i, (_, score)) in self.best_k_models.iter().enumerate() {
            if best.is_none_or(|b| mode.better(*score, self.best_k_models[b].1)) {
                best = Some(i);
            }
        }
        if let Some(b) = best {
            let (path, score) = &self.best_k_models[b];
            (self.best_model_path, self.best_model_score) = (Some(path.clone()), Some(*score));
        }
    }
}

/// A cheap, cloneable view of a [`ModelCheckpoint`]'s results that stays readable after the callback has
/// moved into a Trainer (and after `fit`). Every accessor reads the current state.
///
/// ```no_run
/// use lightning_runtime::{ModelCheckpoint, Trainer};
/// let checkpoint = ModelCheckpoint::new("checkpoints").monitor("val_loss").save_top_k(2);
/// let handle = checkpoint.handle();
/// let trainer = Trainer::new().max_epochs(5).callback(checkpoint);
/// // trainer.fit(..)?;
/// for (path, score) in handle.best_k_models() {
///     println!("{}: {score}", path.display());
/// }
/// ```
#[derive(Clone, Debug)]
pub struct ModelCheckpointHandle {
    shared: Arc<Mutex<Tracker>>,
}

fn lock(shared: &Mutex<Tracker>) -> MutexGuard<'_, Tracker> {
    // A panic elsewhere while the lock was held leaves plain data behind, still worth reading.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ModelCheckpointHandle {
    /// The best checkpoint by the monitored metric; without a monitor, the latest top-`k` checkpoint.
    pub fn best_model_path(&self) -> Option<PathBuf> {
        lock(&self.shared).best_model_path.clone()
    }

    /// The monitored metric's value in the best checkpoint (`None` without a monitor or before any save).
    /// A NaN or infinite value is recorded as the worst possible score (`+inf` in `min` mode, `-inf` in `max`).
    pub fn best_model_score(&self) -> Option<f64> {
        lock(&self.shared).best_model_score
    }

    /// `last.ckpt`, once it has been written (with `save_last(true)`).
    pub fn last_model_path(&self) -> Option<PathBuf> {
        lock(&self.shared).last_model_path.clone()
    }

    /// The kept top-`k` checkpoints and their scores (empty without a monitor, as in Lightning).
    pub fn best_k_models(&self) -> BTreeMap<PathBuf, f64> {
        lock(&self.shared).best_k_models.iter().cloned().collect()
    }

    /// The monitored value of the latest checkpoint that entered the top `k`.
    pub fn current_score(&self) -> Option<f64> {
        lock(&self.shared).current_score
    }
}

impl ModelCheckpoint {
    /// The file name of the checkpoint `save_last(true)` overwrites at every save point.
    pub const CHECKPOINT_NAME_LAST: &'static str = "last";
    /// The extension added to every file name.
    pub const FILE_EXTENSION: &'static str = ".ckpt";
    /// The file name template when none is set.
    pub const DEFAULT_FILENAME: &'static str = "{epoch}-{step}";

    /// A checkpoint callback writing into `dirpath` (made absolute against the current directory, as
    /// Lightning's `realpath`, so that the paths it reports stay valid if the process changes directory). The
    /// folder is created at the first save.
    pub fn new(dirpath: impl Into<PathBuf>) -> Self {
        let dirpath = dirpath.into();
        let dirpath = std::path::absolute(&dirpath).unwrap_or(dirpath);
        ModelCheckpoint {
            settings: Settings {
                dirpath,
                filename: None,
                monitor: None,
                mode: MonitorMode::Min,
                save_top_k: 1,
                save_last: false,
                every_n_epochs: None,
                every_n_train_steps: None,
                train_time_interval: None,
                auto_insert_metric_name: true,
                verbose: false,
            },
            plan: None,
            fit: FitProgress::default(),
            shared: Arc::default(),
        }
    }

    /// The file name template, without the `.ckpt` extension: `{epoch}`, `{step}` and any logged metric, with
    /// an optional Python format spec (`{val_loss:.3f}`, `{epoch:03d}`). With `auto_insert_metric_name` (the
    /// default) `"{epoch}-{val_loss:.2f}"` renders as `epoch=3-val_loss=0.12`, and so does
    /// `"epoch={epoch}-val_loss={val_loss:.2f}"`, whose `name=` parts are not doubled. Default: `"{epoch}-{step}"`
    /// (`epoch=3-step=64`). A `/` in the result makes a subfolder of `dirpath`, as in Lightning.
    pub fn filename(mut self, template: impl Into<String>) -> Self {
        self.settings.filename = Some(template.into());
        self
    }

    /// The metric that ranks checkpoints (a name logged with `ctx.log`, or `epoch` or `step`). Without one,
    /// `save_top_k` can only be `-1` (keep all), `0` or `1` (keep the latest).
    pub fn monitor(mut self, metric: impl Into<String>) -> Self {
        self.settings.monitor = Some(metric.into());
        self
    }

    /// Whether lower (`Min`, the default) or higher (`Max`) values of the monitored metric are better.
    pub fn mode(mut self, mode: MonitorMode) -> Self {
        self.settings.mode = mode;
        self
    }

    /// How many checkpoints to keep: the `k` best by the monitor (default 1), `-1` for every one, `0` for
    /// none (then only `last.ckpt`, if asked for, is written).
    pub fn save_top_k(mut self, k: i64) -> Self {
        self.settings.save_top_k = k;
        self
    }

    /// Also write `last.ckpt` at every save point (every epoch end, and every step or time-based save), so
    /// that the latest state is always there to resume from.
    pub fn save_last(mut self, on: bool) -> Self {
        self.settings.save_last = on;
        self
    }

    /// Save at the end of every `n`-th training epoch (the default schedule, with `n = 1`; `0` turns the
    /// epoch schedule off). Excludes the other schedules.
    pub fn every_n_epochs(mut self, n: usize) -> Self {
        self.settings.every_n_epochs = Some(n);
        self
    }

    /// Save after every `n`-th optimizer step (at `on_train_batch_end`). Excludes the other schedules.
    pub fn every_n_train_steps(mut self, n: usize) -> Self {
        self.settings.every_n_train_steps = Some(n);
        self
    }

    /// Save at the first batch end after each `interval` of training time. Excludes the other schedules.
    pub fn train_time_interval(mut self, interval: Duration) -> Self {
        self.settings.train_time_interval = Some(interval);
        self
    }

    /// Whether `{name}` in the template becomes `name={name}` (default `true`).
    pub fn auto_insert_metric_name(mut self, on: bool) -> Self {
        self.settings.auto_insert_metric_name = on;
        self
    }

    /// Report each decision (saved as top `k`, not in the top `k`) on stderr.
    pub fn verbose(mut self, on: bool) -> Self {
        self.settings.verbose = on;
        self
    }

    /// A handle that reads this callback's results, still valid once the callback has moved into a Trainer.
    pub fn handle(&self) -> ModelCheckpointHandle {
        ModelCheckpointHandle { shared: Arc::clone(&self.shared) }
    }

    /// The folder checkpoints go to (absolute).
    pub fn dirpath(&self) -> &Path {
        &self.settings.dirpath
    }

    /// See [`ModelCheckpointHandle::best_model_path`].
    pub fn best_model_path(&self) -> Option<PathBuf> {
        self.handle().best_model_path()
    }

    /// See [`ModelCheckpointHandle::best_model_score`].
    pub fn best_model_score(&self) -> Option<f64> {
        self.handle().best_model_score()
    }

    /// See [`ModelCheckpointHandle::last_model_path`].
    pub fn last_model_path(&self) -> Option<PathBuf> {
        self.handle().last_model_path()
    }

    /// See [`ModelCheckpointHandle::best_k_models`].
    pub fn best_k_models(&self) -> BTreeMap<PathBuf, f64> {
        self.handle().best_k_models()
    }

    /// The path the template gives for these values, before any `-vN` suffix (Lightning's
    /// `format_checkpoint_name`): `epoch` and `step` render as integers, metrics as floats.
    ///
    /// ```
    /// use lightning_runtime::ModelCheckpoint;
    /// let checkpoint = ModelCheckpoint::new("/ckpt").filename("{epoch:02d}-{val_loss:.2f}");
    /// let metrics = [("val_loss".to_string(), 0.12345)].into_iter().collect();
    /// let path = checkpoint.format_checkpoint_name(3, 64, &metrics).unwrap();
    /// assert_eq!(path, std::path::Path::new("/ckpt/epoch=03-val_loss=0.12.ckpt"));
    /// ```
    pub fn format_checkpoint_name(
        &self,
        epoch: usize,
        step: usize,
        metrics: &BTreeMap<String, f64>,
    ) -> crate::Result<PathBuf> {
        let template = self.template().map_err(crate::Error::Config)?;
        let candidates = Candidates { epoch, step, metrics };
        match template.render(|name| candidates.get(name)) {
            Ok(name) => Ok(self.settings.dirpath.join(format!("{name}{}", Self::FILE_EXTENSION))),
            Err(RenderError::Format(problem)) => Err(crate::Error::Config(problem)),
            Err(RenderError::Missing(name)) => Err(crate::Error::Config(format!(
                "the filename template {:?} uses `{name}`, which is not among the logged metrics: {}",
                template.source(),
                list(metrics.keys())
            ))),
        }
    }

    fn template(&self) -> Result<Template, String> {
        let source = self.settings.filename.as_deref().unwrap_or(Self::DEFAULT_FILENAME);
        Template::parse(source, self.settings.auto_insert_metric_name)
    }

    fn triggers(&self) -> Triggers {
        let s = &self.settings;
        if s.every_n_epochs.is_none() && s.every_n_train_steps.is_none() && s.train_time_interval.is_none() {
            Triggers { every_n_epochs: 1, every_n_train_steps: 0, train_time_interval: None }
        } else {
            Triggers {
                every_n_epochs: s.every_n_epochs.unwrap_or(0),
                every_n_train_steps: s.every_n_train_steps.unwrap_or(0),
                train_time_interval: s.train_time_interval,
            }
        }
    }

    /// Checks the settings (Lightning's `__validate_init_configuration`, plus the template and the folder).
    fn check(&self) -> Result<Plan, String> {
        let s = &self.settings;
        if s.save_top_k < -1 {
            return Err(format!(
                "ModelCheckpoint: invalid save_top_k={}: it must be -1 (keep every checkpoint), 0 (keep none) or a \
                 positive count",
                s.save_top_k
            ));
        }
        let triggers = self.triggers();
        let active =
            [triggers.every_n_epochs >= 1, triggers.every_n_train_steps >= 1, triggers.train_time_interval.is_some()];
        if active.iter().filter(|on| **on).count() > 1 {
            return Err(format!(
                "ModelCheckpoint: every_n_epochs={}, every_n_train_steps={} and train_time_interval={} are mutually \
                 exclusive: set only one of them",
                triggers.every_n_epochs,
                triggers.every_n_train_steps,
                triggers.train_time_interval.map_or_else(|| "None".to_string(), |d| format!("{d:?}")),
            ));
        }
        if triggers.train_time_interval == Some(Duration::ZERO) {
            return Err("ModelCheckpoint: train_time_interval must be longer than zero".into());
        }
        match &s.monitor {
            None if !matches!(s.save_top_k, -1..=1) => {
                return Err(format!(
                    "ModelCheckpoint(save_top_k={}, monitor=None) is not a valid configuration: there is no quantity \
                     to rank the top {} by; set `monitor(\"metric\")`, or use save_top_k -1 (keep all) or 1 (keep \
                     the latest)",
                    s.save_top_k, s.save_top_k
                ));
            }
            Some(monitor) if monitor.is_empty() => {
                return Err("ModelCheckpoint: the monitored metric's name is empty".into());
            }
            _ => {}
        }
        if s.dirpath.as_os_str().is_empty() {
            return Err("ModelCheckpoint: the checkpoint folder (dirpath) is empty".into());
        }
        if s.dirpath.is_file() {
            return Err(format!("ModelCheckpoint: the checkpoint folder {} is a file", s.dirpath.display()));
        }
        let template = self.template().map_err(|problem| format!("ModelCheckpoint: {problem}"))?;
        Ok(Plan { template: Arc::new(template), triggers })
    }

    /// The checked settings (`setup` normally checks them; a callback driven by hand is checked here).
    fn plan(&mut self) -> Result<&Plan, String> {
        if self.plan.is_none() {
            self.plan = Some(self.check()?);
        }
        Ok(self.plan.as_ref().expect("set above"))
    }

    /// Lightning's `_should_skip_saving_checkpoint`: only while fitting, never in the sanity check, and at most
    /// once per global step.
    fn should_skip(&self, ctx: &Ctx) -> bool {
        ctx.stage() != Some(Stage::Fit)
            || ctx.sanity_checking()
            || ctx.fast_dev_run()
            || lock(&self.shared).last_global_step_saved == ctx.global_step()
    }

    /// A save point: the top-`k` checkpoint (when `topk`), then `last.ckpt`.
    fn save_point(&mut self, ctx: &mut Ctx, plan: &Plan, topk: bool, at_epoch_end: bool) -> CallbackResult {
        let metrics = ctx.callback_metrics();
        let candidates = Candidates { epoch: ctx.current_epoch(), step: ctx.global_step(), metrics: &metrics };
        if topk && self.settings.save_top_k != 0 {
            match &self.settings.monitor {
                Some(monitor) => self.save_monitored(ctx, plan, &candidates, monitor.clone(), at_epoch_end)?,
                None => self.save_unmonitored(ctx, plan, &candidates, at_epoch_end)?,
            }
        }
        if self.settings.save_last {
            let path = self.last_path();
            let mut tracker = lock(&self.shared);
            tracker.last_model_path = Some(path.clone());
            tracker.last_global_step_saved = ctx.global_step();
            drop(tracker);
            ctx.save_checkpoint(path);
        }
        Ok(())
    }

    /// Lightning's `_save_monitor_checkpoint` and `_update_best_and_save`.
    fn save_monitored(
        &mut self,
        ctx: &mut Ctx,
        plan: &Plan,
        candidates: &Candidates<'_>,
        monitor: String,
        at_epoch_end: bool,
    ) -> CallbackResult {
        let mode = self.settings.mode;
        let Some(current) = candidates.get(&monitor).map(Value::as_f64) else {
            return self.missing(&monitor, None, candidates, at_epoch_end);
        };
        let k = self.settings.save_top_k;
        let (qualifies, dropped) = {
            let tracker = lock(&self.shared);
            let kept = tracker.best_k_models.len();
            if k == -1 || (kept as i64) < k {
                (true, Vec::new())
            } else {
                // Full: the new one must beat the worst kept; every checkpoint beyond the best k-1 falls out
                // (more than one only when a resumed run lowered save_top_k).
                let mut rest = tracker.clone();
                let mut dropped = Vec::new();
                while rest.best_k_models.len() as i64 >= k {
                    let Some(worst) = rest.worst_index(mode) else { break };
                    dropped.push(rest.best_k_models.remove(worst));
                }
                let kth = dropped.first().map_or(mode.worst(), |(_, score)| *score);
                (mode.better(current, kth), dropped)
            }
        };
        if !qualifies {
            if self.settings.verbose {
                eprintln!(
                    "Epoch {}, global step {}: {monitor:?} was not in top {k}",
                    candidates.epoch, candidates.step
                );
            }
            return Ok(());
        }
        let dropped: Vec<PathBuf> = dropped.into_iter().map(|(path, _)| path).collect();
        let Some(path) = self.new_path(plan, candidates, &dropped, at_epoch_end)? else { return Ok(()) };
        let score = if current.is_finite() { current } else { mode.worst() };
        let mut tracker = lock(&self.shared);
        tracker.best_k_models.retain(|(kept, _)| !dropped.contains(kept));
        tracker.best_k_models.push((path.clone(), score));
        tracker.current_score = Some(score);
        tracker.update_best(mode);
        tracker.last_global_step_saved = candidates.step;
        if self.settings.verbose {
            eprintln!(
                "Epoch {}, global step {}: {monitor:?} reached {current:.5} (best {:.5}), saving model to {} as top {}",
                candidates.epoch,
                candidates.step,
                tracker.best_model_score.unwrap_or(score),
                path.display(),
                if k == -1 { tracker.best_k_models.len() as i64 } else { k },
            );
        }
        drop(tracker);
        let remove = dropped.into_iter().filter(|old| self.may_remove(old, &path)).collect();
        ctx.save_checkpoint_replacing(path, remove);
        Ok(())
    }

    /// Lightning's `_save_none_monitor_checkpoint`: `k = 1` keeps the latest, `k = -1` keeps all.
    fn save_unmonitored(
        &mut self,
        ctx: &mut Ctx,
        plan: &Plan,
        candidates: &Candidates<'_>,
        at_epoch_end: bool,
    ) -> CallbackResult {
        let previous = lock(&self.shared).best_model_path.clone();
        let replaceable: Vec<PathBuf> =
            if self.settings.save_top_k == 1 { previous.into_iter().collect() } else { Vec::new() };
        let Some(path) = self.new_path(plan, candidates, &replaceable, at_epoch_end)? else { return Ok(()) };
        let mut tracker = lock(&self.shared);
        tracker.best_model_path = Some(path.clone());
        tracker.last_global_step_saved = candidates.step;
        drop(tracker);
        if self.settings.verbose {
            eprintln!(
                "Epoch {}, global step {}: saving model to {}",
                candidates.epoch,
                candidates.step,
                path.display()
            );
        }
        let remove = replaceable.into_iter().filter(|old| self.may_remove(old, &path)).collect();
        ctx.save_checkpoint_replacing(path, remove);
        Ok(())
    }

    /// The next checkpoint's path: the template's, with `-v1`, `-v2`, ... while it collides with a file on disk
    /// or one this callback keeps, except the `replaceable` ones (falling out of the top `k` with this save).
    /// `None` when a metric the template needs is not logged yet but may still come.
    fn new_path(
        &mut self,
        plan: &Plan,
        candidates: &Candidates<'_>,
        replaceable: &[PathBuf],
        at_epoch_end: bool,
    ) -> Result<Option<PathBuf>, crate::HookError> {
        let name = match plan.template.render(|name| candidates.get(name)) {
            Ok(name) => name,
            Err(RenderError::Format(problem)) => return Err(format!("ModelCheckpoint: {problem}").into()),
            Err(RenderError::Missing(metric)) => {
                self.missing(&metric, Some(plan.template.source()), candidates, at_epoch_end)?;
                return Ok(None);
            }
        };
        let last = self.last_path();
        let tracker = lock(&self.shared);
        let taken = |path: &PathBuf| {
            !replaceable.contains(path)
                && (path.exists()
                    || tracker.best_k_models.iter().any(|(kept, _)| kept == path)
                    || tracker.best_model_path.as_ref() == Some(path)
                    // `last.ckpt` is written right after, and would overwrite a top-k file of that name.
                    || (self.settings.save_last && *path == last))
        };
        let dir = &self.settings.dirpath;
        let mut path = dir.join(format!("{name}{}", Self::FILE_EXTENSION));
        let mut version = 1;
        while taken(&path) {
            path = dir.join(format!("{name}-v{version}{}", Self::FILE_EXTENSION));
            version += 1;
        }
        Ok(Some(path))
    }

    fn last_path(&self) -> PathBuf {
        self.settings.dirpath.join(format!("{}{}", Self::CHECKPOINT_NAME_LAST, Self::FILE_EXTENSION))
    }

    /// Only files inside the checkpoint folder are ever deleted (Lightning's `_should_remove_checkpoint`).
    fn may_remove(&self, old: &Path, new: &Path) -> bool {
        old != new && old.starts_with(&self.settings.dirpath)
    }

    /// A metric the monitor or the template needs is missing. It is an error unless it may still come: no
    /// validation run has ended yet in this `fit`, and either no training epoch has ended yet either (a
    /// step-based save before the first validation) or a validation run is known to be coming (the sanity check
    /// ran, or one has started: the case of `check_val_every_n_epoch` > 1). Then this save is skipped with a
    /// warning, as Lightning does before the first validation.
    fn missing(
        &mut self,
        metric: &str,
        template: Option<&str>,
        candidates: &Candidates<'_>,
        at_epoch_end: bool,
    ) -> CallbackResult {
        let fit = &self.fit;
        let epoch_ended = at_epoch_end || fit.epochs_ended > 0;
        let may_still_come = !fit.validation_finished && (!epoch_ended || fit.validation_expected);
        let what = match template {
            Some(template) => format!("the filename template {template:?} uses `{metric}`, which"),
            None => format!("ModelCheckpoint(monitor={metric:?}) monitors `{metric}`, which"),
        };
        if may_still_come {
            if self.fit.warned.insert(metric.to_string()) {
                eprintln!(
                    "warning: {what} has not been logged yet (epoch {}, global step {}); ModelCheckpoint skips its \
                     checkpoints until it is",
                    candidates.epoch, candidates.step
                );
            }
            return Ok(());
        }
        Err(format!(
            "{what} is not among the logged metrics: {}. HINT: did you call `ctx.log({metric:?}, value)` in the \
             module (in every epoch)? `epoch` and `step` can be used too",
            list(candidates.metrics.keys())
        )
        .into())
    }

    /// Checks at the end of an epoch that the monitored metric exists, for the step- and time-based schedules
    /// whose saves could otherwise keep skipping it.
    fn check_monitor(&mut self, ctx: &Ctx) -> CallbackResult {
        let Some(monitor) = self.settings.monitor.clone() else { return Ok(()) };
        if self.settings.save_top_k == 0 || monitor == "epoch" || monitor == "step" || ctx.metric(&monitor).is_some() {
            return Ok(());
        }
        let metrics = ctx.callback_metrics();
        let candidates = Candidates { epoch: ctx.current_epoch(), step: ctx.global_step(), metrics: &metrics };
        self.missing(&monitor, None, &candidates, true)
    }
}

/// `[a, b, c]`, or `(none)`.
fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        "(none)".to_string()
    } else {
        format!("[{}]", names.join(", "))
    }
}

/// What a save point can name: `epoch` and `step` from the Trainer, and every current metric.
struct Candidates<'m> {
    epoch: usize,
    step: usize,
    metrics: &'m BTreeMap<String, f64>,
}

impl Candidates<'_> {
    fn get(&self, name: &str) -> Option<Value> {
        match name {
            "epoch" => Some(Value::Int(self.epoch as i64)),
            "step" => Some(Value::Int(self.step as i64)),
            _ => self.metrics.get(name).copied().map(Value::Float),
        }
    }
}

impl Value {
    fn as_f64(self) -> f64 {
        match self {
            Value::Int(v) => v as f64,
            Value::Float(v) => v,
        }
    }
}

/// A score in JSON, NaN and infinities included (see `json_float`).
type JsonScore = crate::json_float::JsonF64;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct KeptCheckpoint {
    path: String,
    score: JsonScore,
}

/// The callback's part of a checkpoint: Lightning's `state_dict` keys, plus the step of the last save. Paths
/// are absolute; `best_k_models` is a list to keep the order in which checkpoints were saved.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct SavedState {
    monitor: Option<String>,
    mode: Option<String>,
    dirpath: Option<String>,
    best_model_path: Option<String>,
    best_model_score: Option<JsonScore>,
    current_score: Option<JsonScore>,
    best_k_models: Vec<KeptCheckpoint>,
    kth_best_model_path: Option<String>,
    kth_value: Option<JsonScore>,
    last_model_path: Option<String>,
    last_global_step_saved: usize,
}

fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Python's `repr` of a string, for the state key.
fn py_str(s: &str) -> String {
    if s.contains('\'') && !s.contains('"') {
        format!("\"{}\"", s.replace('\\', "\\\\"))
    } else {
        format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// Python's `repr` of a `datetime.timedelta`.
fn py_timedelta(d: Duration) -> String {
    let (days, seconds, micros) = (d.as_secs() / 86_400, d.as_secs() % 86_400, d.subsec_micros());
    let mut fields = Vec::new();
    if days > 0 {
        fields.push(format!("days={days}"));
    }
    if seconds > 0 {
        fields.push(format!("seconds={seconds}"));
    }
    if micros > 0 {
        fields.push(format!("microseconds={micros}"));
    }
    if fields.is_empty() {
        "datetime.timedelta(0)".to_string()
    } else {
        format!("datetime.timedelta({})", fields.join(", "))
    }
}

impl Callback for ModelCheckpoint {
    fn saves_checkpoints(&self) -> bool {
        true
    }

    /// Lightning's `state_key`: the class name and the settings that tell two checkpoint callbacks apart
    /// (`ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min', 'every_n_train_steps': 0, 'every_n_epochs': 1,
    /// 'train_time_interval': None}`), so that several can run in one Trainer and each gets its own state back.
    fn state_key(&self) -> String {
        let t = self.triggers();
        format!(
            "ModelCheckpoint{{'monitor': {}, 'mode': '{}', 'every_n_train_steps': {}, 'every_n_epochs': {}, \
             'train_time_interval': {}}}",
            self.settings.monitor.as_deref().map_or_else(|| "None".to_string(), py_str),
            self.settings.mode,
            t.every_n_train_steps,
            t.every_n_epochs,
            t.train_time_interval.map_or_else(|| "None".to_string(), py_timedelta),
        )
    }

    /// It saves at `on_train_epoch_end` once the epoch's metrics (validation's included) are reduced.
    fn monitors(&self) -> bool {
        true
    }

    fn state_dict(&self) -> Option<serde_json::Value> {
        let tracker = lock(&self.shared);
        let mode = self.settings.mode;
        let k = self.settings.save_top_k;
        let kth = (k > 0 && tracker.best_k_models.len() as i64 >= k)
            .then(|| tracker.worst_index(mode))
            .flatten()
            .map(|i| &tracker.best_k_models[i]);
        let state = SavedState {
            monitor: self.settings.monitor.clone(),
            mode: Some(mode.to_string()),
            dirpath: Some(path_string(&self.settings.dirpath)),
            best_model_path: tracker.best_model_path.as_deref().map(path_string),
            best_model_score: tracker.best_model_score.map(JsonScore::from),
            current_score: tracker.current_score.map(JsonScore::from),
            best_k_models: tracker
                .best_k_models
                .iter()
                .map(|(path, score)| KeptCheckpoint { path: path_string(path), score: (*score).into() })
                .collect(),
            kth_best_model_path: kth.map(|(path, _)| path_string(path)),
            kth_value: Some(kth.map_or(mode.worst(), |(_, score)| *score).into()),
            last_model_path: tracker.last_model_path.as_deref().map(path_string),
            last_global_step_saved: tracker.last_global_step_saved,
        };
        serde_json::to_value(state).ok()
    }

    /// Restores the bookkeeping, so that a resumed run keeps ranking against (and deleting) the checkpoints of
    /// the run it continues. As in Lightning, when the folder has changed only `best_model_path` comes back.
    fn load_state_dict(&mut self, state: serde_json::Value) -> CallbackResult {
        let state: SavedState = serde_json::from_value(state)
            .map_err(|e| format!("ModelCheckpoint: the saved state cannot be read: {e}"))?;
        // Scores ranked for another metric, or the other way round, would rank this run's checkpoints wrongly.
        if state.monitor.is_some() && state.monitor != self.settings.monitor {
            return Err(format!(
                "ModelCheckpoint: the saved state monitors {:?}, but this callback monitors {:?}",
                state.monitor, self.settings.monitor
            )
            .into());
        }
        let mode = self.settings.mode;
        if let Some(saved) = state.mode.as_deref().filter(|saved| *saved != mode.to_string()) {
            return Err(
                format!("ModelCheckpoint: the saved state is for mode {saved}, but this callback's is {mode}").into()
            );
        }
        let mut tracker = lock(&self.shared);
        let dirpath = path_string(&self.settings.dirpath);
        if state.dirpath.as_ref().is_none_or(|saved| *saved == dirpath) {
            tracker.best_k_models = state
                .best_k_models
                .into_iter()
                .map(|kept| {
                    let score = f64::from(kept.score);
                    (PathBuf::from(kept.path), if score.is_finite() { score } else { mode.worst() })
                })
                .collect();
            tracker.best_model_score = state.best_model_score.map(f64::from);
            tracker.current_score = state.current_score.map(f64::from);
            tracker.last_model_path = state.last_model_path.map(PathBuf::from);
            tracker.last_global_step_saved = state.last_global_step_saved;
        } else {
            eprintln!(
                "warning: ModelCheckpoint: the checkpoint folder has changed from {:?} to {dirpath:?}, so the best \
                 score, the kept top-k checkpoints and the last checkpoint's path are not restored; only \
                 best_model_path is",
                state.dirpath.as_deref().unwrap_or_default()
            );
        }
        tracker.best_model_path = state.best_model_path.map(PathBuf::from);
        Ok(())
    }

    fn setup(&mut self, _ctx: &mut Ctx, _module: &mut dyn AnyModule, stage: Stage) -> CallbackResult {
        self.plan = Some(self.check()?);
        if stage == Stage::Fit {
            self.fit = FitProgress::default();
        }
        Ok(())
    }

    fn on_sanity_check_start(&mut self, _ctx: &mut Ctx, _module: &mut dyn AnyModule) -> CallbackResult {
        self.fit.validation_expected = true;
        Ok(())
    }

    fn on_validation_start(&mut self, _ctx: &mut Ctx, _module: &mut dyn AnyModule) -> CallbackResult {
        self.fit.validation_expected = true;
        Ok(())
    }

    fn on_validation_end(&mut self, ctx: &mut Ctx, _module: &mut dyn AnyModule) -> CallbackResult {
        if ctx.stage() == Some(Stage::Fit) && !ctx.sanity_checking() {
            self.fit.validation_finished = true;
        }
        Ok(())
    }

    fn on_train_start(&mut self, _ctx: &mut Ctx, _module: &mut dyn AnyModule) -> CallbackResult {
        self.fit.last_time_checked = Some(Instant::now());
        Ok(())
    }

    /// The step- and time-based schedules (Lightning's `on_train_batch_end`).
    fn on_train_batch_end(
        &mut self,
        ctx: &mut Ctx,
        _module: &mut dyn AnyModule,
        _outputs: &StepOutput,
        _batch: &dyn std::any::Any,
        _batch_idx: usize,
    ) -> CallbackResult {
        let triggers = self.plan()?.triggers;
        if (triggers.every_n_train_steps == 0 && triggers.train_time_interval.is_none()) || self.should_skip(ctx) {
            return Ok(());
        }
        let skip_batch = triggers.every_n_train_steps == 0 || ctx.global_step() % triggers.every_n_train_steps != 0;
        let now = Instant::now();
        let skip_time = match (triggers.train_time_interval, self.fit.last_time_checked) {
            (Some(interval), Some(previous)) => now.duration_since(previous) < interval,
            _ => true,
        };
        if skip_batch && skip_time {
            return Ok(());
        }
        if !skip_time {
            self.fit.last_time_checked = Some(now);
        }
        let plan = self.plan()?.clone();
        self.save_point(ctx, &plan, true, false)
    }

    /// The epoch schedule, and `last.ckpt` at every epoch end (Lightning's `on_train_epoch_end`).
    fn on_train_epoch_end(&mut self, ctx: &mut Ctx, _module: &mut dyn AnyModule) -> CallbackResult {
        let plan = self.plan()?.clone();
        let result = self.epoch_end(ctx, &plan);
        self.fit.epochs_ended += 1;
        result
    }
}

impl ModelCheckpoint {
    fn epoch_end(&mut self, ctx: &mut Ctx, plan: &Plan) -> CallbackResult {
        if ctx.stage() != Some(Stage::Fit) || ctx.fast_dev_run() {
            return Ok(());
        }
        let every = plan.triggers.every_n_epochs;
        let topk = every >= 1 && (ctx.current_epoch() + 1) % every == 0;
        if !topk {
            // The step and time schedules rank at batch ends; a monitor that is still missing now will be.
            self.check_monitor(ctx)?;
        }
        if self.should_skip(ctx) {
            return Ok(());
        }
        self.save_point(ctx, plan, topk, true)
    }
}
