//! `SimpleProfiler`: how long every hook and loop section took, measured in the one place every hook is called
//! (the dispatcher), and printed as Lightning's SimpleProfiler table when each stage ends.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::Result;

/// Times every hook (each callback's and the module's) and the loops' sections (fetching a batch, the optimizer
/// step with its closure) through the dispatcher, and prints Lightning's SimpleProfiler table (action, mean
/// duration, calls, total, share of the stage) when each stage ends: on standard output, or (as Lightning's
/// does when given a file name) to a file.
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
    /// name, as Lightning's `fit-profile.txt`).
    pub fn to_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// Also writes a Chrome trace of every call to `path` (the stage's name added in front of the file name:
    /// `fit-trace.json`), for Perfetto or `chrome://tracing`. The events are kept in memory until the stage ends,
    /// about 40 bytes per call (some 20 calls a step): profile a few thousand steps, not a whole long run.
    pub fn chrome_trace(mut self, path: impl Into<PathBuf>) -> Self {
        self.trace = Some(path.into());
        self
    }
}

/// The calls of a stage as trace events: each action's name once, then (name, start, duration) per call.
#[derive(Default)]
struct Trace {
    names: Vec<String>,
    ids: HashMap<String, u32>,
    events: Vec<(u32, Duration, Duration)>,
}

/// One stage's measurements.
pub(crate) struct Recorder {
    started: Instant,
    actions: HashMap<String, (u64, Duration)>,
    settings: SimpleProfiler,
    trace: Option<Trace>,
}

impl Recorder {
    pub fn new(settings: SimpleProfiler) -> Self {
        let trace = settings.trace.is_some().then(Trace::default);
        Recorder { started: Instant::now(), actions: HashMap::new(), settings, trace }
    }

    pub fn record(&mut self, action: impl AsRef<str>, took: Duration) {
        let action = action.as_ref();
        if let Some(trace) = &mut self.trace {
            // The call ended now: it started `took` earlier.
            let start = self.started.elapsed().saturating_sub(took);
            let id = match trace.ids.get(action) {
                Some(&id) => id,
                None => {
                    let id = trace.names.len() as u32;
                    trace.names.push(action.to_string());
                    trace.ids.insert(action.to_string(), id);
                    id
                }
            };
            trace.events.push((id, start, took));
        }
        match self.actions.get_mut(action) {
            Some((calls, total)) => {
                *calls += 1;
                *total += took;
            }
            None => {
                self.actions.insert(action.to_string(), (1, took));
            }
        }
    }

    /// The table, longest total first.
    pub fn report(&self, stage: &str) -> String {
        let wall = self.started.elapsed().as_secs_f64();
        let mut rows: Vec<(&String, &(u64, Duration))> = self.actions.iter().collect();
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
                total / *calls as f64,
                100.0 * total / wall.max(f64::MIN_POSITIVE)
            );
        }
        out
    }

    /// Writes the table to the file when there is one, else prints it.
    pub fn finish(&self, stage: &str) -> Result<()> {
        let report = self.report(stage);
        if self.settings.file.is_none() {
            println!("{report}");
        }
        if let Some(path) = &self.settings.file {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let file = path.with_file_name(format!("{stage}-{name}"));
            if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&file, report)?;
        }
        if let (Some(path), Some(trace)) = (&self.settings.trace, &self.trace) {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let file = path.with_file_name(format!("{stage}-{name}"));
            if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&file, trace.to_json(stage).to_string())?;
        }
        Ok(())
    }
}

impl Trace {
    /// The Chrome trace format's JSON object form: complete events (`"ph": "X"`) in microseconds, with the
    /// part of the code each action belongs to as its category (`LightningModule`, `Callback`, `Loop`, ...).
    fn to_json(&self, stage: &str) -> serde_json::Value {
        let micros = |d: &Duration| d.as_nanos() as f64 / 1000.0;
        let events: Vec<serde_json::Value> = self
            .events
            .iter()
            .map(|(id, start, took)| {
                let name = &self.names[*id as usize];
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
