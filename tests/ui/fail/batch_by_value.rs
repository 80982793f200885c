//! `training_step` takes its batch by value, where the hook gives `&Self::Batch`.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn training_step(&mut self, batch: Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }
}

fn main() {}
