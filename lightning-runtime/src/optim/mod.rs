//! Optimizers and learning-rate schedulers whose state the runtime owns (so that checkpoints can save it;
//! tch's own `nn::Optimizer` keeps its state out of reach).

mod configured;
mod optimizer;
mod scheduler;
mod state;

pub use configured::Optimizers;
pub use optimizer::{GradClipAlgorithm, Optimizer, Params};
pub use scheduler::{Interval, LrScheduler};
pub use state::OptimizerState;
