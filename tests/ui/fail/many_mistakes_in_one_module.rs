//! Several mistakes in one block (a typo, `self` by value, a removed hook, a missing return type) all show at once.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }

    fn configure_optimizer(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.1)
    }

    fn on_fit_start(self) {}

    fn training_epoch_end(&mut self) {}

    fn train_dataloader(&mut self) {}
}

fn main() {}
