//! Where this process stands in a distributed run: read from the environment a launcher set (torchrun's
//! variables, SLURM's), or, when there is none, made by launching the other local processes ourselves
//! (Lightning's subprocess launcher: the program re-executes itself with the variables set).

use std::net::TcpListener;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::{Error, Result};

/// This process's place in the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cluster {
    pub rank: usize,
    pub local_rank: usize,
    pub world: usize,
    pub node_rank: usize,
    pub master_addr: String,
    pub master_port: u16,
    /// Who set it up: `"torchrun"`, `"SLURM"`, or `"launcher"` (this crate's).
    pub source: &'static str,
}

impl Cluster {
    /// Every process of the run on this one machine: connections can stay on the loopback interface.
    pub fn single_node(&self) -> bool {
        self.world == 1 || matches!(self.master_addr.as_str(), "127.0.0.1" | "localhost" | "::1")
    }
}

/// The variables the launcher sets in the processes it starts (torchrun's names).
const RANK: &str = "RANK";

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn number(name: &str) -> Result<Option<usize>> {
    var(name)
        .map(|v| v.parse().map_err(|_| Error::Config(format!("the environment variable {name}={v:?} is not a number"))))
        .transpose()
}

fn required(name: &str, launcher: &str) -> Result<String> {
    var(name).ok_or_else(|| {
        Error::Config(format!("{launcher} set RANK but not {name}: a distributed run needs {name} in the environment"))
    })
}

/// The run's layout as a launcher set it in the environment, if one did.
pub(crate) fn from_env() -> Result<Option<Cluster>> {
    if let Some(rank) = number(RANK)? {
        let source = if var("TORCHELASTIC_RUN_ID").is_some() { "torchrun" } else { "the launcher" };
        let world =
            number("WORLD_SIZE")?.ok_or_else(|| Error::Config(format!("{source} set RANK but not WORLD_SIZE")))?;
        let port_text = required("MASTER_PORT", source)?;
        let master_port =
            port_text.parse().map_err(|_| Error::Config(format!("MASTER_PORT={port_text:?} is not a port number")))?;
        return Ok(Some(Cluster {
            rank,
            local_rank: number("LOCAL_RANK")?.unwrap_or(rank),
            world,
            node_rank: number("GROUP_RANK")?.or(number("NODE_RANK")?).unwrap_or(0),
            master_addr: required("MASTER_ADDR", source)?,
            master_port,
            source: if source == "torchrun" { "torchrun" } else { "launcher" },
        }));
    }
    // SLURM's own tasks (srun), not an interactive allocation's shell (Lightning's rule).
    let interactive = matches!(var("SLURM_JOB_NAME").as_deref(), Some("bash" | "interactive"));
    if let (Some(rank), Some(world), false) = (number("SLURM_PROCID")?, number("SLURM_NTASKS")?, interactive) {
        // Lightning's choice of port: from the job's id, so every task of the job agrees without talking.
        let master_port = match var("MASTER_PORT") {
            Some(port) => port.parse().map_err(|_| Error::Config(format!("MASTER_PORT={port:?} is not a port")))?,
            None => 10000 + (number("SLURM_JOB_ID")?.unwrap_or(0) % 20000) as u16,
        };
        let master_addr = var("MASTER_ADDR").or_else(|| var("SLURM_LAUNCH_NODE_IPADDR")).ok_or_else(|| {
            Error::Config(
                "under SLURM, set MASTER_ADDR to the first node's address (e.g. `export MASTER_ADDR=$(scontrol show \
                 hostnames $SLURM_JOB_NODELIST | head -n 1)`)"
                    .into(),
            )
        })?;
        return Ok(Some(Cluster {
            rank,
            local_rank: number("SLURM_LOCALID")?.unwrap_or(0),
            world,
            node_rank: number("SLURM_NODEID")?.unwrap_or(0),
            master_addr,
            master_port,
            source: "SLURM",
        }));
    }
    Ok(None)
}

/// The processes this one started (it is rank 0 of them), waited for when the program exits.
static CHILDREN: Mutex<Vec<(usize, Child)>> = Mutex::new(Vec::new());
/// Set once this process has met the others: from then on a process that fails is noticed through its closed
/// connections.
static MET: AtomicBool = AtomicBool::new(false);
/// Set when this process gives up because one it started ended before they met: the rest are stopped, not waited for.
static ABORTING: AtomicBool = AtomicBool::new(false);

/// Records that the processes have met (see `watch_until_met`).
pub(crate) fn met() {
    MET.store(true, Ordering::Relaxed);
}

/// Until the processes meet, rank 0 waits in libtorch's rendezvous for all of them: a process it started that
/// ends first (a panic before `fit`, a program that never reaches it) would keep it there until the timeout.
/// This thread notices and ends the run at once, naming the process.
fn watch_until_met() {
    let watcher = || loop {
        std::thread::sleep(Duration::from_millis(100));
        if MET.load(Ordering::Relaxed) {
            return;
        }
        let mut children = CHILDREN.lock().unwrap_or_else(|p| p.into_inner());
        for (rank, child) in children.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                eprintln!(
                    "lightning: the process of rank {rank} ended ({status}) before the processes met; stopping the run"
                );
                ABORTING.store(true, Ordering::Relaxed);
                drop(children);
                std::process::exit(1);
            }
        }
    };
    let _ = std::thread::Builder::new().name("lightning-launch-watch".into()).spawn(watcher);
}

/// The layout the launcher made, reused by every later stage of this process (and set in the children's
/// environment, which their own stages read).
static LAUNCHED: OnceLock<Cluster> = OnceLock::new();

/// Starts `devices - 1` more copies of this program on this machine with the variables of ranks 1.. set, and
/// returns rank 0's layout (this process). Done once per process: later stages join the same processes.
pub(crate) fn launch(devices: usize) -> Result<Cluster> {
    if let Some(cluster) = LAUNCHED.get() {
        if cluster.world != devices {
            return Err(Error::Config(format!(
                "this program already started {} processes for an earlier stage; a later stage cannot use \
                 devices({devices}): keep `devices` the same across the stages of one program",
                cluster.world
            )));
        }
        return Ok(cluster.clone());
    }
    let port = free_port()?;
    let program = std::env::current_exe()
        .map_err(|e| Error::Config(format!("cannot find this program's own file to start the other processes: {e}")))?;
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let mut children = CHILDREN.lock().unwrap_or_else(|p| p.into_inner());
    for rank in 1..devices {
        let child = Command::new(&program)
            .args(&args)
            .env(RANK, rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("WORLD_SIZE", devices.to_string())
            .env("LOCAL_WORLD_SIZE", devices.to_string())
            .env("NODE_RANK", "0")
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .spawn()
            .map_err(|e| {
                Error::Config(format!("could not start the process of rank {rank} ({}): {e}", program.display()))
            })?;
        children.push((rank, child));
    }
    if children.len() == devices - 1 {
        // SAFETY: registers a plain `extern "C"` function once; it runs when the program exits.
        unsafe { libc::atexit(wait_for_children) };
        drop(children);
        watch_until_met();
    }
    let cluster = Cluster {
        rank: 0,
        local_rank: 0,
        world: devices,
        node_rank: 0,
        master_addr: "127.0.0.1".into(),
        master_port: port,
        source: "launcher",
    };
    Ok(LAUNCHED.get_or_init(|| cluster).clone())
}

/// A port free right now on the loopback interface, for rank 0's store.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| Error::Config(format!("no free port on 127.0.0.1 for the processes to meet: {e}")))?;
    Ok(listener.local_addr()?.port())
}

/// When rank 0 exits, the processes it started finish too (they ran the same stages); it waits for them so that
/// a shell sees the whole run end, and reports those that failed.
extern "C" fn wait_for_children() {
    // The others may be waiting on this process in a collective: closing its connections releases them. (Not
    // when giving up before the processes met: the rendezvous still holds the session, and the others are
    // killed below.)
    if !ABORTING.load(Ordering::Relaxed) {
        super::disconnect();
    }
    let mut children = CHILDREN.lock().unwrap_or_else(|p| p.into_inner());
    for (rank, child) in children.iter_mut() {
        if ABORTING.load(Ordering::Relaxed) {
            let _ = child.kill();
        }
        match child.wait() {
            Ok(status) if !status.success() => {
                eprintln!("lightning: the process of rank {rank} (pid {}) ended with {status}", child.id());
            }
            _ => {}
        }
    }
    children.clear();
}
