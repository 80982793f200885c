//! The types of the catalogue's entries: a hook's parameters, the Rust types they take, and what it returns.

/// One parameter of a hook, after the receiver.
pub struct Param {
    pub name: &'static str,
    pub ty: Ty,
    /// Lightning lets the user leave it out; only a trailing run of optional parameters can be left out.
    pub optional: bool,
}

/// The Rust types hooks take. `tokens` in `expand.rs` turns each into a path under the runtime.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ty {
    /// `&Self::Batch`
    BatchRef,
    /// `Self::Batch`, by value (the transfer hooks hand it back)
    Batch,
    /// `usize` (batch index, dataloader index, epoch)
    Usize,
    /// `&Tensor`
    TensorRef,
    /// `&StepOutput`, the step's output
    OutputRef,
    /// `&Self::Prediction`, what `predict_step` returned
    PredictionRef,
    /// `&mut Optimizer`
    Optimizer,
    /// `&mut OptimizerClosure<'_, Self>`
    Closure,
    /// `&mut LrScheduler`
    Scheduler,
    /// `Option<f64>`
    OptionF64,
    /// `Option<GradClipAlgorithm>`
    ClipAlgorithm,
    /// `Stage`
    Stage,
    /// `Device`
    Device,
    /// `&mut Checkpoint`
    Checkpoint,
    /// `serde_json::Value`, by value (a data module's saved state)
    Json,
    /// `&Error`, the error that ended the run
    ErrorRef,
}

/// How the parameter's type must be written, for the syntactic part of the signature check.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Passing {
    Value,
    Ref,
    RefMut,
}

impl Ty {
    /// How the type reads in messages and docs.
    pub fn display(self) -> &'static str {
        match self {
            Ty::BatchRef => "&Self::Batch",
            Ty::Batch => "Self::Batch",
            Ty::Usize => "usize",
            Ty::TensorRef => "&Tensor",
            Ty::OutputRef => "&StepOutput",
            Ty::PredictionRef => "&Self::Prediction",
            Ty::Optimizer => "&mut Optimizer",
            Ty::Closure => "&mut OptimizerClosure<'_, Self>",
            Ty::Scheduler => "&mut LrScheduler",
            Ty::OptionF64 => "Option<f64>",
            Ty::ClipAlgorithm => "Option<GradClipAlgorithm>",
            Ty::Stage => "Stage",
            Ty::Device => "Device",
            Ty::Checkpoint => "&mut Checkpoint",
            Ty::Json => "serde_json::Value",
            Ty::ErrorRef => "&Error",
        }
    }

    pub fn passing(self) -> Passing {
        match self {
            Ty::BatchRef | Ty::TensorRef | Ty::OutputRef | Ty::PredictionRef | Ty::ErrorRef => Passing::Ref,
            Ty::Optimizer | Ty::Closure | Ty::Scheduler | Ty::Checkpoint => Passing::RefMut,
            Ty::Batch | Ty::Usize | Ty::OptionF64 | Ty::ClipAlgorithm | Ty::Stage | Ty::Device | Ty::Json => {
                Passing::Value
            }
        }
    }
}

/// What a hook returns, and so what the user's return type is converted into.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ret {
    /// Nothing: `()` (or no return type).
    Unit,
    /// `BatchControl` (or `()`, which means `BatchControl::Continue`).
    Control,
    /// `StepOutput`: a loss `Tensor`, an `Option<Tensor>` (`None` skips the batch) or `()`.
    Output,
    /// `Self::Prediction`, inferred from the return type.
    Prediction,
    /// `Self::Batch`, the batch to use from here on.
    Batch,
    /// `Loader<Self::Batch>`, or anything that converts into one.
    Loader,
    /// `Loaders<Self::Batch>`: one loader or several (anything that converts into `Loaders`).
    Loaders,
    /// `serde_json::Value` (a data module's state; `Null` or `{}` saves nothing).
    Json,
    /// `Optimizers`, or anything that converts into it (an `Optimizer`, a `Vec<Optimizer>`, ...).
    Optimizers,
    /// `Vec<Box<dyn Callback>>`.
    Callbacks,
    /// What `forward` takes (`example_input_array`): a `Tensor`, a tuple of tensors or a `Vec<Tensor>`. The
    /// shim runs `forward` on it and hands the runtime the recorded `LayerShapes`.
    ExampleInput,
}

impl Ret {
    pub fn display(self) -> &'static str {
        match self {
            Ret::Unit => "()",
            Ret::Control => "BatchControl",
            Ret::Output => "StepOutput",
            Ret::Prediction => "Self::Prediction",
            Ret::Batch => "Self::Batch",
            Ret::Loader => "Loader<Self::Batch>",
            Ret::Loaders => "Loaders<Self::Batch>",
            Ret::Json => "serde_json::Value",
            Ret::Optimizers => "Optimizers",
            Ret::Callbacks => "Vec<Box<dyn Callback>>",
            Ret::ExampleInput => "Tensor",
        }
    }

    /// What the return value means, for the docs.
    pub fn meaning(self) -> &'static str {
        match self {
            Ret::Unit => "nothing",
            Ret::Control => {
                "`BatchControl::SkipRestOfEpoch` ends the epoch here (Lightning's `-1`); `()` or `Continue` goes on"
            }
            Ret::Output => "the loss `Tensor`; `None` skips the batch; `()` in manual optimization",
            Ret::Prediction => "one batch's predictions, collected by `Trainer::predict`",
            Ret::Batch => "the batch used from here on",
            Ret::Loader => "the data to run on (anything that converts into a `Loader`)",
            Ret::Loaders => {
                "the data to run on: a `Loader` (or anything that converts into one), or several (`Vec<Loader<_>>`, `[Loader<_>; N]`), run one after the other with their `dataloader_idx`"
            }
            Ret::Json => "the state to save in checkpoints (`Null` or an empty object saves nothing)",
            Ret::Optimizers => "the optimizers and LR schedulers: an `Optimizer`, a `Vec<Optimizer>`, an `(Optimizer, LrScheduler)` or `(Vec<Optimizer>, Vec<LrScheduler>)` pair, or `Optimizers`",
            Ret::Callbacks => "callbacks added to the Trainer's; one of a type the Trainer already has replaces it",
            Ret::ExampleInput => "the input `ModelSummary` runs through `self.forward(&input)` (on the module's device, under `no_grad`) to show each submodule's input and output shapes: a `Tensor`, a tuple of two or three tensors, or a `Vec<Tensor>`",
        }
    }
}
