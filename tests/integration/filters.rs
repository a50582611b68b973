//! `--filter` rules in rsync's syntax and meaning: whole trees compared
//! with an explicit expectation and, where rsync is installed, with what
//! `rsync -a` makes of the same rules.

use std::process::Command;

use crate::testenv::{
    Detail, TestEnv, assert_listings_equal, assert_status, hook_available, listing_with,
    run_gated_progress, skipped,
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
    compare_with_rsync_args(env, args, pre, pcopy_dst, detail);
}

/// [`compare_with_rsync`] with rsync given `args` (where its flags differ
/// from pcopy's).
fn compare_with_rsync_args(
    env: &TestEnv,
    args: &[&str],
    pre: &str,
    pcopy_dst: &str,
    detail: Detail,
) {
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
        check_cases(&env, &cases);
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
        let bad: [(&str, &str); 7] = [
            ("x *.o", "unknown filter rule"),
            ("*.o", "unknown filter rule"),
            ("-", "has no pattern"),
            ("-! *.o", "modifiers are not supported"),
            ("merge missing.rules", "cannot read"),
            (":C", "modifier `C` is not supported"),
            (": sub/.rules", "must be a name"),
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

/// A tree with `.rsync-filter` files at three levels: the top one leaves
/// out `*.o` everywhere, `a/b`'s takes `keep.o` back and leaves out its
/// own `z.c` (anchored there), `c`'s forgets the rules above (`!`).
fn dir_merge_tree(env: &TestEnv) {
    for file in [
        "x.o",
        "x.c",
        "a/y.o",
        "a/y.c",
        "a/b/z.o",
        "a/b/z.c",
        "a/b/keep.o",
        "c/w.o",
        "c/w.tmp",
        "z.c",
    ] {
        env.write(format!("src/{file}"), file);
    }
    env.write("src/.rsync-filter", "- *.o\n");
    env.write(
        "src/a/b/.rsync-filter",
        "# per directory\n+ keep.o\n- /z.c\n",
    );
    env.write("src/c/.rsync-filter", "!\n- *.tmp\n");
    age(env, "src");
}

both_kinds! {
    fn dir_merge_files_filter_their_directory_and_below(env: TestEnv) {
        dir_merge_tree(&env);
        let filters = [".rsync-filter", "a/b/.rsync-filter", "c/.rsync-filter"];
        let with_filters = |paths: &[&'static str]| -> Vec<&'static str> {
            paths.iter().chain(&filters).copied().collect()
        };
        let dirs = ["a", "a/b", "c"];
        let base = ["x.c", "z.c", "a/y.c", "a/b/keep.o", "c/w.o"];
        let all_dirs = |paths: Vec<&'static str>| -> Vec<&'static str> {
            paths.into_iter().chain(dirs).collect()
        };
        let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
            (vec!["-F"], all_dirs(with_filters(&base))),
            (vec!["-FF"], all_dirs(base.to_vec())),
            (vec!["-f", "dir-merge,e .rsync-filter"], all_dirs(base.to_vec())),
            (vec!["-f", ":e /.rsync-filter"], all_dirs(base.to_vec())),
            // `n`: each file's rules stay in its own directory.
            (vec!["-f", ":n .rsync-filter"],
             all_dirs(with_filters(&["x.c", "z.c", "a/y.c", "a/y.o", "a/b/z.o", "a/b/keep.o", "c/w.o"]))),
            // `-`: every line is an exclude pattern, `+ keep.o` and `!` too.
            (vec!["-f", ":-e .rsync-filter"],
             all_dirs(vec!["x.c", "x.o", "z.c", "a/y.c", "a/y.o", "a/b/z.c", "a/b/z.o", "a/b/keep.o",
                           "c/w.o", "c/w.tmp"])),
            // Earlier rules win over the per-directory ones.
            (vec!["-f", "+ x.o", "-FF"], all_dirs([&base[..], &["x.o"]].concat())),
        ];
        check_cases(&env, &cases);
    }

    fn dir_merge_rules_protect_from_delete_where_the_destination_has_them(env: TestEnv) {
        dir_merge_tree(&env);
        for extra in ["a/extra.o", "a/extra.txt", "a/b/old.o", "a/b/z.c", "c/gone.tmp", "c/gone.o", "ex.o"] {
            env.write(format!("old/{extra}"), extra);
        }
        age(&env, "old");
        // rsync's receiver reads the merge files of the destination, as
        // its --delete-after does (pcopy deletes after the copy): copied
        // ones protect what they exclude; left out ones (-FF) do not.
        let cases: [(&[&str], &[&str]); 3] = [
            (&["-F"], &["a/b/old.o", "a/b/z.c", "a/extra.o", "c/gone.tmp", "ex.o"]),
            (&["-FF"], &[]),
            (&["-F", "--delete-excluded"], &[]),
        ];
        let copied = [
            "x.c", "z.c", "a", "a/y.c", "a/b", "a/b/keep.o", "c", "c/w.o", ".rsync-filter",
            "a/b/.rsync-filter", "c/.rsync-filter",
        ];
        for (i, (args, kept)) in cases.iter().enumerate() {
            let dst = format!("dst{i}");
            copy_tree_fresh(&env, "old", &dst);
            let mut full = vec!["-a", "--delete"];
            full.extend(args.iter());
            full.extend(["src/", &dst]);
            assert_status(&env.run(&full), 0);
            let filters_copied = !args.contains(&"-FF");
            let expected: Vec<&str> = (copied.iter().copied())
                .filter(|p| filters_copied || !p.ends_with(".rsync-filter"))
                .chain(kept.iter().copied())
                .collect();
            assert_eq!(paths(&env, &dst), tree(&expected), "{args:?}");
            let mut rsync_args = vec!["--delete-after"];
            rsync_args.extend(args.iter());
            compare_with_rsync_args(&env, &rsync_args, "old", &dst, Detail::Contents);
        }
    }

    fn a_bad_dir_merge_file_fails_its_directory_only(env: TestEnv) {
        dir_merge_tree(&env);
        env.write("src/a/.rsync-filter", "merge /etc/passwd\n");
        env.write("elsewhere", "- *.c\n");
        env.symlink("../../elsewhere", "src/c/.rsync-filter.tmp");
        std::fs::remove_file(env.path("src/c/.rsync-filter")).unwrap();
        std::fs::rename(env.path("src/c/.rsync-filter.tmp"), env.path("src/c/.rsync-filter")).unwrap();
        env.write("old/a/extra", "extra");
        copy_tree_fresh(&env, "old", "dst");
        let output = env.run(["-a", "-FF", "--delete", "src/", "dst"]);
        assert_status(&output, 23);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("src/a/.rsync-filter: merge /etc/passwd: merge and dir-merge rules are not allowed"), "{stderr}");
        assert!(stderr.contains("src/c/.rsync-filter: a dir-merge file is a symbolic link"), "{stderr}");
        // The other rules hold (without c's `!`, the top `- *.o` reaches
        // c/w.o); nothing is deleted after a failure.
        let expected = [
            "x.c", "z.c", "a", "a/y.c", "a/b", "a/b/keep.o", "a/extra", "c", "c/w.tmp",
        ];
        assert_eq!(paths(&env, "dst"), tree(&expected));
    }
}

/// Copies `src/` with `-a` and each case's flags into a destination of
/// its own, and compares the tree with the case's names and with rsync's.
fn check_cases(env: &TestEnv, cases: &[(Vec<&str>, Vec<&str>)]) {
    for (i, (args, expected)) in cases.iter().enumerate() {
        let dst = format!("dst{i}");
        let mut full = vec!["-a"];
        full.extend(args);
        full.extend(["src/", &dst]);
        assert_status(&env.run(&full), 0);
        assert_eq!(paths(env, &dst), tree(expected), "{args:?}");
        compare_with_rsync(env, args, "", &dst, Detail::Copy);
    }
}

/// `to` as a fresh copy of `from`.
fn copy_tree_fresh(env: &TestEnv, from: &str, to: &str) {
    env.mkdir(to);
    copy_tree(env, from, to);
}

both_kinds! {
    fn dir_merge_rules_shape_the_counted_totals(env: TestEnv) {
        if !hook_available() {
            return;
        }
        env.write("first/gate.txt", "gate\n");
        for i in 0..1000 {
            env.write(format!("second/d{}/f{i:04}", i % 10), "x");
            env.write(format!("second/d{}/f{i:04}.o", i % 10), "object");
        }
        for i in 0..5 {
            env.write(format!("second/d3/skip/s{i}"), "skipped");
        }
        env.write("second/.rsync-filter", "- *.o\n");
        env.write("second/d3/.rsync-filter", "- skip/\n");
        let run = run_gated_progress(&env, "gate", &["-F", "first/", "second/", "dst"]);
        // The gate, 1,000 files of one byte and the two rules files
        // (6 + 8 bytes): no `.o` file, nothing below d3/skip.
        let expected = "pcopy: 0/1003 files, 0 B/1019 B, ";
        let first = &run.first_final;
        assert!(first.starts_with(expected), "{first} after {:?}", run.scanning);
        assert_status(&run.output, 0);
        let last = run.rest.iter().any(|l| l.starts_with("pcopy: 1003/1003 files"));
        assert!(last, "{:?}", run.rest);
        assert!(!env.path("dst/d3/skip").exists());
        assert!(!env.path("dst/d0/f0000.o").exists());
    }
}
