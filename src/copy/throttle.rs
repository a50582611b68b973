//! `--bwlimit`: one token bucket per process that every copy in it draws
//! from, so thread workers share the whole rate; each worker process gets
//! its own bucket with a share of the rate (see `config::backups`).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::signals;

/// The longest a bucket lets bytes pile up while nobody copies: a burst
/// after an idle moment stays this short.
const BURST: Duration = Duration::from_millis(100);
/// Sleeps are cut into slices this long, so Ctrl-C is seen.
const SLICE: Duration = Duration::from_millis(50);

/// A token bucket of `rate` bytes per second.
#[derive(Debug)]
pub(super) struct Throttle {
    rate: u64,
    /// Every engine of the process locks it for one update; no one
    /// sleeps holding it.
    state: Mutex<Tokens>,
}

/// What a bucket holds.
#[derive(Debug)]
struct Tokens {
    /// Bytes available, negative when copies have taken more than was
    /// there (they then sleep off the debt).
    bytes: f64,
    /// When `bytes` was computed.
    at: Instant,
}

/// The process's bucket, made on first use with `rate` (all engines of a
/// process are given the same rate).
pub(super) fn shared(rate: u64) -> Arc<Throttle> {
    static BUCKET: OnceLock<Arc<Throttle>> = OnceLock::new();
    BUCKET.get_or_init(|| Arc::new(Throttle::new(rate))).clone()
}

impl Throttle {
    pub(super) fn new(rate: u64) -> Throttle {
        Throttle {
            rate: rate.max(1),
            state: Mutex::new(Tokens {
                bytes: 0.0,
                at: Instant::now(),
            }),
        }
    }

    /// A copy step that keeps each wait near a tenth of a second.
    pub(super) fn chunk(&self) -> usize {
        usize::try_from(self.rate / 10)
            .unwrap_or(usize::MAX)
            .max(4096)
    }

    /// Takes `n` bytes from the bucket, sleeping until they are paid for.
    pub(super) fn take(&self, n: u64) {
        let rate = self.rate as f64;
        let debt = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let refill = now.duration_since(state.at).as_secs_f64() * rate;
            let tokens = (state.bytes + refill).min(rate * BURST.as_secs_f64()) - n as f64;
            *state = Tokens {
                bytes: tokens,
                at: now,
            };
            -tokens
        };
        if debt <= 0.0 {
            return;
        }
        let until = Instant::now() + Duration::from_secs_f64(debt / rate);
        while !signals::interrupted() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(SLICE));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takers_together_get_the_rate() {
        let bucket = Arc::new(Throttle::new(4 << 20));
        let started = Instant::now();
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let bucket = Arc::clone(&bucket);
                std::thread::spawn(move || (0..8).for_each(|_| bucket.take(128 << 10)))
            })
            .collect();
        takers.into_iter().for_each(|t| t.join().unwrap());
        // 2 MiB at 4 MiB/s: half a second, less the burst allowance.
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(350), "{elapsed:?}");
        assert_eq!(bucket.chunk(), (4 << 20) / 10);
    }
}
