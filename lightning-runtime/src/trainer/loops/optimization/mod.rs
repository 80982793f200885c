//! One optimization step, automatic or manual, and what both share; and the forward-only batch of an epoch that
//! trains nothing (SWA's batch-norm epoch).

mod automatic;
mod closure;
mod forward_only;
mod manual;

pub use closure::OptimizerClosure;

use tch::Tensor;

use crate::trainer::call::Dispatch;
use crate::trainer::NonFinite;
use crate::{Error, Result};

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
    let mut finite = value.is_finite();
    if let (Some(group), NonFinite::Skip) = (&d.ctx.process_group, policy) {
        // Every process skips together: one that skipped alone would leave the others waiting for its
        // gradients in the averaging until the timeout.
        finite = !group.agree(!finite, false)?;
    }
    if finite {
        return Ok(true);
    }
    match policy {
        NonFinite::Skip => Ok(false),
        _ => {
            Err(Error::NonFiniteLoss { value, epoch: d.progress.epoch, batch_idx, global_step: d.progress.global_step })
        }
    }
}
