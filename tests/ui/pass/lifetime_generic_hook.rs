//! A hook with lifetime parameters only still coerces to the function pointer the runtime calls.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn training_step<'a>(&'a mut self, batch: &'a Tensor, ctx: &mut Ctx) -> Tensor {
        let loss = batch.sum(Kind::Float);
        ctx.log("loss", &loss);
        loss
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.1)
    }
}

fn main() {
    lightning::assert_fit::<Model>();
    let _ = Model { vs: nn::VarStore::new(Device::Cpu) };
}
