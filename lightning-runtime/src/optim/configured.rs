//! What `configure_optimizers` returns, from the shapes Lightning accepts.

use super::{LrScheduler, Optimizer};
use crate::output::HookOutput;

/// What `configure_optimizers` returns: optimizers and their schedulers.
///
/// Converts from an `Optimizer`, a `Vec<Optimizer>`, an `(Optimizer, LrScheduler)` pair, or a
/// `(Vec<Optimizer>, Vec<LrScheduler>)` pair.
#[derive(Debug, Default)]
pub struct Optimizers {
    pub(crate) optimizers: Vec<Optimizer>,
    pub(crate) schedulers: Vec<LrScheduler>,
}

impl Optimizers {
    /// The optimizers; more than one needs manual optimization.
    pub fn optimizers(&self) -> &[Optimizer] {
        &self.optimizers
    }

    /// The learning-rate schedulers.
    pub fn schedulers(&self) -> &[LrScheduler] {
        &self.schedulers
    }
}

impl From<Optimizer> for Optimizers {
    fn from(optimizer: Optimizer) -> Self {
        Optimizers { optimizers: vec![optimizer], schedulers: Vec::new() }
    }
}

impl From<Vec<Optimizer>> for Optimizers {
    fn from(optimizers: Vec<Optimizer>) -> Self {
        Optimizers { optimizers, schedulers: Vec::new() }
    }
}

impl From<(Optimizer, LrScheduler)> for Optimizers {
    fn from((optimizer, scheduler): (Optimizer, LrScheduler)) -> Self {
        Optimizers { optimizers: vec![optimizer], schedulers: vec![scheduler] }
    }
}

impl From<(Vec<Optimizer>, Vec<LrScheduler>)> for Optimizers {
    fn from((optimizers, schedulers): (Vec<Optimizer>, Vec<LrScheduler>)) -> Self {
        Optimizers { optimizers, schedulers }
    }
}

/// What `configure_optimizers` may return: each shape by name rather than "anything `Into<Optimizers>`", so that
/// another type (tch's own `nn::Optimizer`, say) gets the hook's message instead of rustc's list of `From` impls.
macro_rules! returned_by_configure_optimizers {
    ($($ty:ty),* $(,)?) => {$(
        impl HookOutput<Optimizers> for $ty {
            #[inline]
            fn into_output(self) -> Optimizers {
                self.into()
            }
        }
    )*};
}

returned_by_configure_optimizers!(
    Optimizers,
    Optimizer,
    Vec<Optimizer>,
    (Optimizer, LrScheduler),
    (Vec<Optimizer>, Vec<LrScheduler>),
);
