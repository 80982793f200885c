//! `SimpleProfiler`: how long every hook and loop section took, measured in the one place every hook is called
//! (the dispatcher), and printed as Lightning's SimpleProfiler table when each stage ends.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::Result;

/// Times every hook (each callback's and the module's) and the loops' sections (fetching a batch, moving it to
/// the device, backward, the optimizer step with its closure, a checkpoint's snapshot and write) through the
/// dispatcher, and prints Lightning's SimpleProfiler table (action, mean duration, calls, total, share of the
/// stage) when each stage ends: on standard output, or (as Lightning's does when given a file name) to a file.
///
/// With [`chrome_trace`](Self::chrome_trace) it also writes every call as an event of a Chrome trace (the JSON
/// that Perfetto and `chrome://tracing` open), nested as the calls were.
///
/// ```no_run
/// use lightning::{SimpleProfiler, Trainer};
/// let profiler = SimpleProfiler::new().to_file("fit-profile.txt").chrome_trace("trace.json");
/// let trainer = Trainer::new().max_epochs(1).profiler(profiler);
/// ```
#[derive(Clone, Debug, Default)]
pub struct SimpleProfiler {
    file: Option<PathBuf>,
    trace: Option<PathBuf>,
}

impl SimpleProfiler {
    /// A profiler that prints its table on standard output.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the table to `path` instead of standard output (the stage's name is added in front of the file
    /// name, as Lightning's `fit-profile.txt`). A relative path is taken inside the run's log folder, as
    /// Lightning's `filename` goes into `trainer.log_dir`: `lightning_logs/version_N/` with the default loggers,
    /// the first logger's folder, else the Trainer's `default_root_dir`.
    pub fn to_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// Also writes a Chrome trace of every call to `path` (the stage's name added in front of the file name:
    /// `fit-trace.json`; a relative path inside the log folder, as for [`to_file`](Self::to_file)), for Perfetto
    /// or `chrome://tracing`. The events are kept in memory until the stage ends, about 40 bytes per call (some
    /// 20 calls a step): profile a few thousand steps, not a whole long run.
    pub fn chrome_trace(mut self, path: impl Into<PathBuf>) -> Self {
        self.trace = Some(path.into());
        self
    }
}

/// What a measurement is of, as the dispatcher knows it without formatting anything: hashed and compared per
/// call, while the name the table shows is made once, the first time an action is seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Action {
    /// A loop section (`[Loop]` and its name).
    Loop(&'static str),
    /// A hook of the module (`[LightningModule]` and the hook).
    Module(&'static str),
    /// A hook of the callback at this index of the Trainer's list (`[Callback]`, its name and the hook).
    Callback(usize, &'static str),
    /// A hook of the data module (`LightningDataModule.setup` shown as `[LightningDataModule]setup`).
    DataModule(&'static str),
    /// An action named in full.
    Named(&'static str),
}

impl Action {
    /// The name the table and the trace show. `callback` names the callback of a `Callback` action.
    pub fn name(self, callback: impl FnOnce() -> String) -> String {
        match self {
            Action::Loop(name) => format!("[Loop]{name}"),
            Action::Module(hook) => format!("[LightningModule]{hook}"),
            Action::Callback(_, hook) => format!("[Callback]{}.{hook}", callback()),
            Action::DataModule(hook) => format!("[{hook}").replacen('.', "]", 1),
            Action::Named(name) => name.to_string(),
        }
    }
}

/// One stage's measurements: per action its name, the number of calls and their total time; with a trace, every
/// call as (action, start, duration).
pub(crate) struct Recorder {
    started: Instant,
    index: HashMap<Action, u32, foldhash::fast::FixedState>,
    actions: Vec<(String, u64, Duration)>,
    settings: SimpleProfiler,
    trace: Option<Vec<(u32, Duration, Duration)>>,
}

impl Recorder {
    pub fn new(settings: SimpleProfiler) -> Self {
        let trace = settings.trace.is_some().then(Vec::new);
        let index = HashMap::with_hasher(foldhash::fast::FixedState::default());
        Recorder { started: Instant::now(), index, actions: Vec::new(), settings, trace }
    }

    /// Adds a call of `action` that began at `started` and ends now; `callback` names the callback of a
    /// `Callback` action, asked only the first time the action is seen (the per-call cost is a hash of the key,
    /// not a formatted name).
    #[inline]
    pub fn record(&mut self, action: Action, started: Instant, callback: impl FnOnce() -> String) {
        self.record_span(action, started, Instant::now(), callback);
    }

    /// Adds a call of `action` from `started` to `ended`. The trace places it by these two instants, read by the
    /// caller around the call itself: the lookup below (and the naming of a new action) stays outside it.
    pub fn record_span(&mut self, action: Action, started: Instant, ended: Instant, callback: impl FnOnce() -> String) {
        let took = ended.saturating_duration_since(started);
        let id = match self.index.get(&action) {
            Some(&id) => id,
            None => {
                let id = self.actions.len() as u32;
                self.actions.push((action.name(callback), 0, Duration::ZERO));
                self.index.insert(action, id);
                id
            }
        };
        let (_, calls, total) = &mut self.actions[id as usize];
        *calls += 1;
        *total += took;
        if let Some(trace) = &mut self.trace {
            trace.push((id, started.saturating_duration_since(self.started), took));
        }
    }

    /// The table, longest total first.
    pub fn report(&self, stage: &str) -> String {
        let wall = self.started.elapsed().as_secs_f64();
        // Actions of one name (two callbacks of one type) share a row, as in Lightning's table.
        let mut merged: HashMap<&str, (u64, Duration)> = HashMap::new();
        for (name, calls, total) in &self.actions {
            let row = merged.entry(name).or_default();
            row.0 += calls;
            row.1 += *total;
        }
        let mut rows: Vec<(&str, (u64, Duration))> = merged.into_iter().collect();
        rows.sort_by(|a, b| b.1 .1.cmp(&a.1 .1).then_with(|| a.0.cmp(b.0)));
        let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0).max(6);
        let mut out = format!("Profiler report ({stage})\n");
        let _ = writeln!(
            out,
            "| {:<width$} | {:>18} | {:>9} | {:>14} | {:>12} |",
            "Action", "Mean duration (s)", "Num calls", "Total time (s)", "Percentage %"
        );
        let _ = writeln!(out, "|{}|", "-".repeat(width + 66));
        let _ = writeln!(out, "| {:<width$} | {:>18} | {:>9} | {:>14.5} | {:>12.1} |", "Total", "-", "-", wall, 100.0);
        for (name, (calls, total)) in rows {
            let total = total.as_secs_f64();
            let _ = writeln!(
                out,
                "| {name:<width$} | {:>18.5e} | {calls:>9} | {total:>14.5} | {:>12.1} |",
                total / calls as f64,
                100.0 * total / wall.max(f64::MIN_POSITIVE)
            );
        }
        out
    }

    /// Writes the table to the file when there is one, else prints it; and the trace when asked for. A relative
    /// file name is taken inside `log_dir`.
    pub fn finish(&self, stage: &str, log_dir: &Path) -> Result<()> {
        // `fit-profile.txt` beside where `profile.txt` would be, its folder made if need be.
        let stage_file = |path: &Path| -> Result<PathBuf> {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let file = log_dir.join(path).with_file_name(format!("{stage}-{name}"));
            if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            Ok(file)
        };
        let report = self.report(stage);
        match &self.settings.file {
            Some(path) => std::fs::write(stage_file(path)?, report)?,
            None => println!("{report}"),
        }
        if let (Some(path), Some(trace)) = (&self.settings.trace, &self.trace) {
            std::fs::write(stage_file(path)?, self.trace_json(trace, stage).to_string())?;
        }
        Ok(())
    }

    /// The Chrome trace format's JSON object form: complete events (`"ph": "X"`) in microseconds, with the
    /// part of the code each action belongs to as its category (`LightningModule`, `Callback`, `Loop`, ...).
    fn trace_json(&self, events: &[(u32, Duration, Duration)], stage: &str) -> serde_json::Value {
        let micros = |d: &Duration| d.as_nanos() as f64 / 1000.0;
        let events: Vec<serde_json::Value> = events
            .iter()
            .map(|(id, start, took)| {
                let name = &self.actions[*id as usize].0;
                let category = name.strip_prefix('[').and_then(|rest| rest.split(']').next()).unwrap_or("Trainer");
                serde_json::json!({
                    "name": name, "cat": category, "ph": "X", "ts": micros(start), "dur": micros(took),
                    "pid": std::process::id(), "tid": 1,
                })
            })
            .collect();
        serde_json::json!({ "traceEvents": events, "displayTimeUnit": "ms", "otherData": { "stage": stage } })
    }
}
