//! The 1.x hook `validation_epoch_end`, removed in Lightning 2.0.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn validation_epoch_end(&mut self) {}
}

fn main() {}
