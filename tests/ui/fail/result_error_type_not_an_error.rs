//! A hook's error type that does not convert into the runtime's error: the message points at it.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

struct NotAnError;

#[lightning_module]
impl Model {
    fn training_step(&mut self, batch: &Tensor) -> Result<Tensor, NotAnError> {
        Ok(batch.sum(Kind::Float))
    }
}

fn main() {}
