//! A module with `training_step` but no `configure_optimizers` asked to be fitted.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }
}

fn main() {
    lightning::assert_fit::<Model>();
}
