//! The seam for distributed training: which process this is and how processes agree. Nothing in the loops
//! assumes a single process; they ask the strategy.

use tch::Tensor;

use crate::Result;

/// How the processes of a run cooperate. The loops call it wherever Lightning's strategy is consulted:
/// `prepare_data` only where `is_local_zero`, logged values reduced with `reduce_mean` when asked to sync.
pub trait Strategy: Send {
    /// This process's rank among all processes.
    fn global_rank(&self) -> usize {
        0
    }
    /// This process's rank on its node.
    fn local_rank(&self) -> usize {
        0
    }
    /// The number of processes.
    fn world_size(&self) -> usize {
        1
    }
    /// Whether this is the first process on its node (where `prepare_data` runs).
    fn is_local_zero(&self) -> bool {
        self.local_rank() == 0
    }
    /// Whether this is the first process of all (where checkpoints and logs are written).
    fn is_global_zero(&self) -> bool {
        self.global_rank() == 0
    }
    /// Waits for every process.
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
    /// The mean of `value` over every process.
    fn reduce_mean(&self, value: &Tensor) -> Result<Tensor> {
        Ok(value.shallow_clone())
    }
}

/// One process on one device.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleDevice;

impl Strategy for SingleDevice {}
