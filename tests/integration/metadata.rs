//! Metadata flags: `--chmod` in rsync's syntax, compared with rsync's own
//! result where rsync is installed.

use std::process::Command;

use crate::testenv::{Detail, TestEnv, assert_status, listing, listing_with};

/// Files and directories with assorted modes.
fn moded_tree(env: &TestEnv) {
    env.write("src/plain.txt", "plain\n");
    env.write("src/run.sh", "#!/bin/sh\n");
    env.write("src/sub/shared.txt", "shared\n");
    env.write("src/sub/deep/secret", "secret\n");
    for (rel, mode) in [
        ("src/plain.txt", 0o646),
        ("src/run.sh", 0o744),
        ("src/sub/shared.txt", 0o604),
        ("src/sub/deep/secret", 0o600),
        ("src/sub/deep", 0o700),
        ("src/sub", 0o750),
    ] {
        env.chmod(rel, mode);
    }
}

/// Each entry's name and mode, from a listing.
fn modes(env: &TestEnv, root: &str) -> Vec<String> {
    listing(&env.path(root))
        .into_iter()
        .map(|line| line.split(" mtime").next().unwrap().to_string())
        .collect()
}

const SPECS: [&str; 5] = [
    "D2775,F664",
    "Dg+s,ug+w,Fo-w,+X",
    "go=",
    "g=u,o=g",
    "a+rX,u-w",
];

both_kinds! {
    fn chmod_changes_the_modes_the_sources_supply(env: TestEnv) {
        moded_tree(&env);
        assert_status(&env.run(["--chmod", "D2775,F664", "src/", "dst"]), 0);
        let got = modes(&env, "dst");
        for line in &got {
            let want = if line.contains("\tdir ") { "mode 2775" } else { "mode 664" };
            assert!(line.ends_with(want), "{line}: {got:?}");
        }
        assert_eq!(got.len(), 7, "{got:?}");
        // The contents are the source's; a rerun changes nothing more.
        assert_eq!(listing_with(&env.path("src"), Detail::Contents), listing_with(&env.path("dst"), Detail::Contents));
        let again = env.run(["-i", "--chmod", "D2775,F664", "src/", "dst"]);
        assert_status(&again, 0);
        assert!(again.stdout.is_empty(), "{}", String::from_utf8_lossy(&again.stdout));
        // Without --chmod the source's modes come back, in place.
        let back = env.run(["-i", "src/", "dst"]);
        assert_status(&back, 0);
        assert_eq!(modes(&env, "dst"), modes(&env, "src"));
    }

    fn chmod_gives_the_modes_rsync_gives(env: TestEnv) {
        if Command::new("rsync").arg("--version").output().is_err() {
            return crate::testenv::skipped("rsync is not installed");
        }
        moded_tree(&env);
        for (i, spec) in SPECS.iter().enumerate() {
            let ours = format!("ours{i}");
            let theirs = format!("theirs{i}");
            assert_status(&env.run([&format!("--chmod={spec}"), "src/", &ours]), 0);
            let rsync = Command::new("rsync")
                .args(["-rlpt", &format!("--chmod={spec}"), "src/", &theirs])
                .current_dir(env.root())
                .status()
                .unwrap();
            assert!(rsync.success());
            assert_eq!(modes(&env, &ours), modes(&env, &theirs), "--chmod={spec}");
        }
    }

    fn new_directories_come_out_with_exactly_their_sources_modes_and_times(env: TestEnv) {
        // Modes a directory can be made with as they are, and modes that
        // the umask or mkdir would change (group and other write, setgid,
        // sticky) or that do not let the owner fill it.
        let dir_modes = [0o755, 0o750, 0o777, 0o2775, 0o1777, 0o711, 0o555, 0o500];
        for i in 0..dir_modes.len() {
            env.write(format!("src/d{i}/sub/f"), "x\n");
        }
        for (i, mode) in dir_modes.iter().enumerate() {
            env.chmod(format!("src/d{i}/sub"), *mode);
            env.chmod(format!("src/d{i}"), *mode);
        }
        assert_status(&env.run(["src/", "dst"]), 0);
        assert_eq!(listing(&env.path("dst")), listing(&env.path("src")));
        let again = env.run(["-i", "src/", "dst"]);
        assert_status(&again, 0);
        assert!(again.stdout.is_empty(), "{}", String::from_utf8_lossy(&again.stdout));
        // What --chmod makes of them comes out as exactly.
        assert_status(&env.run(["--chmod", "Dg+w,o-rwx", "src/", "chmodded"]), 0);
        for line in modes(&env, "chmodded").iter().filter(|l| l.contains("\tdir ")) {
            let mode = u32::from_str_radix(line.rsplit(' ').next().unwrap(), 8).unwrap();
            assert_eq!(mode & 0o27, 0o20, "{line}");
        }
        for root in ["src", "dst", "chmodded"] {
            for i in 0..dir_modes.len() {
                env.chmod(format!("{root}/d{i}"), 0o755);
            }
        }
    }

    fn an_invalid_chmod_is_a_usage_error(env: TestEnv) {
        moded_tree(&env);
        for bad in ["u", "F9", "q+w", "u+w,", "g=uw", "77777"] {
            let output = env.run([&format!("--chmod={bad}"), "src/", "dst"]);
            assert_status(&output, 1);
            let stderr = String::from_utf8(output.stderr).unwrap();
            assert!(stderr.contains("invalid --chmod item"), "{bad}: {stderr}");
            assert!(!env.path("dst").exists());
        }
    }
}
