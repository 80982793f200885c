//! A `training_step` that returns nothing under automatic optimization: the run would train nothing.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn training_step(&mut self, batch: &Tensor, ctx: &mut Ctx) {
        ctx.log("loss", batch.sum(Kind::Float));
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.1)
    }
}

fn main() {}
