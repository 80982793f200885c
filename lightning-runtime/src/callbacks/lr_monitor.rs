//! `LearningRateMonitor`: logs each optimizer's learning rate, per step or per epoch.

use crate::callback::{AnyModule, Callback, CallbackResult};
use crate::context::Ctx;
use crate::optim::Interval;

/// Logs `lr-<i>` (the rate of optimizer `i`; `lr` when there is one) at every training step, or at the
/// start of every epoch with `Interval::Epoch`.
///
/// ```
/// use lightning::{Interval, LearningRateMonitor, Trainer};
/// let trainer = Trainer::new().max_epochs(5).callback(LearningRateMonitor::new(Interval::Step));
/// ```
#[derive(Clone, Debug)]
pub struct LearningRateMonitor {
    interval: Interval,
}

impl LearningRateMonitor {
    /// Logs at every step (`Interval::Step`) or every epoch (`Interval::Epoch`).
    pub fn new(interval: Interval) -> Self {
        LearningRateMonitor { interval }
    }

    fn log(ctx: &mut Ctx, per_step: bool) {
        let rates: Vec<f64> = ctx.optimizers().iter().map(|o| o.lr()).collect();
        let single = rates.len() == 1;
        for (i, lr) in rates.into_iter().enumerate() {
            let name = if single { "lr".to_string() } else { format!("lr-{i}") };
            ctx.log(&name, lr).on_step(per_step).on_epoch(!per_step);
        }
    }
}

impl Callback for LearningRateMonitor {
    fn logged_names(&self, ctx: &Ctx) -> Option<Vec<String>> {
        let count = ctx.optimizers.len();
        Some(if count == 1 { vec!["lr".to_string()] } else { (0..count).map(|i| format!("lr-{i}")).collect() })
    }

    fn on_train_batch_start(
        &mut self,
        ctx: &mut Ctx,
        _: &mut dyn AnyModule,
        _: &dyn std::any::Any,
        _: usize,
    ) -> CallbackResult {
        if self.interval == Interval::Step {
            Self::log(ctx, true);
        }
        Ok(())
    }

    fn on_train_epoch_start(&mut self, ctx: &mut Ctx, _: &mut dyn AnyModule) -> CallbackResult {
        if self.interval == Interval::Epoch {
            Self::log(ctx, false);
        }
        Ok(())
    }
}
