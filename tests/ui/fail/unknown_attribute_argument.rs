//! A misspelled attribute argument (`batchh` for `batch`).
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module(batchh = Tensor)]
impl Model {
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }
}

fn main() {}
