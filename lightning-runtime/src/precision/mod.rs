//! Numerical precision (Lightning's `Trainer(precision=...)`): which dtype the weights are kept in, which dtype
//! the steps compute in, and the gradient scaler that keeps fp16 gradients from underflowing.
//!
//! | file | what |
//! |---|---|
//! | `autocast.rs` | libtorch's autocast, turned on around the forward steps and put back after |
//! | `scaler.rs` | [`GradScaler`]'s semantics: the loss scaled before backward, the gradients unscaled and checked, the step skipped on inf/NaN, the scale grown or backed off |

mod autocast;
mod scaler;

use std::fmt;
use std::str::FromStr;

use tch::{Device, Kind};

pub(crate) use autocast::Autocast;
pub use scaler::ScalerState;
pub(crate) use scaler::{GradScaler, SharedScaler};

use crate::{Error, Result};

/// The precision a run trains in, with Lightning's names (`"bf16-mixed"`, `"16-mixed"`, ...) through
/// [`FromStr`]:
///
/// ```
/// use lightning::Precision;
/// let p: Precision = "bf16-mixed".parse()?;
/// assert_eq!(p, Precision::Bf16Mixed);
/// # Ok::<(), lightning::Error>(())
/// ```
///
/// - `*-mixed`: the weights and the optimizer's state stay fp32; the training, validation, test and predict
///   steps run under libtorch's autocast, which runs matrix products and convolutions in the low dtype and
///   keeps reductions and losses in fp32. `16-mixed` also scales the loss (see [`ScalerState`]). Backward
///   runs outside autocast, each gradient in its weight's dtype.
/// - `*-true`: the module's floating-point weights are cast once when the stage starts, and the floating-point
///   tensors of every batch in the default `transfer_batch_to_device`; everything then runs in that dtype.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// fp32 throughout (`"32-true"`, the default).
    #[default]
    F32True,
    /// fp64 throughout (`"64-true"`).
    F64True,
    /// bf16 autocast, fp32 weights (`"bf16-mixed"`).
    Bf16Mixed,
    /// fp16 autocast with a gradient scaler, fp32 weights (`"16-mixed"`).
    F16Mixed,
    /// bf16 weights and computation (`"bf16-true"`).
    Bf16True,
    /// fp16 weights and computation (`"16-true"`).
    F16True,
}

impl Precision {
    /// Lightning's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32True => "32-true",
            Precision::F64True => "64-true",
            Precision::Bf16Mixed => "bf16-mixed",
            Precision::F16Mixed => "16-mixed",
            Precision::Bf16True => "bf16-true",
            Precision::F16True => "16-true",
        }
    }

    /// The dtype autocast computes in, for the mixed precisions.
    pub(crate) fn autocast_kind(self) -> Option<Kind> {
        match self {
            Precision::Bf16Mixed => Some(Kind::BFloat16),
            Precision::F16Mixed => Some(Kind::Half),
            _ => None,
        }
    }

    /// The dtype weights and batches are cast to, for the `*-true` precisions other than fp32.
    pub(crate) fn true_kind(self) -> Option<Kind> {
        match self {
            Precision::F64True => Some(Kind::Double),
            Precision::Bf16True => Some(Kind::BFloat16),
            Precision::F16True => Some(Kind::Half),
            _ => None,
        }
    }

    /// Whether the loss is scaled (fp16's narrow range).
    pub(crate) fn scales_loss(self) -> bool {
        self == Precision::F16Mixed
    }

    /// An error when `device` cannot run this precision.
    pub(crate) fn check_device(self, device: Device) -> Result<()> {
        if let (Some(_), Device::Mps | Device::Vulkan) = (self.autocast_kind(), device) {
            return Err(Error::Config(format!(
                "precision {self}: libtorch's autocast does not run on {device:?}; use \"32-true\""
            )));
        }
        Ok(())
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = Error;

    /// Lightning's names, and the short ones Lightning still accepts (`"16"` is `"16-mixed"`, `"bf16"` is
    /// `"bf16-mixed"`, `"32"` and `"64"` are `-true`).
    fn from_str(text: &str) -> Result<Self> {
        Ok(match text {
            "32-true" | "32" => Precision::F32True,
            "64-true" | "64" => Precision::F64True,
            "bf16-mixed" | "bf16" => Precision::Bf16Mixed,
            "16-mixed" | "16" => Precision::F16Mixed,
            "bf16-true" => Precision::Bf16True,
            "16-true" => Precision::F16True,
            other => {
                return Err(Error::Config(format!(
                    "precision {other:?}: expected one of \"32-true\", \"64-true\", \"bf16-mixed\", \"16-mixed\", \
                     \"bf16-true\", \"16-true\""
                )))
            }
        })
    }
}
