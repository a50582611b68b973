//! Short bounded spins before parking. Owns the spin budget; calls nothing
//! of the pool.
//!
//! A sequential `apply` on a process pool passes four hand-offs: caller →
//! I/O thread → worker → I/O thread → caller. Each one made by parking
//! (a futex or a blocking read) costs a wake-up: a system call for the
//! waker, and for the sleeper a trip through the scheduler, often to the
//! other CPU. When the next step is microseconds away, as it is for small
//! tasks, a waiter that looks again for a few microseconds before it parks
//! is found awake by its waker, and neither pays. The spin is bounded, so
//! an idle pool still parks at once in CPU terms, and it yields the CPU
//! between looks, so on a busy machine it gives way to the thread it waits
//! for.

use std::time::{Duration, Instant};

/// How long a waiter looks before it parks: a few times a wake-up's cost
/// on a virtual machine, a small fraction of what parking saves when the
/// next step is that close.
pub(crate) const SPIN: Duration = Duration::from_micros(40);

/// Looks at `ready` until it holds or [`SPIN`] has passed; returns
/// whether it held. Yields between looks.
pub(crate) fn spin_until(mut ready: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if ready() {
            return true;
        }
        if start.elapsed() >= SPIN {
            return false;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spin_stops_at_once_when_ready_and_after_the_budget_when_not() {
        // Whether a later look comes within the budget depends on the
        // scheduler (a yield on a loaded machine can outlast it), so only
        // what does not is checked: a first look that finds the condition,
        // and a condition that never holds.
        let mut looks = 0;
        assert!(spin_until(|| {
            looks += 1;
            true
        }));
        assert_eq!(looks, 1);
        let start = Instant::now();
        assert!(!spin_until(|| false));
        assert!(start.elapsed() >= SPIN);
    }
}
