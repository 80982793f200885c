//! `OnExceptionCheckpoint`: when a run ends with an error or Ctrl-C, leaves a checkpoint to resume from.

use std::path::PathBuf;

use crate::callback::{AnyModule, Callback, CallbackResult};
use crate::context::Ctx;
use crate::Error;

/// Writes `<dir>/on_exception.ckpt` when `fit` ends with an error, a panic or Ctrl-C (Lightning's
/// `OnExceptionCheckpoint`). After Ctrl-C, which stops at a batch boundary, the file resumes the run exactly with
/// `Trainer::fit_from`. Other errors can strike mid-step; their checkpoint holds the weights as they were.
///
/// ```
/// use lightning::{OnExceptionCheckpoint, Trainer};
/// let trainer = Trainer::new().max_epochs(10).callback(OnExceptionCheckpoint::new("checkpoints"));
/// ```
#[derive(Clone, Debug)]
pub struct OnExceptionCheckpoint {
    dir: PathBuf,
}

impl OnExceptionCheckpoint {
    /// Saves into `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        OnExceptionCheckpoint { dir: dir.into() }
    }

    /// Where the checkpoint goes.
    pub fn path(&self) -> PathBuf {
        self.dir.join("on_exception.ckpt")
    }
}

impl Callback for OnExceptionCheckpoint {
    fn logged_names(&self, _: &Ctx) -> Option<Vec<String>> {
        Some(Vec::new())
    }

    fn saves_checkpoints(&self) -> bool {
        true
    }

    fn on_exception(&mut self, ctx: &mut Ctx, _module: &mut dyn AnyModule, error: &Error) -> CallbackResult {
        // Only `fit` has training state to resume; a failing checkpoint itself must not loop back here.
        if ctx.stage() == Some(crate::Stage::Fit) && !matches!(error, Error::Checkpoint { .. }) {
            ctx.save_checkpoint(self.path());
        }
        Ok(())
    }
}
