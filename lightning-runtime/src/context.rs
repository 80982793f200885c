//! What a hook can see of the Trainer and do through it: Lightning's `self.log` and `self.trainer`.

use std::collections::BTreeMap;
use std::fmt;

use tch::{Device, Tensor};

/// The entry point that is running; `setup` and `teardown` receive it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// `Trainer::fit`
    Fit,
    /// `Trainer::validate`
    Validate,
    /// `Trainer::test`
    Test,
    /// `Trainer::predict`
    Predict,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Fit => "fit",
            Stage::Validate => "validate",
            Stage::Test => "test",
            Stage::Predict => "predict",
        })
    }
}

/// The context every hook may take as its last parameter (`ctx: &mut Ctx`).
///
/// ```
/// use lightning_runtime::{Ctx, Stage};
/// let mut ctx = Ctx::new(tch::Device::Cpu);
/// ctx.log("loss", 0.25);
/// assert_eq!(ctx.current_epoch(), 0);
/// assert_eq!(ctx.metric("loss"), Some(0.25));
/// ```
#[derive(Debug)]
pub struct Ctx {
    pub(crate) device: Device,
    pub(crate) stage: Option<Stage>,
    pub(crate) training: bool,
    pub(crate) current_epoch: usize,
    pub(crate) global_step: usize,
    pub(crate) logged: BTreeMap<String, f64>,
}

/// A value `Ctx::log` accepts: a scalar tensor (detached before it is kept) or a number.
pub trait LogValue {
    /// The value as a number.
    fn to_f64(&self) -> f64;
}

impl LogValue for f64 {
    fn to_f64(&self) -> f64 {
        *self
    }
}

impl LogValue for f32 {
    fn to_f64(&self) -> f64 {
        f64::from(*self)
    }
}

impl LogValue for Tensor {
    fn to_f64(&self) -> f64 {
        self.detach().f_double_value(&[]).unwrap_or(f64::NAN)
    }
}

impl<T: LogValue + ?Sized> LogValue for &T {
    fn to_f64(&self) -> f64 {
        (**self).to_f64()
    }
}

impl Ctx {
    /// A context for a run on `device`.
    pub fn new(device: Device) -> Self {
        Ctx { device, stage: None, training: true, current_epoch: 0, global_step: 0, logged: BTreeMap::new() }
    }

    /// Records `value` under `name`.
    pub fn log(&mut self, name: &str, value: impl LogValue) {
        self.logged.insert(name.to_string(), value.to_f64());
    }

    /// The last value logged under `name`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.logged.get(name).copied()
    }

    /// The epoch that is running, from 0.
    pub fn current_epoch(&self) -> usize {
        self.current_epoch
    }

    /// The number of optimizer steps taken so far.
    pub fn global_step(&self) -> usize {
        self.global_step
    }

    /// The device the module runs on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The entry point that is running, if any.
    pub fn stage(&self) -> Option<Stage> {
        self.stage
    }

    /// Whether the module is in training mode: pass it to tch's `forward_t` (dropout, batch norm).
    pub fn is_training(&self) -> bool {
        self.training
    }

    /// Switches training mode on or off (what Lightning's `model.train()` / `model.eval()` do).
    pub fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}
