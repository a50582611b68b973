//! Shell integration: `--generate` writes completions for bash, zsh and
//! fish and the man page, all from the flags `--help` shows.

use std::process::{Command, Output};

use crate::testenv::assert_status;

/// `pcopy ARGS` alone: `--generate` starts no workers and takes no other
/// flag, so these tests run once, not once per worker kind.
fn pcopy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pcopy"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn each_completion_and_the_man_page_is_generated() {
    let dir = tempfile::tempdir().unwrap();
    {
        let text = |what: &str| {
            let output = pcopy(&["--generate", what]);
            assert_status(&output, 0);
            assert!(
                output.stderr.is_empty(),
                "{what}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout).unwrap()
        };
        let bash = text("complete-bash");
        assert!(bash.contains("complete -F _pcopy"), "{bash}");
        for flag in [
            "--files-from",
            "--itemize-changes",
            "--delete",
            "--max-size",
        ] {
            assert!(
                bash.contains(flag),
                "{flag} missing from the bash completions"
            );
        }
        assert!(text("complete-zsh").starts_with("#compdef pcopy"));
        assert!(text("complete-fish").contains("complete -c pcopy -l files-from"));
        let man = text("man");
        assert!(man.contains(".TH pcopy 1"), "{man}");
        assert!(man.contains("\\-\\-itemize\\-changes"), "{man}");
        // The parts of -a, their negations and -F are there as flags are.
        for flag in [
            "\\-\\-no\\-times",
            "\\-\\-no\\-D",
            "\\-\\-hard\\-links",
            "\\fB\\-F\\fR",
            "dir\\-merge",
        ] {
            assert!(man.contains(flag), "{flag} missing from the man page");
        }
        for flag in ["--no-perms", "--no-recursive", "--no-specials", "--xattrs"] {
            assert!(
                bash.contains(flag),
                "{flag} missing from the bash completions"
            );
        }
        // The bash script is valid bash.
        let script = dir.path().join("pcopy.bash");
        std::fs::write(&script, &bash).unwrap();
        let checked = std::process::Command::new("bash")
            .arg("-n")
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            checked.status.success(),
            "{}",
            String::from_utf8_lossy(&checked.stderr)
        );
    }
}

#[test]
fn generate_takes_nothing_else_and_knows_its_values() {
    let bad: [&[&str]; 3] = [
        &["--generate", "man", "src", "dst"],
        &["--workers", "thread", "--generate", "man"],
        &["--generate", "tcsh"],
    ];
    for args in bad {
        let output = pcopy(args);
        assert_status(&output, 1);
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}
