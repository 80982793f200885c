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
    /// A hook of the module (or of a callback) returned an error.
    #[error("hook `{hook}` failed: {source}")]
    Hook {
        /// The hook's name.
        hook: &'static str,
        /// What it returned.
        source: HookError,
    },
    /// libtorch raised an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// The Trainer, the module and the data do not fit together.
    #[error("misconfiguration: {0}")]
    Config(String),
}
