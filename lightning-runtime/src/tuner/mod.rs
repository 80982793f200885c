//! `Tuner` (Lightning's `lightning.pytorch.tuner.Tuner`): short trial fits that find a learning rate
//! ([`Tuner::lr_find`]) or the largest batch size that fits ([`Tuner::scale_batch_size`]), with the module's
//! weights and the Trainer's options, callbacks, loggers and state put back as they were afterwards.

mod batch_size;
mod lr_find;
mod plot;

use std::collections::HashMap;

use tch::Tensor;

use crate::module::LightningModule;
use crate::trainer::{Config, State};
use crate::{Callback, Logger, Result, Trainer};

pub use batch_size::{is_out_of_memory, BatchSizeMode, ScaleBatchSize};
pub use lr_find::{LrFind, LrFinder, LrMode};

/// Tunes a Trainer's run before the real one (Lightning's `Tuner(trainer)`).
///
/// ```
/// use lightning_runtime::{Fit, Loader, LrFind, Trainer, Tuner};
///
/// /// The suggested learning rate for `model` on `data`.
/// fn suggest<M: Fit>(model: &mut M, data: Loader<M::Batch>) -> lightning_runtime::Result<Option<f64>> {
///     let mut trainer = Trainer::new().max_epochs(10);
///     let finder = Tuner::new(&mut trainer).lr_find(model, data, LrFind::default())?;
///     finder.plot("lr_find.svg")?;
///     Ok(finder.suggestion())
/// }
/// ```
pub struct Tuner<'t> {
    trainer: &'t mut Trainer,
}

impl<'t> Tuner<'t> {
    /// A tuner of `trainer`'s runs.
    pub fn new(trainer: &'t mut Trainer) -> Self {
        Tuner { trainer }
    }
}

/// What a trial changes, kept to be put back: the Trainer's options, callbacks, loggers, profiler and state, and the
/// module's variables.
struct Saved {
    cfg: Config,
    callbacks: Vec<Box<dyn Callback>>,
    loggers: Vec<Box<dyn Logger>>,
    profiler: Option<crate::SimpleProfiler>,
    state: State,
    defaults: crate::trainer::defaults::Defaults,
    variables: HashMap<String, Tensor>,
}

impl Saved {
    /// Takes the Trainer's callbacks, loggers and profiler out (a trial runs with none of them but its own) and
    /// copies the module's variables.
    fn take<M: LightningModule>(trainer: &mut Trainer, module: &M) -> Result<Self> {
        let variables = module
            .var_store()
            .variables()
            .into_iter()
            .map(|(name, t)| {
                let mut copy = t.f_empty_like()?;
                tch::no_grad(|| copy.f_copy_(&t))?;
                Ok((name, copy))
            })
            .collect::<Result<_>>()?;
        Ok(Saved {
            cfg: trainer.cfg.clone(),
            callbacks: std::mem::take(&mut trainer.callbacks),
            loggers: std::mem::take(&mut trainer.loggers),
            profiler: trainer.profiler.take(),
            state: trainer.state.clone(),
            defaults: trainer.defaults.clone(),
            variables,
        })
    }

    /// Puts everything back: the module's variables get their saved dtype and values (on the device they are on
    /// now, as Lightning's model stays on its device).
    fn restore<M: LightningModule>(self, trainer: &mut Trainer, module: &mut M) -> Result<()> {
        trainer.cfg = self.cfg;
        trainer.callbacks = self.callbacks;
        trainer.loggers = self.loggers;
        trainer.profiler = self.profiler;
        trainer.state = self.state;
        trainer.defaults = self.defaults;
        // A `*-true` run cast the weights in place: they take their dtype back before their values.
        let current = module.var_store().variables();
        let cast = self.variables.iter().find_map(|(name, saved)| {
            let now = current.get(name)?;
            (saved.is_floating_point() && now.kind() != saved.kind()).then_some(saved.kind())
        });
        if let Some(kind) = cast {
            module.var_store_mut().set_kind(kind);
        }
        let current = module.var_store().variables();
        tch::no_grad(|| -> Result<()> {
            for (name, saved) in &self.variables {
                if let Some(variable) = current.get(name) {
                    variable.shallow_clone().f_copy_(saved)?;
                }
            }
            Ok(())
        })?;
        crate::kernels::set_grads_to_none(&current.into_values().collect::<Vec<_>>())
    }
}

/// The options every trial runs with: no validation, no sanity check, no progress bar or summary, no default
/// logger or checkpoint (Lightning's tuner turns its loggers off too), the tuner's own callback only.
fn trial_config(trainer: &mut Trainer, steps: usize) {
    trainer.defaults.turn_off();
    let cfg = &mut trainer.cfg;
    cfg.max_steps = Some(steps);
    cfg.max_epochs = None;
    (cfg.min_epochs, cfg.min_steps) = (0, 0);
    cfg.limit_val = crate::Limit::Batches(0);
    cfg.num_sanity_val_steps = 0;
    (cfg.enable_progress_bar, cfg.enable_model_summary) = (false, false);
}
