//! The model summary counts each top-level submodule's trainable and frozen parameters and its buffers.

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
            SummaryRow { name: "encoder".into(), trainable: 15, frozen: 0, buffers: 0, bytes: 60 },
            SummaryRow { name: "head".into(), trainable: 0, frozen: 0, buffers: 3, bytes: 12 },
        ]
    );
    let text = ModelSummary::render(&rows, &["training_step"]);
    assert!(text.contains("15 trainable params, 0 frozen params, 3 buffer values"), "{text}");

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

#[test]
fn batch_norm_statistics_are_buffers_and_frozen_parameters_are_frozen() {
    let vs = nn::VarStore::new(Device::Cpu);
    let _encoder = nn::linear(vs.root() / "encoder", 4, 3, Default::default());
    let _norm = nn::batch_norm1d(vs.root() / "norm", 3, Default::default());
    let module = Frozen {
        scale: Tensor::ones([3], (Kind::Float, Device::Cpu)),
        encoder: nn::linear(vs.root() / "head", 3, 3, Default::default()),
        vs,
    };
    let rows = ModelSummary::rows_of(&module);
    // BatchNorm: weight and bias are parameters (2 x 3), running mean and variance buffers (2 x 3).
    assert_eq!(rows[2], SummaryRow { name: "norm".into(), trainable: 6, frozen: 0, buffers: 6, bytes: 48 });
    let Frozen { mut vs, .. } = module;
    vs.freeze();
    let module = Frozen {
        scale: Tensor::ones([3], (Kind::Float, Device::Cpu)),
        encoder: nn::linear(vs.root() / "late", 1, 1, Default::default()),
        vs,
    };
    let rows = ModelSummary::rows_of(&module);
    let norm = rows.iter().find(|row| row.name == "norm").unwrap();
    assert_eq!((norm.trainable, norm.frozen, norm.buffers), (0, 6, 6));
    let text = ModelSummary::render(&rows, &[]);
    assert!(text.contains("Buffers") && text.contains("6 buffer values"), "{text}");
}
