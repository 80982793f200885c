//! `on_before_batch_transfer` returns something other than the batch type.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }

    fn on_before_batch_transfer(&mut self, batch: Tensor) -> Vec<Tensor> {
        vec![batch]
    }
}

fn main() {}
