//! `ctx.log` written where Lightning forbids logging (`setup`, `predict_step`): a compile error on the call.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn setup(&mut self, _stage: Stage, ctx: &mut Ctx) {
        ctx.log("too_early", 1.0);
    }

    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }

    fn predict_step(&mut self, batch: &Tensor, context: &mut Ctx) -> Tensor {
        if batch.numel() > 0 {
            context.log("not_here", 1.0).prog_bar(true);
        }
        batch.shallow_clone()
    }
}

fn main() {}
