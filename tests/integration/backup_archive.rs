//! `-a`: hard links (also across workers), sparse files, extended
//! attributes, special files, setuid and owners; `--fsync` and `--verify`.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use crate::testenv::{
    self, TestEnv, assert_same_tree, assert_status, assert_unchanged, is_root, json_of, snapshot,
};

/// Groups of hard-linked names spread over directories, so different
/// workers take different names of one file.
fn linked_tree(env: &TestEnv) -> Vec<Vec<String>> {
    let mut groups = Vec::new();
    for g in 0..12 {
        let first = format!("src/d{}/first-{g}.txt", g % 4);
        env.write(&first, format!("group {g}\n").repeat(g + 1));
        let mut names = vec![first.clone()];
        for n in 0..3 {
            let other = format!("src/d{}/sub/link-{g}-{n}.txt", (g + n + 1) % 4);
            env.mkdir(std::path::Path::new(&other).parent().unwrap());
            fs::hard_link(env.path(&first), env.path(&other)).unwrap();
            names.push(other);
        }
        groups.push(names);
    }
    for i in 0..300 {
        env.write(format!("src/d{}/filler-{i}.txt", i % 4), "filler");
    }
    groups
}

fn inode(env: &TestEnv, rel: &str) -> u64 {
    fs::symlink_metadata(env.path(rel)).unwrap().ino()
}

both_kinds! {
    fn hard_links_stay_hard_links_across_workers(env: TestEnv) {
        let groups = linked_tree(&env);
        let output = env.run(["-a", "-j", "4", "--json", "src/", "dst"]);
        assert_status(&output, 0);
        let mut seen: HashMap<u64, usize> = HashMap::new();
        for (g, names) in groups.iter().enumerate() {
            let dst: Vec<String> = names.iter().map(|n| n.replacen("src/", "dst/", 1)).collect();
            let first = inode(&env, &dst[0]);
            for name in &dst {
                assert_eq!(inode(&env, name), first, "{name} is not linked to {}", dst[0]);
            }
            assert_eq!(fs::symlink_metadata(env.path(&dst[0])).unwrap().nlink(), 4);
            assert_eq!(seen.insert(first, g), None, "groups share an inode");
        }
        assert_same_tree(&env.path("src"), &env.path("dst"));
        let before = snapshot(&env.path("dst"));
        let again = env.run(["-a", "-j", "4", "--json", "src/", "dst"]);
        assert_eq!(json_of(&again)["files_copied"], 0, "{}", testenv::describe(&again));
        assert_unchanged(&before, &env.path("dst"), "by a rerun");
    }

    fn the_other_names_are_kept_whole_when_the_first_is_not_copied(env: TestEnv) {
        // `s1/x` is the group's first name (its source comes first);
        // `s2/y` and `s2/z` are later names of the same file.
        let data = "the linked file's data\n";
        env.write("s1/x", data);
        env.mkdir("s2");
        fs::hard_link(env.path("s1/x"), env.path("s2/y")).unwrap();
        fs::hard_link(env.path("s1/x"), env.path("s2/z")).unwrap();
        let linked_whole = |dst: &str| {
            for name in ["y", "z"] {
                let path = env.path(format!("{dst}/{name}"));
                assert_eq!(fs::read_to_string(&path).unwrap(), data, "{dst}/{name}");
            }
            assert_eq!(inode(&env, &format!("{dst}/y")), inode(&env, &format!("{dst}/z")), "{dst}");
        };
        let run = |dst: &str, flags: &[&str]| {
            let args: Vec<&str> = ["-a"].iter().chain(flags).chain(&["s1/", "s2/", dst]).copied().collect();
            env.run(args)
        };
        // The first name fails: a full directory is in its way.
        env.write("failed/x/inside", "in the way");
        let output = run("failed", &[]);
        assert_status(&output, 23);
        linked_whole("failed");
        assert!(env.path("failed/x/inside").exists());
        // --existing: the first name is not in DST, the others are.
        env.write("existing/y", "old y");
        env.write("existing/z", "old z");
        assert_status(&run("existing", &["--existing"]), 0);
        linked_whole("existing");
        assert!(!env.path("existing/x").exists());
        // --max-size leaves every name out alike.
        let output = run("sized", &["--max-size=3"]);
        assert_status(&output, 0);
        assert_eq!(fs::read_dir(env.path("sized")).unwrap().count(), 0, "{}", testenv::describe(&output));
        // Filtered out, or already up to date: the others still link.
        assert_status(&run("filtered", &["--exclude=x"]), 0);
        linked_whole("filtered");
        assert!(!env.path("filtered/x").exists());
        assert_status(&run("current", &[]), 0);
        fs::remove_file(env.path("current/y")).unwrap();
        assert_status(&run("current", &[]), 0);
        linked_whole("current");
        assert_eq!(inode(&env, "current/x"), inode(&env, "current/y"));
    }

    fn a_sparse_file_stays_sparse(env: TestEnv) {
        let path = env.path("src/sparse.img");
        env.mkdir("src");
        let file = fs::File::create(&path).unwrap();
        file.set_len(64 << 20).unwrap();
        use std::os::unix::fs::FileExt;
        for offset in [0u64, 20 << 20, (64 << 20) - 5] {
            file.write_all_at(b"data!", offset).unwrap();
        }
        drop(file);
        let src_blocks = fs::metadata(&path).unwrap().blocks();
        assert!(src_blocks * 512 < 1 << 20, "the temp filesystem made no holes");
        for flags in [&["-a"][..], &["-a", "--verify"][..]] {
            let output = env.pcopy().args(flags).args(["src/", "dst"]).output().unwrap();
            assert_status(&output, 0);
            let copy = fs::metadata(env.path("dst/sparse.img")).unwrap();
            assert_eq!(copy.len(), 64 << 20);
            assert!(copy.blocks() <= src_blocks + 64, "{} blocks for {src_blocks}", copy.blocks());
            assert_same_tree(&env.path("src"), &env.path("dst"));
            fs::remove_dir_all(env.path("dst")).unwrap();
        }
    }

    fn extended_attributes_are_copied(env: TestEnv) {
        env.write("src/tagged.txt", "x");
        env.mkdir("src/tagged-dir");
        let set = |rel: &str, value: &[u8]| {
            rustix::fs::setxattr(env.path(rel), "user.pcopy.test", value, rustix::fs::XattrFlags::empty())
        };
        if set("src/tagged.txt", b"file value") == Err(rustix::io::Errno::NOTSUP) {
            eprintln!("skipped: the temp filesystem has no user extended attributes");
            return;
        }
        set("src/tagged-dir", b"dir value").unwrap();
        assert_status(&env.run(["-a", "src/", "dst"]), 0);
        let get = |rel: &str| {
            let mut value = [0u8; 64];
            let len = rustix::fs::getxattr(env.path(rel), "user.pcopy.test", &mut value[..]).unwrap();
            value[..len].to_vec()
        };
        assert_eq!(get("dst/tagged.txt"), b"file value");
        assert_eq!(get("dst/tagged-dir"), b"dir value");
    }

    fn a_fifo_is_recreated_and_a_rerun_leaves_it(env: TestEnv) {
        env.write("src/file", "f");
        env.mkfifo("src/pipe");
        env.chmod("src/pipe", 0o640);
        let output = env.run(["-a", "src/", "dst"]);
        assert_status(&output, 0);
        let meta = fs::symlink_metadata(env.path("dst/pipe")).unwrap();
        assert!(meta.file_type().is_fifo());
        assert_same_tree(&env.path("src"), &env.path("dst"));
        let before = snapshot(&env.path("dst"));
        let again = env.run(["-a", "--json", "src/", "dst"]);
        assert_eq!(json_of(&again)["files_skipped"], 2);
        assert_unchanged(&before, &env.path("dst"), "by a rerun");
    }

    fn a_char_device_is_recreated_as_root(env: TestEnv) {
        if !is_root("create device nodes") {
            return;
        }
        env.mkdir("src");
        let dev = rustix::fs::makedev(1, 3);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            env.path("src/null"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            dev,
        )
        .unwrap();
        env.chmod("src/null", 0o666);
        assert_status(&env.run(["-a", "src/", "dst"]), 0);
        let meta = fs::symlink_metadata(env.path("dst/null")).unwrap();
        assert!(meta.file_type().is_char_device());
        assert_eq!(meta.rdev(), dev);
        assert_eq!(meta.mode() & 0o7777, 0o666);
    }

    fn setuid_and_owners_are_kept_as_root(env: TestEnv) {
        if !is_root("give files away") {
            return;
        }
        env.write("src/tool", "#!/bin/sh\n");
        env.chmod("src/tool", 0o4755);
        env.write("src/theirs/file", "owned by nobody");
        std::os::unix::fs::lchown(env.path("src/theirs/file"), Some(65534), Some(65534)).unwrap();
        std::os::unix::fs::lchown(env.path("src/theirs"), Some(65534), Some(65534)).unwrap();
        env.symlink("file", "src/theirs/link");
        std::os::unix::fs::lchown(env.path("src/theirs/link"), Some(65534), Some(65534)).unwrap();
        assert_status(&env.run(["-a", "src/", "dst"]), 0);
        let mode = fs::metadata(env.path("dst/tool")).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o4755);
        for rel in ["dst/theirs", "dst/theirs/file", "dst/theirs/link"] {
            let meta = fs::symlink_metadata(env.path(rel)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "{rel}");
        }
        assert_status(&env.run(["src/", "plain"]), 0);
        let plain = fs::metadata(env.path("plain/tool")).unwrap().permissions().mode();
        assert_eq!(plain & 0o7777, 0o755, "setuid without -a");
        std::os::unix::fs::lchown(env.path("src/theirs/file"), Some(0), Some(0)).unwrap();
        let output = env.run(["-a", "--json", "src/", "dst"]);
        assert_eq!(json_of(&output)["files_copied"], 0);
        assert_eq!(fs::metadata(env.path("dst/theirs/file")).unwrap().uid(), 0, "owner refreshed");
    }

    fn fsync_and_verify_copy_the_same_tree(env: TestEnv) {
        env.sample_tree("src");
        let output = env.run(["--fsync", "--verify", "src/", "dst"]);
        assert_status(&output, 0);
        assert_same_tree(&env.path("src"), &env.path("dst"));
    }
}
