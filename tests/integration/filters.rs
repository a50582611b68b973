//! `--filter` rules in rsync's syntax and meaning: whole trees compared
//! with an explicit expectation and, where rsync is installed, with what
//! `rsync -a` makes of the same rules.

use std::process::Command;

use crate::testenv::{
    Detail, TestEnv, assert_listings_equal, assert_status, listing_with, skipped,
};

/// A tree where gitignore's and rsync's meanings of the patterns differ.
fn filter_tree(env: &TestEnv) {
    for file in [
        "m.o",
        "top.c",
        "a/m.o",
        "a/tmp",
        "a/b/n.c",
        "a/b/c/m.c",
        "d/f",
        "d/e/g",
        "x/d/h",
        "x/f",
        "keep/k.o",
        "tmp/t",
    ] {
        env.write(format!("src/{file}"), file);
    }
    age(env, "src");
}

/// Dates everything below `root` a year back: rsync leaves a directory's
/// time alone when it already agrees to the second, which a tree made
/// moments ago does.
fn age(env: &TestEnv, root: &str) {
    let status = Command::new("find")
        .current_dir(env.root())
        .args([root, "-exec", "touch", "-h", "-d", "@1700000000", "{}", "+"])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The paths below `root` (`.` for itself), sorted.
fn paths(env: &TestEnv, root: &str) -> Vec<String> {
    let listing = listing_with(&env.path(root), Detail::Contents);
    listing
        .iter()
        .map(|line| line.split('\t').next().unwrap().to_string())
        .collect()
}

/// Runs `rsync -a ARGS src/ DST` (DST a copy of `pre` unless it is empty)
/// beside pcopy's copy `pcopy_dst` and asserts both trees are the same to
/// `detail`; skips with a reason without rsync.
fn compare_with_rsync(env: &TestEnv, args: &[&str], pre: &str, pcopy_dst: &str, detail: Detail) {
    let rsync_dst = format!("{pcopy_dst}.rsync");
    if !pre.is_empty() {
        copy_tree(env, pre, &rsync_dst);
    }
    let output = match Command::new("rsync")
        .current_dir(env.root())
        .arg("-a")
        .args(args)
        .args(["src/", &rsync_dst])
        .output()
    {
        Ok(output) => output,
        Err(err) => return skipped(format!("rsync comparison of {args:?}: no rsync ({err})")),
    };
    assert!(output.status.success(), "rsync {args:?}: {output:?}");
    assert_listings_equal(
        &listing_with(&env.path(&rsync_dst), detail),
        &listing_with(&env.path(pcopy_dst), detail),
    );
}

fn copy_tree(env: &TestEnv, from: &str, to: &str) {
    let status = Command::new("cp")
        .current_dir(env.root())
        .args(["-a", &format!("{from}/."), to])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Expected paths of `dst`: `.` and the given ones.
fn tree(rel: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = rel.iter().map(|r| r.to_string()).collect();
    all.push(".".into());
    all.sort();
    all
}

both_kinds! {
    fn rsync_patterns_select_what_rsync_selects(env: TestEnv) {
        filter_tree(&env);
        let everything = [
            "m.o", "top.c", "a", "a/m.o", "a/tmp", "a/b", "a/b/n.c", "a/b/c", "a/b/c/m.c", "d",
            "d/f", "d/e", "d/e/g", "x", "x/d", "x/d/h", "x/f", "keep", "keep/k.o", "tmp", "tmp/t",
        ];
        let without = |gone: &[&str]| -> Vec<&str> {
            everything.iter().copied().filter(|p| !gone.contains(p)).collect()
        };
        let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
            // `dir/***` is the directory and all inside it, at any depth.
            (vec!["-f", "- d/***"], without(&["d", "d/f", "d/e", "d/e/g", "x/d", "x/d/h"])),
            (vec!["-f", "- /d/***"], without(&["d", "d/f", "d/e", "d/e/g"])),
            // An inner slash matches the path's tail anywhere, not anchored.
            (vec!["-f", "- b/c"], without(&["a/b/c", "a/b/c/m.c"])),
            (vec!["-f", "- d/h"], without(&["x/d/h"])),
            (vec!["--filter=- a/**/m.c"], without(&["a/b/c/m.c"])),
            (vec!["-f", "- /*.c"], without(&["top.c"])),
            (vec!["-f", "- tmp/"], without(&["tmp", "tmp/t"])),
            (vec!["-f", "- ?/f"], without(&["d/f", "x/f"])),
            (vec!["-f", "exclude_[kx]*"], without(&["keep", "keep/k.o", "x", "x/d", "x/d/h", "x/f"])),
            (vec!["-f", "+ */", "-f", "+ *.c", "-f", "- *"],
             vec!["top.c", "a", "a/b", "a/b/n.c", "a/b/c", "a/b/c/m.c", "d", "d/e", "x", "x/d",
                  "keep", "tmp"]),
            (vec!["-f", "+ keep/***", "-f", "- *"], vec!["keep", "keep/k.o"]),
            // Gitignore's --exclude and rsync's --filter in one order.
            (vec!["--include", "d/f", "-f", "- f", "--exclude", "*.o"],
             without(&["x/f", "m.o", "a/m.o", "keep/k.o"])),
            (vec!["-f", "- *.o", "-f", "!", "--exclude", "*.c"],
             without(&["top.c", "a/b/n.c", "a/b/c/m.c"])),
        ];
        for (i, (args, expected)) in cases.iter().enumerate() {
            let dst = format!("dst{i}");
            let mut full = vec!["-a"];
            full.extend(args);
            full.extend(["src/", &dst]);
            assert_status(&env.run(&full), 0);
            assert_eq!(paths(&env, &dst), tree(expected), "{args:?}");
            compare_with_rsync(&env, args, "", &dst, Detail::Copy);
        }
    }

    fn merge_files_hold_rules_in_their_place(env: TestEnv) {
        filter_tree(&env);
        env.write("inner.rules", "+ keep/k.o\n");
        env.write("rules", "# comments and blank lines\n\n; too\n. inner.rules\n- *.o\nexclude /x/\n");
        let args = ["-f", "merge rules", "--exclude", "keep/k.o"];
        let mut full = vec!["-a"];
        full.extend(args);
        full.extend(["src/", "dst"]);
        assert_status(&env.run(&full), 0);
        let expected = [
            "top.c", "a", "a/tmp", "a/b", "a/b/n.c", "a/b/c", "a/b/c/m.c", "d", "d/f", "d/e",
            "d/e/g", "keep", "keep/k.o", "tmp", "tmp/t",
        ];
        assert_eq!(paths(&env, "dst"), tree(&expected));
        compare_with_rsync(&env, &args, "", "dst", Detail::Copy);
    }

    fn protect_rules_spare_names_from_delete(env: TestEnv) {
        env.write("src/f", "f");
        env.write("old/f", "f");
        for extra in ["old.o", "gone", "kept.p", "sub/kept.p", "sub/gone"] {
            env.write(format!("old/{extra}"), extra);
        }
        age(&env, "src");
        age(&env, "old");
        // `P` protects without hiding; `- *.o` protects too, until
        // --delete-excluded turns it into a sender-only rule.
        let cases: [(&[&str], &[&str]); 2] = [
            (&["--delete", "-f", "P *.p", "-f", "- *.o"],
             &["f", "old.o", "kept.p", "sub", "sub/kept.p"]),
            (&["--delete", "--delete-excluded", "-f", "P *.p", "-f", "- *.o"],
             &["f", "kept.p", "sub", "sub/kept.p"]),
        ];
        for (i, (args, expected)) in cases.iter().enumerate() {
            let dst = format!("dst{i}");
            copy_tree_fresh(&env, "old", &dst);
            let mut full = vec!["-a"];
            full.extend(args.iter());
            full.extend(["src/", &dst]);
            assert_status(&env.run(&full), 0);
            assert_eq!(paths(&env, &dst), tree(expected), "{args:?}");
            // A directory's time changes as its entries go, whenever
            // that is: contents and types only.
            compare_with_rsync(&env, args, "old", &dst, Detail::Contents);
        }
    }

    fn a_bad_rule_is_a_usage_error(env: TestEnv) {
        env.write("src/f", "f");
        let bad: [(&str, &str); 6] = [
            ("x *.o", "unknown filter rule"),
            ("*.o", "unknown filter rule"),
            ("-", "has no pattern"),
            ("-! *.o", "modifiers are not supported"),
            ("merge missing.rules", "cannot read"),
            (": .rules", "dir-merge rules are not supported"),
        ];
        for (rule, why) in bad {
            let output = env.run(["-f", rule, "src/", "dst"]);
            assert_status(&output, 1);
            let stderr = String::from_utf8(output.stderr).unwrap();
            assert!(stderr.contains(why), "{rule:?}: {stderr}");
            assert!(!env.path("dst").exists(), "{rule:?}");
        }
    }
}

/// `to` as a fresh copy of `from`.
fn copy_tree_fresh(env: &TestEnv, from: &str, to: &str) {
    env.mkdir(to);
    copy_tree(env, from, to);
}
