//! A module with only `predict_step` asked to be fitted.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module(batch = Tensor)]
impl Model {
    fn predict_step(&mut self, batch: &Tensor) -> Tensor {
        batch.shallow_clone()
    }
}

fn main() {
    lightning::assert_fit::<Model>();
}
