//! One automatic optimization step (Lightning's `_AutomaticOptimization`): `optimizer_step` runs a closure that
//! calls `training_step`, `on_before_zero_grad` and `optimizer_zero_grad` (first batch of an accumulation
//! window), `on_before_backward`, `backward`, `on_after_backward`, and on stepping batches
//! `on_before_optimizer_step` and `configure_gradient_clipping`; batches inside an accumulation window run the
//! closure without stepping.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use super::check_loss;
use super::closure::OptimizerClosure;
use crate::module::{hook_info as info, LightningModule};
use crate::optim::Optimizer;
use crate::output::StepOutput;
use crate::trainer::call::Dispatch;
use crate::trainer::entry::Run;
use crate::trainer::profiler::Action;
use crate::Result;

impl<M: LightningModule + 'static> Run<'_, M> {
    /// Returns the step's output (the loss divided by `accumulate_grad_batches`, detached).
    pub fn automatic_step(&mut self, batch: &M::Batch, batch_idx: usize, is_last: bool) -> Result<StepOutput> {
        let accumulate = self.cfg.accumulate_grad_batches;
        // Lightning also steps on the epoch's last batch when the window is not full.
        let stepping = (batch_idx + 1) % accumulate == 0 || is_last;
        let mut optimizers = std::mem::take(&mut self.hooks.ctx.optimizers);
        // The optimizers go back into the context even when a hook panics, so that what runs after the panic
        // (`on_exception`, an `OnExceptionCheckpoint`) sees them and a checkpoint it writes can be resumed.
        let result =
            catch_unwind(AssertUnwindSafe(|| self.run_closure(&mut optimizers[0], batch, batch_idx, stepping)));
        self.hooks.ctx.optimizers = optimizers;
        let output = result.unwrap_or_else(|payload| resume_unwind(payload))?;
        // Inside an accumulation window the parameters hold gradients no optimizer step has used yet: validation
        // must leave them be, and a checkpoint must save them. (Set once the batch is done. A failure after this
        // batch's backward leaves its gradient in the sum that a checkpoint written then saves, and a run resumed
        // from it adds it again: exact resume after a failure holds for failures before the backward, as in
        // `training_step`.)
        self.hooks.progress.accumulating = !stepping;
        Ok(output)
    }

    fn run_closure(
        &mut self,
        optimizer: &mut Optimizer,
        batch: &M::Batch,
        batch_idx: usize,
        stepping: bool,
    ) -> Result<StepOutput> {
        let cfg = self.cfg;
        let accumulate = cfg.accumulate_grad_batches;
        let clip = (cfg.gradient_clip_val, cfg.gradient_clip_algorithm);
        let epoch = self.hooks.progress.epoch;
        let steps_before = optimizer.step_calls();
        // `optimizer_step` is the hook running while the closure's hooks are not: recorded here, since the closure
        // holds the context while it runs.
        let outer = std::mem::replace(&mut self.hooks.ctx.hook, info::optimizer_step);
        let started = self.hooks.profile_start();
        let d: &mut Dispatch = &mut self.hooks;
        let mut output: StepOutput = None;
        let mut body = |module: &mut M, optimizer: &mut Optimizer| -> Result<StepOutput> {
            let loss = d.training_step(module, batch, batch_idx)?;
            let loss = match loss {
                Some(loss) if check_loss(&loss, cfg.nonfinite, d, batch_idx)? => Some(loss),
                _ => None,
            };
            // The window's first batch clears the gradients even when its step is skipped (Lightning's closure
            // zeroes before it looks at the loss): else the next batches would add to the last window's.
            if batch_idx % accumulate == 0 {
                d.on_before_zero_grad(module, optimizer)?;
                d.optimizer_zero_grad(module, batch_idx, optimizer)?;
            }
            let Some(loss) = loss else { return Ok(None) };
            let loss = if accumulate > 1 { loss.f_div_scalar(accumulate as f64)? } else { loss };
            // `16-mixed`: backward (and, as in Lightning, `on_before_backward`) sees the scaled loss.
            let scaler = d.ctx.scaler.clone();
            let lock =
                |s: &crate::precision::SharedScaler| s.lock().unwrap_or_else(|p| p.into_inner()).scale_loss(&loss);
            let scaled = scaler.as_ref().map(lock).transpose()?;
            let backward_loss = scaled.as_ref().unwrap_or(&loss);
            d.on_before_backward(module, backward_loss)?;
            d.backward(module, backward_loss, stepping)?;
            d.on_after_backward(module)?;
            if let (Some(scaler), true) = (&scaler, stepping) {
                // Lightning's order: the hook and clipping see unscaled gradients.
                scaler.lock().unwrap_or_else(|p| p.into_inner()).unscale(optimizer.params())?;
            }
            if stepping {
                // Lightning's order: the hook sees the gradients before clipping changes them.
                d.on_before_optimizer_step(module, optimizer)?;
                d.configure_gradient_clipping(module, optimizer, clip)?;
            }
            output = Some(loss.detach());
            Ok(Some(loss))
        };
        let mut closure = OptimizerClosure::new(&mut body);
        if stepping {
            Dispatch::optimizer_step(self.module, epoch, batch_idx, optimizer, &mut closure)?;
        } else {
            closure.run(self.module, optimizer)?;
        }
        let action =
            if stepping { "[Loop]optimizer_step (the closure included)" } else { "[Loop]closure (accumulating)" };
        self.hooks.profile_end(Action::Named(action), started);
        self.hooks.ctx.hook = outer;
        self.hooks.progress.global_step += (optimizer.step_calls() - steps_before) as usize;
        Ok(output)
    }
}
