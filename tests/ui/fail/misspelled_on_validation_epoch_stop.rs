//! A near miss of `on_validation_epoch_start` (`stop` for `start`) is caught with a "did you mean".
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }

    fn on_validation_epoch_stop(&mut self) {}
}

fn main() {}
