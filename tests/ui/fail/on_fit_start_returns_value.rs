//! `on_fit_start` returns a value that Lightning would ignore.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn on_fit_start(&mut self) -> bool {
        true
    }
}

fn main() {}
