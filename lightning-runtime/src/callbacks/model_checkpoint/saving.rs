//! What `ModelCheckpoint` decides at a save point: whether to save, the file's name, which kept files fall out of
//! the top `k`; the Trainer does the writing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::filename::{RenderError, Template, Value};
use super::tracker::lock;
use super::{ModelCheckpoint, Plan, Triggers};
use crate::callback::CallbackResult;
use crate::context::{Ctx, Stage};

impl ModelCheckpoint {
    pub(super) fn template(&self) -> Result<Template, String> {
        let source = self.settings.filename.as_deref().unwrap_or(Self::DEFAULT_FILENAME);
        Template::parse(source, self.settings.auto_insert_metric_name)
    }

    pub(super) fn triggers(&self) -> Triggers {
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
    pub(super) fn check(&self) -> Result<Plan, String> {
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
    pub(super) fn plan(&mut self) -> Result<&Plan, String> {
        if self.plan.is_none() {
            self.plan = Some(self.check()?);
        }
        Ok(self.plan.as_ref().expect("set above"))
    }

    /// Lightning's `_should_skip_saving_checkpoint`: only while fitting, never in the sanity check, and at most
    /// once per global step.
    pub(super) fn should_skip(&self, ctx: &Ctx) -> bool {
        ctx.stage() != Some(Stage::Fit)
            || ctx.sanity_checking()
            || ctx.fast_dev_run()
            || lock(&self.shared).last_global_step_saved == ctx.global_step()
    }

    /// A save point: the top-`k` checkpoint (when `topk`), then `last.ckpt`.
    pub(super) fn save_point(&mut self, ctx: &mut Ctx, plan: &Plan, topk: bool, at_epoch_end: bool) -> CallbackResult {
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
    pub(super) fn save_monitored(
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
    pub(super) fn save_unmonitored(
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
    pub(super) fn new_path(
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

    pub(super) fn last_path(&self) -> PathBuf {
        self.settings.dirpath.join(format!("{}{}", Self::CHECKPOINT_NAME_LAST, Self::FILE_EXTENSION))
    }

    /// Only files inside the checkpoint folder are ever deleted (Lightning's `_should_remove_checkpoint`).
    pub(super) fn may_remove(&self, old: &Path, new: &Path) -> bool {
        old != new && old.starts_with(&self.settings.dirpath)
    }

    /// A metric the monitor or the template needs is missing. It is an error unless it may still come: no
    /// validation run has ended yet in this `fit`, and either no training epoch has ended yet either (a
    /// step-based save before the first validation) or a validation run is known to be coming (the sanity check
    /// ran, or one has started: the case of `check_val_every_n_epoch` > 1). Then this save is skipped with a
    /// warning, as Lightning does before the first validation.
    pub(super) fn missing(
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
    pub(super) fn check_monitor(&mut self, ctx: &Ctx) -> CallbackResult {
        let Some(monitor) = self.settings.monitor.clone() else { return Ok(()) };
        if self.settings.save_top_k == 0 || monitor == "epoch" || monitor == "step" || ctx.metric(&monitor).is_some() {
            return Ok(());
        }
        let metrics = ctx.callback_metrics();
        let candidates = Candidates { epoch: ctx.current_epoch(), step: ctx.global_step(), metrics: &metrics };
        self.missing(&monitor, None, &candidates, true)
    }

    pub(super) fn epoch_end(&mut self, ctx: &mut Ctx, plan: &Plan) -> CallbackResult {
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

/// `[a, b, c]`, or `(none)`.
pub(super) fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        "(none)".to_string()
    } else {
        format!("[{}]", names.join(", "))
    }
}

/// What a save point can name: `epoch` and `step` from the Trainer, and every current metric.
pub(super) struct Candidates<'m> {
    pub(super) epoch: usize,
    pub(super) step: usize,
    pub(super) metrics: &'m BTreeMap<String, f64>,
}

impl Candidates<'_> {
    pub(super) fn get(&self, name: &str) -> Option<Value> {
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
