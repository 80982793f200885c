//! Optional parameters left out: the runtime still calls each hook with the full signature, and the user's
//! method receives the parameters it wrote.
use lightning::prelude::*;
use lightning::LightningModule;

struct Recorder {
    vs: nn::VarStore,
    seen: Vec<String>,
}

#[lightning_module]
impl Recorder {
    // No batch_idx, no ctx.
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        self.seen.push("training_step".into());
        batch.sum(Kind::Float)
    }

    // batch_idx but no dataloader_idx, ctx kept.
    fn validation_step(&mut self, _batch: &Tensor, batch_idx: usize, ctx: &mut Ctx) {
        self.seen.push(format!("validation_step {batch_idx}"));
        ctx.log("val_seen", 1.0);
    }

    fn on_train_batch_start(&mut self, _batch: &Tensor, batch_idx: usize) -> BatchControl {
        if batch_idx == 3 {
            BatchControl::SkipRestOfEpoch
        } else {
            BatchControl::Continue
        }
    }

    // Only the context.
    fn on_fit_start(&mut self, ctx: &mut Ctx) {
        self.seen.push(format!("on_fit_start {}", ctx.current_epoch()));
    }

    fn on_before_batch_transfer(&mut self, batch: Tensor) -> Tensor {
        batch + 1
    }

    fn configure_gradient_clipping(&mut self, optimizer: &mut Optimizer) {
        optimizer.clip_gradients(Some(1.0), None).unwrap();
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.1)
    }
}

fn main() {
    let mut module = Recorder { vs: nn::VarStore::new(Device::Cpu), seen: Vec::new() };
    let mut ctx = Ctx::new(Device::Cpu);
    let batch = Tensor::ones([3], (Kind::Float, Device::Cpu));
    let hooks = Recorder::HOOKS;

    let loss = (hooks.training_step.unwrap())(&mut module, &batch, 7, &mut ctx).unwrap();
    assert_eq!(loss.unwrap().double_value(&[]), 3.0);
    let out = (hooks.validation_step.unwrap())(&mut module, &batch, 5, 1, &mut ctx).unwrap();
    assert!(out.is_none());
    assert_eq!(ctx.metric("val_seen"), Some(1.0));
    let control = (hooks.on_train_batch_start.unwrap())(&mut module, &batch, 3, &mut ctx).unwrap();
    assert_eq!(control, BatchControl::SkipRestOfEpoch);
    (hooks.on_fit_start.unwrap())(&mut module, &mut ctx).unwrap();
    let moved = (hooks.on_before_batch_transfer.unwrap())(&mut module, batch.shallow_clone(), 0, &mut ctx).unwrap();
    assert_eq!(moved.double_value(&[0]), 2.0);
    assert_eq!(module.seen, ["training_step", "validation_step 5", "on_fit_start 0"]);
    assert!(hooks.on_fit_end.is_none());
}
