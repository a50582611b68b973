//! The time left in a run, from the files and the bytes still to copy.
//!
//! Copying small files costs per file (opens, creates, renames, times),
//! large ones per byte. A byte rate alone underrates what is left when
//! the files still to come are small, a file rate alone when they are
//! large. So both rates are measured over a recent window, each gives a
//! time for its own kind of work left, and the larger wins: when what is
//! left is like what was just copied the two agree, and when it is not,
//! the kind of work that was slower per unit is the one that bounds the
//! rest. The window starts when the totals become final, as the
//! count-ahead, which competed with the copy until then, is over. The
//! estimate is smoothed towards each new reading, counting down
//! with the clock in between, so the figure shown does not jump.
//!
//! The clock is the caller's (time since the run started), so the whole
//! module is pure arithmetic and is tested with a synthetic one.

use std::collections::VecDeque;
use std::time::Duration;

/// How often a reading is taken; observations in between only count the
/// estimate down.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// How far back the rates are measured: long enough to even out batches
/// and a neighbour's burst of CPU, short enough to follow a change from
/// large files to small ones.
pub(crate) const WINDOW: Duration = Duration::from_secs(5);

/// The weight of a new reading against the estimate counted down since
/// the last one: a time constant of about a second at one reading every
/// 250 ms.
const NEW_WEIGHT: f64 = 0.25;

/// An amount of work: files (entries of any kind) and bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Work {
    pub(crate) files: u64,
    pub(crate) bytes: u64,
}

/// Work done by a moment of the run.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    done: Work,
}

/// The smoothed time left, as it stood when it was last read.
#[derive(Debug, Clone, Copy)]
struct Estimate {
    at: Duration,
    left: f64,
}

/// Estimates the time left from the work done over time: 50 of 100
/// files done in 5 s leave 5 s.
#[derive(Debug)]
pub(crate) struct Estimator {
    /// Readings, oldest first: the newest, those inside the window, and
    /// the last one at or before its start.
    samples: VecDeque<Sample>,
    estimate: Option<Estimate>,
    /// The totals have been final since the window's first reading.
    final_seen: bool,
}

impl Default for Estimator {
    fn default() -> Estimator {
        Estimator::new()
    }
}

impl Estimator {
    /// An estimator for a run that starts now, with nothing done.
    pub(crate) fn new() -> Estimator {
        let start = Sample {
            at: Duration::ZERO,
            done: Work::default(),
        };
        Estimator {
            samples: VecDeque::from([start]),
            estimate: None,
            final_seen: false,
        }
    }

    /// Records that `done` was done `at` this time into the run, and gives
    /// the time left: `None` while `total` is not final (`None`) and until
    /// a rate has been measured since it is.
    pub(crate) fn observe(
        &mut self,
        at: Duration,
        done: Work,
        total: Option<Work>,
    ) -> Option<Duration> {
        if total.is_some() && !self.final_seen {
            // The window starts again: until now the count-ahead shared
            // the CPUs and the storage with the copy, so the rates before
            // say little about the rest.
            self.final_seen = true;
            self.samples.clear();
            self.samples.push_back(Sample { at, done });
        } else if at.saturating_sub(self.newest().at) >= SAMPLE_EVERY {
            self.sample(at, done);
            if let Some(reading) = total.and_then(|total| self.reading(done, total)) {
                let left = self.smoothed(at, reading);
                self.estimate = Some(Estimate { at, left });
            }
        }
        let total = total?;
        if done.files >= total.files && done.bytes >= total.bytes {
            return Some(Duration::ZERO);
        }
        let left = counted_down(self.estimate?, at);
        Some(Duration::from_millis((left * 1000.0).round() as u64))
    }

    /// Bytes per second over the window (since the start, while nothing
    /// moved in it).
    pub(crate) fn bytes_per_sec(&self) -> f64 {
        self.rates().bytes
    }

    fn newest(&self) -> Sample {
        *self
            .samples
            .back()
            .expect("the window always has a reading")
    }

    /// Keeps `done` as the newest reading and forgets the readings the
    /// window has left behind, all but the last of them.
    fn sample(&mut self, at: Duration, done: Work) {
        self.samples.push_back(Sample { at, done });
        let start = at.saturating_sub(WINDOW);
        while self.samples.len() > 2 && self.samples[1].at <= start {
            self.samples.pop_front();
        }
    }

    /// Files and bytes per second over the window; either falls back to
    /// its rate since the start when it did not move in the window.
    fn rates(&self) -> Rates {
        let newest = self.newest();
        let oldest = self.samples[0];
        let since = |from: Sample, work: fn(Work) -> u64| {
            let secs = newest.at.saturating_sub(from.at).as_secs_f64();
            let moved = work(newest.done).saturating_sub(work(from.done));
            (secs > 0.0 && moved > 0).then(|| moved as f64 / secs)
        };
        let rate = |work: fn(Work) -> u64| {
            since(oldest, work)
                .or_else(|| since(Sample::start(), work))
                .unwrap_or(0.0)
        };
        Rates {
            files: rate(|w| w.files),
            bytes: rate(|w| w.bytes),
        }
    }

    /// The time left by the newest rates, in seconds: the larger of the
    /// files' and the bytes' figure; `None` if work is left of a kind whose
    /// rate is unknown.
    fn reading(&self, done: Work, total: Work) -> Option<f64> {
        let rates = self.rates();
        let by_files = time_for(total.files.saturating_sub(done.files), rates.files)?;
        let by_bytes = time_for(total.bytes.saturating_sub(done.bytes), rates.bytes)?;
        Some(by_files.max(by_bytes))
    }

    /// The estimate moved towards `reading` from where it has counted down
    /// to; the first reading stands as it is.
    fn smoothed(&self, at: Duration, reading: f64) -> f64 {
        match self.estimate {
            None => reading,
            Some(estimate) => {
                let before = counted_down(estimate, at);
                before + NEW_WEIGHT * (reading - before)
            }
        }
    }
}

impl Sample {
    fn start() -> Sample {
        Sample {
            at: Duration::ZERO,
            done: Work::default(),
        }
    }
}

/// Files and bytes per second.
#[derive(Debug, Clone, Copy)]
struct Rates {
    files: f64,
    bytes: f64,
}

/// Seconds for `left` units at `rate` units a second: none for none left,
/// unknown without a rate.
fn time_for(left: u64, rate: f64) -> Option<f64> {
    match (left, rate > 0.0) {
        (0, _) => Some(0.0),
        (_, true) => Some(left as f64 / rate),
        (_, false) => None,
    }
}

/// The estimate, less the time gone since it was made.
fn counted_down(estimate: Estimate, at: Duration) -> f64 {
    let gone = at.saturating_sub(estimate.at).as_secs_f64();
    (estimate.left - gone).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn work(files: u64, bytes: u64) -> Work {
        Work { files, bytes }
    }

    /// An estimator whose totals were final from the start.
    fn final_from_the_start(total: Work) -> Estimator {
        let mut eta = Estimator::new();
        assert_eq!(eta.observe(ms(0), work(0, 0), Some(total)), None);
        eta
    }

    #[test]
    fn nothing_is_estimated_until_the_totals_are_final() {
        let mut eta = Estimator::new();
        assert_eq!(eta.observe(ms(1000), work(10, 10), None), None);
        assert_eq!(eta.observe(ms(2000), work(20, 20), None), None);
        // Final now, but no rate is measured yet since.
        let total = Some(work(100, 100));
        assert_eq!(eta.observe(ms(2000), work(20, 20), total), None);
        assert_eq!(eta.observe(ms(2200), work(24, 24), total), None);
        // 5 files in 250 ms: 75 more take 3.75 s.
        assert_eq!(eta.observe(ms(2250), work(25, 25), total), Some(ms(3750)));
    }

    #[test]
    fn the_window_starts_again_when_the_totals_become_final() {
        let mut eta = Estimator::new();
        // Slow while counting: 10 files a second.
        eta.observe(ms(1000), work(10, 0), None);
        eta.observe(ms(2000), work(20, 0), None);
        let total = Some(work(1020, 0));
        assert_eq!(eta.observe(ms(2000), work(20, 0), total), None);
        // 250 files in 250 ms since: 750 left take 0.75 s (by the whole
        // run's 120 files a second they would take 6.25 s).
        assert_eq!(eta.observe(ms(2250), work(270, 0), total), Some(ms(750)));
    }

    #[test]
    fn no_rate_no_estimate_and_all_done_is_zero() {
        let total = Some(work(10, 1000));
        let mut eta = final_from_the_start(work(10, 1000));
        assert_eq!(eta.observe(ms(500), work(0, 0), total), None);
        assert_eq!(eta.observe(ms(900), work(10, 1000), total), Some(ms(0)));
    }

    #[test]
    fn small_files_left_are_timed_by_the_file_rate() {
        let mut eta = final_from_the_start(work(100, 10_800));
        // One 900-byte file and 9 of 100 bytes in 1 s (1,800 B/s, 10
        // files/s); left: 90 files of 100 bytes. By bytes 5 s, by files 9 s.
        let total = Some(work(100, 10_800));
        let left = eta.observe(ms(1000), work(10, 1800), total);
        assert_eq!(left, Some(ms(9000)));
    }

    #[test]
    fn large_files_left_are_timed_by_the_byte_rate() {
        let mut eta = final_from_the_start(work(51, 1_050_000));
        // 50 small files of 1 KB in 1 s; left: one file of 1 MB. By files
        // 0.02 s, by bytes 20 s.
        let total = Some(work(51, 1_050_000));
        let left = eta.observe(ms(1000), work(50, 50_000), total);
        assert_eq!(left, Some(ms(20_000)));
    }

    #[test]
    fn between_readings_the_estimate_counts_down_with_the_clock() {
        let mut eta = final_from_the_start(work(100, 100));
        let total = Some(work(100, 100));
        assert_eq!(eta.observe(ms(1000), work(10, 10), total), Some(ms(9000)));
        // 100 ms later no reading is due: the clock alone moves it, even
        // though the work done has jumped.
        assert_eq!(eta.observe(ms(1100), work(50, 50), total), Some(ms(8900)));
    }

    #[test]
    fn a_new_reading_moves_the_estimate_a_quarter_of_the_way() {
        let mut eta = final_from_the_start(work(1000, 1000));
        let total = Some(work(1000, 1000));
        // 100 files in 1 s: 9 s left.
        assert_eq!(eta.observe(ms(1000), work(100, 100), total), Some(ms(9000)));
        // 250 ms later 200 files: 200 / 1.25 s = 160 files/s, 800 left,
        // a reading of 5 s. Counted down, the estimate stood at 8.75 s;
        // a quarter of the way to 5 s is 7.8125 s.
        assert_eq!(eta.observe(ms(1250), work(200, 200), total), Some(ms(7813)));
    }

    #[test]
    fn rates_come_from_the_window_not_the_whole_run() {
        let mut eta = Estimator::new();
        let total = Some(work(10_000, 10_000));
        // A slow start: 10 files a second for 5 s, readings every 250 ms.
        for step in 1..=20u64 {
            eta.observe(ms(250 * step), work(step * 10 / 4, 0), total);
        }
        // Then 1,000 files a second for 5.25 s.
        for step in 1..=21u64 {
            eta.observe(ms(5000 + 250 * step), work(50 + step * 250, 0), total);
        }
        // The window's start is the reading at 5.25 s (300 files): the
        // rate is 5,000 files in 5 s, not 5,300 in 10.25 s.
        assert_eq!(eta.samples[0].at, ms(5250));
        assert_eq!(eta.rates().files, 1000.0);
    }

    #[test]
    fn a_stall_in_the_window_falls_back_to_the_rate_since_the_start() {
        let mut eta = Estimator::new();
        let total = Some(work(100, 100));
        eta.observe(ms(1000), work(50, 50), total);
        // Nothing more for 7 s: the window (3 s to 8 s) saw no progress;
        // since the start 50 files in 8 s, so 50 more take 8 s.
        for step in 1..=28u64 {
            eta.observe(ms(1000 + 250 * step), work(50, 50), total);
        }
        assert_eq!(eta.rates().files, 50.0 / 8.0);
        assert_eq!(eta.bytes_per_sec(), 50.0 / 8.0);
    }

    #[test]
    fn the_window_keeps_a_bounded_number_of_readings() {
        let mut eta = Estimator::new();
        let total = Some(work(1 << 40, 1 << 40));
        for step in 1..=10_000u64 {
            eta.observe(ms(250 * step), work(step, step), total);
        }
        // 5 s of readings every 250 ms, the newest and the window's start.
        assert_eq!(eta.samples.len(), 21);
    }
}
