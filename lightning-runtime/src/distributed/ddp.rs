//! [`Ddp`]: Lightning's `strategy="ddp"` on c10d. Each process holds a whole copy of the module and trains on
//! its share of the data; the weights start equal (broadcast from rank 0) and stay equal because every
//! optimizer step sees the same gradients, averaged over the processes by c10d's Reducer during backward.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tch::{Device, Tensor};

use super::c10d::{Group, Reducer};
use super::cluster::{self, Cluster};
use super::ProcessGroup;
use crate::trainer::Strategy;
use crate::{Error, Result};

/// Data-parallel training on several processes (Lightning's `strategy="ddp"`), over libtorch's c10d with Gloo.
///
/// `Trainer::new().devices(2)` picks it by default; set it to change its options. Running the program starts
/// the other processes of this machine itself (they re-run the same program with `RANK`, `WORLD_SIZE`, ...
/// set); under torchrun or SLURM it joins the processes they started instead, which is how several nodes
/// train.
///
/// ```no_run
/// use std::time::Duration;
/// use lightning::{Accelerator, Ddp, Trainer};
/// let trainer = Trainer::new()
///     .accelerator(Accelerator::Cpu)
///     .devices(2)
///     .strategy(Ddp::default().timeout(Duration::from_secs(300)).bucket_cap_mb(25.0));
/// ```
pub struct Ddp {
    timeout: Duration,
    bucket_cap_mb: f64,
    find_unused_parameters: bool,
    active: Option<Active>,
}

struct Active {
    cluster: Cluster,
    group: ProcessGroup,
}

impl Default for Ddp {
    fn default() -> Self {
        Ddp { timeout: Duration::from_secs(30 * 60), bucket_cap_mb: 25.0, find_unused_parameters: false, active: None }
    }
}

impl std::fmt::Debug for Ddp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ddp")
            .field("timeout", &self.timeout)
            .field("bucket_cap_mb", &self.bucket_cap_mb)
            .field("find_unused_parameters", &self.find_unused_parameters)
            .field("cluster", &self.active.as_ref().map(|a| &a.cluster))
            .finish()
    }
}

impl Ddp {
    /// How long a process waits for the others (to meet, or in any collective) before the run fails with
    /// [`Error::Distributed`]; default 30 minutes, as torch's. A process that fails or exits is noticed at
    /// once, not after the timeout: this bounds only a process that hangs.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The size of the gradient buckets averaged together, in MB (default 25, as `DistributedDataParallel`).
    pub fn bucket_cap_mb(mut self, mb: f64) -> Self {
        self.bucket_cap_mb = mb;
        self
    }

    /// Whether some parameters may get no gradient in a step (default false, as Lightning's `ddp`): the
    /// graph of the loss is then searched every step so the others are not waited for.
    pub fn find_unused_parameters(mut self, on: bool) -> Self {
        self.find_unused_parameters = on;
        self
    }
}

/// The process group of this process, kept for its lifetime: every stage of the program (fit, then test, ...)
/// reuses it, so the processes meet once. Dropped after a failure (which closes its connections, so that the
/// other processes notice at once) and when the program exits.
static SESSION: Mutex<Option<(Cluster, ProcessGroup)>> = Mutex::new(None);

fn session(cluster: &Cluster, timeout: Duration, nccl: bool) -> Result<ProcessGroup> {
    let mut session = SESSION.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((known, group)) = session.as_ref() {
        if known == cluster {
            return Ok(group.clone());
        }
    }
    *session = None;
    let local = cluster.single_node().then_some("127.0.0.1");
    let group =
        Group::connect(&cluster.master_addr, cluster.master_port, cluster.rank, cluster.world, timeout, local, nccl)
            .map_err(|e| match e {
                Error::Distributed(why) => Error::Distributed(format!(
                    "rank {} of {} could not meet the others at {}:{} ({}): {why}",
                    cluster.rank, cluster.world, cluster.master_addr, cluster.master_port, cluster.source
                )),
                other => other,
            })?;
    cluster::met();
    let group = ProcessGroup { group: Arc::new(group) };
    *session = Some((cluster.clone(), group.clone()));
    Ok(group)
}

/// Closes this process's connections (after a failure, or when the program exits).
pub(crate) fn disconnect() {
    let mut session = SESSION.lock().unwrap_or_else(|p| p.into_inner());
    *session = None;
}

/// Whether `error` is a failure to communicate (a collective or the Reducer's averaging inside backward),
/// rather than this process's own problem.
fn is_communication(error: &Error) -> bool {
    match error {
        Error::Distributed(_) => true,
        Error::Torch(e) => {
            let text = e.to_string();
            ["Gloo", "gloo", "c10d", "Connection closed", "Connection reset", "Timed out"]
                .iter()
                .any(|s| text.contains(s))
        }
        _ => false,
    }
}

/// The store key where the process of `rank` leaves its error for the others.
fn failure_key(rank: usize) -> String {
    format!("lightning/failed/{rank}")
}

impl Strategy for Ddp {
    fn setup_environment(&mut self, devices: usize, num_nodes: usize, device: Device) -> Result<Device> {
        let wanted = devices * num_nodes;
        let cluster = match cluster::from_env()? {
            Some(cluster) => {
                if cluster.world != wanted {
                    return Err(Error::Config(format!(
                        "the Trainer asks for devices({devices}) x num_nodes({num_nodes}) = {wanted} processes, but \
                         {} started {}: make them agree",
                        cluster.source, cluster.world
                    )));
                }
                cluster
            }
            None if num_nodes > 1 => {
                return Err(Error::Config(format!(
                    "num_nodes({num_nodes}): processes on several machines are started by a launcher, not by the \
                     program; run it under torchrun (`torchrun --nnodes {num_nodes} --nproc-per-node {devices} \
                     ...`) or SLURM (`srun`), which set RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT"
                )));
            }
            None if !super::available() => return Err(Error::Config(super::NOT_BUILT.to_string())),
            None => cluster::launch(devices)?,
        };
        // Checked before meeting the others: a process that cannot run gives up before they wait for it.
        let device = match device {
            Device::Cuda(_) => {
                let count = tch::Cuda::device_count() as usize;
                if cluster.local_rank >= count {
                    return Err(Error::Config(format!(
                        "the process of local rank {} needs CUDA device {}, but this machine has {count}",
                        cluster.local_rank, cluster.local_rank
                    )));
                }
                Device::Cuda(cluster.local_rank)
            }
            other => other,
        };
        // CUDA tensors travel through NCCL where the build has it, else through Gloo.
        let nccl = matches!(device, Device::Cuda(_)) && super::c10d::NCCL;
        let group = session(&cluster, self.timeout, nccl)?;
        self.active = Some(Active { cluster, group });
        Ok(device)
    }

    fn process_group(&self) -> Option<ProcessGroup> {
        self.active.as_ref().map(|a| a.group.clone())
    }

    fn local_rank(&self) -> usize {
        self.active.as_ref().map_or(0, |a| a.cluster.local_rank)
    }

    fn setup_module(
        &mut self,
        trainable: &[Tensor],
        variables: &[Tensor],
        training: bool,
    ) -> Result<Option<GradientSync>> {
        let Some(active) = &self.active else { return Ok(None) };
        // Every process starts from rank 0's weights and buffers (each built its own module).
        active.group.broadcast(variables, 0)?;
        if !training || trainable.is_empty() {
            return Ok(None);
        }
        let cap = (self.bucket_cap_mb * 1024.0 * 1024.0).max(1.0) as usize;
        let reducer = Reducer::new(&active.group.group, trainable, cap, self.find_unused_parameters)?;
        Ok(Some(GradientSync { reducer, find_unused: self.find_unused_parameters }))
    }

    fn on_failure(&mut self, error: Error) -> Error {
        let Some(active) = &self.active else { return error };
        let group = &active.group.group;
        let me = active.cluster.rank;
        // A process that failed first left its error in the store before it closed its connections: if one
        // did and this process's error is a lost connection, it is only the consequence.
        let first = (0..active.cluster.world).filter(|&r| r != me && is_communication(&error)).find_map(|r| {
            group
                .store_try_get(&failure_key(r))
                .ok()
                .flatten()
                .map(|cause| (r, String::from_utf8_lossy(&cause).into_owned()))
        });
        let error = match first {
            Some((rank, cause)) => Error::PeerFailed { rank, cause },
            None => {
                let _ = group.store_set(&failure_key(me), error.to_string().as_bytes());
                // A lost connection with no peer's report: one was killed (or hangs). The same error whether it
                // surfaced in a collective or in the gradient averaging inside backward (a libtorch error).
                match error {
                    Error::Distributed(why) => Error::Distributed(format!(
                        "rank {me}: {why} (another process may have been killed or stopped answering)"
                    )),
                    other if is_communication(&other) => Error::Distributed(format!(
                        "rank {me}: {other} (another process may have been killed or stopped answering)"
                    )),
                    other => other,
                }
            }
        };
        self.active = None;
        disconnect();
        error
    }

    fn teardown(&mut self) {
        if let Some(active) = &self.active {
            // Files rank 0 wrote are on disk when every process's stage returns.
            let _ = active.group.barrier();
        }
    }
}

/// What averages the gradients of a distributed run during backward: c10d's Reducer, armed before each
/// backward pass whose gradients are to be synchronized (not within an accumulation window: `no_sync`).
pub struct GradientSync {
    reducer: Reducer,
    find_unused: bool,
}

impl std::fmt::Debug for GradientSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GradientSync").field("find_unused", &self.find_unused).finish()
    }
}

impl GradientSync {
    /// Arms the averaging for the backward pass of `loss` that comes next.
    pub(crate) fn before_backward(&mut self, loss: &Tensor) -> Result<()> {
        self.reducer.prepare(self.find_unused.then_some(loss))
    }
}
