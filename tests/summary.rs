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
            SummaryRow {
                name: "encoder".into(),
                trainable: 15,
                frozen: 0,
                buffers: 0,
                bytes: 60,
                ..Default::default()
            },
            SummaryRow { name: "head".into(), trainable: 0, frozen: 0, buffers: 3, bytes: 12, ..Default::default() },
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
    assert_eq!(
        rows[2],
        SummaryRow { name: "norm".into(), trainable: 6, frozen: 0, buffers: 6, bytes: 48, ..Default::default() }
    );
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

/// A small convolutional network with an example input: each top-level submodule's input and output shapes.
struct ConvNet {
    vs: nn::VarStore,
    conv: nn::Conv2D,
    norm: nn::BatchNorm,
    embed: nn::Embedding,
    head: nn::Linear,
    batch: i64,
    /// Batch norm in training mode inside `forward` (it would update the running statistics).
    norm_training: bool,
}

#[lightning_module]
impl ConvNet {
    fn forward(&self, (image, token): &(Tensor, Tensor)) -> Tensor {
        let features = image.apply(&self.conv).apply_t(&self.norm, self.norm_training).relu().flatten(1, -1);
        let tokens = token.apply(&self.embed).flatten(1, -1);
        Tensor::cat(&[features, tokens], 1).apply(&self.head)
    }

    fn example_input_array(&self) -> (Tensor, Tensor) {
        let image = Tensor::zeros([self.batch, 1, 6, 6], (Kind::Float, Device::Cpu));
        (image, Tensor::zeros([self.batch, 2], (Kind::Int64, Device::Cpu)))
    }

    fn training_step(&mut self, (image, token, y): &(Tensor, Tensor, Tensor)) -> Tensor {
        self.forward(&(image.shallow_clone(), token.shallow_clone())).mse_loss(y, Reduction::Mean)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.01)
    }
}

fn conv_net(batch: i64) -> ConvNet {
    let vs = nn::VarStore::new(Device::Cpu);
    let conv = nn::conv2d(vs.root() / "conv", 1, 4, 3, Default::default());
    let norm = nn::batch_norm2d(vs.root() / "norm", 4, Default::default());
    let embed = nn::embedding(vs.root() / "embed", 10, 5, Default::default());
    let head = nn::linear(vs.root() / "head", 4 * 4 * 4 + 2 * 5, 3, Default::default());
    ConvNet { vs, conv, norm, embed, head, batch, norm_training: false }
}

/// One epoch of one batch of ones, with the model summary on (the Trainer's default).
fn fit_one_batch(module: &mut ConvNet) -> (Trainer, lightning::Result<()>) {
    let data = vec![(
        Tensor::ones([2, 1, 6, 6], (Kind::Float, Device::Cpu)),
        Tensor::ones([2, 2], (Kind::Int64, Device::Cpu)),
        Tensor::ones([2, 3], (Kind::Float, Device::Cpu)),
    )];
    let mut trainer =
        Trainer::new().logger(false).enable_checkpointing(false).max_epochs(1).accelerator(Accelerator::Cpu);
    let fitted = trainer.fit(module, Loader::from(data), None);
    (trainer, fitted)
}

#[test]
fn the_example_input_gives_each_submodule_its_input_and_output_shapes() {
    let mut module = conv_net(2);
    let rows = ModelSummary::rows_with_shapes(&mut module).unwrap();
    let sizes: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|row| (row.name.as_str(), row.in_size.as_deref().unwrap(), row.out_size.as_deref().unwrap()))
        .collect();
    assert_eq!(
        sizes,
        [
            ("conv", "[2, 1, 6, 6]", "[2, 4, 4, 4]"),
            // The embedding's input is the token indices, not its weight.
            ("embed", "[2, 2]", "[2, 2, 5]"),
            ("head", "[2, 74]", "[2, 3]"),
            ("norm", "[2, 4, 4, 4]", "[2, 4, 4, 4]"),
        ]
    );
    let text = ModelSummary::render(&rows, &[]);
    assert!(text.contains("In sizes") && text.contains("Out sizes") && text.contains("[2, 1, 6, 6]"), "{text}");
    // Without an example input the columns are not there.
    let plain = ModelSummary::render(&ModelSummary::rows_of(&module), &[]);
    assert!(!plain.contains("In sizes"), "{plain}");

    // The summary runs inside `fit` too, and training goes on after it (the pass ran under `no_grad`).
    let (trainer, fitted) = fit_one_batch(&mut module);
    fitted.unwrap();
    assert_eq!(trainer.global_step(), 1);
}

#[test]
fn the_example_pass_leaves_the_running_statistics_as_they_were() {
    // Lightning runs the pass in eval mode; a tch `forward` has no mode, so one that runs batch norm in training
    // mode gets its buffers put back.
    let mut module = conv_net(2);
    module.norm_training = true;
    let buffers = |m: &ConvNet| {
        let mut named: Vec<_> =
            m.vs.variables().into_iter().filter(|(_, t)| !t.requires_grad()).map(|(n, t)| (n, t.copy())).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    };
    let before = buffers(&module);
    assert_eq!(before.len(), 2, "running mean and variance");
    ModelSummary::rows_with_shapes(&mut module).unwrap();
    for ((name, was), (_, now)) in before.iter().zip(buffers(&module)) {
        assert!(was.equal(&now), "the example pass changed `{name}`");
    }
    // The same forward outside the pass does move them: the check above can fail.
    let _ = tch::no_grad(|| module.forward(&module.example_input_array()));
    let moved = before.iter().zip(buffers(&module)).any(|((_, was), (_, now))| !was.equal(&now));
    assert!(moved, "a training-mode batch norm forward moves its statistics");
}

#[test]
fn an_example_input_in_the_wrong_dtype_is_cast_to_the_weights_dtype() {
    let mut module = conv_net(3);
    module.vs.bfloat16();
    let rows = ModelSummary::rows_with_shapes(&mut module).unwrap();
    assert_eq!(rows[0].in_size.as_deref(), Some("[3, 1, 6, 6]"));
    assert_eq!(rows[2].out_size.as_deref(), Some("[3, 3]"));
}

#[test]
fn an_example_input_forward_cannot_take_fails_fit_naming_it() {
    // A convolution that wants three channels gets the example's one: libtorch rejects it.
    let mut module = conv_net(2);
    module.conv = nn::conv2d(module.vs.root() / "conv3", 3, 4, 3, Default::default());
    let (trainer, fitted) = fit_one_batch(&mut module);
    let error = fitted.unwrap_err().to_string();
    assert!(error.contains("ModelSummary") && error.contains("example_input_array"), "{error}");
    assert!(error.contains("`forward` panicked on the example input [[2, 1, 6, 6], [2, 2]]"), "{error}");
    assert!(error.contains("to have 3 channels") && !error.contains("Exception raised from"), "{error}");
    assert_eq!(trainer.global_step(), 0);
}
