//! `training_step` returns an `f64`, which is not a loss `Tensor`.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn training_step(&mut self, batch: &Tensor) -> f64 {
        batch.sum(Kind::Float).double_value(&[])
    }
}

fn main() {}
