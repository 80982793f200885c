//! The seam for distributed training: which process this is, and how the processes agree. The Trainer calls it
//! when a stage starts (`setup_environment`, then `setup_module` once the module is on its device), when a stage
//! fails (`on_failure`) and when it ends (`teardown`); the loops ask it where `prepare_data` runs and which
//! process writes checkpoints and logs, and reduce logged values and stop decisions over its process group.

use tch::{Device, Tensor};

use crate::distributed::{GradientSync, ProcessGroup};
use crate::{Error, Result};

/// How the processes of a run cooperate: [`SingleDevice`] (the default) or [`Ddp`](crate::Ddp).
pub trait Strategy: Send {
    /// Called when a stage starts, before any hook, with the Trainer's `devices` and `num_nodes` and the device
    /// its accelerator picked: joins (or starts) the other processes and returns the device this process runs on.
    ///
    /// # Errors
    /// The default accepts one process only.
    fn setup_environment(&mut self, devices: usize, num_nodes: usize, device: Device) -> Result<Device> {
        if devices * num_nodes > 1 {
            return Err(Error::Config(format!(
                "devices({devices}) x num_nodes({num_nodes}) asks for several processes, but the strategy runs one: \
                 use `.strategy(Ddp::default())` (the default when devices > 1)"
            )));
        }
        Ok(device)
    }

    /// The processes of the run, when there are several.
    fn process_group(&self) -> Option<ProcessGroup> {
        None
    }

    /// This process's rank among all processes.
    fn global_rank(&self) -> usize {
        self.process_group().map_or(0, |group| group.rank())
    }

    /// This process's rank on its node.
    fn local_rank(&self) -> usize {
        0
    }

    /// The number of processes.
    fn world_size(&self) -> usize {
        self.process_group().map_or(1, |group| group.size())
    }

    /// Whether this is the first process on its node (where `prepare_data` runs).
    fn is_local_zero(&self) -> bool {
        self.local_rank() == 0
    }

    /// Whether this is the first process of all (the one that writes checkpoints and logs).
    fn is_global_zero(&self) -> bool {
        self.global_rank() == 0
    }

    /// Called once the module is on its device: makes the processes' copies equal (`variables`: every
    /// variable, buffers included) and, when `training`, returns what averages the gradients of `trainable`.
    ///
    /// # Errors
    /// When the processes cannot be reached.
    fn setup_module(
        &mut self,
        _trainable: &[Tensor],
        _variables: &[Tensor],
        _training: bool,
    ) -> Result<Option<GradientSync>> {
        Ok(None)
    }

    /// Called when this process's stage fails with `error`, before `on_exception`: tells the other processes
    /// and returns the error to report (the first failing process's, when this one only followed).
    fn on_failure(&mut self, error: Error) -> Error {
        error
    }

    /// Called when a stage ends well.
    fn teardown(&mut self) {}

    /// Waits for every process.
    ///
    /// # Errors
    /// When the processes cannot be reached.
    fn barrier(&self) -> Result<()> {
        self.process_group().map_or(Ok(()), |group| group.barrier())
    }

    /// Whether any process (or, with `all`, every process) decided `true`.
    ///
    /// # Errors
    /// When the processes cannot be reached.
    fn reduce_boolean_decision(&self, decision: bool, all: bool) -> Result<bool> {
        match self.process_group() {
            Some(group) => group.agree(decision, all),
            None => Ok(decision),
        }
    }
}

/// One process on one device.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleDevice;

impl Strategy for SingleDevice {}
