//! `training_step` with one parameter more than the hook has.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn training_step(&mut self, batch: &Tensor, _batch_idx: usize, _extra: usize) -> Tensor {
        batch.sum(Kind::Float)
    }
}

fn main() {}
