//! Deciding when the worker pool grows: without an explicit `-j`, on a
//! mount where workers mostly wait, the pool doubles while each doubling
//! raises the copy's rate (see the README's "Default -j").
//!
//! The rule, fed one [`Sample`] at a time by the supervisor: completions
//! are counted in windows of [`WINDOW`]; once the walk is over and the
//! last two windows at the current size are steady (within
//! [`STEADY_PERCENT`] of each other), the pool doubles (up to the cap) if
//! at least [`JOBS_PER_NEW_WORKER`] jobs are left for each new worker.
//! The first whole window after the step is judged against the trend of
//! the two before it, projected one window on: files/s or bytes/s at least
//! [`GAIN_NUM`]/[`GAIN_DEN`] of the projection, and growth goes on; less,
//! and it stops for good. A failed step is not undone: shrinking a pool of
//! waiting workers saves nothing but a few idle threads, while the step
//! may only have been judged in a noisy window.
//!
//! Nothing here reads a clock or touches the pool, so every decision is
//! tested with made-up samples.

use std::num::NonZeroUsize;
use std::time::Duration;

/// The span completions are counted over.
pub(crate) const WINDOW: Duration = Duration::from_secs(1);
/// Jobs left for each worker a step adds: fewer, and the new workers
/// would mostly start, find nothing and exit.
pub(crate) const JOBS_PER_NEW_WORKER: u64 = 4;
/// Two windows differ by at most this percentage of the larger one to
/// count as steady.
pub(crate) const STEADY_PERCENT: u64 = 20;
/// A step must raise a rate to at least `GAIN_NUM / GAIN_DEN` of its
/// projected trend.
pub(crate) const GAIN_NUM: f64 = 6.0;
pub(crate) const GAIN_DEN: f64 = 5.0;

/// How far the pool may grow, as the configuration decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GrowSetup {
    /// The most workers: as many as the start where the pool never grows
    /// (`-j`, a local tree), and within the descriptor budget.
    pub(crate) most: NonZeroUsize,
    /// `PCOPY_TEST_GROW`'s outcomes, which replace the rule's judgement.
    pub(crate) forced: Option<Vec<bool>>,
}

/// What the supervisor knows at one moment of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    /// Time since the run started.
    pub(crate) at: Duration,
    /// Jobs completed so far.
    pub(crate) files: u64,
    /// Bytes copied so far.
    pub(crate) bytes: u64,
    /// Whether the walk has queued its last job.
    pub(crate) walk_done: bool,
    /// Jobs announced and not completed (queued or in a worker's hands).
    pub(crate) jobs_left: u64,
}

/// Completions per second over one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rate {
    pub(crate) files: f64,
    pub(crate) bytes: f64,
}

/// A doubling the supervisor is to make now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Step {
    pub(crate) from: usize,
    pub(crate) to: usize,
    /// The rate the step is judged against (`None`: a forced step).
    pub(crate) projected: Option<Rate>,
}

/// How a step turned out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Verdict {
    /// The pool's size after the step (it stays, judged good or not).
    pub(crate) workers: usize,
    /// The window's rate over the projected one (`None`: forced).
    pub(crate) gain: Option<Rate>,
    /// Whether growth goes on.
    pub(crate) passed: bool,
}

/// What the supervisor is told to do or say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Event {
    /// Resize the pool to `step.to` and start that many worker tasks.
    Grow(Step),
    /// A step was judged (print it under `-v`).
    Judged(Verdict),
}

/// Where the rule stands.
#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Counting windows at the current size.
    Watching,
    /// A step was made; the next whole window judges it.
    Judging { projected: Rate },
    /// No more steps: one failed, or the cap is reached.
    Stopped,
    /// `PCOPY_TEST_GROW`: the outcomes of the steps, in order, taken as
    /// soon as the walk is over; `judging`: a step awaits its outcome.
    Forced { outcomes: Vec<bool>, judging: bool },
}

/// The growth rule for one run (see the module's text).
#[derive(Debug, Clone)]
pub(crate) struct Grower {
    workers: usize,
    cap: usize,
    state: State,
    /// Where the open window began.
    window: Sample,
    /// The windows closed at the current size, the last two at most.
    rates: Vec<Rate>,
}

impl Grower {
    /// The rule `setup` asks for, for a pool started with `start`.
    pub(crate) fn for_setup(start: usize, setup: &GrowSetup) -> Grower {
        match &setup.forced {
            Some(outcomes) => Grower::forced(start, setup.most.get(), outcomes.clone()),
            None => Grower::new(start, setup.most.get()),
        }
    }

    /// A rule for a pool started with `start` workers that may grow to
    /// `cap`; it never grows when `cap <= start`.
    pub(crate) fn new(start: usize, cap: usize) -> Grower {
        Grower {
            workers: start,
            cap,
            state: match cap > start {
                true => State::Watching,
                false => State::Stopped,
            },
            window: Sample {
                at: Duration::ZERO,
                files: 0,
                bytes: 0,
                walk_done: false,
                jobs_left: 0,
            },
            rates: Vec::new(),
        }
    }

    /// A rule whose steps pass or fail as `outcomes` says, one after the
    /// other as soon as the walk is over, whatever the rates and the jobs
    /// left (the test hook `PCOPY_TEST_GROW`).
    pub(crate) fn forced(start: usize, cap: usize, outcomes: Vec<bool>) -> Grower {
        let mut grower = Grower::new(start, cap);
        if grower.state == State::Watching {
            grower.state = State::Forced {
                outcomes,
                judging: false,
            };
        }
        grower
    }

    /// Takes in `sample`; returns what to do now, if anything. Call again
    /// with the same sample until it returns `None`: a forced rule may
    /// have several events at once.
    pub(crate) fn observe(&mut self, sample: Sample) -> Option<Event> {
        if let State::Forced { .. } = self.state {
            return self.forced_event(sample);
        }
        if self.state == State::Stopped || sample.at < self.window.at + WINDOW {
            return None;
        }
        let secs = (sample.at - self.window.at).as_secs_f64();
        let rate = Rate {
            files: sample.files.saturating_sub(self.window.files) as f64 / secs,
            bytes: sample.bytes.saturating_sub(self.window.bytes) as f64 / secs,
        };
        self.window = sample;
        match self.state {
            State::Judging { projected } => Some(Event::Judged(self.judge(projected, rate))),
            _ => {
                self.rates.push(rate);
                if self.rates.len() > 2 {
                    self.rates.remove(0);
                }
                self.step(sample).map(Event::Grow)
            }
        }
    }

    /// A step if the rates are steady, the walk is over and enough jobs
    /// are left.
    fn step(&mut self, sample: Sample) -> Option<Step> {
        let [before, last] = self.rates[..] else {
            return None;
        };
        let to = (2 * self.workers).min(self.cap);
        let new = (to - self.workers) as u64;
        let flows = last.files > 0.0 || last.bytes > 0.0;
        if !sample.walk_done
            || !flows
            || !steady(before, last)
            || sample.jobs_left < JOBS_PER_NEW_WORKER * new
        {
            return None;
        }
        let projected = Rate {
            files: project(before.files, last.files),
            bytes: project(before.bytes, last.bytes),
        };
        let step = Step {
            from: self.workers,
            to,
            projected: Some(projected),
        };
        self.workers = to;
        self.rates.clear();
        self.state = State::Judging { projected };
        Some(step)
    }

    /// Judges the step that led to `rate`.
    fn judge(&mut self, projected: Rate, rate: Rate) -> Verdict {
        let gain = Rate {
            files: ratio(rate.files, projected.files),
            bytes: ratio(rate.bytes, projected.bytes),
        };
        let enough = GAIN_NUM / GAIN_DEN;
        let passed = gain.files >= enough || gain.bytes >= enough;
        // The judged window is the first at the new size: it counts
        // towards the next step's steadiness.
        self.rates = vec![rate];
        self.state = match passed && self.workers < self.cap {
            true => State::Watching,
            false => State::Stopped,
        };
        Verdict {
            workers: self.workers,
            gain: Some(gain),
            passed,
        }
    }

    fn forced_event(&mut self, sample: Sample) -> Option<Event> {
        let State::Forced { outcomes, judging } = &mut self.state else {
            return None;
        };
        if !sample.walk_done {
            return None;
        }
        if *judging {
            *judging = false;
            let passed = !outcomes.is_empty() && outcomes.remove(0);
            if !passed || self.workers >= self.cap {
                self.state = State::Stopped;
            }
            return Some(Event::Judged(Verdict {
                workers: self.workers,
                gain: None,
                passed,
            }));
        }
        if outcomes.is_empty() {
            self.state = State::Stopped;
            return None;
        }
        *judging = true;
        let step = Step {
            from: self.workers,
            to: (2 * self.workers).min(self.cap),
            projected: None,
        };
        self.workers = step.to;
        Some(Event::Grow(step))
    }

    /// The pool could only grow to `workers` (a worker failed to start):
    /// the rule counts those, and stops.
    pub(crate) fn stalled(&mut self, workers: usize) {
        self.workers = workers;
        self.state = State::Stopped;
    }
}

/// Whether two windows' rates are within [`STEADY_PERCENT`] of each
/// other, in files and in bytes.
fn steady(a: Rate, b: Rate) -> bool {
    let close = |x: f64, y: f64| (x - y).abs() * 100.0 <= x.max(y) * STEADY_PERCENT as f64;
    close(a.files, b.files) && close(a.bytes, b.bytes)
}

/// The rate one window after `last` if it goes on as from `before` to
/// `last` (steady windows keep it within a fifth of `last`).
fn project(before: f64, last: f64) -> f64 {
    (2.0 * last - before).max(0.0)
}

/// `measured / projected`; a projection of nothing tells nothing, so it
/// counts as no gain.
fn ratio(measured: f64, projected: f64) -> f64 {
    match projected > 0.0 {
        true => measured / projected,
        false => 0.0,
    }
}

/// A step as `-v` prints it: `workers 128 -> 256 (trend: 1520 files/s,
/// 30.1 MiB/s)`.
pub(crate) fn describe_step(step: &Step) -> String {
    let why = match step.projected {
        Some(rate) => format!(
            "trend: {:.0} files/s, {:.1} MiB/s",
            rate.files,
            rate.bytes / (1 << 20) as f64
        ),
        None => "forced".to_string(),
    };
    format!("workers {} -> {} ({why})", step.from, step.to)
}

/// A verdict as `-v` prints it: `workers 256: 1.31x files/s, 1.05x bytes/s
/// of the trend: growth goes on`.
pub(crate) fn describe_verdict(verdict: &Verdict) -> String {
    let gain = match verdict.gain {
        Some(gain) => format!(
            "{:.2}x files/s, {:.2}x bytes/s of the trend",
            gain.files, gain.bytes
        ),
        None => "forced".to_string(),
    };
    let next = match verdict.passed {
        true => "growth goes on",
        false => "growth stops",
    };
    format!("workers {}: {gain}: {next}", verdict.workers)
}

/// What `PCOPY_TEST_GROW` forces: the start, and each step's outcome
/// (`true`: it pays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Forced {
    pub(crate) start: NonZeroUsize,
    pub(crate) outcomes: Vec<bool>,
}

/// Parses `PCOPY_TEST_GROW`: `START:OUTCOMES`, the workers to start with
/// and the steps' outcomes, each `pass` or `fail`, comma-separated
/// (`2:pass,fail`).
pub(crate) fn parse_forced(spec: &str) -> Result<Forced, String> {
    let bad = || format!("PCOPY_TEST_GROW={spec:?}: want START:pass|fail,...");
    let (start, outcomes) = spec.split_once(':').ok_or_else(bad)?;
    let start = start.parse::<usize>().ok().and_then(NonZeroUsize::new);
    let start = start.ok_or_else(bad)?;
    let outcomes = outcomes
        .split(',')
        .filter(|word| !word.is_empty())
        .map(|word| match word {
            "pass" => Ok(true),
            "fail" => Ok(false),
            _ => Err(bad()),
        })
        .collect::<Result<Vec<bool>, String>>()?;
    Ok(Forced { start, outcomes })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Samples a second apart from `t0` seconds, at `files_per_s` files
    /// (and 1000 bytes a file), the walk over, plenty of jobs left.
    struct Feed {
        at: f64,
        files: u64,
        walk_done: bool,
        jobs_left: u64,
    }

    impl Feed {
        fn new() -> Feed {
            Feed {
                at: 0.0,
                files: 0,
                walk_done: true,
                jobs_left: 100_000,
            }
        }

        /// One more second at `files_per_s`.
        fn second(&mut self, files_per_s: u64) -> Sample {
            self.at += 1.0;
            self.files += files_per_s;
            Sample {
                at: Duration::from_secs_f64(self.at),
                files: self.files,
                bytes: self.files * 1000,
                walk_done: self.walk_done,
                jobs_left: self.jobs_left,
            }
        }
    }

    fn grow_event(event: Option<Event>) -> Step {
        match event {
            Some(Event::Grow(step)) => step,
            other => panic!("want a step, got {other:?}"),
        }
    }

    fn verdict(event: Option<Event>) -> Verdict {
        match event {
            Some(Event::Judged(verdict)) => verdict,
            other => panic!("want a verdict, got {other:?}"),
        }
    }

    #[test]
    fn doubles_after_two_steady_windows_and_goes_on_while_each_step_pays() {
        let mut rule = Grower::new(32, 128);
        let mut feed = Feed::new();
        assert_eq!(rule.observe(feed.second(1000)), None);
        let step = grow_event(rule.observe(feed.second(1000)));
        assert_eq!((step.from, step.to), (32, 64));
        let projected = step.projected.unwrap();
        assert_eq!((projected.files, projected.bytes), (1000.0, 1_000_000.0));
        // 1.3x the trend: passed, and the judged window is the first of
        // two at 64.
        let judged = verdict(rule.observe(feed.second(1300)));
        assert!(judged.passed);
        assert_eq!(judged.gain.unwrap().files, 1.3);
        let step = grow_event(rule.observe(feed.second(1300)));
        assert_eq!((step.from, step.to), (64, 128));
        let judged = verdict(rule.observe(feed.second(2000)));
        // Passed, but at the cap: the rule stops.
        assert_eq!((judged.passed, judged.workers), (true, 128));
        for _ in 0..4 {
            assert_eq!(rule.observe(feed.second(2000)), None);
        }
        assert_eq!(rule.workers, 128);
    }

    #[test]
    fn a_step_short_of_six_fifths_stops_growth_for_good_and_keeps_the_workers() {
        let mut rule = Grower::new(128, 512);
        let mut feed = Feed::new();
        rule.observe(feed.second(1000));
        grow_event(rule.observe(feed.second(1000)));
        let judged = verdict(rule.observe(feed.second(1190)));
        assert_eq!((judged.passed, judged.workers), (false, 256));
        for rate in [1000, 1000, 3000, 3000] {
            assert_eq!(rule.observe(feed.second(rate)), None);
        }
        assert_eq!(rule.workers, 256);
    }

    #[test]
    fn bytes_alone_may_carry_a_step() {
        let mut rule = Grower::new(4, 16);
        let at = |s: u64| Duration::from_secs(s);
        let sample = |s: u64, files: u64, bytes: u64| Sample {
            at: at(s),
            files,
            bytes,
            walk_done: true,
            jobs_left: 1000,
        };
        rule.observe(sample(1, 10, 1_000_000));
        grow_event(rule.observe(sample(2, 20, 2_000_000)));
        // Files/s the same, bytes/s 1.5x.
        let judged = verdict(rule.observe(sample(3, 30, 3_500_000)));
        assert!(judged.passed);
        assert_eq!(judged.gain.unwrap().files, 1.0);
    }

    #[test]
    fn the_trend_is_projected_one_window_on() {
        let mut rule = Grower::new(8, 32);
        let mut feed = Feed::new();
        rule.observe(feed.second(1000));
        // Rising by a tenth a window: the next is expected at 1210.
        let step = grow_event(rule.observe(feed.second(1100)));
        assert_eq!(step.projected.unwrap().files, 1200.0);
        // 1.2x the last window, but not 1.2x the projection.
        assert!(!verdict(rule.observe(feed.second(1320))).passed);
    }

    #[test]
    fn no_step_while_walking_unsteady_idle_or_short_of_jobs() {
        let mut walking = Feed::new();
        walking.walk_done = false;
        let mut rule = Grower::new(2, 8);
        for _ in 0..5 {
            assert_eq!(rule.observe(walking.second(100)), None);
        }
        // The walk ends: the last two windows were steady already.
        walking.walk_done = true;
        assert!(matches!(
            rule.observe(walking.second(100)),
            Some(Event::Grow(_))
        ));

        let mut rule = Grower::new(2, 8);
        let mut feed = Feed::new();
        for rate in [100, 130, 100, 70, 100, 0, 0, 0] {
            assert_eq!(rule.observe(feed.second(rate)), None, "{rate}");
        }

        let mut rule = Grower::new(16, 64);
        let mut feed = Feed::new();
        // 16 new workers want 64 jobs.
        feed.jobs_left = 63;
        assert_eq!(rule.observe(feed.second(100)), None);
        assert_eq!(rule.observe(feed.second(100)), None);
        feed.jobs_left = 64;
        assert_eq!(grow_event(rule.observe(feed.second(100))).to, 32);
    }

    #[test]
    fn windows_close_only_after_a_whole_window() {
        let mut rule = Grower::new(2, 8);
        let mut feed = Feed::new();
        let mut early = feed.second(100);
        early.at = Duration::from_millis(999);
        assert_eq!(rule.observe(early), None);
        assert!(rule.rates.is_empty());
        assert_eq!(rule.observe(feed.second(100)), None);
        assert_eq!(rule.rates.len(), 1);
    }

    #[test]
    fn the_last_step_stops_at_the_cap_and_a_cap_at_the_start_never_grows() {
        let mut rule = Grower::new(96, 128);
        let mut feed = Feed::new();
        rule.observe(feed.second(100));
        assert_eq!(grow_event(rule.observe(feed.second(100))).to, 128);
        let mut fixed = Grower::new(8, 8);
        let mut feed = Feed::new();
        for _ in 0..4 {
            assert_eq!(fixed.observe(feed.second(100)), None);
        }
    }

    #[test]
    fn forced_steps_come_at_once_when_the_walk_is_over() {
        let mut rule = Grower::forced(2, 8, vec![true, true, true]);
        let mut sample = Feed::new().second(0);
        sample.walk_done = false;
        assert_eq!(rule.observe(sample), None);
        sample.walk_done = true;
        let mut events = Vec::new();
        while let Some(event) = rule.observe(sample) {
            events.push(event);
        }
        let steps: Vec<(usize, usize)> = events
            .iter()
            .filter_map(|e| match e {
                Event::Grow(step) => Some((step.from, step.to)),
                Event::Judged(_) => None,
            })
            .collect();
        assert_eq!(steps, [(2, 4), (4, 8)]);
        assert_eq!(events.len(), 4);
        assert_eq!(rule.workers, 8);

        let mut rule = Grower::forced(2, 8, vec![false, true]);
        assert!(matches!(rule.observe(sample), Some(Event::Grow(_))));
        assert!(!verdict(rule.observe(sample)).passed);
        assert_eq!((rule.observe(sample), rule.workers), (None, 4));
    }

    #[test]
    fn a_stalled_step_stops_the_rule_at_what_started() {
        let mut rule = Grower::forced(2, 8, vec![true, true]);
        let sample = Feed::new().second(0);
        grow_event(rule.observe(sample));
        rule.stalled(3);
        assert_eq!((rule.observe(sample), rule.workers), (None, 3));
    }

    #[test]
    fn steps_and_verdicts_read_as_v_prints_them() {
        let step = Step {
            from: 128,
            to: 256,
            projected: Some(Rate {
                files: 1520.4,
                bytes: 30.1 * (1 << 20) as f64,
            }),
        };
        assert_eq!(
            describe_step(&step),
            "workers 128 -> 256 (trend: 1520 files/s, 30.1 MiB/s)"
        );
        let verdict = Verdict {
            workers: 256,
            gain: Some(Rate {
                files: 1.314,
                bytes: 1.05,
            }),
            passed: true,
        };
        assert_eq!(
            describe_verdict(&verdict),
            "workers 256: 1.31x files/s, 1.05x bytes/s of the trend: growth goes on"
        );
        let forced = Verdict {
            gain: None,
            passed: false,
            ..verdict
        };
        assert_eq!(
            describe_verdict(&forced),
            "workers 256: forced: growth stops"
        );
    }

    #[test]
    fn the_hook_spec_parses_or_says_what_it_wants() {
        let forced = |start, outcomes| Forced {
            start: NonZeroUsize::new(start).unwrap(),
            outcomes,
        };
        assert_eq!(
            parse_forced("2:pass,fail"),
            Ok(forced(2, vec![true, false]))
        );
        assert_eq!(parse_forced("4:"), Ok(forced(4, vec![])));
        for bad in ["", "2", "0:pass", "x:pass", "2:yes"] {
            let err = parse_forced(bad).unwrap_err();
            assert!(err.contains("START:pass|fail"), "{bad}: {err}");
        }
    }
}
