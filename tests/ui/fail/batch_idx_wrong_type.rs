//! `batch_idx` written as `i32` where the hook gives `usize`.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn training_step(&mut self, batch: &Tensor, _batch_idx: i32) -> Tensor {
        batch.sum(Kind::Float)
    }
}

fn main() {}
