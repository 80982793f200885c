//! The callbacks the runtime ships.

mod model_checkpoint;

pub use model_checkpoint::ModelCheckpoint;
