//! A `const fn` hook.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    const fn on_fit_start(&mut self) {}
}

fn main() {}
