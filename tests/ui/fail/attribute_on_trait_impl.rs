//! The attribute on a trait impl instead of an inherent `impl` block.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

trait Steps {
    fn training_step(&mut self, batch: &Tensor) -> Tensor;
}

#[lightning_module]
impl Steps for Model {
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }
}

fn main() {}
