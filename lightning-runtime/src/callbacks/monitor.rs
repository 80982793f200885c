//! `MonitorMode`: which way a monitored metric improves, shared by the callbacks that watch one
//! (`ModelCheckpoint`, `EarlyStopping`).

use std::fmt;
use std::str::FromStr;

/// Which way a monitored metric improves: `Min` for losses and errors, `Max` for accuracies and scores.
///
/// It also parses from Lightning's strings (`"min"`, `"max"`), for configuration files and command lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MonitorMode {
    /// Lower is better (the default, as in Lightning).
    #[default]
    Min,
    /// Higher is better.
    Max,
}

impl MonitorMode {
    /// Whether `a` is strictly better than `b`. A NaN or infinite `a` never is: a diverged run must not
    /// replace a good checkpoint (Lightning's `torch.lt`/`torch.gt` would let `-inf` win in `min` mode).
    pub(crate) fn better(self, a: f64, b: f64) -> bool {
        a.is_finite()
            && match self {
                MonitorMode::Min => a < b,
                MonitorMode::Max => a > b,
            }
    }

    /// The score that every other beats: what a NaN or infinite value is recorded as.
    pub(crate) fn worst(self) -> f64 {
        match self {
            MonitorMode::Min => f64::INFINITY,
            MonitorMode::Max => f64::NEG_INFINITY,
        }
    }
}

impl fmt::Display for MonitorMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MonitorMode::Min => "min",
            MonitorMode::Max => "max",
        })
    }
}

impl FromStr for MonitorMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "min" => Ok(MonitorMode::Min),
            "max" => Ok(MonitorMode::Max),
            other => Err(format!("`mode` can be min or max, but got {other:?}")),
        }
    }
}
