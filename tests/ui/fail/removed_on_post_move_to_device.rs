//! The 1.x hook `on_post_move_to_device`, removed in Lightning 1.7.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn on_post_move_to_device(&mut self) {}
}

fn main() {}
