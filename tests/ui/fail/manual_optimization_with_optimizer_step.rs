//! `optimizer_step` under manual optimization: the Trainer never calls it, the step steps the optimizers itself.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module(manual_optimization)]
impl Model {
    fn training_step(&mut self, batch: &Tensor, ctx: &mut Ctx) {
        let loss = batch.sum(Kind::Float);
        let _ = ctx.manual_backward(self, &loss);
    }

    fn optimizer_step(
        &mut self,
        _epoch: usize,
        _batch_idx: usize,
        optimizer: &mut Optimizer,
        closure: &mut OptimizerClosure<'_, Self>,
    ) -> lightning::Result<()> {
        optimizer.step_with(closure, self)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.1)
    }
}

fn main() {}
