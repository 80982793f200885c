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
//! trainer.fit(&mut model, data, None)?;
//! assert_eq!(trainer.global_step(), 400);
//! let slope = model.linear.ws.double_value(&[0, 0]);
//! assert!((slope - 3.0).abs() < 0.1, "learned slope {slope}");
//! # Ok::<(), lightning::Error>(())
//! ```
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

pub use lightning_runtime::*;

/// Guides that go with the API docs.
pub mod guide {
    #[doc = include_str!("../docs/coming_from_lightning.md")]
    pub mod coming_from_lightning {}
}

/// What a module's file needs: the attribute, the runtime's types and tch's.
pub mod prelude {
    pub use crate::lightning_module;
    pub use lightning_runtime::{
        Batch, BatchControl, Callback, Checkpoint, Ctx, GradClipAlgorithm, Interval, LightningModule, Loader,
        LrScheduler, Optimizer, OptimizerClosure, Optimizers, Stage, StepOutput,
    };
    pub use tch::nn::{self, Module as _, ModuleT as _};
    pub use tch::{Device, Kind, Reduction, Tensor};
}
