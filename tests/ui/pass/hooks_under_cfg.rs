//! The same hook under mutually exclusive `#[cfg]`s, and a near miss that is compiled out: both valid.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
}

#[lightning_module]
impl Model {
    #[cfg(all())]
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }

    // An alternative that would be an error if it were compiled (no loss under automatic optimization) is
    // judged only where its `cfg` holds.
    #[cfg(any())]
    fn training_step(&mut self, batch: &Tensor) {
        let _ = batch;
    }

    #[cfg(any())]
    fn on_train_epoch_ends(&mut self) {}

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.1)
    }
}

fn main() {
    lightning::assert_fit::<Model>();
    assert_eq!(lightning::defined_hooks::<Model>(), ["training_step", "configure_optimizers"]);
    let mut model = Model { vs: nn::VarStore::new(Device::Cpu) };
    let sum = model.training_step(&Tensor::ones([4], (Kind::Float, Device::Cpu)));
    assert_eq!(sum.double_value(&[]), 4.0, "the definition compiled in is the one called");
}
