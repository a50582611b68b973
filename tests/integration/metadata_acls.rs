//! `-A`: POSIX access and default ACLs, set with setfacl and compared
//! with `getfacl -R` over whole trees.

use std::path::Path;
use std::process::Command;

use crate::testenv::{TestEnv, assert_status, skipped};

/// Runs setfacl with `args` on `path`; false when ACLs cannot be set.
fn setfacl(path: &Path, args: &[&str]) -> bool {
    Command::new("setfacl")
        .args(args)
        .arg(path)
        .status()
        .is_ok_and(|status| status.success())
}

/// `getfacl -R .` run in `root`: every entry's owner, group and ACL.
fn acls(root: &Path) -> String {
    let output = Command::new("getfacl")
        .args(["-R", "."])
        .current_dir(root)
        .output()
        .expect("getfacl");
    assert!(output.status.success(), "getfacl in {}", root.display());
    String::from_utf8(output.stdout).unwrap()
}

/// A tree with access ACLs on files and a directory, a default ACL on a
/// directory, a file that inherited it, and one without any; `false`
/// (with the reason printed) where the filesystem takes no ACLs.
fn acl_tree(env: &TestEnv) -> bool {
    env.mkdir("src/d");
    env.write("src/plain.txt", "plain\n");
    env.write("src/f1", "one\n");
    if !setfacl(&env.path("src/f1"), &["-m", "u:12345:rw-,g:12346:r--"]) {
        skipped("setfacl fails on the test directory");
        return false;
    }
    assert!(setfacl(&env.path("src/d"), &["-m", "g:12346:r-x"]));
    assert!(setfacl(
        &env.path("src/d"),
        &["-d", "-m", "u:12345:rwx,o::---"]
    ));
    env.write("src/d/inherited", "inherited\n");
    env.write("src/d/none", "none\n");
    assert!(setfacl(&env.path("src/d/none"), &["-b"]));
    // Large enough to be split into parts copied by several workers.
    env.write("src/d/big", vec![7u8; 256 * 1024]);
    assert!(setfacl(&env.path("src/d/big"), &["-m", "u:12347:r--"]));
    true
}

/// Copies `src/` to `dst` with `flags`, files split from 64 KiB on.
fn copy(env: &TestEnv, flags: &[&str]) -> std::process::Output {
    let mut args = vec!["-j", "3", "--split-min", "65536"];
    args.extend(flags);
    args.extend(["src/", "dst"]);
    env.run(args)
}

both_kinds! {
    fn acls_make_access_and_default_acls_the_sources(env: TestEnv) {
        if !acl_tree(&env) {
            return;
        }
        // A destination directory whose own default ACL new files would
        // inherit: -A leaves each copy with its source's ACL alone.
        env.mkdir("dst/d");
        assert!(setfacl(&env.path("dst/d"), &["-d", "-m", "g:12348:rwx"]));
        assert_status(&copy(&env, &["-A"]), 0);
        assert_eq!(acls(&env.path("dst")), acls(&env.path("src")));
        assert!(acls(&env.path("src")).contains("default:user:12345:rwx"));
        // A rerun finds everything up to date.
        let again = copy(&env, &["-A", "-i"]);
        assert_status(&again, 0);
        assert_eq!(String::from_utf8_lossy(&again.stdout), "");
        assert_eq!(acls(&env.path("dst")), acls(&env.path("src")));
    }

    fn acls_come_with_archive_too_and_not_without_either(env: TestEnv) {
        if !acl_tree(&env) {
            return;
        }
        assert_status(&copy(&env, &["-a", "--acls"]), 0);
        assert_eq!(acls(&env.path("dst")), acls(&env.path("src")));
        std::fs::rename(env.path("dst"), env.path("archived")).unwrap();
        assert_status(&copy(&env, &[]), 0);
        let plain = acls(&env.path("dst"));
        assert_ne!(plain, acls(&env.path("src")));
        assert!(!plain.contains("12345"), "{plain}");
    }
}
