//! The attribute on the model's struct instead of its `impl` block.
use lightning::prelude::*;

#[lightning_module]
struct Model {
    vs: nn::VarStore,
}

fn main() {}
