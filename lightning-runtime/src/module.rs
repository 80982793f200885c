//! The contract between `#[lightning_module]` and the runtime: the traits the attribute implements and the
//! hook table it fills in.

use tch::nn::VarStore;

use crate::data::Batch;

/// A model the Trainer can run. Do not implement it by hand: put `#[lightning_module]` on an inherent `impl`
/// block of the model, and the attribute implements it from the hooks that block defines.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a LightningModule",
    label = "not a LightningModule",
    note = "put `#[lightning_module]` on an `impl` block of `{Self}` that defines its hooks"
)]
pub trait LightningModule: Sized + 'static {
    /// The batch every batch-taking hook receives (inferred from `training_step`'s batch parameter, or given
    /// as `#[lightning_module(batch = Type)]`).
    type Batch: Batch;
    /// What `predict_step` returns (`()` when the module has no `predict_step`).
    type Prediction;
    /// The hooks the module defines, as plain function pointers; `None` where it does not define one.
    const HOOKS: HookTable<Self>;
    /// `false` when the module steps its own optimizers in `training_step`
    /// (`#[lightning_module(manual_optimization)]`, Lightning's `self.automatic_optimization = False`).
    const AUTOMATIC_OPTIMIZATION: bool = true;
    /// Every name the module's `ctx.log`/`ctx.log_dict` calls use, when `#[lightning_module]` could read them all
    /// off the block (string literals, the context handed only to the block's own methods); `None` otherwise.
    /// `fit` checks against it, before the first step, that the callbacks and schedulers monitor logged metrics.
    const LOGGED_NAMES: Option<&'static [&'static str]> = None;
    /// The module's hyper-parameters as JSON, saved in checkpoints (from the field named by
    /// `#[lightning_module(hparams = field)]`, whose type implements `serde::Serialize`).
    fn hparams(&self) -> Option<serde_json::Value> {
        None
    }
    /// The variables of the model (from the field named by `#[lightning_module(var_store = field)]`,
    /// `vs` by default).
    fn var_store(&self) -> &VarStore;
    /// The variables of the model, mutably (to move them to a device or load a checkpoint into them).
    fn var_store_mut(&mut self) -> &mut VarStore;
}

macro_rules! stage_marker {
    ($(#[$doc:meta])* $name:ident, $message:literal, $label:literal, $note:literal) => {
        $(#[$doc])*
        #[diagnostic::on_unimplemented(message = $message, label = $label, note = $note)]
        pub trait $name: LightningModule {}
    };
}

stage_marker!(
    /// Implemented by `#[lightning_module]` when the module defines `training_step`.
    HasTrainingStep,
    "`{Self}` cannot be fitted: it defines no `training_step`",
    "this needs a module with `training_step`",
    "add `fn training_step(&mut self, batch: &Self::Batch, batch_idx: usize) -> Tensor` to the `#[lightning_module]` impl of `{Self}`"
);
stage_marker!(
    /// Implemented by `#[lightning_module]` when the module defines `configure_optimizers`.
    HasConfigureOptimizers,
    "`{Self}` cannot be fitted: it defines no `configure_optimizers`",
    "this needs a module with `configure_optimizers`",
    "add `fn configure_optimizers(&mut self) -> Optimizers` (returning e.g. `Optimizer::adam(&self.vs, 1e-3)`) to the `#[lightning_module]` impl of `{Self}`"
);
stage_marker!(
    /// Implemented by `#[lightning_module]` when the module defines `validation_step`.
    HasValidationStep,
    "`{Self}` cannot be validated: it defines no `validation_step`",
    "this needs a module with `validation_step`",
    "add `fn validation_step(&mut self, batch: &Self::Batch, batch_idx: usize, ctx: &mut Ctx)` to the `#[lightning_module]` impl of `{Self}`"
);
stage_marker!(
    /// Implemented by `#[lightning_module]` when the module defines `test_step`.
    HasTestStep,
    "`{Self}` cannot be tested: it defines no `test_step`",
    "this needs a module with `test_step`",
    "add `fn test_step(&mut self, batch: &Self::Batch, batch_idx: usize, ctx: &mut Ctx)` to the `#[lightning_module]` impl of `{Self}`"
);
stage_marker!(
    /// Implemented by `#[lightning_module]` when the module defines `predict_step`.
    HasPredictStep,
    "`{Self}` cannot predict: it defines no `predict_step`",
    "this needs a module with `predict_step`",
    "add `fn predict_step(&mut self, batch: &Self::Batch) -> Tensor` to the `#[lightning_module]` impl of `{Self}`"
);

/// A module `Trainer::fit` can run: it defines `training_step` and `configure_optimizers`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be fitted: it needs both `training_step` and `configure_optimizers`",
    note = "define both in the `#[lightning_module]` impl of `{Self}`"
)]
pub trait Fit: HasTrainingStep + HasConfigureOptimizers {}
impl<M: HasTrainingStep + HasConfigureOptimizers> Fit for M {}

/// Compiles only when `M` can be fitted (see `lightning::assert_fit` for an example).
pub fn assert_fit<M: HasTrainingStep + HasConfigureOptimizers>() {}

lightning_macros::__hook_table!();

/// The names of the hooks `M` defines, in the catalogue's order.
pub fn defined_hooks<M: LightningModule>() -> Vec<&'static str> {
    M::HOOKS.defined()
}
