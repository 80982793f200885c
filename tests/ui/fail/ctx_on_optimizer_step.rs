//! `optimizer_step` takes no `ctx`: its closure holds the context.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn optimizer_step(
        &mut self,
        _epoch: usize,
        _batch_idx: usize,
        _optimizer: &mut Optimizer,
        _optimizer_closure: &mut OptimizerClosure<'_, Self>,
        _ctx: &mut Ctx,
    ) {
    }
}

fn main() {}
