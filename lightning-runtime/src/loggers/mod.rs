//! The loggers the runtime ships, Lightning's `CSVLogger` and `TensorBoardLogger`: each writes under
//! `save_dir/name/version_N`, with `N` the next free version number when the logger is built.
//!
//! Give the Trainer one or several; each receives every logged value:
//!
//! ```no_run
//! use lightning::loggers::{CsvLogger, TensorBoardLogger};
//! use lightning::Trainer;
//!
//! # fn main() -> lightning::Result<()> {
//! let csv = CsvLogger::new("logs", "regression")?;
//! // Built before anything is written, both pick the same version: one folder holds the run's
//! // metrics.csv, hparams.json and events file. `.version(n)` pins a version explicitly.
//! let tensorboard = TensorBoardLogger::new("logs", "regression")?.version(csv.current_version());
//! println!("logging to {}", csv.log_dir().display());
//! let trainer = Trainer::new().max_epochs(5).logger(csv).logger(tensorboard);
//! # Ok(())
//! # }
//! ```
//!
//! What each writes:
//!
//! | logger | files in `log_dir()` |
//! | --- | --- |
//! | [`CsvLogger`] | `metrics.csv` (a row per logging call), `hparams.json` |
//! | [`TensorBoardLogger`] | `events.out.tfevents.<secs>.<host>.<pid>.<n>` (scalars, hyper-parameters; images, histograms and text a hook adds), `hparams.json` |
//!
//! Errors (a folder that cannot be listed, created or written) come back as [`Error::Io`](crate::Error::Io)
//! naming the path, or [`Error::Config`](crate::Error::Config) when a path is a file where a folder is
//! needed: from `new`, or from the logging call that first writes, which ends the run with that error.

/// Receives logged values: per step every `log_every_n_steps` steps, and each epoch's reduced values.
///
/// Hooks reach the run's loggers through [`Ctx::loggers`](crate::Ctx::loggers), or one of a given type through
/// [`Ctx::logger`](crate::Ctx::logger) (Lightning's `self.loggers` and `self.logger`).
pub trait Logger: Send + LoggerAny {
    /// Records `metrics` at optimizer step `step`.
    fn log_metrics(&mut self, metrics: &[(String, f64)], step: usize) -> Result<()>;
    /// Records the module's hyper-parameters (`#[lightning_module(hparams = field)]`), once at the start of `fit`.
    fn log_hyperparams(&mut self, params: &serde_json::Value) -> Result<()> {
        let _ = params;
        Ok(())
    }
    /// Called once at the end of a run.
    fn finalize(&mut self) -> Result<()> {
        Ok(())
    }
    /// The folder it writes to, if it has one: where the Trainer's default `ModelCheckpoint` puts its
    /// `checkpoints/` when this is the first logger (Lightning's `log_dir`).
    fn log_dir(&self) -> Option<std::path::PathBuf> {
        None
    }
}

/// Lets [`Ctx::logger`](crate::Ctx::logger) find a logger by its type. Every `'static` type has it: a logger of
/// your own needs nothing more than its `impl Logger`.
pub trait LoggerAny {
    /// The logger, to downcast to its type.
    fn as_any(&self) -> &dyn Any;
    /// The logger, mutably, to downcast to its type.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Any> LoggerAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

mod csv_logger;
mod proto;
mod tensorboard;
mod version;

use std::any::Any;
use std::io::Write;
use std::path::Path;

pub use csv_logger::CsvLogger;
pub use tensorboard::{ImageFormat, TensorBoardLogger};

use crate::Result;
use version::io_error;

/// Writes the hyper-parameters as pretty JSON in `dir/hparams.json` (Lightning writes `hparams.yaml`; JSON is
/// what the runtime already speaks). Written whole to a temporary file, then renamed: a crash leaves the old
/// file or the new one, never half of one, and two loggers sharing a folder do not interleave.
fn write_hparams_json(dir: &Path, params: &serde_json::Value) -> Result<()> {
    let path = dir.join("hparams.json");
    let mut text = serde_json::to_string_pretty(params).map_err(|e| {
        crate::Error::Config(format!("the hyper-parameters cannot be written as JSON to {}: {e}", path.display()))
    })?;
    text.push('\n');
    let mut file =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| io_error("cannot write the hyper-parameters in", dir, e))?;
    file.write_all(text.as_bytes()).map_err(|e| io_error("cannot write", &path, e))?;
    file.persist(&path).map_err(|e| io_error("cannot write", &path, e.error))?;
    Ok(())
}
