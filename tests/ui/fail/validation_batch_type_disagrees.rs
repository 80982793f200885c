//! `validation_step` takes a different batch type than `training_step`.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }

    fn validation_step(&mut self, _batch: &(Tensor, Tensor)) {}
}

fn main() {}
