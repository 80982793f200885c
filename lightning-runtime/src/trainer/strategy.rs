//! The seam for distributed training: which process this is and how processes agree. Today the loops consult
//! it in one place (`prepare_data` runs where `is_local_zero`); the rest is the interface data-parallel training
//! will fill in, and the loops do not call it yet: logged values are not reduced across processes, and every
//! process would write checkpoints and logs.

use tch::Tensor;

use crate::Result;

/// How the processes of a run cooperate. The loops ask it whether to run `prepare_data` (`is_local_zero`); the
/// other methods are not called by the loops yet (see the module's docs).
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
    /// Whether this is the first process of all (where Lightning writes checkpoints and logs; not consulted yet).
    fn is_global_zero(&self) -> bool {
        self.global_rank() == 0
    }
    /// Waits for every process.
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
    /// The mean of `value` over every process (Lightning's `sync_dist`; not consulted yet).
    fn reduce_mean(&self, value: &Tensor) -> Result<Tensor> {
        Ok(value.shallow_clone())
    }
}

/// One process on one device.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleDevice;

impl Strategy for SingleDevice {}
