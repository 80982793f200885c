//! A typo of `validation_step` (swapped letters) is caught with a "did you mean".
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }

    fn validation_stpe(&mut self, _batch: &Tensor) {}
}

fn main() {}
