//! One optimization step. Automatic (Lightning's `_AutomaticOptimization`): `optimizer_step` runs a closure
//! that calls `training_step`, zero_grad (first batch of an accumulation window), backward, and on stepping
//! batches `on_before_optimizer_step` and clipping; batches inside an accumulation window run the closure
//! without stepping. Manual: `training_step` steps the optimizers itself through `ctx.optimizers()`.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use tch::Tensor;

use super::closure::OptimizerClosure;
use super::dispatch::Dispatch;
use super::entry::Run;
use super::NonFinite;
use crate::module::{hook_info as info, LightningModule};
use crate::optim::Optimizer;
use crate::output::StepOutput;
use crate::{Error, Result};

impl<M: LightningModule + 'static> Run<'_, M> {
    /// Returns the step's output (the loss divided by `accumulate_grad_batches`, detached).
    pub fn automatic_step(&mut self, batch: &M::Batch, batch_idx: usize, is_last: bool) -> Result<StepOutput> {
        let accumulate = self.cfg.accumulate_grad_batches;
        // Lightning also steps on the epoch's last batch when the window is not full.
        let stepping = (batch_idx + 1) % accumulate == 0 || is_last;
        let mut optimizers = std::mem::take(&mut self.d.ctx.optimizers);
        // The optimizers go back into the context even when a hook panics, so that what runs after the panic
        // (`on_exception`, an `OnExceptionCheckpoint`) sees them and a checkpoint it writes can be resumed.
        let result =
            catch_unwind(AssertUnwindSafe(|| self.run_closure(&mut optimizers[0], batch, batch_idx, stepping)));
        self.d.ctx.optimizers = optimizers;
        let output = result.unwrap_or_else(|payload| resume_unwind(payload))?;
        // Inside an accumulation window the parameters hold gradients no optimizer step has used yet: validation
        // must leave them be, and a checkpoint must save them. (Set once the batch is done: a checkpoint written
        // after a failure in it holds the window as the batches before it left it.)
        self.d.ctx.accumulating = !stepping;
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
        let epoch = self.d.ctx.current_epoch;
        let steps_before = optimizer.steps();
        // `optimizer_step` is the hook running while the closure's hooks are not: recorded here, since the closure
        // holds the context while it runs.
        let outer = std::mem::replace(&mut self.d.ctx.hook, info::optimizer_step);
        let d: &mut Dispatch = &mut self.d;
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
            d.backward(module, &loss)?;
            if stepping {
                d.before_optimizer_step(module, optimizer, clip)?;
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
        self.d.ctx.hook = outer;
        self.d.ctx.global_step += (optimizer.steps() - steps_before) as usize;
        Ok(output)
    }

    /// Manual optimization: the step owns the optimizers; every optimizer step counts as a global step.
    pub fn manual_step(&mut self, batch: &M::Batch, batch_idx: usize) -> Result<StepOutput> {
        let before: u64 = self.d.ctx.optimizers.iter().map(Optimizer::steps).sum();
        let output = self.d.training_step(self.module, batch, batch_idx)?;
        if let Some(loss) = &output {
            check_loss(loss, self.cfg.nonfinite, &self.d, batch_idx)?;
        }
        let after: u64 = self.d.ctx.optimizers.iter().map(Optimizer::steps).sum();
        self.d.ctx.global_step += (after - before) as usize;
        Ok(output.map(|loss| loss.detach()))
    }
}

/// Whether the step should go on with this loss; an error for a NaN or infinite one unless told to skip.
/// Reading the value is a device sync: `NonFinite::Off` avoids it.
fn check_loss(loss: &Tensor, policy: NonFinite, d: &Dispatch, batch_idx: usize) -> Result<bool> {
    if policy == NonFinite::Off {
        return Ok(true);
    }
    if loss.numel() != 1 {
        return Err(Error::Config(format!(
            "`training_step` returned a loss of shape {:?}: it must be a single number (reduce it, e.g. with `.mean(Kind::Float)`)",
            loss.size()
        )));
    }
    let value = loss.f_double_value(&[])?;
    if value.is_finite() {
        return Ok(true);
    }
    match policy {
        NonFinite::Skip => Ok(false),
        _ => Err(Error::NonFiniteLoss { value, epoch: d.ctx.current_epoch, batch_idx, global_step: d.ctx.global_step }),
    }
}
