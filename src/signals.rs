//! SIGINT and SIGTERM: the first one asks the run to stop cleanly, a
//! second SIGINT ends the process at once.
//!
//! The handlers, installed by `signal-hook`, only store to an atomic flag
//! (async-signal-safe); the main loop and thread workers poll the flag.
//! Process workers ignore SIGINT (procpool sets that up) and are stopped by
//! the parent terminating the pool: during a copy task its SIGTERM sets
//! their own copy of the flag ([`task_starts`]), so they report what they
//! finished before they go.

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

/// In a process worker, whether no copy task runs: a SIGTERM then takes
/// the default action at once, as if no handler were there.
static BETWEEN_TASKS: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(true)));

/// A process worker's copy task begins. Until [`task_ends`], SIGTERM (how
/// the pool is terminated) only sets the flag, so the worker stops between
/// files and reports what it finished; outside a task it ends the process
/// at once, as by default, so an idle worker does not hold up `terminate`.
/// The handlers are installed by the first task (a worker process may run
/// several), and only that one reports a failure to install them.
pub(crate) fn task_starts() -> io::Result<()> {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    let mut installed = Ok(());
    INSTALLED.call_once(|| {
        installed = (|| {
            signal_hook::flag::register_conditional_default(SIGTERM, Arc::clone(&BETWEEN_TASKS))?;
            signal_hook::flag::register(SIGTERM, Arc::clone(&INTERRUPTED))?;
            Ok(())
        })();
    });
    BETWEEN_TASKS.store(false, Ordering::SeqCst);
    installed
}

/// A process worker's copy task is over, its news sent. A SIGTERM that came
/// during it ends the process now; one from now on ends it at once. In
/// that order, no SIGTERM falls between the two.
pub(crate) fn task_ends() {
    BETWEEN_TASKS.store(true, Ordering::SeqCst);
    if interrupted() {
        die_of_sigterm();
    }
}

/// Ends this process by SIGTERM's default action, after a worker has said
/// all it had to say: the pool sees the death it asked for.
fn die_of_sigterm() -> ! {
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
