//! What hooks return, and how the values users write convert into it.

use tch::Tensor;

/// What a step returns: the loss, or `None` (Lightning's `None`: skip this batch, or nothing to report).
pub type StepOutput = Option<Tensor>;

/// What `on_train_batch_start` returns: Lightning's `-1`, as a type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BatchControl {
    /// Go on with the batch.
    #[default]
    Continue,
    /// Skip this batch and the rest of the epoch (the epoch's LR scheduler step still happens).
    SkipRestOfEpoch,
}

/// Converts what a hook returned into what the runtime expects of that hook (`T`).
///
/// The code `#[lightning_module]` generates calls it on the user's return value, so a return type that does
/// not fit the hook is reported at the user's return type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a return type this hook can have",
    label = "this hook must return something that converts into `{T}`",
    note = "see the hook table in the docs of `#[lightning_module]` for what each hook returns"
)]
pub trait HookOutput<T> {
    /// The value the runtime works with.
    fn into_output(self) -> T;
}

impl HookOutput<()> for () {
    #[inline]
    fn into_output(self) {}
}

impl HookOutput<BatchControl> for () {
    #[inline]
    fn into_output(self) -> BatchControl {
        BatchControl::Continue
    }
}

impl HookOutput<BatchControl> for BatchControl {
    #[inline]
    fn into_output(self) -> BatchControl {
        self
    }
}

impl HookOutput<StepOutput> for () {
    #[inline]
    fn into_output(self) -> StepOutput {
        None
    }
}

impl HookOutput<StepOutput> for Tensor {
    #[inline]
    fn into_output(self) -> StepOutput {
        Some(self)
    }
}

impl HookOutput<StepOutput> for Option<Tensor> {
    #[inline]
    fn into_output(self) -> StepOutput {
        self
    }
}
