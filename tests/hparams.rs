//! `#[lightning_module(hparams = field)]`: the field's value is what checkpoints keep as hyper-parameters.

use lightning::prelude::*;
use lightning::LightningModule;
use serde::Serialize;

#[derive(Serialize)]
struct Hyper {
    hidden: usize,
    lr: f64,
}

struct WithHyper {
    vs: nn::VarStore,
    hyper: Hyper,
}

#[lightning_module(hparams = hyper)]
impl WithHyper {
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, self.hyper.lr)
    }
}

#[test]
fn declared_hyper_parameters_become_json() {
    let module = WithHyper { vs: nn::VarStore::new(Device::Cpu), hyper: Hyper { hidden: 64, lr: 0.01 } };
    assert_eq!(module.hparams(), Some(serde_json::json!({"hidden": 64, "lr": 0.01})));
}
