//! `ckpt_path`: which checkpoint a stage starts from — a file, or Lightning's `"best"` and `"last"`, found
//! through the Trainer's `ModelCheckpoint` callbacks.

use std::path::{Path, PathBuf};

use super::Trainer;
use crate::{Error, Result};

/// Which checkpoint a stage starts from (Lightning's `ckpt_path`): converts from a path, or from the strings
/// `"best"` and `"last"`.
///
/// ```no_run
/// # use lightning::{CkptPath, Trainer};
/// # fn run<M: lightning::HasTestStep + lightning::HasTrainingStep + lightning::HasConfigureOptimizers + 'static>(
/// #     trainer: &mut Trainer, model: &mut M, train: lightning::Loader<M::Batch>, test: lightning::Loader<M::Batch>,
/// # ) -> lightning::Result<()> {
/// // Re-running a killed job continues it (or starts afresh when there is no checkpoint yet):
/// trainer.fit_from(model, train, None, "last")?;
/// // The ModelCheckpoint's best weights:
/// let metrics = trainer.test_from(model, test, "best")?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CkptPath {
    /// The best checkpoint of the Trainer's first `ModelCheckpoint` (`best_model_path`).
    Best,
    /// The newest "last" checkpoint of the Trainer's `ModelCheckpoint`s: the `last_model_path` they recorded in
    /// this run, or a `last*.ckpt` file in their folders (left by an earlier run of the program).
    Last,
    /// This file.
    Path(PathBuf),
}

impl From<&str> for CkptPath {
    fn from(text: &str) -> Self {
        match text {
            "best" => CkptPath::Best,
            "last" => CkptPath::Last,
            path => CkptPath::Path(PathBuf::from(path)),
        }
    }
}

impl From<PathBuf> for CkptPath {
    fn from(path: PathBuf) -> Self {
        CkptPath::Path(path)
    }
}

impl From<&PathBuf> for CkptPath {
    fn from(path: &PathBuf) -> Self {
        CkptPath::Path(path.clone())
    }
}

impl From<&Path> for CkptPath {
    fn from(path: &Path) -> Self {
        CkptPath::Path(path.to_path_buf())
    }
}

impl Trainer {
    /// The file `which` names, `None` for `Last` when no checkpoint exists yet.
    pub(crate) fn resolve_ckpt_path(&self, which: &CkptPath) -> Result<Option<PathBuf>> {
        let checkpoints: Vec<&crate::ModelCheckpoint> =
            self.callbacks.iter().filter_map(|c| c.as_model_checkpoint()).collect();
        match which {
            CkptPath::Path(path) => Ok(Some(path.clone())),
            CkptPath::Best => {
                let first = checkpoints.first().ok_or_else(|| {
                    Error::Config(
                        "ckpt_path = \"best\" needs a ModelCheckpoint callback in the Trainer: add one, or pass a \
                         checkpoint's path"
                            .into(),
                    )
                })?;
                first.best_model_path().map(Some).ok_or_else(|| {
                    Error::Config(format!(
                        "ckpt_path = \"best\": the ModelCheckpoint (folder {}) has saved no checkpoint yet: `fit` first, \
                         or pass a checkpoint's path",
                        first.dirpath().display()
                    ))
                })
            }
            CkptPath::Last => {
                let mut candidates: Vec<PathBuf> =
                    checkpoints.iter().filter_map(|c| c.last_model_path()).filter(|p| p.exists()).collect();
                for checkpoint in &checkpoints {
                    if let Ok(entries) = std::fs::read_dir(checkpoint.dirpath()) {
                        candidates.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| {
                            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                            name.starts_with("last") && name.ends_with(".ckpt")
                        }));
                    }
                }
                let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
                Ok(candidates.into_iter().max_by_key(modified))
            }
        }
    }
}
