//! A near miss under a `cfg` that holds is still reported (and the same hook twice under one `cfg` too).
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    #[cfg(all())]
    fn on_train_epoch_ends(&mut self) {}

    #[cfg(all())]
    fn on_fit_start(&mut self) {}

    #[cfg(all())]
    fn on_fit_start(&mut self) {}
}

fn main() {}
