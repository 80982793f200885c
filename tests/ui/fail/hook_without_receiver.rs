//! A hook written as an associated function, with no `self`.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn on_fit_start(_ctx: &mut Ctx) {}
}

fn main() {}
