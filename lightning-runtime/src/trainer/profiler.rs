//! `SimpleProfiler`: how long every hook and loop section took, measured in the one place every hook is called
//! (the dispatcher), and printed as Lightning's SimpleProfiler table when each stage ends.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::Result;

/// Times every hook (each callback's and the module's) and the loops' sections (fetching a batch, the optimizer
/// step with its closure) through the dispatcher, and prints Lightning's SimpleProfiler table (action, mean
/// duration, calls, total, share of the stage) when each stage ends: on standard output, and to a file when
/// given one.
///
/// ```no_run
/// use lightning::{SimpleProfiler, Trainer};
/// let trainer = Trainer::new().max_epochs(1).profiler(SimpleProfiler::new().to_file("fit-profile.txt"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct SimpleProfiler {
    file: Option<PathBuf>,
}

impl SimpleProfiler {
    /// A profiler that prints its table on standard output.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also writes the table to `path` (the stage's name is added in front of the file name, as Lightning's
    /// `fit-profile.txt`).
    pub fn to_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }
}

/// One stage's measurements.
pub(crate) struct Recorder {
    started: Instant,
    actions: HashMap<String, (u64, Duration)>,
    settings: SimpleProfiler,
}

impl Recorder {
    pub fn new(settings: SimpleProfiler) -> Self {
        Recorder { started: Instant::now(), actions: HashMap::new(), settings }
    }

    pub fn record(&mut self, action: impl AsRef<str>, took: Duration) {
        let action = action.as_ref();
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

    /// Prints the table, and writes it to the file when there is one.
    pub fn finish(&self, stage: &str) -> Result<()> {
        let report = self.report(stage);
        println!("{report}");
        if let Some(path) = &self.settings.file {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let file = path.with_file_name(format!("{stage}-{name}"));
            if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&file, report)?;
        }
        Ok(())
    }
}
