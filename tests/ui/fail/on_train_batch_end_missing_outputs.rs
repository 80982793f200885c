//! `on_train_batch_end` without its leading `outputs` parameter.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }

    fn on_train_batch_end(&mut self) {}
}

fn main() {}
