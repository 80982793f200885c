//! A data module with every hook, in the forms the docs show, runs `fit`, `test` and `predict`.
use lightning::prelude::*;
use lightning::{Error, Trainer};

struct Data {
    seen: usize,
}

#[lightning_datamodule]
impl Data {
    fn prepare_data(&mut self) {}

    fn setup(&mut self, _stage: Stage, ctx: &mut Ctx) {
        assert_eq!(ctx.global_rank(), 0);
    }

    fn train_dataloader(&self) -> Result<Loader<Tensor>, Error> {
        Ok(Loader::from(vec![Tensor::ones([2, 1], (Kind::Float, Device::Cpu))]))
    }

    fn val_dataloader(&self) -> Loader<Tensor> {
        vec![Tensor::ones([2, 1], (Kind::Float, Device::Cpu))].into()
    }

    fn test_dataloader(&self) -> Vec<Loader<Tensor>> {
        vec![self.val_dataloader(), self.val_dataloader()]
    }

    fn predict_dataloader(&self) -> [Loader<Tensor>; 1] {
        [self.val_dataloader()]
    }

    fn on_before_batch_transfer(&mut self, batch: Self::Batch, _dataloader_idx: usize) -> Self::Batch {
        self.seen += 1;
        batch
    }

    fn transfer_batch_to_device(&mut self, batch: Tensor, device: Device) -> Result<Tensor, Error> {
        Ok(batch.f_to_device(device)?)
    }

    fn on_after_batch_transfer(&mut self, batch: Tensor) -> Tensor {
        batch
    }

    fn state_dict(&self) -> serde_json::Value {
        serde_json::json!({ "seen": self.seen })
    }

    fn load_state_dict(&mut self, state: serde_json::Value) {
        self.seen = state["seen"].as_u64().unwrap_or(0) as usize;
    }

    fn on_exception(&mut self, _error: &Error) {}

    fn teardown(&mut self, _stage: Stage) {}

    #[lightning(helper)]
    fn train_dataloder(&self) {}
}

struct Model {
    vs: nn::VarStore,
    w: Tensor,
}

#[lightning_module]
impl Model {
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        (batch * &self.w).sum(Kind::Float)
    }

    fn validation_step(&mut self, batch: &Tensor) {
        let _ = batch;
    }

    fn test_step(&mut self, batch: &Tensor, _batch_idx: usize, dataloader_idx: usize, ctx: &mut Ctx) {
        ctx.log("loader", dataloader_idx as f64);
        let _ = batch;
    }

    fn predict_step(&mut self, batch: &Tensor) -> Tensor {
        batch.shallow_clone()
    }

    fn configure_optimizers(&self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.1)
    }
}

fn main() {
    let vs = nn::VarStore::new(Device::Cpu);
    let w = vs.root().ones("w", &[1]);
    let mut model = Model { vs, w };
    let mut data = Data { seen: 0 };
    let mut trainer = Trainer::new().logger(false).enable_checkpointing(false).max_epochs(1).enable_progress_bar(false).enable_model_summary(false);
    trainer.fit(&mut model, &mut data, None).unwrap();
    let results = trainer.test(&mut model, &mut data).unwrap();
    assert_eq!(results["loader/dataloader_idx_1"], 1.0);
    assert_eq!(trainer.predict(&mut model, &mut data).unwrap().len(), 1);
    // The sanity check's batch, 1 training, 1 validation, 2 test and 1 prediction batch.
    assert_eq!(data.seen, 6);
}
