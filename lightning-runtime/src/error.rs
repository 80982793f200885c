//! The runtime's error type.

/// What a hook that returns `Result` may fail with: any error that converts into a boxed one
/// (`std::io::Error`, `anyhow::Error`, `tch::TchError`, a `String`, ...).
pub type HookError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What the runtime's fallible calls return.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can end a run early, each naming the problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A hook of the module returned an error.
    #[error("hook `{hook}` failed: {source}")]
    Hook {
        /// The hook's name.
        hook: &'static str,
        /// What it returned.
        source: HookError,
    },
    /// A callback's hook returned an error.
    #[error("callback `{callback}` failed in `{hook}`: {source}")]
    Callback {
        /// The callback's name.
        callback: String,
        /// The hook's name.
        hook: &'static str,
        /// What it returned.
        source: HookError,
    },
    /// A hook (or a callback, a loader, the runtime's own code) panicked.
    #[error("{} panicked: {message}", quoted(hook))]
    Panic {
        /// The hook that was running (`on_train_batch_start`), or the runtime's part (`the training loader`).
        hook: &'static str,
        /// The panic's message.
        message: String,
    },
    /// A hook logged where Lightning does not allow it.
    #[error("{0}")]
    Log(String),
    /// The loss was NaN or infinite.
    #[error("the loss of `training_step` is {value} at epoch {epoch}, batch {batch_idx} (global step {global_step}); set `Trainer::nonfinite_loss(NonFinite::Skip)` to skip such steps")]
    NonFiniteLoss {
        /// The value (NaN or ±inf).
        value: f64,
        /// The epoch.
        epoch: usize,
        /// The batch index within the epoch.
        batch_idx: usize,
        /// The optimizer steps taken before it.
        global_step: usize,
    },
    /// A checkpoint could not be written, read or restored.
    #[error("checkpoint {path}: {problem}")]
    Checkpoint {
        /// The checkpoint's path.
        path: std::path::PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A file could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The run was stopped by Ctrl-C (SIGINT) or SIGTERM at a batch boundary.
    #[error("interrupted by {signal} at epoch {epoch}, global step {global_step}")]
    Interrupted {
        /// The signal: `Ctrl-C (SIGINT)` or `SIGTERM`.
        signal: &'static str,
        /// The epoch it stopped in.
        epoch: usize,
        /// The optimizer steps taken.
        global_step: usize,
    },
    /// libtorch raised an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// The Trainer, the module and the data do not fit together.
    #[error("misconfiguration: {0}")]
    Config(String),
    /// Communication between the processes of a distributed run failed (a connection lost, a timeout).
    #[error("distributed: {0}")]
    Distributed(String),
    /// Another process of a distributed run failed, so this one stopped too.
    #[error("the process of rank {rank} failed: {cause}")]
    PeerFailed {
        /// The global rank of the process that failed first.
        rank: usize,
        /// Its error, as it reported it.
        cause: String,
    },
}

/// A hook's name in backticks; a description of the runtime's own code (it has spaces) as it is.
fn quoted(name: &str) -> String {
    if name.contains(' ') {
        name.to_string()
    } else {
        format!("`{name}`")
    }
}

/// The message a panic carried (`panic!("...")` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}
