//! Lightning 1.x hooks that 2.x removed without a same-named successor: `on_batch_start`, `on_init_start`,
//! `on_keyboard_interrupt`.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn on_batch_start(&mut self) {}

    fn on_init_start(&mut self) {}

    fn on_keyboard_interrupt(&mut self) {}
}

fn main() {}
