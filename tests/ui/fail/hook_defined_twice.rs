//! The same hook defined twice in one block.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn on_fit_start(&mut self) {}

    fn on_fit_start(&mut self, _ctx: &mut Ctx) {}
}

fn main() {}
