//! `configure_model` takes `&self`, but it must take `&mut self`.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn configure_model(&self) {}
}

fn main() {}
