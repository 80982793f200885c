//! The hooks Lightning calls from inside a manual-optimization `training_step`: `ctx.manual_backward(self, &loss)`
//! runs `on_before_backward`, `backward` and `on_after_backward`, and `ctx.step_optimizer(self, i)` runs
//! `on_before_optimizer_step` before the step, each callback's first, as the Trainer calls them elsewhere.
//!
//! `training_step` holds the module (`&mut self`) and the context, so the dispatcher cannot call them itself:
//! while a manual step runs it lends the callbacks to the context, and these methods build a dispatcher around
//! the context, the lent callbacks and the module the step passes in, call the hooks through it, and give all
//! of it back. Checkpoints the hooks ask for stay queued for the real dispatcher (the loop defers them during a
//! batch), and a panic in a hook gives everything back before it goes on.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use tch::Tensor;

use super::Dispatch;
use crate::context::Ctx;
use crate::module::LightningModule;
use crate::optim::Optimizer;
use crate::trainer::loops::RunProgress;
use crate::Result;

impl Dispatch<'_> {
    /// Lends the callbacks to the context for a manual-optimization step.
    pub(crate) fn lend_callbacks(&mut self) {
        self.ctx.lent_callbacks = Some(std::mem::take(&mut self.callbacks));
    }

    /// Takes the lent callbacks back (also after a failure or a panic in the step).
    pub(crate) fn reclaim_callbacks(&mut self) {
        if let Some(callbacks) = self.ctx.lent_callbacks.take() {
            self.callbacks = callbacks;
        }
    }
}

impl Ctx {
    /// Runs `body` with a dispatcher made of this context, the callbacks lent to it (none outside a manual
    /// training step) and the progress it shows, then puts everything back, panics included.
    fn with_dispatch<R>(&mut self, what: &str, body: impl FnOnce(&mut Dispatch) -> Result<R>) -> Result<R> {
        // Lent only while a manual-optimization `training_step` runs: elsewhere the Trainer calls these hooks.
        let callbacks = self.lent_callbacks.take().ok_or_else(|| {
            crate::Error::Config(format!(
                "`ctx.{what}(self, ..)` runs inside the `training_step` of a module with \
                 `#[lightning_module(manual_optimization)]`; in automatic optimization the Trainer calls backward \
                 and the optimizer step itself"
            ))
        })?;
        let progress = RunProgress {
            epoch: self.current_epoch,
            global_step: self.global_step,
            batches_done: self.batches_done,
            ..RunProgress::default()
        };
        let device = self.device;
        let ctx = std::mem::replace(self, Ctx::new(device));
        let mut dispatch = Dispatch::new(callbacks, ctx, Vec::new(), None);
        dispatch.progress = progress;
        // Queued for the Trainer's own dispatcher, which writes them when the batch is done.
        dispatch.defer_saves();
        let outcome = catch_unwind(AssertUnwindSafe(|| body(&mut dispatch)));
        let Dispatch { callbacks, ctx, .. } = dispatch;
        *self = ctx;
        self.lent_callbacks = Some(callbacks);
        outcome.unwrap_or_else(|payload| resume_unwind(payload))
    }

    /// Backpropagates `loss` in manual optimization (Lightning's `self.manual_backward(loss)`), calling
    /// `on_before_backward`, the module's `backward` (or `loss.backward()`) and `on_after_backward`, callbacks
    /// first, as Lightning does. `module` is the module whose `training_step` calls it (`self`). Under
    /// `16-mixed` the loss is scaled first (the hooks see the scaled loss, as in Lightning); in a distributed
    /// run the gradients are averaged over the processes as backward goes.
    ///
    /// ```text
    /// fn training_step(&mut self, batch: &(Tensor, Tensor), ctx: &mut Ctx) -> Result<Tensor, lightning::Error> {
    ///     let loss = ...;
    ///     ctx.optimizers()[0].zero_grad()?;
    ///     ctx.manual_backward(self, &loss)?;
    ///     ctx.step_optimizer(self, 0)?;
    ///     Ok(loss)
    /// }
    /// ```
    pub fn manual_backward<M: LightningModule + 'static>(&mut self, module: &mut M, loss: &Tensor) -> Result<()> {
        let scaled = match &self.scaler {
            Some(scaler) => Some(scaler.lock().unwrap_or_else(|p| p.into_inner()).scale_loss(loss)?),
            None => None,
        };
        let loss = scaled.as_ref().unwrap_or(loss);
        self.with_dispatch("manual_backward", |d| {
            d.on_before_backward(module, loss)?;
            d.backward(module, loss, true)?;
            d.on_after_backward(module)
        })
    }

    /// Steps optimizer `index` in manual optimization as Lightning's `opt.step()` does: `on_before_optimizer_step`
    /// (callbacks first, then the module), then the step (which, under `16-mixed`, unscales the gradients,
    /// skips a step with an inf/NaN and updates the scale). `module` is the module whose `training_step` calls
    /// it (`self`). `ctx.optimizers()[index].step()` steps without the hook.
    ///
    /// # Errors
    /// No optimizer `index`, a hook's error, or the step's.
    pub fn step_optimizer<M: LightningModule + 'static>(&mut self, module: &mut M, index: usize) -> Result<()> {
        if index >= self.optimizers.len() {
            return Err(crate::Error::Config(format!(
                "`ctx.step_optimizer(self, {index})`: `configure_optimizers` returned {} optimizer(s)",
                self.optimizers.len()
            )));
        }
        self.with_dispatch("step_optimizer", |d| {
            // Out of the context while the hook runs, which gets it as its own argument; back in, panics included
            // (an `OnExceptionCheckpoint` must save the real one).
            let mut optimizer = std::mem::replace(&mut d.ctx.optimizers[index], Optimizer::sgd(Vec::new(), 0.0));
            let result = catch_unwind(AssertUnwindSafe(|| d.on_before_optimizer_step(module, &mut optimizer)));
            d.ctx.optimizers[index] = optimizer;
            result.unwrap_or_else(|payload| resume_unwind(payload))?;
            d.ctx.optimizers[index].step()
        })
    }
}

impl Ctx {
    /// Makes only optimizer `index`'s parameters compute gradients (Lightning's `toggle_optimizer`): every
    /// parameter of the other optimizers that is not also one of its own stops requiring gradients until
    /// [`untoggle_optimizer`](Self::untoggle_optimizer), so that a GAN's generator loss leaves no gradients on the
    /// discriminator.
    ///
    /// # Errors
    /// No optimizer `index`.
    pub fn toggle_optimizer(&mut self, index: usize) -> Result<()> {
        let Some(optimizer) = self.optimizers.get(index) else {
            return Err(crate::Error::Config(format!(
                "`ctx.toggle_optimizer({index})`: `configure_optimizers` returned {} optimizer(s)",
                self.optimizers.len()
            )));
        };
        let own: Vec<usize> = optimizer.params().iter().map(|p| p.data_ptr() as usize).collect();
        let mut frozen = Vec::new();
        for (other, optimizer) in self.optimizers.iter().enumerate() {
            if other == index {
                continue;
            }
            for param in optimizer.params() {
                if !own.contains(&(param.data_ptr() as usize)) && param.requires_grad() {
                    frozen.push(param.shallow_clone());
                }
            }
        }
        for param in &frozen {
            let _ = param.f_set_requires_grad(false)?;
        }
        self.toggled.extend(frozen);
        Ok(())
    }

    /// Undoes [`toggle_optimizer`](Self::toggle_optimizer): the parameters it stopped require gradients again
    /// (Lightning's `untoggle_optimizer`).
    ///
    /// # Errors
    /// libtorch's, if a flag cannot be set.
    pub fn untoggle_optimizer(&mut self, _index: usize) -> Result<()> {
        for param in std::mem::take(&mut self.toggled) {
            let _ = param.f_set_requires_grad(true)?;
        }
        Ok(())
    }
}
