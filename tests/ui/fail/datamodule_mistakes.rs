//! A data module's mistakes: a misspelled hook, a module hook put on it, a wrong signature, logging in a hook.
use lightning::prelude::*;

struct Data;

#[lightning_datamodule]
impl Data {
    fn train_dataloder(&self) -> Loader<Tensor> {
        Loader::from(Vec::<Tensor>::new())
    }

    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }

    fn setup(&mut self, stage: &str) {
        let _ = stage;
    }

    fn val_dataloader(&self, ctx: &mut Ctx) -> Loader<Tensor> {
        ctx.log("n", 1.0);
        Loader::from(Vec::<Tensor>::new())
    }
}

fn main() {}
