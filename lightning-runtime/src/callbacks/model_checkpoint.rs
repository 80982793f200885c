//! `ModelCheckpoint`: saves checkpoints during `fit`, keeps the best `k` by a monitored metric, and writes
//! `last.ckpt` (Lightning's `lightning.pytorch.callbacks.ModelCheckpoint`).
//!
//! What it decides and what the Trainer does are split: the callback picks the file name and the files that
//! fall out of the top `k`, then asks with [`Ctx::save_checkpoint_replacing`]; the Trainer writes the new file
//! atomically when the hook returns and only then deletes the old ones, so a crash never leaves fewer than `k`
//! good checkpoints. The bookkeeping lives behind an `Arc<Mutex<_>>` so that a [`ModelCheckpointHandle`] taken
//! before the callback moves into the Trainer reads it after `fit`.

mod filename;
mod saving;
mod state;
mod tracker;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use self::filename::{RenderError, Template};
use self::saving::{list, Candidates};
use self::state::{py_str, py_timedelta};
pub use self::tracker::ModelCheckpointHandle;
use self::tracker::Tracker;
use crate::callback::{AnyModule, Callback, CallbackResult};
use crate::callbacks::MonitorMode;
use crate::context::{Ctx, Stage};
use crate::output::StepOutput;

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
/// use lightning::{ModelCheckpoint, Trainer};
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
/// NaN or infinite score never beats a finite one; and there is no `save_weights_only`. With `fast_dev_run` it
/// saves nothing, as in Lightning.
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
    /// Made from the first logger's folder at `setup` (`ModelCheckpoint::default()`, Lightning's `dirpath=None`).
    dir_from_logger: bool,
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
                dir_from_logger: false,
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

    /// A checkpoint callback writing where Lightning's `ModelCheckpoint(dirpath=None)` does: into
    /// `<log_dir>/checkpoints` of the run's first logger (the default one:
    /// `default_root_dir/lightning_logs/version_N/checkpoints`), or `default_root_dir/checkpoints` without a
    /// logger, decided when each stage starts. [`dirpath`](Self::dirpath) is empty until then.
    ///
    /// ```no_run
    /// use lightning::{ModelCheckpoint, MonitorMode, Trainer};
    /// let best = ModelCheckpoint::in_log_dir().monitor("val_acc").mode(MonitorMode::Max);
    /// let trainer = Trainer::new().max_epochs(10).callback(best);
    /// // trainer.fit(..)?; trainer.test_from(&mut model, test, "best")?;
    /// ```
    pub fn in_log_dir() -> Self {
        let mut checkpoint = ModelCheckpoint::new(PathBuf::new());
        checkpoint.settings.dirpath = PathBuf::new();
        checkpoint.settings.dir_from_logger = true;
        checkpoint
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
    /// use lightning::ModelCheckpoint;
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
}

impl Callback for ModelCheckpoint {
    fn as_model_checkpoint(&self) -> Option<&ModelCheckpoint> {
        Some(self)
    }

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

    fn monitor(&self) -> Option<String> {
        self.settings.monitor.clone()
    }

    fn logged_names(&self, _: &Ctx) -> Option<Vec<String>> {
        Some(Vec::new())
    }

    fn state_dict(&self) -> Option<serde_json::Value> {
        self.saved_state()
    }

    /// Restores the bookkeeping, so that a resumed run keeps ranking against (and deleting) the checkpoints of
    /// the run it continues. As in Lightning, when the folder has changed only `best_model_path` comes back.
    fn load_state_dict(&mut self, state: serde_json::Value) -> CallbackResult {
        self.restore_state(state)
    }

    fn setup(&mut self, ctx: &mut Ctx, _module: &mut dyn AnyModule, stage: Stage) -> CallbackResult {
        if self.settings.dir_from_logger {
            let log_dir = ctx.loggers().iter().find_map(|logger| logger.log_dir());
            let dir = log_dir.unwrap_or_else(|| ctx.default_root_dir.clone()).join("checkpoints");
            self.settings.dirpath = std::path::absolute(&dir).unwrap_or(dir);
        }
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
