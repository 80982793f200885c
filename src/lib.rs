//! # Lightning for Rust
//!
//! PyTorch Lightning's structure, on tch (libtorch). Write the model as a plain struct with an inherent `impl`
//! block of hooks, put [`lightning_module`] on the block, and the runtime calls the hooks in the order
//! PyTorch Lightning documents.
//!
//! ```
//! use lightning::prelude::*;
//!
//! struct Regression {
//!     vs: nn::VarStore,
//!     linear: nn::Linear,
//! }
//!
//! impl Regression {
//!     fn new() -> Self {
//!         let vs = nn::VarStore::new(Device::Cpu);
//!         let linear = nn::linear(vs.root(), 3, 1, Default::default());
//!         Regression { vs, linear }
//!     }
//! }
//!
//! #[lightning_module]
//! impl Regression {
//!     fn training_step(&mut self, (x, y): &(Tensor, Tensor), _batch_idx: usize, ctx: &mut Ctx) -> Tensor {
//!         let loss = self.linear.forward(x).mse_loss(y, Reduction::Mean);
//!         ctx.log("train_loss", &loss);
//!         loss
//!     }
//!
//!     fn configure_optimizers(&mut self) -> Optimizer {
//!         Optimizer::adam(&self.vs, 1e-2)
//!     }
//! }
//!
//! lightning::assert_fit::<Regression>();
//! assert_eq!(lightning::defined_hooks::<Regression>(), ["training_step", "configure_optimizers"]);
//! ```
//!
//! ## Training
//!
//! The [`Trainer`] runs `fit`, `validate`, `test` and `predict`, calling every hook the module defines (and
//! every callback's, first) in Lightning's order, on the CPU or CUDA:
//!
//! ```
//! use lightning::prelude::*;
//! use lightning::{Accelerator, DataLoader, Trainer};
//!
//! struct Line { vs: nn::VarStore, linear: nn::Linear }
//!
//! #[lightning_module]
//! impl Line {
//!     fn training_step(&mut self, (x, y): &(Tensor, Tensor)) -> Tensor {
//!         self.linear.forward(x).mse_loss(y, Reduction::Mean)
//!     }
//!     fn configure_optimizers(&mut self) -> Optimizer {
//!         Optimizer::sgd(&self.vs, 0.5)
//!     }
//! }
//!
//! tch::manual_seed(0);
//! let x = Tensor::rand([64, 1], (Kind::Float, Device::Cpu));
//! let y = &x * 3.0 + 1.0;
//! let data = DataLoader::new((x, y)).batch_size(16).shuffle(true).build()?;
//! let vs = nn::VarStore::new(Device::Cpu);
//! let linear = nn::linear(vs.root(), 1, 1, Default::default());
//! let mut model = Line { vs, linear };
//! let mut trainer = Trainer::new().max_epochs(100).accelerator(Accelerator::Cpu).seed(0);
//! # let mut trainer = trainer.logger(false).enable_checkpointing(false); // no files from the doctest
//! trainer.fit(&mut model, data, None)?;
//! assert_eq!(trainer.global_step(), 400);
//! let slope = model.linear.ws.double_value(&[0, 0]);
//! assert!((slope - 3.0).abs() < 0.1, "learned slope {slope}");
//! # Ok::<(), lightning::Error>(())
//! ```
//!
//! ## Callbacks
//!
//! A [`Callback`] sees every hook, before the module does. The runtime ships [`ModelCheckpoint`],
//! [`EarlyStopping`], [`LearningRateMonitor`], [`OnExceptionCheckpoint`], [`ProgressBar`] and [`ModelSummary`];
//! your own implements only the hooks it needs, and can stop the run or save a checkpoint through the context:
//!
//! ```
//! use lightning::{AnyModule, Callback, CallbackResult, Ctx};
//!
//! /// Stops once the training loss is small enough.
//! struct GoodEnough(f64);
//!
//! impl Callback for GoodEnough {
//!     fn monitors(&self) -> bool {
//!         true // run after the epoch's metrics are reduced
//!     }
//!     fn on_train_epoch_end(&mut self, ctx: &mut Ctx, _module: &mut dyn AnyModule) -> CallbackResult {
//!         if ctx.callback_metrics().get("train_loss").is_some_and(|loss| *loss < self.0) {
//!             ctx.request_stop();
//!         }
//!         Ok(())
//!     }
//! }
//! ```
//!
//! ## Checkpoints
//!
//! `ModelCheckpoint` keeps the best checkpoints by a monitored metric (and `last.ckpt`); `Trainer::fit_from`
//! resumes a run exactly where a checkpoint left it; [`LoadFromCheckpoint`] loads weights into a fresh module for
//! inference or fine-tuning. The file format is described on [`Checkpoint`].
//!
//! ```no_run
//! # use lightning::prelude::*;
//! # struct Model { vs: nn::VarStore }
//! # #[lightning_module(batch = Tensor)]
//! # impl Model {
//! #     fn training_step(&mut self, b: &Tensor) -> Tensor { b.sum(Kind::Float) }
//! #     fn validation_step(&mut self, b: &Tensor, ctx: &mut Ctx) { ctx.log("val_loss", b.sum(Kind::Float)); }
//! #     fn configure_optimizers(&mut self) -> Optimizer { Optimizer::sgd(&self.vs, 0.1) }
//! # }
//! # fn new_model() -> Model { Model { vs: nn::VarStore::new(Device::Cpu) } }
//! # fn data() -> Loader<Tensor> { Loader::from(vec![Tensor::ones([2], (Kind::Float, Device::Cpu))]) }
//! use lightning::{LoadFromCheckpoint, ModelCheckpoint, Trainer};
//!
//! let checkpoint = ModelCheckpoint::new("checkpoints").monitor("val_loss").save_top_k(3).save_last(true);
//! let best = checkpoint.handle();
//! let mut trainer = Trainer::new().max_epochs(20).callback(checkpoint);
//! trainer.fit(&mut new_model(), data(), data())?;
//!
//! // Later: go on for 10 more epochs, exactly as if the run had never stopped...
//! Trainer::new().max_epochs(30).fit_from(&mut new_model(), data(), data(), "checkpoints/last.ckpt")?;
//! // ...or use the best weights.
//! let model = new_model().load_from_checkpoint(best.best_model_path().unwrap())?;
//! # Ok::<(), lightning::Error>(())
//! ```
//!
//! ## Logging
//!
//! `ctx.log(name, value)` works in every hook where Lightning allows `self.log`, with its options as methods
//! (`.prog_bar(true)`, `.on_step(..)`, `.on_epoch(..)`, `.batch_size(..)`). Values stay on the device until a
//! logger, the progress bar or a callback reads them; epoch values are means weighted by batch size. The loggers
//! ([`loggers::CsvLogger`], [`loggers::TensorBoardLogger`], or any [`Logger`]) write into versioned folders:
//!
//! ```no_run
//! use lightning::loggers::{CsvLogger, TensorBoardLogger};
//! use lightning::Trainer;
//! let trainer = Trainer::new()
//!     .max_epochs(10)
//!     .logger(CsvLogger::new("logs", "my_run")?)          // logs/my_run/version_0/metrics.csv
//!     .logger(TensorBoardLogger::new("logs", "my_run")?); // ...and TensorBoard event files beside it
//! # Ok::<(), lightning::Error>(())
//! ```
//!
//! Given no logger, a Trainer logs as Lightning's does, to `lightning_logs/version_N/` under
//! [`Trainer::default_root_dir`] (TensorBoard and CSV), and `fit` keeps the last epoch's checkpoint in its
//! `checkpoints/`; `.logger(false)` and `.enable_checkpointing(false)` turn them off. Hooks reach the run's loggers
//! through the context: [`Ctx::tensorboard`] adds images (a [`vision::make_grid`] of samples), histograms and text.
//!
//! ## Devices
//!
//! The Trainer runs on CUDA device 0 when there is one and on the CPU otherwise (`Accelerator::Auto`); name one
//! with `.accelerator(Accelerator::Cpu)` or `Accelerator::Cuda(i)`. Build the model's `VarStore` on the CPU: the
//! Trainer moves it after `configure_model`, and moves every batch with `transfer_batch_to_device` (by default,
//! every tensor of the batch). `ctx.device()` tells a hook where it runs. CUDA needs the binary linked against
//! `libtorch_cuda`, which the build helper below takes care of.
//!
//! ## Coming from PyTorch Lightning
//!
//! [`guide::coming_from_lightning`] maps each Lightning concept, `Trainer` argument and hook (including the 1.x
//! names) to its place here.
//!
//! ## Building
//!
//! tch needs libtorch: in this repository `make setup` installs it. A crate of your own that depends on
//! `lightning` needs `LIBTORCH` set (`make setup` prints where it is) and a `build.rs` calling
//! [`lightning_build::link_libtorch()`](https://docs.rs/lightning-build), so that its binaries find
//! libtorch without `LD_LIBRARY_PATH` and see CUDA where there is one.

#[doc = include_str!("../docs/lightning_module.md")]
#[doc = "\n## The hooks\n\n"]
#[doc = include_str!("../lightning-macros/HOOKS.md")]
pub use lightning_macros::lightning_module;

#[doc = include_str!("../docs/lightning_datamodule.md")]
pub use lightning_macros::lightning_datamodule;

pub use lightning_runtime::*;

/// Guides that go with the API docs.
pub mod guide {
    #[doc = include_str!("../docs/coming_from_lightning.md")]
    pub mod coming_from_lightning {}
    #[doc = include_str!("../docs/distributed.md")]
    pub mod distributed {}
    #[doc = include_str!("../docs/precision.md")]
    pub mod precision {}
    #[doc = include_str!("../docs/tuning.md")]
    pub mod tuning {}
    #[doc = include_str!("../docs/cli.md")]
    pub mod cli {}
    #[doc = include_str!("../docs/weight_averaging.md")]
    pub mod weight_averaging {}
}

/// What a module's file needs: the attribute, the runtime's types and tch's. It leaves out the `Batch` trait, whose
/// `to_device` (moving every tensor of a batch, returning a `Result`) would otherwise take the place of tch's own
/// `Tensor::to_device` on an owned tensor: `use lightning::Batch;` where a batch is moved by hand.
pub mod prelude {
    pub use crate::{lightning_datamodule, lightning_module};
    pub use lightning_runtime::{
        BatchControl, Callback, Checkpoint, Ctx, GradClipAlgorithm, Interval, LightningModule, Loader, Loaders,
        LrScheduler, Optimizer, OptimizerClosure, Optimizers, Stage, StepOutput, VarStoreExt,
    };
    pub use tch::nn::{self, Module as _, ModuleT as _};
    pub use tch::{Device, Kind, Reduction, Tensor};
}
