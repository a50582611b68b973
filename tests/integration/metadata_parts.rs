//! The parts of `-a` one by one: `--no-OPTION` turns one off and leaves
//! the others, the last flag for a part decides (rsync's order rule), and
//! each part's flag works without `-a`. Compared over whole trees.

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, lchown};
use std::path::Path;

use crate::testenv::{TestEnv, assert_status, is_root, mkfifo, set_mtime};

/// The source tree's mtimes: long ago, so a copy that keeps none shows.
const OLD: i64 = 1_000_000_000;

/// A tree with one entry of each kind a part of `-a` decides about: a
/// setuid program, a file the umask would change, two names of one file,
/// a directory with a file, a symlink and a fifo; all dated [`OLD`].
fn parts_tree(env: &TestEnv) {
    env.write("src/run", "#!/bin/sh\n");
    env.write("src/open", "open\n");
    env.write("src/one", "one\n");
    std::fs::hard_link(env.path("src/one"), env.path("src/two")).unwrap();
    env.write("src/d/f", "f\n");
    env.symlink("run", "src/link");
    mkfifo(&env.path("src/pipe"), 0o640);
    env.chmod("src/run", 0o4755);
    env.chmod("src/open", 0o666);
    env.chmod("src/one", 0o640);
    env.chmod("src/d/f", 0o600);
    env.chmod("src/d", 0o750);
    for (i, rel) in ["run", "open", "one", "d/f", "link", "pipe", "d", "."]
        .iter()
        .enumerate()
    {
        set_mtime(&env.path("src").join(rel), OLD + i as i64, 0);
    }
}

/// One line per entry below `root` (the root itself is empty): path,
/// type, mode (`-` for a symlink), mtime, and the first name of the same
/// inode (hard links), separated by single spaces.
fn tree(root: &Path) -> Vec<String> {
    let mut entries: Vec<(String, std::fs::Metadata)> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|entry| {
            let entry = entry.unwrap();
            let rel = entry.path().strip_prefix(root).unwrap();
            let rel = match rel.as_os_str().is_empty() {
                true => ".".to_string(),
                false => rel.display().to_string(),
            };
            (rel, entry.path().symlink_metadata().unwrap())
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut seen: HashMap<u64, String> = HashMap::new();
    entries
        .into_iter()
        .map(|(rel, meta)| {
            let first = seen.entry(meta.ino()).or_insert_with(|| rel.clone());
            let kind = meta.file_type();
            let (kind, mode) = match () {
                _ if kind.is_symlink() => ("link", "-".to_string()),
                _ if kind.is_dir() => ("dir", format!("{:o}", meta.mode() & 0o7777)),
                _ if kind.is_file() => ("file", format!("{:o}", meta.mode() & 0o7777)),
                _ => ("special", format!("{:o}", meta.mode() & 0o7777)),
            };
            format!("{rel} {kind} {mode} {} {first}", meta.mtime())
        })
        .collect()
}

/// The source's lines with the entries `gone` (paths) left out and each
/// `(path, change)` applied to its line.
fn expected(env: &TestEnv, gone: &[&str], change: &dyn Fn(&str, String) -> String) -> Vec<String> {
    tree(&env.path("src"))
        .into_iter()
        .filter(|line| !gone.contains(&rel_of(line)))
        .map(|line| change(rel_of(&line), line.clone()))
        .collect()
}

/// The path field of a [`tree`] line.
fn rel_of(line: &str) -> &str {
    line.split(' ').next().unwrap_or_default()
}

/// Copies `src/` to a fresh `dst` with `flags`; returns the run's stderr.
fn copy(env: &TestEnv, flags: &[&str]) -> String {
    let _ = std::fs::remove_dir_all(env.path("dst"));
    let mut args = flags.to_vec();
    args.extend(["src/", "dst"]);
    let output = env.run(&args);
    assert_status(&output, 0);
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The umask pcopy runs with (this process's: it is inherited).
fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .unwrap();
    u32::from_str_radix(line.trim(), 8).unwrap()
}

fn same(_: &str, line: String) -> String {
    line
}

/// Replaces the mode field (the third) of a line.
fn with_mode(line: &str, mode: u32) -> String {
    let mut fields: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    fields[2] = format!("{mode:o}");
    fields.join(" ")
}

fn assert_tree(env: &TestEnv, want: Vec<String>, flags: &str) {
    assert_eq!(tree(&env.path("dst")), want, "{flags}");
}

both_kinds! {
    fn each_negation_turns_off_only_its_part_of_archive(env: TestEnv) {
        parts_tree(&env);
        copy(&env, &["-a"]);
        assert_tree(&env, expected(&env, &[], &same), "-a");

        let stderr = copy(&env, &["-a", "--no-l"]);
        assert!(stderr.contains("src/link: skipping symbolic link"), "{stderr}");
        assert_tree(&env, expected(&env, &["link"], &same), "--no-l");
        copy(&env, &["-a", "--no-links"]);
        assert_tree(&env, expected(&env, &["link"], &same), "--no-links");

        for flag in ["--no-specials", "--no-D"] {
            let stderr = copy(&env, &["-a", flag]);
            assert!(stderr.contains("src/pipe: skipping special file (fifo)"), "{stderr}");
            assert_tree(&env, expected(&env, &["pipe"], &same), flag);
        }
        // A fifo is no device: --no-devices leaves it.
        copy(&env, &["-a", "--no-devices"]);
        assert_tree(&env, expected(&env, &[], &same), "--no-devices");

        // Each name of a hard-linked file becomes a file of its own.
        for flag in ["--no-H", "--no-hard-links"] {
            copy(&env, &["-a", flag]);
            let apart = |rel: &str, line: String| match rel {
                "two" => line.replace(" one", " two"),
                _ => line,
            };
            assert_tree(&env, expected(&env, &[], &apart), flag);
        }
    }

    fn without_perms_new_copies_lose_the_umask_and_old_ones_keep_theirs(env: TestEnv) {
        parts_tree(&env);
        let umask = umask();
        let src = tree(&env.path("src"));
        let mode_of = |rel: &str| {
            let line = src.iter().find(|l| l.split_whitespace().next() == Some(rel));
            u32::from_str_radix(line.unwrap().split_whitespace().nth(2).unwrap(), 8).unwrap()
        };
        // New: the source's bits less the umask, no setuid.
        let masked = |rel: &str, line: String| match rel {
            "link" => line,
            _ => with_mode(&line, mode_of(rel) & 0o777 & !umask),
        };
        for flag in ["--no-p", "--no-perms"] {
            copy(&env, &["-a", flag]);
            assert_tree(&env, expected(&env, &[], &masked), flag);
        }
        // Existing: replaced or up to date, each keeps the mode it has.
        env.chmod("dst/one", 0o604);
        env.chmod("dst/d", 0o711);
        env.write("src/run", "#!/bin/sh\nexit 0\n");
        set_mtime(&env.path("src/run"), OLD, 0);
        env.chmod("dst/run", 0o700);
        let output = env.run(["-a", "--no-p", "src/", "dst"]);
        assert_status(&output, 0);
        let kept = |rel: &str, line: String| match rel {
            "one" | "two" => with_mode(&line, 0o604),
            "d" => with_mode(&line, 0o711),
            "run" => with_mode(&line, 0o700),
            _ => masked(rel, line),
        };
        assert_tree(&env, expected(&env, &[], &kept), "--no-p over a copy");
        // -p (here through -a) gives every mode back.
        assert_status(&env.run(["-a", "src/", "dst"]), 0);
        assert_tree(&env, expected(&env, &[], &same), "-a after --no-p");
    }

    fn without_times_copies_are_dated_now_and_a_rerun_copies_files_again(env: TestEnv) {
        parts_tree(&env);
        for flag in ["--no-t", "--no-times"] {
            copy(&env, &["-a", flag]);
            let now = |_: &str, line: String| {
                let mut fields: Vec<String> = line.split_whitespace().map(str::to_string).collect();
                fields[3] = "NEW".to_string();
                fields.join(" ")
            };
            let got: Vec<String> = (tree(&env.path("dst")))
                .into_iter()
                .map(|line| {
                    let mut fields: Vec<String> = line.split(' ').map(str::to_string).collect();
                    let mtime: i64 = fields[3].parse().unwrap();
                    assert!(mtime > OLD + 100, "{flag}: kept a time: {line}");
                    fields[3] = "NEW".to_string();
                    fields.join(" ")
                })
                .collect();
            assert_eq!(got, (expected(&env, &[], &now)), "{flag}");
        }
        // rsync's rule: without -t the quick check finds every regular file
        // changed; links and the fifo are judged by what they are.
        let again = env.run(["-a", "--no-t", "-i", "src/", "dst"]);
        assert_status(&again, 0);
        let mut lines: Vec<String> = String::from_utf8_lossy(&again.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        assert_eq!(
            lines,
            [">f..T...... d/f", ">f..T...... one", ">f..T...... open", ">f..T...... run", "hf+++++++++ two => one"]
        );
        // --size-only spares them.
        let sized = env.run(["-a", "--no-t", "--size-only", "-i", "src/", "dst"]);
        assert_status(&sized, 0);
        assert_eq!(String::from_utf8_lossy(&sized.stdout), "");
    }

    fn the_last_flag_for_a_part_decides(env: TestEnv) {
        parts_tree(&env);
        // `--no-t -a`: -a comes later and turns times back on.
        copy(&env, &["--no-t", "-a"]);
        assert_tree(&env, expected(&env, &[], &same), "--no-t -a");
        copy(&env, &["-a", "--no-l", "-l"]);
        assert_tree(&env, expected(&env, &[], &same), "-a --no-l -l");
        copy(&env, &["-a", "--no-D", "--specials"]);
        assert_tree(&env, expected(&env, &[], &same), "-a --no-D --specials");
        copy(&env, &["--no-specials", "-a", "--no-D", "-a"]);
        assert_tree(&env, expected(&env, &[], &same), "-a repeated");
        copy(&env, &["-a", "--no-r", "-r"]);
        assert_tree(&env, expected(&env, &[], &same), "-a --no-r -r");
        copy(&env, &["-a", "-D", "--no-specials"]);
        assert_tree(&env, expected(&env, &["pipe"], &same), "-a -D --no-specials");
    }

    fn single_parts_work_without_archive(env: TestEnv) {
        parts_tree(&env);
        // pcopy's default is rsync's -rlpt: the same tree as those flags,
        // less the fifo and the hard link, and setuid without the owner.
        let plain = |rel: &str, line: String| match rel {
            "two" => line.replace(" one", " two"),
            "run" => with_mode(&line, 0o755),
            _ => line,
        };
        for flags in [&[][..], &["-rlpt"][..]] {
            copy(&env, flags);
            assert_tree(&env, expected(&env, &["pipe"], &plain), "-rlpt");
        }
        let linked = |rel: &str, line: String| match rel {
            "run" => with_mode(&line, 0o755),
            _ => line,
        };
        copy(&env, &["-H", "--specials"]);
        assert_tree(&env, expected(&env, &[], &linked), "-H --specials");
    }

    fn without_recursion_directories_are_skipped_as_rsync_does(env: TestEnv) {
        parts_tree(&env);
        let output = env.run(["-a", "--no-r", "src/", "dst"]);
        assert_status(&output, 0);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("skipping directory src/"), "{stderr}");
        assert!(!env.path("dst").exists());
        // Files named on the command line are copied; directories not.
        let output = env.run(["-a", "--no-recursive", "src/one", "src/d", "src/link", "dst"]);
        assert_status(&output, 0);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("skipping directory src/d"), "{stderr}");
        let names: Vec<String> = (tree(&env.path("dst")))
            .iter()
            .map(|line| line.split(' ').next().unwrap().to_string())
            .collect();
        assert_eq!(names, [".", "link", "one"]);
    }

    fn without_recursion_a_listed_directory_is_made_empty_as_rsync_does(env: TestEnv) {
        parts_tree(&env);
        env.write("list", "one\nd\nlink\n");
        env.write("dst/d/old", "old");
        let output = env.run(["-a", "--no-r", "--delete", "--files-from=list", "src", "dst"]);
        assert_status(&output, 0);
        // `d` gets its mode and time, not its contents; --delete leaves
        // what is in it, as rsync does for a directory it did not copy.
        let got: Vec<String> = tree(&env.path("dst"))
            .into_iter()
            .filter(|line| ![".", "d/old"].contains(&rel_of(line)))
            .collect();
        let want: Vec<String> = expected(&env, &[], &same)
            .into_iter()
            .filter(|line| ["one", "d", "link"].contains(&rel_of(line)))
            .collect();
        assert_eq!(got, want);
        assert_eq!(std::fs::read(env.path("dst/d/old")).unwrap(), b"old");
    }

    fn owner_and_group_parts_each_on_their_own(env: TestEnv) {
        if !is_root("give files away") {
            return;
        }
        parts_tree(&env);
        for rel in ["src/run", "src/open", "src/one", "src/d/f", "src/d", "src/link", "src/pipe", "src"] {
            lchown(env.path(rel), Some(12345), Some(12346)).unwrap();
        }
        let ids = |root: &Path| -> Vec<String> {
            let mut lines: Vec<String> = walkdir::WalkDir::new(root)
                .into_iter()
                .map(|e| {
                    let e = e.unwrap();
                    let meta = e.path().symlink_metadata().unwrap();
                    let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                    format!("{rel} {}:{}", meta.uid(), meta.gid())
                })
                .collect();
            lines.sort();
            lines
        };
        let owned = |ids_line: &str, uid: u32, gid: u32| {
            format!("{} {uid}:{gid}", ids_line.split(' ').next().unwrap())
        };
        let src_ids = ids(&env.path("src"));
        for (flags, uid, gid) in [
            (&["-o"][..], 12345, 0),
            (&["-g"][..], 0, 12346),
            (&["-og"][..], 12345, 12346),
            (&["-a", "--no-o"][..], 0, 12346),
            (&["-a", "--no-g"][..], 12345, 0),
            (&["--no-o", "-a"][..], 12345, 12346),
        ] {
            copy(&env, flags);
            let want: Vec<String> = src_ids.iter().map(|l| owned(l, uid, gid)).collect();
            let got: Vec<String> = ids(&env.path("dst"))
                .into_iter()
                .filter(|l| !l.starts_with("pipe") || flags.contains(&"-a"))
                .collect();
            let want: Vec<String> = want
                .into_iter()
                .filter(|l| !l.starts_with("pipe") || flags.contains(&"-a"))
                .collect();
            assert_eq!(got, want, "{flags:?}");
        }
    }

    fn devices_and_specials_are_parts_of_their_own(env: TestEnv) {
        if !is_root("create device nodes") {
            return;
        }
        parts_tree(&env);
        let dev = rustix::fs::makedev(1, 3);
        let (kind, mode) = (rustix::fs::FileType::CharacterDevice, rustix::fs::Mode::from_raw_mode(0o666));
        rustix::fs::mknodat(rustix::fs::CWD, env.path("src/null"), kind, mode, dev).unwrap();
        set_mtime(&env.path("src/null"), OLD, 0);
        set_mtime(&env.path("src"), OLD, 0);
        copy(&env, &["-a"]);
        assert_tree(&env, expected(&env, &[], &same), "-a");
        assert_eq!(std::fs::symlink_metadata(env.path("dst/null")).unwrap().rdev(), dev);
        let stderr = copy(&env, &["-a", "--no-devices"]);
        assert!(stderr.contains("src/null: skipping special file (character device)"), "{stderr}");
        assert_tree(&env, expected(&env, &["null"], &same), "--no-devices");
        copy(&env, &["-a", "--no-specials"]);
        assert_tree(&env, expected(&env, &["pipe"], &same), "--no-specials");
        copy(&env, &["-a", "--no-D"]);
        assert_tree(&env, expected(&env, &["null", "pipe"], &same), "--no-D");
        copy(&env, &["--devices", "-opgt"]);
        let plain = |rel: &str, line: String| match rel {
            "two" => line.replace(" one", " two"),
            _ => line,
        };
        assert_tree(&env, expected(&env, &["pipe"], &plain), "--devices");
    }

    fn extended_attributes_are_a_part_of_their_own(env: TestEnv) {
        parts_tree(&env);
        let set = |rel: &str| {
            let flags = rustix::fs::XattrFlags::empty();
            rustix::fs::setxattr(env.path(rel), "user.pcopy.part", b"kept", flags)
        };
        if set("src/one") == Err(rustix::io::Errno::NOTSUP) {
            eprintln!("skipped: the temp filesystem has no user extended attributes");
            return;
        }
        set("src/d").unwrap();
        let has = |rel: &str| {
            let mut value = [0u8; 16];
            rustix::fs::getxattr(env.path(rel), "user.pcopy.part", &mut value[..]).is_ok()
        };
        for (flags, kept) in [
            (&["-a"][..], true),
            (&["-a", "--no-X"][..], false),
            (&["-a", "--no-xattrs"][..], false),
            (&["-X"][..], true),
            (&["--no-xattrs", "-a"][..], true),
        ] {
            copy(&env, flags);
            assert_eq!((has("dst/one"), has("dst/d")), (kept, kept), "{flags:?}");
        }
        // The tree is the same either way.
        copy(&env, &["-a", "--no-xattrs"]);
        assert_tree(&env, expected(&env, &[], &same), "--no-xattrs");
    }
}
