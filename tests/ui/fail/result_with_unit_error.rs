//! `Result<_, ()>`: `()` carries no error for the Trainer to report.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn training_step(&mut self, batch: &Tensor) -> Result<Tensor, ()> {
        Ok(batch.sum(Kind::Float))
    }
}

fn main() {}
