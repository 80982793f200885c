//! The attribute on a free function instead of an `impl` block.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
fn training_step(model: &mut Model, batch: &Tensor) -> Tensor {
    let _ = &model.vs;
    batch.sum(Kind::Float)
}

fn main() {}
