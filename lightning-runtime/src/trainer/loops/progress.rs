//! Where a run stands: the loops' own state, which only they advance. Hooks see the epoch and the global step
//! through `Ctx` (the dispatcher copies them there before every call); checkpoints save all of it.

/// The loops' progress through a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RunProgress {
    /// The epoch being trained (or just finished, when `epoch_finished`).
    pub epoch: usize,
    /// Optimizer steps taken.
    pub global_step: usize,
    /// Training batches of `epoch` already run.
    pub batches_done: usize,
    /// Whether `epoch` ran to its end (a checkpoint taken now resumes at the next one).
    pub epoch_finished: bool,
    /// Whether the parameters hold gradients of an accumulation window no optimizer step has used yet:
    /// validation leaves them be, and a checkpoint saves them.
    pub accumulating: bool,
}
