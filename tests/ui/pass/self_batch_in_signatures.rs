//! The signatures as the hook reference prints them, `batch: &Self::Batch` and `-> Self::Batch`, compile when the
//! attribute says what the batch is.
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
    linear: nn::Linear,
}

#[lightning_module(batch = (Tensor, Tensor))]
impl Model {
    fn training_step(&mut self, batch: &Self::Batch, batch_idx: usize, ctx: &mut Ctx) -> Tensor {
        let _ = batch_idx;
        let loss = self.linear.forward(&batch.0).mse_loss(&batch.1, Reduction::Mean);
        ctx.log("loss", &loss);
        loss
    }

    fn on_after_batch_transfer(&mut self, batch: Self::Batch, dataloader_idx: usize) -> Self::Batch {
        let _ = dataloader_idx;
        batch
    }

    fn predict_step(&mut self, batch: &Self::Batch) -> Tensor {
        self.linear.forward(&batch.0)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.1)
    }
}

fn main() {
    lightning::assert_fit::<Model>();
    let vs = nn::VarStore::new(Device::Cpu);
    let linear = nn::linear(vs.root(), 3, 1, Default::default());
    let mut model = Model { vs, linear };
    let batch = (Tensor::ones([2, 3], (Kind::Float, Device::Cpu)), Tensor::ones([2, 1], (Kind::Float, Device::Cpu)));
    let out = model.predict_step(&batch);
    assert_eq!(out.size(), [2, 1]);
}
