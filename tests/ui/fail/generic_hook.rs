//! A generic hook: the runtime calls it through one function pointer.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn training_step<T>(&mut self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }
}

fn main() {}
