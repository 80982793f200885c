//! A typo of `on_train_epoch_end` (an extra `s`) is caught with a "did you mean".
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }

    fn on_train_epoch_ends(&mut self) {}
}

fn main() {}
