//! The time left in a run, from the files and the bytes still to copy.
//!
//! Copying small files costs per file (opens, creates, renames, times),
//! large ones per byte, so the time left is modelled as
//! `files left × a + bytes left × b`, from the intervals between
//! readings over a recent window, by the first rule that applies:
//!
//! 1. If the window's latest stretch did work like what is left (its
//!    bytes per file within 1.5 times the rest's), its pace times the rest:
//!    the whole window on a uniform tree, the small files just begun
//!    after the large ones.
//! 2. Else by the costs `a` and `b` from a weighted least-squares fit over
//!    the window's intervals, once the bytes per file varied enough across
//!    them (small files in some, a large file in others) and both costs
//!    came out positive and certain; the last such split is kept for when
//!    they vary no more, rescaled to the window's pace.
//! 3. Else the window only says that the rest takes at least the smaller
//!    of its file rate's and its byte rate's figures (the largest such
//!    bound of its newest stretches): a lower bound, and marked as one
//!    (`ETA 1.2s+`).
//!
//! The window starts again when the totals become final, as the
//! count-ahead, which competed with the copy until then, is over (the
//! rates from before, tried for a first figure at once, told 2-5 times
//! the time left on tmpfs), and the first reading is taken 100 ms later,
//! the others every 250 ms. The estimate counts down with the clock
//! between readings and moves a quarter of the way to each new one, so
//! the figure shown does not jump, unless the new reading is more than
//! twice or under half of it: then the figure shown was wrong and is
//! replaced.
//!
//! The clock is the caller's (time since the run started), so the whole
//! module is pure arithmetic and is tested with a synthetic one.

use std::collections::VecDeque;
use std::time::Duration;

/// How often a reading is taken; observations in between only count the
/// estimate down.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// How soon after the totals become final the first reading is taken:
/// a shorter interval than the others, noisier, but the figure is new
/// and the readings after correct it.
pub(crate) const FIRST_READING: Duration = Duration::from_millis(100);

/// How far back the costs are measured: long enough to even out batches
/// and a neighbour's burst of CPU, short enough to follow a change from
/// large files to small ones.
pub(crate) const WINDOW: Duration = Duration::from_secs(5);

/// The weight of a new reading against the estimate counted down since
/// the last one: a time constant of about a second at one reading every
/// 250 ms.
const NEW_WEIGHT: f64 = 0.25;

/// A new reading more than this many times the figure shown, or under
/// its reciprocal, replaces the figure instead of moving it: smoothing
/// evens out noise, and a figure off by this much is not noise.
const REPLACE_FACTOR: f64 = 2.0;

/// How much the bytes per file must vary across the window's intervals
/// for a fit to tell the cost of a file from the cost of a byte: the
/// squared sine of the angle between the intervals' file counts and
/// their byte counts (as vectors), which for small variations is about
/// the square of the bytes per file's coefficient of variation: 0.01 is
/// a variation of about 10 %.
const MIN_SPREAD: f64 = 0.01;

/// The largest standard error, as a share of the cost, for a fitted cost
/// to be kept. A window of large files, a few small ones finished among
/// them, says little of the cost of the small files to come, whatever
/// the fit makes of it, and that shows in its error.
const MAX_ERROR: f64 = 0.25;

/// The figures for the work left by a stretch's file rate and by its
/// byte rate agree when the larger is at most this many times the
/// smaller: the stretch did work like what is left (its bytes per file
/// within this factor of the rest's), and its pace times the rest.
const AGREE: f64 = 1.5;

/// The fewest intervals (of those the window has) whose pace may time
/// work like theirs: one is a quarter of a second, noisy.
const MIN_LIKE: usize = 2;

/// An amount of work: files (entries of any kind) and bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Work {
    pub(crate) files: u64,
    pub(crate) bytes: u64,
}

/// The time left as shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeLeft {
    pub(crate) left: Duration,
    /// Only a lower bound: no split of the costs is measured yet, and
    /// the work left differs from what the window saw.
    pub(crate) at_least: bool,
}

/// Work done by a moment of the run.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    done: Work,
}

/// Work done between two moments, and the seconds it took.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Interval {
    files: f64,
    bytes: f64,
    secs: f64,
}

/// The seconds a file and a byte cost, as fitted.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Split {
    per_file: f64,
    per_byte: f64,
}

/// A time left in seconds, as the newest rates tell it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Reading {
    left: f64,
    at_least: bool,
}

/// The smoothed time left, as it stood when it was last read.
#[derive(Debug, Clone, Copy)]
struct Estimate {
    at: Duration,
    left: f64,
    at_least: bool,
}

/// Estimates the time left from the work done over time: 50 of 100
/// files done in 5 s leave 5 s.
#[derive(Debug)]
pub(crate) struct Estimator {
    /// Readings, oldest first: the newest, those inside the window, and
    /// the last one at or before its start.
    samples: VecDeque<Sample>,
    estimate: Option<Estimate>,
    /// The last split the window could tell.
    split: Option<Split>,
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
        Estimator {
            samples: VecDeque::from([Sample::start()]),
            estimate: None,
            split: None,
            final_seen: false,
        }
    }

    /// Records that `done` was done `at` this time into the run, and gives
    /// the time left: `None` while `total` is not final (`None`) and until
    /// a rate has been measured.
    pub(crate) fn observe(
        &mut self,
        at: Duration,
        done: Work,
        total: Option<Work>,
    ) -> Option<TimeLeft> {
        match total {
            Some(_) if !self.final_seen => self.totals_became_final(at, done),
            _ if at.saturating_sub(self.newest().at) >= self.reading_due() => {
                self.sample(at, done);
                if let Some(total) = total {
                    self.take_reading(at, done, total);
                }
            }
            _ => {}
        }
        let total = total?;
        if done.files >= total.files && done.bytes >= total.bytes {
            let left = Duration::ZERO;
            return Some(TimeLeft {
                left,
                at_least: false,
            });
        }
        let estimate = self.estimate?;
        let left = counted_down(estimate, at);
        Some(TimeLeft {
            left: Duration::from_millis((left * 1000.0).round() as u64),
            at_least: estimate.at_least,
        })
    }

    /// Bytes per second over the window (since the start, while nothing
    /// moved in it).
    pub(crate) fn bytes_per_sec(&self) -> f64 {
        let newest = self.newest();
        let since = |from: Sample| {
            let secs = newest.at.saturating_sub(from.at).as_secs_f64();
            let moved = newest.done.bytes.saturating_sub(from.done.bytes);
            (secs > 0.0 && moved > 0).then(|| moved as f64 / secs)
        };
        since(self.samples[0])
            .or_else(|| since(Sample::start()))
            .unwrap_or(0.0)
    }

    /// The totals are final from now: the window starts again, as until
    /// now the count-ahead shared the CPUs and the storage with the copy
    /// (on tmpfs the copy ran several times slower meanwhile, so the
    /// rates from before would tell a time several times too long).
    fn totals_became_final(&mut self, at: Duration, done: Work) {
        self.final_seen = true;
        self.samples.clear();
        self.samples.push_back(Sample { at, done });
    }

    /// How long after the newest reading the next is due: sooner while
    /// the totals are final but no time left is known yet, so that the
    /// first figure comes early.
    fn reading_due(&self) -> Duration {
        match self.final_seen && self.estimate.is_none() {
            true => FIRST_READING,
            false => SAMPLE_EVERY,
        }
    }

    /// A reading of the time left, folded into the estimate.
    fn take_reading(&mut self, at: Duration, done: Work, total: Work) {
        self.refit();
        if let Some(reading) = self.reading(done, total) {
            self.estimate = Some(self.next_estimate(at, reading));
        }
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

    /// The intervals between the window's readings.
    fn intervals(&self) -> Vec<Interval> {
        let pairs = self.samples.iter().zip(self.samples.iter().skip(1));
        pairs.map(|(from, to)| between(*from, *to)).collect()
    }

    /// Keeps the split the window tells, if it tells one.
    fn refit(&mut self) {
        if let Some(split) = fit(&self.intervals()) {
            self.split = Some(split);
        }
    }

    /// The work done over the window and its time; since the start, if
    /// nothing moved in the window; `None` if nothing moved at all.
    fn pace(&self) -> Option<Interval> {
        let newest = self.newest();
        let moved = |i: &Interval| i.files > 0.0 || i.bytes > 0.0;
        Some(between(self.samples[0], newest))
            .filter(moved)
            .or_else(|| Some(between(Sample::start(), newest)).filter(moved))
    }

    /// The time left by the window: at the pace of its latest stretch of
    /// work like what is left, if one did such work; else by the split,
    /// rescaled so that it explains the window's time; else, with none
    /// measured, the lower bound the file and byte rates give (over the
    /// whole run, if nothing moved in the window).
    fn reading(&self, done: Work, total: Work) -> Option<Reading> {
        let left = Interval {
            files: total.files.saturating_sub(done.files) as f64,
            bytes: total.bytes.saturating_sub(done.bytes) as f64,
            secs: 0.0,
        };
        let intervals = self.intervals();
        if let Some(left) = like_recent(&intervals, &left) {
            let at_least = false;
            return Some(Reading { left, at_least });
        }
        let pace = self.pace()?;
        if let Some(split) = self.split {
            let explained = split.cost(&pace);
            if explained > 0.0 {
                let left = split.cost(&left) * pace.secs / explained;
                let at_least = false;
                return Some(Reading { left, at_least });
            }
        }
        newest_bound(&intervals, &left).or_else(|| lower_bound(&left, &pace))
    }

    /// The estimate moved towards `reading` from where it has counted down
    /// to, or replaced by it: the first reading and one far from the
    /// figure shown stand as they are.
    fn next_estimate(&self, at: Duration, reading: Reading) -> Estimate {
        let left = match self.estimate {
            Some(estimate) => {
                let before = counted_down(estimate, at);
                let far = reading.left > REPLACE_FACTOR * before
                    || reading.left * REPLACE_FACTOR < before;
                match far {
                    true => reading.left,
                    false => before + NEW_WEIGHT * (reading.left - before),
                }
            }
            None => reading.left,
        };
        Estimate {
            at,
            left,
            at_least: reading.at_least,
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

impl Split {
    /// The seconds `work` costs.
    fn cost(&self, work: &Interval) -> f64 {
        self.per_file * work.files + self.per_byte * work.bytes
    }
}

impl Interval {
    fn plus(&self, other: &Interval) -> Interval {
        Interval {
            files: self.files + other.files,
            bytes: self.bytes + other.bytes,
            secs: self.secs + other.secs,
        }
    }
}

/// The time `left` takes at `pace`, if `pace` did work like it: its file
/// rate and its byte rate time `left` alike (see [`AGREE`]), or it moved
/// only the kind of work that is left. The mean of the two figures.
fn alike(left: &Interval, pace: &Interval) -> Option<f64> {
    let by_files = (pace.files > 0.0).then(|| left.files * pace.secs / pace.files);
    let by_bytes = (pace.bytes > 0.0).then(|| left.bytes * pace.secs / pace.bytes);
    match (by_files, by_bytes) {
        (Some(files), Some(bytes)) => {
            let agree = files.max(bytes) <= AGREE * files.min(bytes);
            agree.then_some((files + bytes) / 2.0)
        }
        (Some(files), None) => (left.bytes == 0.0).then_some(files),
        (None, Some(bytes)) => (left.files == 0.0).then_some(bytes),
        (None, None) => None,
    }
}

/// The window's newest stretches: its newest interval and those before
/// it, one more each time, from `shortest` of them (or all, if fewer) to
/// the whole window.
fn stretches(intervals: &[Interval], shortest: usize) -> impl Iterator<Item = Interval> + '_ {
    let shortest = intervals.len().min(shortest).max(1);
    let sums = intervals.iter().rev().scan(Interval::default(), |sum, i| {
        *sum = sum.plus(i);
        Some(*sum)
    });
    sums.skip(shortest - 1)
}

/// The time `left` takes at the pace of the longest of the newest
/// stretches that did work like it; `None` if none did. Large files
/// copied first and small ones now are timed by the small ones' pace,
/// not by a fit still short of them.
fn like_recent(intervals: &[Interval], left: &Interval) -> Option<f64> {
    let stretches = stretches(intervals, MIN_LIKE);
    stretches.filter_map(|s| alike(left, &s)).last()
}

/// The largest of the lower bounds the newest stretches give, down to
/// the newest interval alone: each stretch, if the costs held over it,
/// bounds the rest, and the one of large files just begun bounds the
/// large ones left by their own pace where the whole window, small files
/// in it, would bound them by nearly nothing.
fn newest_bound(intervals: &[Interval], left: &Interval) -> Option<Reading> {
    let bounds = stretches(intervals, 1).filter_map(|s| lower_bound(left, &s));
    bounds.max_by(|a, b| a.left.total_cmp(&b.left))
}

/// The work done from one reading to another.
fn between(from: Sample, to: Sample) -> Interval {
    Interval {
        files: to.done.files.saturating_sub(from.done.files) as f64,
        bytes: to.done.bytes.saturating_sub(from.done.bytes) as f64,
        secs: to.at.saturating_sub(from.at).as_secs_f64(),
    }
}

/// The weighted sums of the least-squares fit's normal equations, over
/// the intervals of a positive length.
#[derive(Debug, Default)]
struct Sums {
    ff: f64,
    bb: f64,
    fb: f64,
    ft: f64,
    bt: f64,
}

impl Sums {
    /// Each interval weighted by the inverse of its length, as the noise
    /// in its time grows with it.
    fn of(intervals: &[Interval]) -> Sums {
        let mut sums = Sums::default();
        for i in intervals {
            let w = 1.0 / i.secs;
            sums.ff += w * i.files * i.files;
            sums.bb += w * i.bytes * i.bytes;
            sums.fb += w * i.files * i.bytes;
            sums.ft += w * i.files * i.secs;
            sums.bt += w * i.bytes * i.secs;
        }
        sums
    }

    fn det(&self) -> f64 {
        self.ff * self.bb - self.fb * self.fb
    }
}

/// The costs of a file and a byte that best explain the intervals' times
/// (weighted least squares), scaled so that they explain the intervals'
/// whole time; `None` where the intervals cannot tell the two apart:
/// the bytes per file varied too little (see [`MIN_SPREAD`]), or a cost
/// came out negative, or uncertain (see [`MAX_ERROR`]).
fn fit(intervals: &[Interval]) -> Option<Split> {
    let timed: Vec<Interval> = intervals.iter().filter(|i| i.secs > 0.0).copied().collect();
    let sums = Sums::of(&timed);
    if sums.ff <= 0.0 || sums.bb <= 0.0 || sums.det() < MIN_SPREAD * sums.ff * sums.bb {
        return None;
    }
    let det = sums.det();
    let raw = Split {
        per_file: (sums.ft * sums.bb - sums.bt * sums.fb) / det,
        per_byte: (sums.bt * sums.ff - sums.ft * sums.fb) / det,
    };
    if !known_well(&timed, &sums, raw) {
        return None;
    }
    let whole = timed.iter().fold(Interval::default(), |sum, i| sum.plus(i));
    let scale = whole.secs / raw.cost(&whole);
    Some(Split {
        per_file: raw.per_file * scale,
        per_byte: raw.per_byte * scale,
    })
}

/// Whether both costs are positive and their standard errors (from the
/// fit's residuals) within [`MAX_ERROR`] of them: a cost measured on a
/// handful of files, however the fit splits the time, is not known.
fn known_well(timed: &[Interval], sums: &Sums, split: Split) -> bool {
    if split.per_file <= 0.0 || split.per_byte <= 0.0 || timed.len() < 3 {
        return false;
    }
    let squares: f64 = timed
        .iter()
        .map(|i| (i.secs - split.cost(i)).powi(2) / i.secs)
        .sum();
    let variance = squares / (timed.len() - 2) as f64;
    let error_file = (variance * sums.bb / sums.det()).sqrt();
    let error_byte = (variance * sums.ff / sums.det()).sqrt();
    error_file <= MAX_ERROR * split.per_file && error_byte <= MAX_ERROR * split.per_byte
}

/// With no split, the rest takes at least the smaller of the times the
/// file rate and the byte rate of `pace` give for it: any split of
/// `pace`'s time into a cost per file and one per byte gives a figure
/// between the two. Marked as a lower bound unless the two agree. Where
/// one kind of work did not move, the other's cost is exact and its own
/// unknown.
fn lower_bound(left: &Interval, pace: &Interval) -> Option<Reading> {
    let by_files = || left.files * pace.secs / pace.files;
    let by_bytes = || left.bytes * pace.secs / pace.bytes;
    let reading = match (pace.files > 0.0, pace.bytes > 0.0) {
        (true, true) => {
            let (files, bytes) = (by_files(), by_bytes());
            let (low, high) = (files.min(bytes), files.max(bytes));
            Reading {
                left: low,
                at_least: high > AGREE * low,
            }
        }
        (true, false) => Reading {
            left: by_files(),
            at_least: left.bytes > 0.0,
        },
        (false, true) => Reading {
            left: by_bytes(),
            at_least: left.files > 0.0,
        },
        (false, false) => return None,
    };
    Some(reading)
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

    /// An estimate of `millis`, not a lower bound.
    fn about(millis: u64) -> Option<TimeLeft> {
        let left = ms(millis);
        let at_least = false;
        Some(TimeLeft { left, at_least })
    }

    /// A lower bound of `millis`.
    fn at_least(millis: u64) -> Option<TimeLeft> {
        let left = ms(millis);
        let at_least = true;
        Some(TimeLeft { left, at_least })
    }

    fn interval(files: f64, bytes: f64, secs: f64) -> Interval {
        Interval { files, bytes, secs }
    }

    /// Whether `got` is `want` to a relative 1e-9.
    fn close(got: f64, want: f64) -> bool {
        (got - want).abs() <= 1e-9 * want.abs()
    }

    /// An estimator whose totals were final from the start.
    fn final_from_the_start(total: Work) -> Estimator {
        let mut eta = Estimator::new();
        assert_eq!(eta.observe(ms(0), work(0, 0), Some(total)), None);
        eta
    }

    /// Small files cost 0.1 ms each, bytes 1 ns each: four intervals of
    /// 250 ms copying 2,000 small files (0.2 s) and 50 MB of them (0.05 s),
    /// then four copying 250 MB of large files and finishing none.
    fn small_then_large() -> Vec<Interval> {
        let small = interval(2000.0, 50e6, 0.25);
        let large = interval(0.0, 250e6, 0.25);
        [[small; 4], [large; 4]].concat()
    }

    #[test]
    fn nothing_is_estimated_while_the_totals_are_open() {
        let mut eta = Estimator::new();
        assert_eq!(eta.observe(ms(1000), work(10, 10), None), None);
        assert_eq!(eta.observe(ms(2000), work(20, 20), None), None);
    }

    #[test]
    fn the_window_starts_again_at_final_totals_and_reads_soon() {
        let mut eta = Estimator::new();
        // Slow while counting: 10 files a second.
        eta.observe(ms(1000), work(10, 0), None);
        eta.observe(ms(2000), work(20, 0), None);
        let total = Some(work(1020, 0));
        assert_eq!(eta.observe(ms(2000), work(20, 0), total), None);
        // 100 files in the 100 ms since: 900 left take 0.9 s (at the rate
        // since the start they would take 90 s).
        assert_eq!(eta.observe(ms(2100), work(120, 0), total), about(900));
        // The next reading comes 250 ms later, not sooner.
        assert_eq!(eta.observe(ms(2200), work(220, 0), total), about(800));
    }

    #[test]
    fn no_rate_no_estimate_and_all_done_is_zero() {
        let total = Some(work(10, 1000));
        let mut eta = final_from_the_start(work(10, 1000));
        assert_eq!(eta.observe(ms(500), work(0, 0), total), None);
        assert_eq!(eta.observe(ms(900), work(10, 1000), total), about(0));
    }

    #[test]
    fn work_left_like_the_windows_is_estimated_plainly() {
        // 10 files of 1,000 bytes in 1 s; left 90 files of 1,000 bytes.
        let mut eta = final_from_the_start(work(100, 100_000));
        let total = Some(work(100, 100_000));
        assert_eq!(eta.observe(ms(1000), work(10, 10_000), total), about(9000));
        // Left 90 files of 1,222 bytes: 11 s by bytes, 9 s by files; they
        // agree within 1.5 times, and their mean stands.
        let more = work(100, 120_000);
        let reading = eta.reading(work(10, 10_000), more);
        let want = Reading {
            left: 10.0,
            at_least: false,
        };
        assert_eq!(reading, Some(want));
    }

    #[test]
    fn small_files_seen_and_large_ones_left_give_a_lower_bound() {
        // 10 files of 100 bytes in 1 s; left: 90 of them and one of 1 MB.
        // By files 9.1 s, by bytes 1,009 s: at least 9.1 s.
        let total = work(101, 1_010_000);
        let mut eta = final_from_the_start(total);
        let left = eta.observe(ms(1000), work(10, 1000), Some(total));
        assert_eq!(left, at_least(9100));
    }

    #[test]
    fn large_files_with_none_finished_give_the_byte_rates_lower_bound() {
        // 100 MB in 1 s and no file finished; left: 100 MB in 2 files. By
        // bytes 1 s; what the files cost besides is unknown.
        let total = work(2, 200_000_000);
        let mut eta = final_from_the_start(total);
        let left = eta.observe(ms(1000), work(0, 100_000_000), Some(total));
        assert_eq!(left, at_least(1000));
    }

    #[test]
    fn the_largest_bound_of_the_newest_stretches_stands() {
        // Small files for 1 s, then large ones for 0.5 s, none finished.
        let small = interval(2000.0, 4e6, 0.25);
        let large = interval(0.0, 250e6, 0.25);
        let window = [[small; 4].as_slice(), &[large; 2]].concat();
        // Left: the 4 large files, 1 GB. The whole window bounds it by
        // 4 files at its file rate, 0.75 ms; the large files' stretch by
        // the 1 GB at their byte rate, 1 s.
        let left = interval(4.0, 1e9, 0.0);
        let bound = newest_bound(&window, &left).expect("a bound");
        assert!(close(bound.left, 1.0) && bound.at_least, "{bound:?}");
        // One interval of them is enough.
        let newest = &window[..5];
        let bound = newest_bound(newest, &left).expect("a bound");
        assert!(close(bound.left, 1.0) && bound.at_least, "{bound:?}");
        let whole = window
            .iter()
            .fold(Interval::default(), |sum, i| sum.plus(i));
        let weak = lower_bound(&left, &whole).expect("a bound");
        assert!(close(weak.left, 4.0 * 1.5 / 8000.0), "{weak:?}");
    }

    #[test]
    fn the_fit_tells_the_cost_of_a_file_from_that_of_a_byte() {
        let split = fit(&small_then_large()).expect("a split");
        assert!(close(split.per_file, 1e-4), "{split:?}");
        assert!(close(split.per_byte, 1e-9), "{split:?}");
    }

    #[test]
    fn the_fitted_split_times_the_work_left() {
        let total = work(28_000, 1_700_000_000);
        let mut eta = final_from_the_start(total);
        let mut done = work(0, 0);
        for (step, i) in (1..).zip(small_then_large()) {
            done.files += i.files as u64;
            done.bytes += i.bytes as u64;
            eta.observe(ms(250 * step), done, Some(total));
        }
        // Left: 20,000 files (2 s) and 500 MB (0.5 s), like no stretch of
        // the window (all of it: 5 s by files, 0.83 s by bytes).
        let reading = eta.reading(done, total);
        assert!(
            reading.is_some_and(|r| close(r.left, 2.5) && !r.at_least),
            "{reading:?}"
        );
    }

    #[test]
    fn work_left_like_the_latest_stretch_is_timed_by_its_pace() {
        // Large files for 1 s, then small files for 0.5 s: 4,000 files of
        // 2,000 bytes. Left: 16,000 more of them, 2 s at that pace.
        let mut eta = final_from_the_start(work(20_000, 1_040_000_000));
        let steps = [(0, 250e6), (0, 500e6), (0, 750e6), (0, 1000e6)];
        let small = [(2000, 1004e6), (4000, 1008e6)];
        for (step, (files, bytes)) in (1..).zip(steps.into_iter().chain(small)) {
            eta.observe(ms(250 * step), work(files, bytes as u64), None);
        }
        let reading = eta.reading(work(4000, 1_008_000_000), work(20_000, 1_040_000_000));
        assert!(
            reading.is_some_and(|r| close(r.left, 2.0) && !r.at_least),
            "{reading:?}"
        );
    }

    #[test]
    fn bytes_per_file_varying_under_a_tenth_tell_no_split() {
        // Files cost 0.1 ms, bytes 0.1 µs: the bytes per file vary by 20 %
        // (a fit), or by 4 % (none).
        let costs = |files: f64, bytes: f64| interval(files, bytes, 1e-4 * files + 1e-7 * bytes);
        let varied = [costs(1000.0, 0.8e6), costs(1000.0, 1.2e6)];
        let split = fit(&varied.repeat(3)).expect("a split");
        assert!(
            close(split.per_file, 1e-4) && close(split.per_byte, 1e-7),
            "{split:?}"
        );
        let alike = [costs(1000.0, 0.96e6), costs(1000.0, 1.04e6)];
        assert_eq!(fit(&alike.repeat(3)), None);
    }

    #[test]
    fn a_cost_uncertain_or_negative_is_no_split() {
        // Large files, two small ones finished among them, the times a
        // little noisy: 10 ms a file by the fit, but give or take more.
        let large = |secs| interval(0.0, 250e6, secs);
        let finished = interval(1.0, 250e6, 0.26);
        let noisy = [large(0.25), large(0.24), finished, large(0.26), finished];
        assert_eq!(fit(&noisy), None);
        // Without the noise the same intervals tell 10 ms a file.
        let exact = [large(0.25), large(0.25), finished, large(0.25), finished];
        let split = fit(&exact).expect("a split");
        assert!(
            close(split.per_file, 0.01) && close(split.per_byte, 1e-9),
            "{split:?}"
        );
        // The ones that finished a file went faster: a negative cost.
        let faster = interval(1.0, 250e6, 0.2);
        assert_eq!(fit(&[large(0.25), large(0.25), faster, large(0.25)]), None);
    }

    #[test]
    fn a_kept_split_is_rescaled_to_the_windows_pace() {
        let total = work(12_000, 1_050_000_000);
        let mut eta = final_from_the_start(total);
        eta.split = Some(Split {
            per_file: 1e-4,
            per_byte: 1e-9,
        });
        // Small files at half the pace the split was fitted at: 1,000
        // files and 25 MB (0.125 s by the split) in each 250 ms.
        eta.observe(ms(250), work(1000, 25_000_000), Some(total));
        eta.observe(ms(500), work(2000, 50_000_000), Some(total));
        // Left: 10,000 files and 1 GB, 2 s by the split, 4 s at this pace.
        let reading = eta.reading(work(2000, 50_000_000), total);
        assert!(
            reading.is_some_and(|r| close(r.left, 4.0) && !r.at_least),
            "{reading:?}"
        );
    }

    #[test]
    fn between_readings_the_estimate_counts_down_with_the_clock() {
        let mut eta = final_from_the_start(work(100, 100));
        let total = Some(work(100, 100));
        assert_eq!(eta.observe(ms(1000), work(10, 10), total), about(9000));
        // 100 ms later no reading is due: the clock alone moves it, even
        // though the work done has jumped.
        assert_eq!(eta.observe(ms(1100), work(50, 50), total), about(8900));
    }

    #[test]
    fn a_close_reading_moves_the_estimate_a_quarter_of_the_way() {
        let mut eta = final_from_the_start(work(1000, 1000));
        let total = Some(work(1000, 1000));
        // 100 files in 1 s: 9 s left.
        assert_eq!(eta.observe(ms(1000), work(100, 100), total), about(9000));
        // 250 ms later 200 files: 200 / 1.25 s = 160 files/s, 800 left,
        // a reading of 5 s. Counted down, the estimate stood at 8.75 s;
        // a quarter of the way to 5 s is 7.8125 s.
        assert_eq!(eta.observe(ms(1250), work(200, 200), total), about(7813));
    }

    #[test]
    fn a_reading_over_twice_or_under_half_the_figure_replaces_it() {
        let total = Some(work(1000, 1000));
        let mut faster = final_from_the_start(work(1000, 1000));
        assert_eq!(faster.observe(ms(1000), work(100, 100), total), about(9000));
        // 400 files by 1.25 s: 600 left at 320 a second, 1.875 s, under
        // half the 8.75 s counted down to.
        assert_eq!(faster.observe(ms(1250), work(400, 400), total), about(1875));
        let mut stalled = final_from_the_start(work(1000, 1000));
        assert_eq!(
            stalled.observe(ms(1000), work(500, 500), total),
            about(1000)
        );
        // Nothing more by 1.9 s: 500 left at 500 in 1.9 s take 1.9 s,
        // over twice the 0.1 s counted down to.
        assert_eq!(
            stalled.observe(ms(1900), work(500, 500), total),
            about(1900)
        );
    }

    #[test]
    fn the_rate_comes_from_the_window_not_the_whole_run() {
        let mut eta = Estimator::new();
        let total = Some(work(10_000, 10_000));
        // A slow start: 10 bytes a second for 5 s, readings every 250 ms.
        for step in 1..=20u64 {
            eta.observe(ms(250 * step), work(0, step * 10 / 4), total);
        }
        // Then 1,000 bytes a second for 5.25 s.
        for step in 1..=21u64 {
            eta.observe(ms(5000 + 250 * step), work(0, 50 + step * 250), total);
        }
        // The window's start is the reading at 5.25 s (300 bytes): the
        // rate is 5,000 bytes in 5 s, not 5,300 in 10.25 s.
        assert_eq!(eta.samples[0].at, ms(5250));
        assert_eq!(eta.bytes_per_sec(), 1000.0);
    }

    #[test]
    fn a_stall_in_the_window_falls_back_to_the_pace_since_the_start() {
        let mut eta = Estimator::new();
        let total = Some(work(100, 100));
        eta.observe(ms(1000), work(50, 50), total);
        // Nothing more for 7 s: the window (3 s to 8 s) saw no progress;
        // since the start 50 files in 8 s, so 50 more take 8 s.
        for step in 1..=28u64 {
            eta.observe(ms(1000 + 250 * step), work(50, 50), total);
        }
        assert_eq!(eta.bytes_per_sec(), 50.0 / 8.0);
        let reading = eta.reading(work(50, 50), work(100, 100));
        assert!(
            reading.is_some_and(|r| close(r.left, 8.0) && !r.at_least),
            "{reading:?}"
        );
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
