//! A hook whose receiver is `self: Box<Self>`.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn on_fit_start(self: Box<Self>) {}
}

fn main() {}
