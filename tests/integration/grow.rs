//! The pool grows while the run goes, as `run::grow` decides: forced
//! through the debug hook `PCOPY_TEST_GROW` (`START:pass|fail,...`, each
//! step's outcome taken as soon as the walk is over), so the steps are
//! known before the run starts and nothing waits on a clock. The rule's
//! judgement of real rates is tested in `src/run/grow.rs`.

use std::process::Output;

use crate::testenv::{
    TestEnv, assert_same_tree, assert_status, hook_available, json_of, limit_fds, run_guarded,
};

/// 600 files in 12 directories: a few batches for every worker.
fn tree(env: &TestEnv) {
    for i in 0..600 {
        env.write(
            format!("src/d{:02}/f{i:03}.txt", i % 12),
            "x".repeat(i % 50),
        );
    }
}

/// pcopy `-v --json` on the tree with `PCOPY_TEST_GROW=spec`, and `extra`
/// flags before the paths.
fn run_forced(env: &TestEnv, spec: &str, extra: &[&str]) -> Output {
    let mut command = env.pcopy();
    command
        .env("PCOPY_TEST_GROW", spec)
        .args(["-v", "--json"])
        .args(extra)
        .args(["src/", "dst"]);
    run_guarded(&mut command)
}

/// The `-v` lines of the pool's growth, in order.
fn growth_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|line| line.starts_with("pcopy: workers "))
        .map(str::to_string)
        .collect()
}

fn workers(output: &Output) -> u64 {
    json_of(output)["workers"]
        .as_u64()
        .expect("a workers count")
}

both_kinds! {
    fn passing_steps_double_the_pool_up_to_four_times_its_start(env: TestEnv) {
        if !hook_available() {
            return;
        }
        tree(&env);
        let output = run_forced(&env, "2:pass,pass,pass", &[]);
        assert_status(&output, 0);
        assert_same_tree(&env.path("src"), &env.path("dst"));
        assert_eq!(workers(&output), 8);
        // The third outcome is never asked for: 8 is the cap.
        assert_eq!(
            growth_lines(&output),
            [
                "pcopy: workers 2 -> 4 (forced)",
                "pcopy: workers 4: forced: growth goes on",
                "pcopy: workers 4 -> 8 (forced)",
                "pcopy: workers 8: forced: growth goes on",
            ]
        );
    }

    fn a_failed_step_keeps_its_workers_and_ends_growth(env: TestEnv) {
        if !hook_available() {
            return;
        }
        tree(&env);
        let output = run_forced(&env, "2:fail,pass", &[]);
        assert_status(&output, 0);
        assert_same_tree(&env.path("src"), &env.path("dst"));
        assert_eq!(workers(&output), 4);
        assert_eq!(
            growth_lines(&output),
            [
                "pcopy: workers 2 -> 4 (forced)",
                "pcopy: workers 4: forced: growth stops",
            ]
        );
    }

    fn an_explicit_j_never_grows_and_steps_print_only_under_v(env: TestEnv) {
        if !hook_available() {
            return;
        }
        tree(&env);
        let fixed = run_forced(&env, "2:pass,pass", &["-j", "3"]);
        assert_status(&fixed, 0);
        assert_same_tree(&env.path("src"), &env.path("dst"));
        assert_eq!(workers(&fixed), 3);
        assert_eq!(growth_lines(&fixed), Vec::<String>::new());

        let mut quiet = env.pcopy();
        quiet
            .env("PCOPY_TEST_GROW", "2:pass")
            .args(["--json", "-I", "src/", "dst"]);
        let quiet = run_guarded(&mut quiet);
        assert_status(&quiet, 0);
        assert_eq!(workers(&quiet), 4);
        assert_eq!(growth_lines(&quiet), Vec::<String>::new());
    }

    fn growth_stops_where_the_descriptor_limit_does(env: TestEnv) {
        if !hook_available() {
            return;
        }
        tree(&env);
        // 12 reserved and 8 for the walk, then 4 a thread (8 a process):
        // room for 4 workers and a few more, never for 8.
        let limit = if env.kind == "thread" { 48 } else { 64 };
        let mut command = env.pcopy();
        command
            .env("PCOPY_TEST_GROW", "4:pass,pass")
            .args(["--json", "src/", "dst"]);
        limit_fds(&mut command, limit);
        let output = run_guarded(&mut command);
        assert_status(&output, 0);
        assert_same_tree(&env.path("src"), &env.path("dst"));
        let grown = workers(&output);
        assert!(grown > 4 && grown < 8, "{grown}");
    }
}
