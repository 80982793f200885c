//! Training on several processes: data-parallel training over libtorch's own c10d (Gloo), as PyTorch's
//! `DistributedDataParallel` and Lightning's `strategy="ddp"` do it.
//!
//! | file | what |
//! |---|---|
//! | `cluster.rs` | this process's rank and the run's size, from torchrun's or SLURM's variables, or by starting the other local processes (the launcher) |
//! | `c10d.rs` | the process group, its store and c10d's Reducer, over `csrc/distributed.cpp` (`c10d_missing.rs` where the build has no Gloo headers) |
//! | `ddp.rs` | [`Ddp`], the strategy: connects, broadcasts the weights, arms the Reducer, reports a failed peer |

#[cfg(lightning_distributed)]
mod c10d;
#[cfg(not(lightning_distributed))]
#[path = "c10d_missing.rs"]
mod c10d;
mod cluster;
mod ddp;

use std::sync::Arc;

use tch::Tensor;

pub(crate) use ddp::disconnect;
pub use ddp::{Ddp, GradientSync};

use crate::Result;

/// How the processes agree to stop on Ctrl-C or SIGTERM, or at `max_time` (their clocks differ), at the same batch
/// boundary: at each boundary every process starts reducing its own flags (the largest wins) and reads the result of the one started at the
/// boundary before, which has long arrived; a request seen anywhere stops every process one boundary later,
/// together. The reduction runs beside the training, so a boundary waits for nothing. A vote under way when the
/// stage ends is waited for when the vote is dropped: every process cast it.
#[derive(Default)]
pub(crate) struct InterruptVote {
    pending: Option<(Tensor, c10d::Pending)>,
}

impl InterruptVote {
    /// Whether the processes agreed to stop at this boundary (interrupted, out of `max_time`); casts this
    /// process's votes for the next one.
    pub fn decide(
        &mut self,
        group: &ProcessGroup,
        interrupted_here: bool,
        out_of_time_here: bool,
    ) -> Result<[bool; 2]> {
        let decided = match self.pending.take() {
            Some((flags, pending)) => {
                pending.wait()?;
                let flags = Vec::<i64>::try_from(&flags)?;
                [flags[0] != 0, flags[1] != 0]
            }
            None => [false, false],
        };
        if !decided[0] {
            let flags = Tensor::from_slice(&[i64::from(interrupted_here), i64::from(out_of_time_here)]);
            let pending = group.all_reduce_start(&flags, ReduceOp::Max)?;
            self.pending = Some((flags, pending));
        }
        Ok(decided)
    }
}

/// What a build without Gloo's headers says when asked for several processes.
pub(crate) const NOT_BUILT: &str = "this build of lightning has no distributed training: Gloo's headers were not \
    found when it was compiled. Run `scripts/setup-torch.sh` (or `make setup`) in the lightning repository, which \
    unpacks Debian's libgloo-dev headers under ~/.cache/lightning-rs/gloo-headers, or set LIGHTNING_GLOO_INCLUDE \
    to a folder holding `gloo/`, then rebuild (`cargo clean -p lightning-runtime` first)";

/// Whether this build can run on several processes.
pub fn available() -> bool {
    c10d::AVAILABLE
}

/// How [`ProcessGroup::all_reduce`] combines the processes' values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    /// The sum.
    Sum,
    /// The mean.
    Mean,
    /// The largest.
    Max,
    /// The smallest.
    Min,
}

/// The processes of a distributed run, for collective operations in hooks
/// ([`Ctx::process_group`](crate::Ctx::process_group)). Every process must make the same calls in the same
/// order, or they wait for each other until the run's timeout.
#[derive(Clone)]
pub struct ProcessGroup {
    group: Arc<c10d::Group>,
}

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessGroup").field("rank", &self.rank()).field("size", &self.size()).finish()
    }
}

impl ProcessGroup {
    /// This process's rank among all processes (0 is the one that writes checkpoints and logs).
    pub fn rank(&self) -> usize {
        self.group.rank()
    }

    /// The number of processes.
    pub fn size(&self) -> usize {
        self.group.size()
    }

    /// Combines `tensor` over every process, in place.
    ///
    /// # Errors
    /// [`Error::Distributed`](crate::Error::Distributed) when a process cannot be reached.
    pub fn all_reduce(&self, tensor: &Tensor, op: ReduceOp) -> Result<()> {
        self.group.all_reduce(tensor, op)
    }

    /// Whether `decision` holds on any process (or, with `all`, on every one).
    pub(crate) fn agree(&self, decision: bool, all: bool) -> Result<bool> {
        let flag = Tensor::from(i64::from(decision));
        self.all_reduce(&flag, if all { ReduceOp::Min } else { ReduceOp::Max })?;
        Ok(flag.int64_value(&[]) != 0)
    }

    /// Starts a reduction of a flag: see `InterruptVote`.
    pub(crate) fn all_reduce_start(&self, tensor: &Tensor, op: ReduceOp) -> Result<c10d::Pending> {
        self.group.all_reduce_start(tensor, op)
    }

    /// Gives every process `root`'s values of `tensors`, in place.
    ///
    /// # Errors
    /// [`Error::Distributed`](crate::Error::Distributed) when a process cannot be reached.
    pub fn broadcast(&self, tensors: &[Tensor], root: usize) -> Result<()> {
        self.group.broadcast(tensors, root)
    }

    /// Every process's `tensor` (same shape on all), in rank order.
    ///
    /// # Errors
    /// [`Error::Distributed`](crate::Error::Distributed) when a process cannot be reached or the shapes differ.
    pub fn all_gather(&self, tensor: &Tensor) -> Result<Vec<Tensor>> {
        self.group.all_gather(tensor)
    }

    /// Waits until every process gets here.
    ///
    /// # Errors
    /// [`Error::Distributed`](crate::Error::Distributed) when a process cannot be reached.
    pub fn barrier(&self) -> Result<()> {
        self.group.barrier()
    }
}
