//! The gradient scaler of `16-mixed`, with PyTorch's `GradScaler` semantics: the loss is multiplied by the scale
//! (2^16 to start) before backward, so that small fp16 gradients do not flush to zero; before the optimizer
//! step the gradients are divided by it and checked for inf/NaN in one call; a step with an inf/NaN is skipped
//! and the scale halved, and after 2,000 clean steps in a row the scale doubles. Its state goes into
//! checkpoints, so a resumed run scales exactly as the uninterrupted one.

use std::ffi::{c_char, c_void};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::kernels::check;
use crate::Result;

extern "C" {
    fn lightning_unscale_grads(
        grads: *const *const c_void,
        n: usize,
        found_inf: *const c_void,
        inv_scale: *const c_void,
    ) -> *mut c_char;
}

const INIT_SCALE: f64 = 65536.0;
const GROWTH_FACTOR: f64 = 2.0;
const BACKOFF_FACTOR: f64 = 0.5;
const GROWTH_INTERVAL: i64 = 2000;

/// The scaler's state, as checkpoints keep it (Lightning's `native_amp_scaling_state`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalerState {
    /// The current loss scale.
    #[serde(with = "crate::json_float")]
    pub scale: f64,
    /// Clean steps in a row since the scale last changed.
    pub growth_tracker: i64,
}

/// One run's scaler; the optimizers and the context share it (manual optimization scales in
/// `ctx.manual_backward(self, &loss)` and unscales in `Optimizer::step`).
pub(crate) type SharedScaler = Arc<Mutex<GradScaler>>;

pub(crate) struct GradScaler {
    scale: Tensor,
    growth_tracker: Tensor,
    found_inf: Tensor,
    /// Whether the gradients of the current step are already unscaled (before `on_before_optimizer_step`).
    unscaled: bool,
}

impl std::fmt::Debug for GradScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GradScaler").field("unscaled", &self.unscaled).finish_non_exhaustive()
    }
}

impl GradScaler {
    pub fn new(device: Device) -> Result<Self> {
        Ok(GradScaler {
            scale: Tensor::f_full([], INIT_SCALE, (Kind::Float, device))?,
            growth_tracker: Tensor::f_zeros([], (Kind::Int, device))?,
            found_inf: Tensor::f_zeros([], (Kind::Float, device))?,
            unscaled: false,
        })
    }

    pub fn shared(self) -> SharedScaler {
        Arc::new(Mutex::new(self))
    }

    /// `loss` times the scale, for backward. A new backward means gradients not unscaled yet (also when a step
    /// before was skipped by the module's own `optimizer_step`).
    pub fn scale_loss(&mut self, loss: &Tensor) -> Result<Tensor> {
        self.unscaled = false;
        Ok(loss.f_mul(&self.scale.f_to_device(loss.device())?)?)
    }

    /// Divides the gradients of `params` by the scale and records whether any is inf/NaN; once per step.
    pub fn unscale(&mut self, params: &[Tensor]) -> Result<()> {
        if self.unscaled {
            return Ok(());
        }
        let _ = self.found_inf.f_zero_()?;
        let inv_scale = self.scale.f_to_kind(Kind::Double)?.f_reciprocal()?.f_to_kind(Kind::Float)?;
        let grads: Vec<Tensor> = params.iter().map(Tensor::grad).filter(Tensor::defined).collect();
        let handles: Vec<*const c_void> = grads.iter().map(|g| g.as_ptr() as *const c_void).collect();
        // SAFETY: live tensors for the duration of the call.
        check(unsafe {
            lightning_unscale_grads(
                handles.as_ptr(),
                handles.len(),
                self.found_inf.as_ptr() as *const c_void,
                inv_scale.as_ptr() as *const c_void,
            )
        })?;
        self.unscaled = true;
        Ok(())
    }

    /// Runs `step` unless the unscaled gradients of `params` hold an inf/NaN, then updates the scale. Returns
    /// whether the step ran.
    pub fn step(&mut self, params: &[Tensor], step: impl FnOnce() -> Result<()>) -> Result<bool> {
        self.unscale(params)?;
        // A device sync, as PyTorch's `GradScaler.step` has: the step is skipped on the host.
        let skip = self.found_inf.f_double_value(&[])? != 0.0;
        if !skip {
            step()?;
        }
        self.update_scale()?;
        Ok(!skip)
    }

    /// Runs `step` with the device's verdict on the unscaled gradients of `params` (1 when one holds an inf/NaN),
    /// for a step that skips itself on the device (the fused Adam kernel), then updates the scale: no host sync.
    pub fn step_on_device(&mut self, params: &[Tensor], step: impl FnOnce(&Tensor) -> Result<()>) -> Result<()> {
        self.unscale(params)?;
        step(&self.found_inf)?;
        self.update_scale()?;
        Ok(())
    }

    /// Backs the scale off after a step with an inf/NaN, grows it after `GROWTH_INTERVAL` clean ones (on the
    /// device); the next step's gradients are not unscaled yet.
    fn update_scale(&mut self) -> Result<()> {
        let _ = self.scale.f_internal_amp_update_scale_(
            &self.growth_tracker,
            &self.found_inf,
            GROWTH_FACTOR,
            BACKOFF_FACTOR,
            GROWTH_INTERVAL,
        )?;
        self.unscaled = false;
        Ok(())
    }

    pub fn state(&self) -> Result<ScalerState> {
        Ok(ScalerState {
            scale: self.scale.f_double_value(&[])?,
            growth_tracker: self.growth_tracker.f_int64_value(&[])?,
        })
    }

    pub fn load(&mut self, state: &ScalerState) -> Result<()> {
        let _ = self.scale.f_fill_(state.scale)?;
        let _ = self.growth_tracker.f_fill_(state.growth_tracker)?;
        self.unscaled = false;
        Ok(())
    }
}
