//! The closure of automatic optimization: what `optimizer_step` must run (`training_step`, zero_grad, backward
//! and the hooks between them), and `Optimizer::step_with`, which runs it and steps.

use crate::optim::Optimizer;
use crate::output::StepOutput;
use crate::Result;

/// The work of one optimizer step in automatic optimization: `training_step`, zero_grad and backward, with
/// the hooks between them. `optimizer_step` must run it, through [`Optimizer::step_with`] or [`Self::run`].
pub struct OptimizerClosure<'a, M: ?Sized> {
    body: &'a mut dyn FnMut(&mut M, &mut Optimizer) -> Result<StepOutput>,
    ran: bool,
}

impl<'a, M: ?Sized> OptimizerClosure<'a, M> {
    /// Wraps the runtime's step body.
    pub(crate) fn new(body: &'a mut dyn FnMut(&mut M, &mut Optimizer) -> Result<StepOutput>) -> Self {
        OptimizerClosure { body, ran: false }
    }

    /// Runs the step; returns the loss it computed (`None` when the step skipped the batch).
    pub fn run(&mut self, module: &mut M, optimizer: &mut Optimizer) -> Result<StepOutput> {
        self.ran = true;
        (self.body)(module, optimizer)
    }

    /// Whether it has run.
    pub fn has_run(&self) -> bool {
        self.ran
    }
}

impl Optimizer {
    /// Runs the closure (the step, zero_grad and backward) and then updates the parameters, unless the step
    /// returned no loss. What `optimizer_step` does by default.
    pub fn step_with<M: ?Sized>(&mut self, closure: &mut OptimizerClosure<'_, M>, module: &mut M) -> Result<()> {
        if closure.run(module, self)?.is_some() {
            self.step()?;
        }
        Ok(())
    }
}
