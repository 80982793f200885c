//! `ModelCheckpoint`'s part of a checkpoint: Lightning's `state_dict` keys, written and read back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::tracker::lock;
use super::ModelCheckpoint;
use crate::callback::CallbackResult;

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

pub(super) fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Python's `repr` of a string, for the state key.
pub(super) fn py_str(s: &str) -> String {
    if s.contains('\'') && !s.contains('"') {
        format!("\"{}\"", s.replace('\\', "\\\\"))
    } else {
        format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// Python's `repr` of a `datetime.timedelta`.
pub(super) fn py_timedelta(d: Duration) -> String {
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

impl ModelCheckpoint {
    /// Lightning's `state_dict`.
    pub(super) fn saved_state(&self) -> Option<serde_json::Value> {
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
    pub(super) fn restore_state(&mut self, state: serde_json::Value) -> CallbackResult {
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
}
