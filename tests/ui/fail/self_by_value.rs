//! A hook that takes `self` by value: the Trainer keeps the module.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn on_fit_start(self) {}
}

fn main() {}
