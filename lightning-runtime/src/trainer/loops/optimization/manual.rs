//! One manual optimization step (Lightning's `_ManualOptimization`): `training_step` steps the optimizers itself
//! through `ctx.optimizers()`; every optimizer step counts as a global step.

use super::check_loss;
use crate::module::LightningModule;
use crate::optim::Optimizer;
use crate::output::StepOutput;
use crate::trainer::entry::Run;
use crate::Result;

impl<M: LightningModule + 'static> Run<'_, M> {
    /// Manual optimization: the step owns the optimizers; every optimizer step counts as a global step.
    pub fn manual_step(&mut self, batch: &M::Batch, batch_idx: usize) -> Result<StepOutput> {
        let before: u64 = self.hooks.ctx.optimizers.iter().map(Optimizer::step_calls).sum();
        // The step calls `on_before_backward`, `backward`, ... itself (`ctx.manual_backward`): it gets the
        // callbacks for the while.
        self.hooks.lend_callbacks();
        let output = self.hooks.training_step(self.module, batch, batch_idx);
        self.hooks.reclaim_callbacks();
        let output = output?;
        if let Some(loss) = &output {
            check_loss(loss, self.cfg.nonfinite, &self.hooks, batch_idx)?;
        }
        let after: u64 = self.hooks.ctx.optimizers.iter().map(Optimizer::step_calls).sum();
        self.hooks.progress.global_step += (after - before) as usize;
        Ok(output.map(|loss| loss.detach()))
    }
}
