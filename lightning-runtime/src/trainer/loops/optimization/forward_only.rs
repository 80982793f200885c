//! A batch of a forward-only epoch (`ctx.forward_only`, which `StochasticWeightAveraging` sets for its
//! batch-norm epoch; Lightning's `fit_loop._skip_backward` with accumulation that never steps): `training_step`
//! runs so that the layers see the data (batch norm updates its running statistics), and nothing else of the
//! optimization step does.

use super::check_loss;
use crate::module::LightningModule;
use crate::output::StepOutput;
use crate::trainer::entry::Run;
use crate::{Error, Result};

impl<M: LightningModule + 'static> Run<'_, M> {
    /// `training_step` under `no_grad` (no graph is kept: nothing will go backward), with no zero_grad,
    /// backward, clipping or optimizer step and their hooks; the global step does not move. Returns the loss,
    /// detached and not divided by `accumulate_grad_batches` (nothing accumulates).
    pub fn forward_only_step(&mut self, batch: &M::Batch, batch_idx: usize) -> Result<StepOutput> {
        if !M::AUTOMATIC_OPTIMIZATION {
            // A manual step steps the optimizers itself: it cannot be run without training.
            return Err(Error::Config(
                "a forward-only epoch (StochasticWeightAveraging's batch-norm epoch) needs automatic optimization"
                    .into(),
            ));
        }
        let loss = tch::no_grad(|| self.hooks.training_step(self.module, batch, batch_idx))?;
        let loss = match loss {
            Some(loss) if check_loss(&loss, self.cfg.nonfinite, &self.hooks, batch_idx)? => Some(loss.detach()),
            _ => None,
        };
        self.hooks.progress.accumulating = false;
        Ok(loss)
    }
}
