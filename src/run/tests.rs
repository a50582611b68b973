//! Run tests: a whole pipeline in this process, with thread workers.

use super::*;

use std::fs;

use crate::cli::Args;
use crate::config::Config;
use crate::exit_codes::ExitStatus;
use crate::plan::{self, Root};
use crate::ui::progress::NoProgress;
use crate::ui::report::Tally;
use crate::ui::report::Verbosity;

/// Runs the whole pipeline in this process with thread workers.
fn run_plan(plan: &Plan) -> (ExitStatus, Tally, RunEnd) {
    let args =
        Args::parse_from(["pcopy", "-q", "-j", "2", "--workers", "thread", "x", "y"]).unwrap();
    let config = Config::new(args, false).unwrap();
    let mut reporter = Reporter::new(Verbosity::Quiet, Box::new(NoProgress));
    let end = run(&config.run_setup(), plan, &mut reporter).unwrap();
    let report = reporter.finish(end.interrupted);
    (report.status, report.tally, end)
}

#[test]
fn a_tree_is_copied_with_directory_metadata_last() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("a/b")).unwrap();
    for i in 0..300 {
        fs::write(src.join(format!("a/b/f{i}")), format!("{i}")).unwrap();
    }
    fs::write(src.join("top"), "top").unwrap();
    let sources = [src.clone().into_os_string()];
    let plan = plan::resolve(&sources, tmp.path().join("dst").as_os_str(), false, false).unwrap();
    plan::create_destination(&plan).unwrap();
    let (status, tally, end) = run_plan(&plan);
    assert_eq!(status, ExitStatus::Success);
    assert!(end.fatal.is_none());
    assert_eq!((tally.copied, tally.failed), (301, 0));
    assert_eq!(
        fs::read(tmp.path().join("dst/src/a/b/f299")).unwrap(),
        b"299"
    );
    let source_time = fs::metadata(src.join("a")).unwrap().modified().unwrap();
    let copy_time = fs::metadata(tmp.path().join("dst/src/a"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(source_time, copy_time);
}

#[test]
fn a_source_that_vanished_before_the_walk_gives_status_24() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("present"), "here").unwrap();
    let plan = Plan {
        dst_root: tmp.path().join("dst"),
        create_dst_root: true,
        mkpath: false,
        rejected: Vec::new(),
        roots: vec![
            Root {
                src: tmp.path().join("present"),
                rel_dst: "present".into(),
                is_dir: false,
                flat: false,
            },
            Root {
                src: tmp.path().join("gone"),
                rel_dst: "gone".into(),
                is_dir: false,
                flat: false,
            },
        ],
    };
    plan::create_destination(&plan).unwrap();
    let (status, tally, _) = run_plan(&plan);
    assert_eq!(status, ExitStatus::Vanished);
    assert_eq!((tally.copied, tally.vanished, tally.failed), (1, 1, 0));
    assert!(tmp.path().join("dst/present").is_file());
}
