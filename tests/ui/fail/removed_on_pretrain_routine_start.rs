//! The 1.x hook `on_pretrain_routine_start`, removed in Lightning 1.8.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn on_pretrain_routine_start(&mut self) {}
}

fn main() {}
