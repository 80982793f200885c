//! tch's own `nn::Optimizer` from `configure_optimizers`: the runtime cannot save its state; the hook says so.
use lightning::prelude::*;
use tch::nn::OptimizerConfig;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }

    fn configure_optimizers(&mut self) -> nn::Optimizer {
        nn::Adam::default().build(&self.vs, 1e-3).unwrap()
    }
}

fn main() {}
