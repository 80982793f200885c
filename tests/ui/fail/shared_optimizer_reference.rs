//! `on_before_optimizer_step` takes `&Optimizer`, where the hook gives `&mut Optimizer`.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn on_before_optimizer_step(&mut self, _optimizer: &Optimizer) {}
}

fn main() {}
