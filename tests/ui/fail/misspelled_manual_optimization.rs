//! A misspelled flag (`manual_optimisation`), and the flag given a value.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module(manual_optimisation)]
impl Model {
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }
}

struct Other {
    vs: nn::VarStore,
}

#[lightning_module(manual_optimization = true)]
impl Other {
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }
}

fn main() {}
