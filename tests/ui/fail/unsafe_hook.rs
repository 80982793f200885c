//! An `unsafe fn` hook: the Trainer cannot uphold its contract.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    unsafe fn on_fit_start(&mut self) {}
}

fn main() {}
