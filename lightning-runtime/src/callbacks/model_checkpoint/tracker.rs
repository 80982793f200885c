//! What `ModelCheckpoint` keeps track of (the top-`k` files, the best, the last), shared with every
//! `ModelCheckpointHandle` so that it stays readable after the callback has moved into a Trainer.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::callbacks::MonitorMode;

/// The bookkeeping a resumed run needs, shared with every [`ModelCheckpointHandle`].
#[derive(Clone, Debug, Default)]
pub(super) struct Tracker {
    /// The kept top-`k` checkpoints and their scores, in the order they were saved (ties keep the first).
    pub(super) best_k_models: Vec<(PathBuf, f64)>,
    pub(super) best_model_path: Option<PathBuf>,
    pub(super) best_model_score: Option<f64>,
    pub(super) current_score: Option<f64>,
    pub(super) last_model_path: Option<PathBuf>,
    /// The global step of the last save: a second save at the same step is skipped (Lightning's
    /// `_last_global_step_saved`, 0 at first since nothing is worth saving before the first step).
    pub(super) last_global_step_saved: usize,
}

impl Tracker {
    /// The index of the worst kept checkpoint (the first of equals, as Python's `max(dict, key=...)`). Kept
    /// scores are finite or the mode's worst value, never NaN, so plain comparisons order them.
    pub(super) fn worst_index(&self, mode: MonitorMode) -> Option<usize> {
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
    pub(super) fn update_best(&mut self, mode: MonitorMode) {
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

/// A cheap, cloneable view of a [`ModelCheckpoint`](super::ModelCheckpoint)'s results that stays readable after the callback has
/// moved into a Trainer (and after `fit`). Every accessor reads the current state.
///
/// ```no_run
/// use lightning::{ModelCheckpoint, Trainer};
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
    pub(super) shared: Arc<Mutex<Tracker>>,
}

pub(super) fn lock(shared: &Mutex<Tracker>) -> MutexGuard<'_, Tracker> {
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
