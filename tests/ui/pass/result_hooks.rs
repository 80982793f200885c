//! Hooks that can fail return `Result`; the error reaches the runtime, converted into its hook error.
use std::fmt;

use lightning::prelude::*;
use lightning::LightningModule;

#[derive(Debug)]
struct BadData(usize);

impl fmt::Display for BadData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "batch {} is empty", self.0)
    }
}

impl std::error::Error for BadData {}

struct Careful {
    vs: nn::VarStore,
}

#[lightning_module]
impl Careful {
    fn training_step(&mut self, batch: &Tensor, batch_idx: usize) -> Result<Tensor, BadData> {
        if batch.numel() == 0 {
            return Err(BadData(batch_idx));
        }
        Ok(batch.sum(Kind::Float))
    }

    fn setup(&mut self, stage: Stage) -> Result<(), String> {
        if stage == Stage::Predict {
            return Err("this module cannot predict".to_string());
        }
        Ok(())
    }

    fn configure_optimizers(&mut self) -> Result<Optimizer, std::io::Error> {
        Ok(Optimizer::sgd(&self.vs, 0.1))
    }

    fn on_train_epoch_end(&mut self) -> lightning::Result<()> {
        Ok(())
    }
}

fn main() {
    let mut module = Careful { vs: nn::VarStore::new(Device::Cpu) };
    let mut ctx = Ctx::new(Device::Cpu);
    let hooks = Careful::HOOKS;
    let empty = Tensor::zeros([0], (Kind::Float, Device::Cpu));
    let error = (hooks.training_step.unwrap())(&mut module, &empty, 4, &mut ctx).unwrap_err();
    assert_eq!(error.to_string(), "batch 4 is empty");
    let full = Tensor::ones([2], (Kind::Float, Device::Cpu));
    assert!((hooks.training_step.unwrap())(&mut module, &full, 0, &mut ctx).unwrap().is_some());
    let error = (hooks.setup.unwrap())(&mut module, Stage::Predict, &mut ctx).unwrap_err();
    assert_eq!(error.to_string(), "this module cannot predict");
    assert!((hooks.setup.unwrap())(&mut module, Stage::Fit, &mut ctx).is_ok());
    let optimizers = (hooks.configure_optimizers.unwrap())(&mut module, &mut ctx).unwrap();
    assert_eq!(optimizers.optimizers().len(), 1);
}
