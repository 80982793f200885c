//! Ctrl-C: the first SIGINT asks the run to stop at the next batch boundary (the end hooks and the callbacks'
//! `on_exception` still run, so a checkpoint can be left to resume from); a second one exits at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// Set by the first SIGINT; the loops read it between batches.
fn flag() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        // Order matters: the conditional exit is registered first, so it sees the flag as the previous
        // SIGINT left it — set by a first Ctrl-C, and so this second one exits with the shell's code for SIGINT.
        let installed =
            signal_hook::flag::register_conditional_shutdown(signal_hook::consts::SIGINT, 130, Arc::clone(&flag))
                .and_then(|_| signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&flag)));
        if let Err(error) = installed {
            eprintln!("lightning: Ctrl-C will not stop training gracefully: {error}");
        }
        flag
    })
}

/// Installs the handler (once per process) and forgets any earlier Ctrl-C.
pub(crate) fn arm() {
    flag().store(false, Ordering::SeqCst);
}

/// Whether Ctrl-C was pressed since the run started.
#[inline]
pub(crate) fn requested() -> bool {
    flag().load(Ordering::Relaxed)
}
