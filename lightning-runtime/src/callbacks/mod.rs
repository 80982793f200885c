//! The callbacks the runtime ships.

mod model_checkpoint;
mod monitor;

pub use model_checkpoint::{ModelCheckpoint, ModelCheckpointHandle};
pub use monitor::MonitorMode;
mod model_summary;
mod progress;

pub(crate) use model_summary::parameter_storages;
pub use model_summary::{ModelSummary, SummaryRow};
pub use progress::ProgressBar;
mod early_stopping;
mod lr_monitor;

pub use early_stopping::{EarlyStopping, EarlyStoppingHandle};
pub use lr_monitor::LearningRateMonitor;
mod on_exception;

pub use on_exception::OnExceptionCheckpoint;
mod prediction_writer;

pub use prediction_writer::{PredictionWriter, TensorFiles, WriteInterval, WritePredictions};

mod weight_averaging;

pub use weight_averaging::{Annealing, EMAWeightAveraging, StochasticWeightAveraging, WeightAveraging};
