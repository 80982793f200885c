//! An `async fn` hook: the Trainer calls hooks synchronously.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    async fn on_fit_start(&mut self) {}
}

fn main() {}
