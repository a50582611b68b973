//! SIGINT and SIGTERM: the first one asks the run to stop cleanly, a
//! second SIGINT ends the process at once.
//!
//! The handlers, installed by `signal-hook`, only store to an atomic flag
//! (async-signal-safe); the main loop and thread workers poll the flag.
//! Process workers ignore SIGINT (procpool sets that up) and are stopped by
//! the parent terminating the pool: its SIGTERM sets their own copy of the
//! flag ([`stop_on_sigterm`]), so they report what they finished before
//! they go.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::exit_codes::ExitStatus;

/// Set by the first SIGINT or SIGTERM; never cleared.
static INTERRUPTED: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));

/// Installs the handlers. A second signal while the first is being handled
/// exits at once with status 20, for the user who does not want to wait
/// for in-flight files.
pub(crate) fn install() -> io::Result<()> {
    for signal in [SIGINT, SIGTERM] {
        // Registered before the flag setter: the conditional exit looks at
        // the flag as it was before this signal, so only a second one exits.
        signal_hook::flag::register_conditional_shutdown(
            signal,
            i32::from(ExitStatus::Interrupted.code()),
            Arc::clone(&INTERRUPTED),
        )?;
        signal_hook::flag::register(signal, Arc::clone(&INTERRUPTED))?;
    }
    Ok(())
}

/// In a process worker: SIGTERM (how the pool is terminated) only sets the
/// flag, so the worker stops between files and reports what it finished;
/// [`die_of_sigterm`] then ends it as the signal would have. Idempotent: a
/// worker process runs many tasks.
pub(crate) fn stop_on_sigterm() -> io::Result<()> {
    static INSTALLED: std::sync::OnceLock<io::Result<()>> = std::sync::OnceLock::new();
    match INSTALLED
        .get_or_init(|| signal_hook::flag::register(SIGTERM, Arc::clone(&INTERRUPTED)).map(drop))
    {
        Ok(()) => Ok(()),
        Err(err) => Err(io::Error::new(err.kind(), err.to_string())),
    }
}

/// Ends this process by SIGTERM's default action, after a worker has said
/// all it had to say: the pool sees the death it asked for.
pub(crate) fn die_of_sigterm() -> ! {
    // SAFETY: restoring the default disposition installs no handler code,
    // and raising a signal is async-signal-safe; with SIG_DFL, SIGTERM ends
    // the process before raise returns.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        libc::raise(libc::SIGTERM);
    }
    // Unreachable unless SIGTERM is blocked; exit as it would have.
    std::process::exit(128 + libc::SIGTERM)
}

/// Whether a stop was requested.
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_starts_clear() {
        // Nothing in the unit tests raises SIGINT, so the flag stays clear
        // and thread workers started by other tests are never told to stop.
        assert!(!interrupted());
    }
}
