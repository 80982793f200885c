//! The smallest module that can be fitted.
use lightning::prelude::*;

struct Minimal {
    vs: nn::VarStore,
}

#[lightning_module]
impl Minimal {
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.1)
    }
}

fn main() {
    lightning::assert_fit::<Minimal>();
    assert_eq!(lightning::defined_hooks::<Minimal>(), ["training_step", "configure_optimizers"]);
    let _ = Minimal { vs: nn::VarStore::new(Device::Cpu) };
}
