//! Property: any tree (names of arbitrary bytes up to 255 long, sizes,
//! modes, nanosecond mtimes, symlinks, nesting) is copied exactly, by
//! either kind of worker. The expected tree is the generated model itself,
//! and the comparison below reads the copy on its own, sharing no code with
//! pcopy or the other tests' tree listing.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::testenv::{TestEnv, set_mtime};

/// Seconds and nanoseconds.
type Time = (i64, i64);

/// One generated entry.
#[derive(Debug, Clone)]
enum Node {
    File {
        data: Vec<u8>,
        mode: u32,
        mtime: Time,
    },
    Link {
        target: Vec<u8>,
        mtime: Time,
    },
    Dir {
        children: BTreeMap<Vec<u8>, Node>,
        mode: u32,
        mtime: Time,
    },
}

fn time() -> impl Strategy<Value = Time> {
    (0i64..4_000_000_000, 0i64..1_000_000_000)
}

/// Any bytes but NUL and `/`, never `.` or `..`, and never pcopy's temp
/// prefix (a later run would take such a name for its own leftover).
fn name() -> impl Strategy<Value = Vec<u8>> {
    let byte = (1u8..=255).prop_map(|b| if b == b'/' { b'_' } else { b });
    prop_oneof![
        9 => proptest::collection::vec(byte.clone(), 1..16),
        1 => byte.prop_map(|b| vec![b; 255]),
    ]
    .prop_map(|mut name| {
        if name == b"." || name == b".." || name.starts_with(b".pcopy-tmp.") {
            name.insert(0, b'x');
            name.truncate(255);
        }
        name
    })
}

/// Contents from a seed: cheap to generate and shrink even when large.
fn contents() -> impl Strategy<Value = Vec<u8>> {
    let size = prop_oneof![8 => 0usize..600, 1 => 0usize..300_000];
    (size, any::<u64>()).prop_map(|(len, mut seed)| {
        (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (seed >> 56) as u8
            })
            .collect()
    })
}

fn leaf() -> impl Strategy<Value = Node> {
    let file_modes = vec![
        0o644, 0o600, 0o755, 0o400, 0o444, 0o640, 0o4755, 0o2711, 0o1644,
    ];
    let file = (contents(), proptest::sample::select(file_modes), time())
        .prop_map(|(data, mode, mtime)| Node::File { data, mode, mtime });
    let target = proptest::collection::vec(1u8..=255, 1..40);
    let link = (target, time()).prop_map(|(target, mtime)| Node::Link { target, mtime });
    prop_oneof![4 => file, 1 => link]
}

fn dir(children: impl Strategy<Value = BTreeMap<Vec<u8>, Node>>) -> impl Strategy<Value = Node> {
    let dir_modes = vec![0o755, 0o700, 0o750, 0o555, 0o511, 0o2775, 0o1777];
    (children, proptest::sample::select(dir_modes), time()).prop_map(|(children, mode, mtime)| {
        Node::Dir {
            children,
            mode,
            mtime,
        }
    })
}

/// A directory of up to 8 entries, nested up to 4 levels below it.
fn tree() -> impl Strategy<Value = Node> {
    let entry = leaf().prop_recursive(3, 64, 8, |inner| {
        dir(proptest::collection::btree_map(name(), inner, 0..8))
    });
    dir(proptest::collection::btree_map(name(), entry, 1..9))
}

/// Creates `node` at `path`; a directory gets its mode and times after
/// its children, as they would change them.
fn build(path: &Path, node: &Node) {
    match node {
        Node::File { data, mode, mtime } => {
            fs::write(path, data).expect("write");
            fs::set_permissions(path, fs::Permissions::from_mode(*mode)).expect("chmod");
            set_mtime(path, mtime.0, mtime.1);
        }
        Node::Link { target, mtime } => {
            std::os::unix::fs::symlink(OsStr::from_bytes(target), path).expect("symlink");
            set_mtime(path, mtime.0, mtime.1);
        }
        Node::Dir {
            children,
            mode,
            mtime,
        } => {
            fs::create_dir(path).expect("mkdir");
            for (name, child) in children {
                build(&path.join(OsStr::from_bytes(name)), child);
            }
            fs::set_permissions(path, fs::Permissions::from_mode(*mode)).expect("chmod");
            set_mtime(path, mtime.0, mtime.1);
        }
    }
}

/// Compares the copy at `path` with the model: types, bytes, link
/// targets, modes (files lose setuid and setgid, as ownership is not
/// kept) and mtimes to the nanosecond.
fn compare(path: &Path, node: &Node) -> Result<(), String> {
    let shown = path.display();
    let meta = fs::symlink_metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    let mtime = (meta.mtime(), meta.mtime_nsec());
    let (want_mtime, want_mode) = match node {
        Node::File { data, mode, mtime } => {
            if !meta.is_file() || fs::read(path).map_err(|e| e.to_string())? != *data {
                return Err(format!("{shown}: not a file with the same bytes"));
            }
            (*mtime, Some(mode & !0o6000))
        }
        Node::Link { target, mtime } => {
            let found = fs::read_link(path).map_err(|e| format!("{shown}: {e}"))?;
            if found.as_os_str().as_bytes() != target.as_slice() {
                return Err(format!("{shown}: link target {found:?}"));
            }
            (*mtime, None)
        }
        Node::Dir {
            children,
            mode,
            mtime,
        } => {
            let mut names: Vec<Vec<u8>> = fs::read_dir(path)
                .map_err(|e| format!("{shown}: {e}"))?
                .map(|e| e.expect("entry").file_name().as_bytes().to_vec())
                .collect();
            names.sort();
            if names.iter().ne(children.keys()) {
                return Err(format!("{shown}: entries {names:?}"));
            }
            for (name, child) in children {
                compare(&path.join(OsStr::from_bytes(name)), child)?;
            }
            (*mtime, Some(*mode))
        }
    };
    if let Some(mode) = want_mode.filter(|&m| meta.mode() & 0o7777 != m) {
        return Err(format!(
            "{shown}: mode {:o}, expected {mode:o}",
            meta.mode() & 0o7777
        ));
    }
    if mtime != want_mtime {
        return Err(format!("{shown}: mtime {mtime:?}, expected {want_mtime:?}"));
    }
    Ok(())
}

/// Builds the model as `src` and copies it with each kind of worker,
/// comparing each copy with the model.
fn copy_and_compare(model: &Node) -> Result<(), TestCaseError> {
    for kind in ["process", "thread"] {
        let env = TestEnv::new(kind);
        build(&env.path("src"), model);
        let output = env.run(["-q", "src/", "dst"]);
        if output.status.code() != Some(0) {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let why = format!("{kind}: status {:?}: {stderr}", output.status.code());
            return Err(TestCaseError::fail(why));
        }
        if let Err(why) = compare(&env.path("dst"), model) {
            return Err(TestCaseError::fail(format!("{kind} workers: {why}")));
        }
    }
    Ok(())
}

#[test]
fn random_trees_are_copied_exactly_by_both_worker_kinds() {
    let config = Config {
        cases: 16,
        failure_persistence: None,
        ..Config::default()
    };
    // A fixed stream of cases, so CI runs the same trees every time.
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(config, rng);
    if let Err(failure) = runner.run(&tree(), |model| copy_and_compare(&model)) {
        panic!("{failure}");
    }
}
