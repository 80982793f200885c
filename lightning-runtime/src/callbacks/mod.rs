//! The callbacks the runtime ships.

mod model_checkpoint;

pub use model_checkpoint::ModelCheckpoint;
// Until lib.rs re-exports them (then this `allow` goes).
#[allow(unused_imports)]
pub use model_checkpoint::{ModelCheckpointHandle, MonitorMode};
mod model_summary;
mod progress;

pub use model_summary::{ModelSummary, SummaryRow};
pub use progress::ProgressBar;
mod early_stopping;
mod lr_monitor;

pub use early_stopping::{EarlyStopping, StopMode};
pub use lr_monitor::LearningRateMonitor;
