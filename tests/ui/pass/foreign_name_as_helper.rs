//! A helper that happens to have a name from another framework (`train_step`) stays possible, marked as one.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    #[lightning(helper)]
    fn train_step(&self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }

    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        self.train_step(batch)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.1)
    }
}

fn main() {
    assert_eq!(lightning::defined_hooks::<Model>(), ["training_step", "configure_optimizers"]);
    let _ = Model { vs: nn::VarStore::new(Device::Cpu) };
}
