//! What a Trainer does by default, as Lightning's does: it logs to `lightning_logs/version_N/` under
//! `default_root_dir` (TensorBoard events, `metrics.csv`, `hparams.json`) and keeps a checkpoint of the last
//! epoch in that folder's `checkpoints/`. `logger(false)` and `enable_checkpointing(false)` turn them off.

use std::path::{Path, PathBuf};

use super::Trainer;
use crate::context::{Ctx, Stage};
use crate::loggers::{CsvLogger, Logger, TensorBoardLogger};
use crate::Result;

/// The name of the default loggers' folder under `default_root_dir` (Lightning's).
const DEFAULT_LOGGER_NAME: &str = "lightning_logs";

/// The default logger and checkpoint settings.
#[derive(Clone, Debug)]
pub(crate) struct Defaults {
    /// `default_root_dir`; `None`: the working directory.
    root_dir: Option<PathBuf>,
    /// Whether a Trainer given no logger makes the default ones.
    logger: bool,
    /// Whether a `fit` without a `ModelCheckpoint` gets the default one.
    checkpointing: bool,
    /// Whether the default loggers were made (once per Trainer: later stages write to the same version).
    loggers_made: bool,
}

impl Defaults {
    /// Neither the default loggers nor the default checkpoint (a tuner's trial runs).
    pub(crate) fn turn_off(&mut self) {
        (self.logger, self.checkpointing) = (false, false);
    }
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults { root_dir: None, logger: true, checkpointing: true, loggers_made: false }
    }
}

/// What [`Trainer::logger`] takes: a logger to add, or `false` for no default logger (Lightning's
/// `logger=False`; `true` restores the default).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a logger",
    note = "`Trainer::logger` takes a type that implements `lightning::Logger`, or `false` to turn off the default loggers"
)]
pub trait LoggerChoice {
    /// Applies the choice to the Trainer.
    #[doc(hidden)]
    fn apply(self, trainer: &mut Trainer);
}

impl<L: Logger + 'static> LoggerChoice for L {
    fn apply(self, trainer: &mut Trainer) {
        trainer.loggers.push(Box::new(self));
    }
}

impl LoggerChoice for bool {
    fn apply(self, trainer: &mut Trainer) {
        trainer.defaults.logger = self;
    }
}

impl Trainer {
    /// The folder the default logger and checkpoints go under (Lightning's `default_root_dir`; the working
    /// directory by default): `<dir>/lightning_logs/version_N/`.
    ///
    /// ```no_run
    /// let trainer = lightning::Trainer::new().max_epochs(5).default_root_dir("runs");
    /// // fit → runs/lightning_logs/version_0/{events.out.tfevents.*, metrics.csv, checkpoints/epoch=4-step=..}
    /// ```
    pub fn default_root_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.defaults.root_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Whether `fit` keeps a checkpoint of the last epoch when no [`ModelCheckpoint`](crate::ModelCheckpoint)
    /// was given (default true, Lightning's `enable_checkpointing`): the default one writes
    /// `epoch=<e>-step=<s>.ckpt` in the first logger's `version_N/checkpoints/` (or
    /// `default_root_dir/checkpoints/` without a logger), keeping only the newest. A `ModelCheckpoint` of your
    /// own replaces it either way.
    ///
    /// ```no_run
    /// let trainer = lightning::Trainer::new().max_epochs(5).logger(false).enable_checkpointing(false);
    /// // fit writes no file at all.
    /// ```
    pub fn enable_checkpointing(mut self, on: bool) -> Self {
        self.defaults.checkpointing = on;
        self
    }

    /// The first logger's folder (Lightning's `trainer.log_dir`): once a stage has run with the default
    /// loggers, `default_root_dir/lightning_logs/version_N`. `None` without a logger that has a folder.
    pub fn log_dir(&self) -> Option<PathBuf> {
        self.loggers.first().and_then(|logger| logger.log_dir())
    }

    /// Adds what Lightning adds by default and the Trainer was not given: the loggers (on rank 0, which alone
    /// logs), once; and for `fit`, a `ModelCheckpoint` (on every process, as a given one would be).
    pub(crate) fn add_lightning_defaults(&mut self, stage: Stage, global_zero: bool, ctx: &mut Ctx) -> Result<()> {
        let root = self.defaults.root_dir.clone().unwrap_or_else(|| PathBuf::from("."));
        ctx.default_root_dir = root.clone();
        if global_zero && self.defaults.logger && !self.defaults.loggers_made && self.loggers.is_empty() {
            let csv = CsvLogger::new(&root, DEFAULT_LOGGER_NAME)?;
            // Built before either writes, both share a version folder.
            let tensorboard = TensorBoardLogger::new(&root, DEFAULT_LOGGER_NAME)?.version(csv.current_version());
            self.loggers.push(Box::new(tensorboard));
            self.loggers.push(Box::new(csv));
            self.defaults.loggers_made = true;
        }
        let has_checkpoint = self.callbacks.iter().any(|c| c.as_model_checkpoint().is_some());
        if stage == Stage::Fit && self.defaults.checkpointing && !has_checkpoint {
            // Its folder is the first logger's, decided in its `setup`.
            self.callbacks.push(Box::new(crate::ModelCheckpoint::in_log_dir()));
        }
        Ok(())
    }
}
