//! The 1.x hook `on_epoch_end`, removed in Lightning 1.8.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn on_epoch_end(&mut self) {}
}

fn main() {}
