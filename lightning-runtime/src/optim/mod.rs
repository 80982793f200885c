//! Optimizers and learning-rate schedulers whose state the runtime owns (so that checkpoints can save it;
//! tch's own `nn::Optimizer` keeps its state out of reach).

mod configured;
mod custom;
mod groups;
mod optimizer;
mod plateau;
mod schedule;
mod scheduler;
mod state;

pub use configured::Optimizers;
pub use custom::{StepInfo, UpdateRule};
pub use groups::ParamGroup;
pub use optimizer::{GradClipAlgorithm, Optimizer, Params};
pub use plateau::Plateau;
pub use scheduler::{Interval, LrScheduler};
pub use state::OptimizerState;

/// `Ok` for a finite number, 0 or more; else what is wrong with `what`, for the settings checks.
fn finite_at_least_zero(what: &str, value: f64) -> std::result::Result<(), String> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(format!("{what} = {value}: it must be a finite number, 0 or more"))
    }
}
