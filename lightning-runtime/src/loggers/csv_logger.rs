//! Lightning's `CSVLogger`: `metrics.csv` with a row per logging call, and the hyper-parameters beside it.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::version::{io_error, VersionedDir};
use super::Logger;
use crate::{Error, Result};

const METRICS_FILE: &str = "metrics.csv";

/// Logs to `save_dir/name/version_N/metrics.csv`, as Lightning's `CSVLogger` does.
///
/// The header is `step`, then `epoch` once an epoch-end row has carried it, then every metric name in the
/// order first seen. Each call of [`Logger::log_metrics`] adds one row; a metric a row does not have is an
/// empty cell. When a name appears that the header lacks, the file is rewritten with the wider header (the
/// rows already there get empty cells), as Lightning does. Values are written in the shortest form that
/// reads back as the same `f64` (`nan`, `inf`, `-inf` for the non-finite ones, as Python writes them).
///
/// Rows reach the file every [`flush_every`](Self::flush_every) calls (each call by default), at every
/// epoch-end row, and when the run ends. The first write of a logger replaces a `metrics.csv` left in its
/// folder by an earlier run (Lightning deletes it too); the same logger used for a second `fit` appends.
///
/// `log_hyperparams` writes `hparams.json` (pretty JSON; Lightning's is `hparams.yaml`).
///
/// ```no_run
/// use lightning::loggers::CsvLogger;
/// use lightning::Trainer;
///
/// # fn main() -> lightning::Result<()> {
/// let logger = CsvLogger::new("logs", "mnist")?; // logs/mnist/version_0 in an empty folder
/// let metrics = logger.log_dir().join("metrics.csv");
/// let trainer = Trainer::new().max_epochs(3).logger(logger);
/// # Ok(())
/// # }
/// ```
pub struct CsvLogger {
    dir: VersionedDir,
    flush_every: usize,
    /// The columns of the file, `step` first; empty until the first row.
    header: Vec<String>,
    /// The open file, rows appended through the csv writer's buffer; `None` before the first row and after
    /// `finalize`.
    writer: Option<csv::Writer<File>>,
    /// Whether this logger has created its `metrics.csv` (later opens append to it).
    created: bool,
    /// Rows written to the buffer since the last flush.
    unflushed: usize,
}

impl CsvLogger {
    /// A logger writing under `save_dir/name/version_N`, `N` the next free version number there now (0 in an
    /// empty or missing folder). An empty `name` logs under `save_dir/version_N`. Nothing is created until
    /// the first write.
    ///
    /// Fails with [`Error::Io`] when `save_dir/name` exists but cannot be listed, and with [`Error::Config`]
    /// when it is a file.
    ///
    /// ```no_run
    /// # fn main() -> lightning::Result<()> {
    /// let logger = lightning::loggers::CsvLogger::new("logs", "mnist")?;
    /// assert!(logger.log_dir().ends_with(format!("version_{}", logger.current_version())));
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(save_dir: impl AsRef<Path>, name: impl Into<String>) -> Result<Self> {
        Ok(CsvLogger {
            dir: VersionedDir::new(save_dir.as_ref().to_path_buf(), name.into())?,
            flush_every: 1,
            header: Vec::new(),
            writer: None,
            created: false,
            unflushed: 0,
        })
    }

    /// Writes to `version_<version>` instead of the next free one: to share a folder with another logger,
    /// or to go on logging in an earlier run's folder (its `metrics.csv` is replaced at the first write).
    ///
    /// ```no_run
    /// use lightning::loggers::{CsvLogger, TensorBoardLogger};
    /// # fn main() -> lightning::Result<()> {
    /// let tensorboard = TensorBoardLogger::new("logs", "mnist")?;
    /// let csv = CsvLogger::new("logs", "mnist")?.version(tensorboard.current_version());
    /// assert_eq!(csv.log_dir(), tensorboard.log_dir());
    /// # Ok(())
    /// # }
    /// ```
    pub fn version(mut self, version: usize) -> Self {
        self.dir.set_version(version);
        self
    }

    /// Hands buffered rows to the file every `n` logging calls (1, the default, flushes at every call; 0
    /// counts as 1). Epoch-end rows and the end of the run always flush. Larger values save system calls on
    /// slow (network) file systems, at the price of rows a crash would lose.
    ///
    /// ```no_run
    /// # fn main() -> lightning::Result<()> {
    /// let logger = lightning::loggers::CsvLogger::new("logs", "mnist")?.flush_every(100);
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

    /// The `save_dir` given to [`new`](Self::new).
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

    /// The path of `metrics.csv`.
    pub fn metrics_file(&self) -> PathBuf {
        self.log_dir().join(METRICS_FILE)
    }

    /// The columns so far: `step`, then `epoch` once seen, then the metric names in the order first seen.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// The header with the names of `metrics` it lacks added; `None` if it lacks none.
    fn widened_header(&self, metrics: &[(String, f64)]) -> Option<Vec<String>> {
        let is_new = |name: &str| !self.header.iter().any(|column| column == name);
        let mut new: Vec<&str> = Vec::new();
        for (name, _) in metrics {
            if name != "step" && is_new(name) && !new.contains(&name.as_str()) {
                new.push(name);
            }
        }
        if new.is_empty() && !self.header.is_empty() {
            return None;
        }
        // `step`, `epoch`, then the metrics: the order Lightning's files are usually read in.
        let mut header = vec!["step".to_string()];
        if self.header.iter().any(|c| c == "epoch") || new.contains(&"epoch") {
            header.push("epoch".to_string());
        }
        header.extend(self.header.iter().filter(|c| *c != "step" && *c != "epoch").cloned());
        header.extend(new.iter().filter(|name| **name != "epoch").map(|name| name.to_string()));
        Some(header)
    }

    /// Makes the file hold `header`: creates it (replacing an earlier run's), or rewrites the rows it has
    /// under the wider header, through a temporary file renamed over it so a crash keeps the old rows.
    fn set_header(&mut self, header: Vec<String>) -> Result<()> {
        let path = self.metrics_file();
        let dir = self.dir.create()?;
        if let Some(mut writer) = self.writer.take() {
            writer.flush().map_err(|e| io_error("cannot write", &path, e))?;
        }
        let old_rows = if self.created { read_rows(&path, &header)? } else { Vec::new() };
        let temp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| io_error("cannot write in", &dir, e))?;
        let mut writer = csv::Writer::from_writer(temp);
        let write_error = |e: csv::Error| csv_error("cannot write", &path, e);
        writer.write_record(&header).map_err(write_error)?;
        for row in &old_rows {
            writer.write_record(row).map_err(write_error)?;
        }
        let temp = writer.into_inner().map_err(|e| io_error("cannot write", &path, e.into_error()))?;
        temp.persist(&path).map_err(|e| io_error("cannot write", &path, e.error))?;
        self.created = true;
        self.header = header;
        self.unflushed = 0;
        Ok(())
    }

    /// The open file, reopened for appending after a header change or `finalize`.
    fn writer(&mut self) -> Result<&mut csv::Writer<File>> {
        if self.writer.is_none() {
            let path = self.metrics_file();
            let file = OpenOptions::new().append(true).open(&path).map_err(|e| io_error("cannot open", &path, e))?;
            self.writer = Some(csv::Writer::from_writer(file));
        }
        Ok(self.writer.as_mut().expect("opened above"))
    }

    fn flush(&mut self) -> Result<()> {
        if let Some(writer) = self.writer.as_mut() {
            writer.flush().map_err(|e| io_error("cannot write", &self.dir.log_dir().join(METRICS_FILE), e))?;
        }
        self.unflushed = 0;
        Ok(())
    }
}

impl Logger for CsvLogger {
    fn log_dir(&self) -> Option<std::path::PathBuf> {
        Some(self.dir.log_dir())
    }

    fn log_metrics(&mut self, metrics: &[(String, f64)], step: usize) -> Result<()> {
        if let Some(header) = self.widened_header(metrics) {
            self.set_header(header)?;
        }
        let mut row = vec![String::new(); self.header.len()];
        row[0] = step.to_string();
        for (name, value) in metrics {
            // The step column is the Trainer's step (Lightning overwrites a metric named `step` the same way).
            if name == "step" {
                continue;
            }
            let column = self.header.iter().position(|c| c == name).expect("the header was widened to hold it");
            row[column] = if name == "epoch" { format_epoch(*value) } else { format_value(*value) };
        }
        let path = self.metrics_file();
        self.writer()?.write_record(&row).map_err(|e| csv_error("cannot write", &path, e))?;
        self.unflushed += 1;
        let epoch_end = metrics.iter().any(|(name, _)| name == "epoch");
        if epoch_end || self.unflushed >= self.flush_every {
            self.flush()?;
        }
        Ok(())
    }

    fn log_hyperparams(&mut self, params: &serde_json::Value) -> Result<()> {
        let dir = self.dir.create()?;
        super::write_hparams_json(&dir, params)
    }

    /// Flushes and closes the file; a later logging call (a second `fit`) reopens it and appends.
    fn finalize(&mut self) -> Result<()> {
        self.flush()?;
        self.writer = None;
        Ok(())
    }
}

/// The rows of the `metrics.csv` at `path`, reordered under `header` (a superset of the file's columns).
fn read_rows(path: &Path, header: &[String]) -> Result<Vec<Vec<String>>> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| csv_error("cannot read", path, e))?;
    let columns: Vec<Option<usize>> = {
        let old = reader.headers().map_err(|e| csv_error("cannot read", path, e))?;
        old.iter().map(|name| header.iter().position(|c| c == name)).collect()
    };
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error("cannot read", path, e))?;
        let mut row = vec![String::new(); header.len()];
        for (cell, column) in record.iter().zip(&columns) {
            if let Some(column) = column {
                row[*column] = cell.to_string();
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

fn csv_error(what: &str, path: &Path, error: csv::Error) -> Error {
    match error.into_kind() {
        csv::ErrorKind::Io(error) => io_error(what, path, error),
        other => io_error(what, path, io::Error::new(io::ErrorKind::InvalidData, format!("{other:?}"))),
    }
}

/// The shortest text that parses back to the same `f64` (serde_json's, which is ryu's), and Python's
/// spellings of the values JSON has none for.
fn format_value(value: f64) -> String {
    if value.is_nan() {
        "nan".into()
    } else if value.is_infinite() {
        if value > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        serde_json::to_string(&value).expect("a finite f64 is valid JSON")
    }
}

/// Epochs are counts: `3`, not `3.0` (the Trainer sends them as `f64` with the other values).
fn format_epoch(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format_value(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(logger: &CsvLogger) -> String {
        std::fs::read_to_string(logger.metrics_file()).unwrap()
    }

    #[test]
    fn new_names_widen_the_header_and_keep_the_rows() {
        let tmp = tempfile::tempdir().unwrap();
        let mut logger = CsvLogger::new(tmp.path(), "run").unwrap();
        logger.log_metrics(&[("loss".into(), 0.5)], 1).unwrap();
        logger.log_metrics(&[("loss".into(), 0.25)], 2).unwrap();
        assert_eq!(read(&logger), "step,loss\n1,0.5\n2,0.25\n");
        logger.log_metrics(&[("val".into(), 1.0), ("epoch".into(), 0.0)], 2).unwrap();
        logger.log_metrics(&[("loss".into(), f64::NAN)], 3).unwrap();
        logger.finalize().unwrap();
        assert_eq!(read(&logger), "step,epoch,loss,val\n1,,0.5,\n2,,0.25,\n2,0,,1.0\n3,,nan,\n");
        // A second run of the same logger appends.
        logger.log_metrics(&[("loss".into(), 1e-7)], 4).unwrap();
        logger.finalize().unwrap();
        assert!(read(&logger).ends_with("3,,nan,\n4,,1e-7,\n"), "{}", read(&logger));
    }

    #[test]
    fn a_new_logger_replaces_an_old_metrics_file() {
        let tmp = tempfile::tempdir().unwrap();
        let mut first = CsvLogger::new(tmp.path(), "run").unwrap();
        first.log_metrics(&[("a".into(), 1.0)], 0).unwrap();
        let mut again = CsvLogger::new(tmp.path(), "run").unwrap().version(0);
        again.log_metrics(&[("b".into(), 2.0)], 0).unwrap();
        again.finalize().unwrap();
        assert_eq!(read(&again), "step,b\n0,2.0\n");
    }

    #[test]
    fn values_read_back_exactly() {
        for value in [0.1, 1.0 / 3.0, -2.5e-300, 1e300, 123456789.125, f64::MIN_POSITIVE] {
            assert_eq!(format_value(value).parse::<f64>().unwrap(), value);
        }
        assert_eq!(format_epoch(12.0), "12");
    }
}
