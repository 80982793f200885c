//! A data module whose batches are not the module's cannot be given to it.
use lightning::prelude::*;
use lightning::Trainer;

struct Data;

#[lightning_datamodule]
impl Data {
    fn train_dataloader(&self) -> Loader<(Tensor, Tensor)> {
        Loader::from(Vec::<(Tensor, Tensor)>::new())
    }
}

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }

    fn configure_optimizers(&self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.1)
    }
}

fn main() {
    let mut model = Model { vs: nn::VarStore::new(Device::Cpu) };
    let _ = Trainer::new().max_epochs(1).fit(&mut model, &mut Data, None);
}
