//! Names brought from elsewhere: an abbreviation (`val_step`), Keras's `on_train_begin`, fastai's `before_batch`.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn val_step(&mut self, batch: &Tensor) {
        let _ = batch;
    }

    fn on_train_begin(&mut self) {}

    fn before_batch(&mut self) {}
}

fn main() {}
