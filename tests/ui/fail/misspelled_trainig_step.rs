//! A typo of `training_step` (a dropped `n`) is caught with a "did you mean".
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn trainig_step(&mut self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }
}

fn main() {}
