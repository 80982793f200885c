//! The model summary counts each top-level submodule's trainable and frozen parameters.

use lightning::prelude::*;
use lightning::{Accelerator, ModelSummary, ProgressBar, SummaryRow, Trainer};

struct Frozen {
    vs: nn::VarStore,
    encoder: nn::Linear,
    scale: Tensor,
}

#[lightning_module]
impl Frozen {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor)) -> Tensor {
        (self.encoder.forward(x) * &self.scale).mse_loss(y, Reduction::Mean)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.01)
    }
}

#[test]
fn summary_rows_and_a_run_with_progress_lines() {
    let vs = nn::VarStore::new(Device::Cpu);
    let encoder = nn::linear(vs.root() / "encoder", 4, 3, Default::default());
    let scale = (vs.root() / "head").zeros_no_train("scale", &[3]);
    let mut module = Frozen { vs, encoder, scale };
    let rows = ModelSummary::rows_of(&module);
    assert_eq!(
        rows,
        [
            SummaryRow { name: "encoder".into(), trainable: 15, frozen: 0, bytes: 60 },
            SummaryRow { name: "head".into(), trainable: 0, frozen: 3, bytes: 12 },
        ]
    );
    let text = ModelSummary::render(&rows, &["training_step"]);
    assert!(text.contains("15 trainable params, 3 frozen params"), "{text}");

    let data =
        vec![(Tensor::ones([2, 4], (Kind::Float, Device::Cpu)), Tensor::ones([2, 3], (Kind::Float, Device::Cpu)))];
    let mut trainer = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .max_epochs(2)
        .accelerator(Accelerator::Cpu)
        .callback(ProgressBar::lines());
    trainer.fit(&mut module, Loader::from(data), None).unwrap();
    assert_eq!(trainer.global_step(), 2);
}
