//! `setup` without its required `stage` parameter.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn setup(&mut self) {}
}

fn main() {}
