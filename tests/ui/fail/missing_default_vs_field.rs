//! The `VarStore` field is not called `vs` and no `var_store = ...` argument names it.
use lightning::prelude::*;

struct Model {
    store: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.store, 0.1)
    }
}

fn main() {}
