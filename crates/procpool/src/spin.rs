//! Short bounded spins before parking. Owns the spin budget; calls nothing
//! of the pool.
//!
//! A sequential `apply` on a process pool passes two hand-offs (caller →
//! worker → caller, see `process/lend.rs`), or four through the queue
//! (caller → I/O thread → worker → I/O thread → caller). Each one made by
//! parking
//! (a futex or a blocking read) costs a wake-up: a system call for the
//! waker, and for the sleeper a trip through the scheduler, often to the
//! other CPU. When the next step is microseconds away, as it is for small
//! tasks, a waiter that looks again for a few microseconds before it parks
//! is found awake by its waker, and neither pays. The spin is bounded, so
//! an idle pool still parks at once in CPU terms, and it yields the CPU
//! between looks, so on a busy machine it gives way to the thread it waits
//! for.
//!
//! On a machine whose CPUs are all taken by other work, a yield hands the
//! CPU to another program for its whole time slice (milliseconds), and a
//! spin then costs far more than the wake-up it saves (measured: a round
//! trip fell to a tenth of a blocking one's rate beside two busy loops).
//! So a yield that comes back late tells this process that the CPUs are
//! contended, and every spin of the process is skipped for a while
//! ([`BACK_OFF`]): waiters park at once, as if there were no spin.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a waiter looks before it parks: a few times a wake-up's cost
/// on a virtual machine, a small fraction of what parking saves when the
/// next step is that close.
pub(crate) const SPIN: Duration = Duration::from_micros(40);

/// A yield that kept the CPU away this long found the CPUs contended.
const SLOW_YIELD: Duration = Duration::from_micros(100);

/// How long the process parks without spinning after a slow yield.
const BACK_OFF: Duration = Duration::from_millis(20);

/// Until when (nanoseconds after [`epoch`]) spins are skipped; written by
/// any waiter whose yield was slow, read by every spin of the process.
static CONTENDED_UNTIL: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn nanos_since_epoch(at: Instant) -> u64 {
    u64::try_from(at.duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX)
}

/// Looks at `ready` until it holds or [`SPIN`] has passed; returns
/// whether it held. Yields between looks. While the CPUs are contended
/// (see the module documentation) it looks once.
pub(crate) fn spin_until(mut ready: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    if nanos_since_epoch(start) < CONTENDED_UNTIL.load(Ordering::Relaxed) {
        return ready();
    }
    loop {
        if ready() {
            return true;
        }
        let before = Instant::now();
        if before.duration_since(start) >= SPIN {
            return false;
        }
        std::thread::yield_now();
        let after = Instant::now();
        if after.duration_since(before) >= SLOW_YIELD {
            CONTENDED_UNTIL.fetch_max(nanos_since_epoch(after + BACK_OFF), Ordering::Relaxed);
            return ready();
        }
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
        // Never ready: false, after the budget or, if a yield came back
        // late, after the spin was given up for contention.
        let start = Instant::now();
        assert!(!spin_until(|| false));
        let contended = CONTENDED_UNTIL.load(Ordering::Relaxed) > nanos_since_epoch(start);
        assert!(contended || start.elapsed() >= SPIN);
    }

    #[test]
    fn while_the_cpus_are_contended_a_spin_looks_once() {
        let now = nanos_since_epoch(Instant::now());
        CONTENDED_UNTIL.fetch_max(now + BACK_OFF.as_nanos() as u64, Ordering::Relaxed);
        let mut looks = 0;
        assert!(!spin_until(|| {
            looks += 1;
            false
        }));
        assert_eq!(looks, 1);
    }
}
