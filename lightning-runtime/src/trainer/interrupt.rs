//! Ctrl-C and SIGTERM: the first one asks the run to stop at the next batch boundary (the end hooks and the
//! callbacks' `on_exception` still run, so a checkpoint can be left to resume from; cluster schedulers send
//! SIGTERM some time before they kill a job); a second one exits at once, with the shell's code for the signal.
//!
//! The handlers are installed when a stage starts and the previous ones put back when it ends, so a host program
//! gets its own Ctrl-C behaviour back between runs (`Trainer::handle_interrupts(false)` never installs them).
//! Stages running at once on several threads share one installation: the last to end restores.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Mutex;

/// Set by the first signal; the loops read it between batches.
static REQUESTED: AtomicBool = AtomicBool::new(false);
/// The signal that set it.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Whether a stop was asked for since the outermost running stage started.
#[inline]
pub(crate) fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// How the signal that asked for the stop is named in errors.
pub(crate) fn signal_name() -> &'static str {
    #[cfg(unix)]
    if SIGNAL.load(Ordering::Relaxed) == libc::SIGTERM {
        return "SIGTERM";
    }
    "Ctrl-C (SIGINT)"
}

/// The handlers, while a stage runs; dropping it puts the previous handlers back when no other stage runs.
pub(crate) struct Armed {
    installed: bool,
}

/// Installs the handlers (unless `enabled` is false) and forgets an earlier request.
pub(crate) fn arm(enabled: bool) -> Armed {
    if !enabled {
        return Armed { installed: false };
    }
    let mut state = STATE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if state.depth == 0 {
        REQUESTED.store(false, Ordering::SeqCst);
        SIGNAL.store(0, Ordering::SeqCst);
        if let Err(error) = platform::install(&mut state.previous) {
            eprintln!("lightning: Ctrl-C will not stop training gracefully: {error}");
        }
    }
    state.depth += 1;
    Armed { installed: true }
}

impl Drop for Armed {
    fn drop(&mut self) {
        if !self.installed {
            return;
        }
        let mut state = STATE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.depth -= 1;
        if state.depth == 0 {
            platform::restore(&mut state.previous);
            REQUESTED.store(false, Ordering::SeqCst);
        }
    }
}

struct State {
    /// Stages running with the handlers installed.
    depth: usize,
    previous: platform::Previous,
}

static STATE: Mutex<State> = Mutex::new(State { depth: 0, previous: platform::Previous::NONE });

#[cfg(unix)]
mod platform {
    use std::sync::atomic::Ordering;

    use super::{REQUESTED, SIGNAL};

    const SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

    /// The handlers that were there before, per signal of `SIGNALS`.
    pub(super) struct Previous([Option<libc::sigaction>; 2]);

    impl Previous {
        pub(super) const NONE: Previous = Previous([None, None]);
    }

    // SAFETY (for `Send`): plain data, only touched under the state's lock.
    unsafe impl Send for Previous {}

    /// Async-signal-safe: two atomic operations and `_exit`.
    extern "C" fn on_signal(signal: libc::c_int) {
        // The signal is recorded before the request, so that whoever sees the request reads its name.
        if !REQUESTED.load(Ordering::SeqCst) {
            SIGNAL.store(signal, Ordering::SeqCst);
        }
        if REQUESTED.swap(true, Ordering::SeqCst) {
            // SAFETY: `_exit` is async-signal-safe; it ends the process without running anything else.
            unsafe { libc::_exit(128 + signal) };
        }
    }

    pub(super) fn install(previous: &mut Previous) -> std::io::Result<()> {
        for (slot, signal) in previous.0.iter_mut().zip(SIGNALS) {
            // SAFETY: a zeroed `sigaction` is a valid value to fill; `on_signal` is async-signal-safe.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(signal, &action, &mut old) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                *slot = Some(old);
            }
        }
        Ok(())
    }

    pub(super) fn restore(previous: &mut Previous) {
        for (slot, signal) in previous.0.iter_mut().zip(SIGNALS) {
            if let Some(old) = slot.take() {
                // SAFETY: `old` is what `sigaction` returned for this signal.
                unsafe { libc::sigaction(signal, &old, std::ptr::null_mut()) };
            }
        }
    }
}

#[cfg(not(unix))]
mod platform {
    pub(super) struct Previous;

    impl Previous {
        pub(super) const NONE: Previous = Previous;
    }

    pub(super) fn install(_: &mut Previous) -> std::io::Result<()> {
        Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "signals are only handled on Unix"))
    }

    pub(super) fn restore(_: &mut Previous) {}
}
