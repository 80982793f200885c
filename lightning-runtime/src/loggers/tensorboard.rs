//! Lightning's `TensorBoardLogger`: TensorBoard event files, written without TensorFlow.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

mod media;

pub use media::ImageFormat;

use super::proto::{event, hparams, summary, tf_record, Message};
use super::version::{io_error, VersionedDir};
use super::Logger;
use crate::Result;

/// Logs to a TensorBoard event file in `save_dir/name/version_N`, as Lightning's `TensorBoardLogger` does;
/// point `tensorboard --logdir save_dir` at it.
///
/// The file, `events.out.tfevents.<secs>.<host>.<pid>.<n>` (TensorBoard's and PyTorch's naming, the `n`
/// telling apart the files of two loggers of one process started in the same second), is made at the first
/// write. It starts with the `brain.Event:2` version record; each logged value is then an event holding one
/// scalar summary at the Trainer's step. Scalars are 32-bit floats in TensorBoard's format.
///
/// A hook reaches the run's logger through [`Ctx::tensorboard`](crate::Ctx::tensorboard) to add images
/// ([`add_image`](Self::add_image), [`add_images`](Self::add_images)), histograms
/// ([`add_histogram`](Self::add_histogram)) and text ([`add_text`](Self::add_text)), in the formats PyTorch's
/// `SummaryWriter` writes: Lightning's `self.logger.experiment.add_image(...)`.
///
/// The hyper-parameters go to `hparams.json` and, as TensorBoard's hparams plugin reads them, into a
/// `_hparams_/session_start_info` summary: nested objects are flattened to `outer/inner` names (as
/// Lightning does), numbers, strings and booleans kept as they are, and arrays and `null` written as their
/// JSON text. TensorBoard's HPARAMS tab then lists the run with those values, and the run's scalars as its
/// metrics.
///
/// Events reach the file every [`flush_every`](Self::flush_every) logging calls (each call by default) and
/// when the run ends.
///
/// ```no_run
/// use lightning::loggers::TensorBoardLogger;
/// use lightning::Trainer;
///
/// # fn main() -> lightning::Result<()> {
/// let logger = TensorBoardLogger::new("logs", "mnist")?;
/// println!("tensorboard --logdir {}", logger.save_dir().display());
/// let trainer = Trainer::new().max_epochs(3).logger(logger);
/// # Ok(())
/// # }
/// ```
pub struct TensorBoardLogger {
    dir: VersionedDir,
    flush_every: usize,
    /// The event file and its buffered writer, made at the first write; the writer is dropped (the file
    /// closed) at `finalize` and reopened for appending if the logger is used again.
    file: Option<PathBuf>,
    writer: Option<BufWriter<File>>,
    /// Logging calls written to the buffer since the last flush.
    unflushed: usize,
}

/// Tells apart the event files this process creates in one second (PyTorch's `global_uid`).
static FILE_COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TensorBoardLogger {
    /// A logger writing under `save_dir/name/version_N`, `N` the next free version number there now (0 in an
    /// empty or missing folder). An empty `name` logs under `save_dir/version_N`. Nothing is created until
    /// the first write.
    ///
    /// Fails with [`Error::Io`](crate::Error::Io) when `save_dir/name` exists but cannot be listed, and with
    /// [`Error::Config`](crate::Error::Config) when it is a file.
    ///
    /// ```no_run
    /// # fn main() -> lightning::Result<()> {
    /// let logger = lightning::loggers::TensorBoardLogger::new("logs", "mnist")?;
    /// assert!(logger.log_dir().starts_with("logs/mnist"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(save_dir: impl AsRef<Path>, name: impl Into<String>) -> Result<Self> {
        Ok(TensorBoardLogger {
            dir: VersionedDir::new(save_dir.as_ref().to_path_buf(), name.into())?,
            flush_every: 1,
            file: None,
            writer: None,
            unflushed: 0,
        })
    }

    /// Writes to `version_<version>` instead of the next free one: to share a folder with another logger,
    /// or to add an event file to an earlier run's folder (TensorBoard reads all of a folder's files as one
    /// run).
    ///
    /// ```no_run
    /// use lightning::loggers::{CsvLogger, TensorBoardLogger};
    /// # fn main() -> lightning::Result<()> {
    /// let csv = CsvLogger::new("logs", "mnist")?;
    /// let tensorboard = TensorBoardLogger::new("logs", "mnist")?.version(csv.current_version());
    /// assert_eq!(csv.log_dir(), tensorboard.log_dir());
    /// # Ok(())
    /// # }
    /// ```
    pub fn version(mut self, version: usize) -> Self {
        self.dir.set_version(version);
        self
    }

    /// Hands buffered events to the file every `n` logging calls (1, the default, flushes at every call; 0
    /// counts as 1). The end of the run always flushes.
    ///
    /// ```no_run
    /// # fn main() -> lightning::Result<()> {
    /// let logger = lightning::loggers::TensorBoardLogger::new("logs", "mnist")?.flush_every(10);
    /// # Ok(())
    /// # }
    /// ```
    pub fn flush_every(mut self, n: usize) -> Self {
        self.flush_every = n.max(1);
        self
    }

    /// The folder the files go to: `save_dir/name/version_N`.
    pub fn log_dir(&self) -> PathBuf {
        self.dir.log_dir()
    }

    /// `save_dir/name`, the folder that holds the `version_N` folders.
    pub fn root_dir(&self) -> PathBuf {
        self.dir.root_dir()
    }

    /// The `save_dir` given to [`new`](Self::new): the folder to give `tensorboard --logdir`.
    pub fn save_dir(&self) -> &Path {
        self.dir.save_dir()
    }

    /// The experiment's name given to [`new`](Self::new).
    pub fn name(&self) -> &str {
        self.dir.name()
    }

    /// The version this logger writes to (the `N` of `version_N`).
    pub fn current_version(&self) -> usize {
        self.dir.version()
    }

    /// The event file, once the first write has made it.
    pub fn event_file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The open event file: made (with its version record) at the first call, reopened after `finalize`.
    fn writer(&mut self) -> Result<&mut BufWriter<File>> {
        if self.writer.is_none() {
            let writer = self.open()?;
            self.writer = Some(writer);
        }
        Ok(self.writer.as_mut().expect("opened above"))
    }

    fn open(&mut self) -> Result<BufWriter<File>> {
        if let Some(path) = &self.file {
            let file = OpenOptions::new().append(true).open(path).map_err(|e| io_error("cannot open", path, e))?;
            return Ok(BufWriter::new(file));
        }
        let (path, file) = self.create_file()?;
        let mut writer = BufWriter::new(file);
        let version = Message::new().double(event::WALL_TIME, now()).string(event::FILE_VERSION, "brain.Event:2");
        writer.write_all(&tf_record(&version.into_bytes())).map_err(|e| io_error("cannot write", &path, e))?;
        self.file = Some(path);
        Ok(writer)
    }

    /// Creates a new event file, never opening one that exists (another logger's).
    fn create_file(&self) -> Result<(PathBuf, File)> {
        let dir = self.dir.create()?;
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let host: String = gethostname::gethostname()
            .to_string_lossy()
            .chars()
            .map(|c| if c.is_alphanumeric() || c == '-' || c == '.' || c == '_' { c } else { '_' })
            .collect();
        let pid = std::process::id();
        loop {
            let n = FILE_COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!("events.out.tfevents.{secs:010}.{host}.{pid}.{n}"));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => return Ok((path, file)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_error("cannot create the event file", &path, e)),
            }
        }
    }

    /// Appends one event to the buffer.
    fn write_event(&mut self, event: Message) -> Result<()> {
        let record = tf_record(&event.into_bytes());
        let writer = self.writer()?;
        let written = writer.write_all(&record);
        written.map_err(|e| self.write_error(e))
    }

    fn write_error(&self, error: std::io::Error) -> crate::Error {
        let path = self.file.clone().unwrap_or_else(|| self.log_dir());
        io_error("cannot write", &path, error)
    }

    /// Counts a logging call, flushing every `flush_every` of them.
    fn count_logging_call(&mut self) -> Result<()> {
        self.unflushed += 1;
        if self.unflushed >= self.flush_every {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if let Some(writer) = self.writer.as_mut() {
            let flushed = writer.flush();
            flushed.map_err(|e| self.write_error(e))?;
        }
        self.unflushed = 0;
        Ok(())
    }
}

impl Logger for TensorBoardLogger {
    fn log_dir(&self) -> Option<std::path::PathBuf> {
        Some(self.dir.log_dir())
    }

    fn log_metrics(&mut self, metrics: &[(String, f64)], step: usize) -> Result<()> {
        let wall_time = now();
        for (tag, value) in metrics {
            let value =
                Message::new().string(summary::VALUE_TAG, tag).float(summary::VALUE_SIMPLE_VALUE, *value as f32);
            let event = Message::new()
                .double(event::WALL_TIME, wall_time)
                .varint(event::STEP, step as u64)
                .message(event::SUMMARY, Message::new().message(summary::VALUE, value));
            self.write_event(event)?;
        }
        self.count_logging_call()
    }

    fn log_hyperparams(&mut self, params: &serde_json::Value) -> Result<()> {
        let dir = self.dir.create()?;
        super::write_hparams_json(&dir, params)?;
        let mut start = Message::new();
        for (name, value) in flatten_hparams(params) {
            let entry = Message::new().string(hparams::MAP_KEY, &name).message(hparams::MAP_VALUE, value);
            start = start.message(hparams::START_HPARAMS, entry);
        }
        start = start.double(hparams::START_TIME_SECS, now());
        // HParamsPluginData{version: 0 (the default, so not written), session_start_info}.
        let content = Message::new().message(hparams::DATA_SESSION_START_INFO, start).into_bytes();
        let plugin = Message::new().string(summary::PLUGIN_NAME, "hparams").bytes(summary::PLUGIN_CONTENT, &content);
        let value = Message::new()
            .string(summary::VALUE_TAG, "_hparams_/session_start_info")
            .message(summary::VALUE_METADATA, Message::new().message(summary::METADATA_PLUGIN_DATA, plugin));
        let event = Message::new()
            .double(event::WALL_TIME, now())
            .varint(event::STEP, 0)
            .message(event::SUMMARY, Message::new().message(summary::VALUE, value));
        self.write_event(event)?;
        self.flush()
    }

    /// Flushes and closes the file; a later logging call (a second `fit`) reopens it and appends.
    fn finalize(&mut self) -> Result<()> {
        self.flush()?;
        self.writer = None;
        Ok(())
    }
}

/// Seconds since the Unix epoch, TensorBoard's `wall_time`.
fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The hyper-parameters as `google.protobuf.Value`s, nested objects flattened with `/` (Lightning's
/// `_flatten_dict`), and what the hparams plugin cannot show (arrays, `null`) as JSON text, as Lightning's
/// `_sanitize_params` turns them into strings. A value that is not an object is one hparam, `hparams`.
fn flatten_hparams(params: &serde_json::Value) -> Vec<(String, Message)> {
    fn walk(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, Message)>) {
        use serde_json::Value;
        let message = match value {
            Value::Object(map) => {
                for (key, value) in map {
                    let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}/{key}") };
                    walk(&name, value, out);
                }
                return;
            }
            Value::Bool(b) => Message::new().varint(hparams::VALUE_BOOL, u64::from(*b)),
            Value::Number(n) => Message::new().double(hparams::VALUE_NUMBER, n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => Message::new().string(hparams::VALUE_STRING, s),
            Value::Array(_) | Value::Null => Message::new().string(hparams::VALUE_STRING, &value.to_string()),
        };
        let name = if prefix.is_empty() { "hparams".to_string() } else { prefix.to_string() };
        out.push((name, message));
    }
    let mut out = Vec::new();
    walk("", params, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hparams_flatten_like_lightning() {
        let params = serde_json::json!({"lr": 0.5, "net": {"depth": 2, "act": "tanh"}, "sizes": [1, 2], "x": null});
        let names: Vec<String> = flatten_hparams(&params).into_iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["lr", "net/act", "net/depth", "sizes", "x"]);
        assert_eq!(flatten_hparams(&serde_json::json!(3))[0].0, "hparams");
    }

    #[test]
    fn the_file_starts_with_the_version_record() {
        let tmp = tempfile::tempdir().unwrap();
        let mut logger = TensorBoardLogger::new(tmp.path(), "tb").unwrap();
        assert!(logger.event_file().is_none());
        logger.log_metrics(&[("loss".into(), 0.5)], 3).unwrap();
        logger.finalize().unwrap();
        let path = logger.event_file().unwrap().to_path_buf();
        assert!(path.file_name().unwrap().to_str().unwrap().starts_with("events.out.tfevents."));
        let bytes = std::fs::read(&path).unwrap();
        let first = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let data = &bytes[12..12 + first];
        assert!(data.windows(13).any(|w| w == b"brain.Event:2"));
        // A second run of the same logger appends to the same file, without a second version record.
        logger.log_metrics(&[("loss".into(), 0.25)], 4).unwrap();
        logger.finalize().unwrap();
        let longer = std::fs::read(&path).unwrap();
        assert!(longer.starts_with(&bytes) && longer.len() > bytes.len());
        assert_eq!(longer.windows(13).filter(|w| *w == b"brain.Event:2").count(), 1);
    }
}
