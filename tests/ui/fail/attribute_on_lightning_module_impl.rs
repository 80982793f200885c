//! The attribute on `impl LightningModule for Model`: one error, not a cascade of conflicts.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl LightningModule for Model {
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }
}

fn main() {}
