//! `Self::Batch` everywhere and no `batch = Type`: nothing says what the batch is.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn training_step(&mut self, batch: &Self::Batch) -> Tensor {
        let _ = batch;
        Tensor::zeros([], (Kind::Float, Device::Cpu))
    }
}

fn main() {}
