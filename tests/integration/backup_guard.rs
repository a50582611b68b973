//! `--delete` and the backup flags kept within their bounds: nothing
//! another source copied is removed, backups are kept when a file makes
//! way for a directory or a directory is emptied, and a `--backup-dir`
//! never leads outside DST through a symlink.

use crate::testenv::{TestEnv, assert_same_tree, assert_status, describe};

both_kinds! {
    fn delete_spares_what_other_sources_copied(env: TestEnv) {
        env.write("src/a.txt", "a\n");
        env.write("src/other/from-src.txt", "from src\n");
        env.write("src/sub/s.txt", "s\n");
        env.write("other/o.txt", "o\n");
        env.write("file.txt", "single file\n");
        env.write("dst/extra.txt", "extraneous\n");
        env.write("dst/other/stale.txt", "extraneous too\n");
        env.write("dst/sub/stale.txt", "extraneous too\n");
        let sources = ["src/", "other", "file.txt"];
        let output = env.run(["-a", "--delete"].iter().chain(&sources).chain(&["dst"]));
        assert_status(&output, 0);
        assert_status(&env.run(["-a"].iter().chain(&sources).chain(&["expected"])), 0);
        assert_same_tree(&env.path("expected"), &env.path("dst"));
        // A rerun finds nothing to delete either.
        let output = env.run(["-a", "--delete", "-v"].iter().chain(&sources).chain(&["dst"]));
        assert_status(&output, 0);
        assert!(!String::from_utf8_lossy(&output.stdout).contains("deleting"), "{}", describe(&output));
        assert_same_tree(&env.path("expected"), &env.path("dst"));
    }

    fn delete_leaves_the_way_to_a_relative_source_alone(env: TestEnv) {
        env.write("src/top.txt", "top\n");
        env.write("deep/er/leaf/l.txt", "leaf\n");
        env.write("dst/extra.txt", "extraneous\n");
        env.write("dst/deep/beside.txt", "in an implied directory: kept (rsync too)\n");
        env.write("dst/deep/er/leaf/stale.txt", "extraneous\n");
        let sources = ["src/./", "deep/er/leaf"];
        let output = env.run(["-a", "-R", "--delete"].iter().chain(&sources).chain(&["dst"]));
        assert_status(&output, 0);
        // The kept file first: the copy then gives `deep` its source's times.
        env.mkdir("expected/deep");
        assert_status(&env.run(["-a", "dst/deep/beside.txt", "expected/deep/"]), 0);
        assert_status(&env.run(["-a", "-R"].iter().chain(&sources).chain(&["expected"])), 0);
        assert_same_tree(&env.path("expected"), &env.path("dst"));
    }
}
