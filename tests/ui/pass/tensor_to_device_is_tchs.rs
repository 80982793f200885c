//! The prelude leaves tch's own methods alone: `to_device` on an owned `Tensor` is tch's (a `Tensor`), not the
//! `Batch` trait's (a `Result`).
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        let owned: Tensor = batch.shallow_clone();
        let moved: Tensor = owned.to_device(Device::Cpu);
        moved.sum(Kind::Float)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.1)
    }
}

fn main() {
    lightning::assert_fit::<Model>();
    let _ = Model { vs: nn::VarStore::new(Device::Cpu) };
}
