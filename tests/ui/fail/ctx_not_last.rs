//! The context written before another parameter instead of last.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn training_step(&mut self, batch: &Tensor, _ctx: &mut Ctx, _batch_idx: usize) -> Tensor {
        batch.sum(Kind::Float)
    }
}

fn main() {}
