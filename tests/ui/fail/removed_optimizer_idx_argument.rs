//! The `optimizer_idx` argument of Lightning 1.x, removed in 2.0.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn training_step(&mut self, batch: &Tensor, _batch_idx: usize, optimizer_idx: usize) -> Tensor {
        batch.sum(Kind::Float) * optimizer_idx as f64
    }
}

fn main() {}
