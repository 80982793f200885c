//! libtorch's autocast around a step: on with the run's dtype for the module's device type, and the previous
//! state put back when the step returns, fails or panics (the guard's `Drop`).

use std::ffi::c_char;

use tch::{Device, Kind};

use crate::kernels::check;
use crate::Result;

extern "C" {
    fn lightning_autocast_enter(device: i32, dtype: i32, was_enabled: *mut bool, was_dtype: *mut i32) -> *mut c_char;
    fn lightning_autocast_exit(device: i32, was_enabled: bool, was_dtype: i32) -> *mut c_char;
}

/// What a run's steps compute in under autocast: the device type and the low dtype.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Autocast {
    device: i32,
    dtype: i32,
}

/// Autocast is on while it lives.
pub(crate) struct Region {
    device: i32,
    was_enabled: bool,
    was_dtype: i32,
}

impl Autocast {
    pub fn new(device: Device, kind: Kind) -> Self {
        let device = i32::from(matches!(device, Device::Cuda(_)));
        // at::ScalarType's codes: Half 5, BFloat16 15.
        let dtype = if kind == Kind::Half { 5 } else { 15 };
        Autocast { device, dtype }
    }

    /// Turns autocast on until the returned region is dropped.
    pub fn enter(self) -> Result<Region> {
        let (mut was_enabled, mut was_dtype) = (false, 0);
        // SAFETY: out-pointers to locals.
        check(unsafe { lightning_autocast_enter(self.device, self.dtype, &mut was_enabled, &mut was_dtype) })?;
        Ok(Region { device: self.device, was_enabled, was_dtype })
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: plain values; a failure to restore the flags has nobody to tell and cannot happen for a
        // device type libtorch accepted on entry.
        let _ = check(unsafe { lightning_autocast_exit(self.device, self.was_enabled, self.was_dtype) });
    }
}
