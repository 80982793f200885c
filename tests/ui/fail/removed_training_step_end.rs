//! The 1.x hook `training_step_end`, removed in Lightning 2.0.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn training_step_end(&mut self) {}
}

fn main() {}
