//! Engine tests about path shapes: odd names, long paths, and symlinks in the
//! destination that must never be written through.

use std::ffi::OsStr;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

use rustix::fs::{AtFlags, Mode, OFlags};

use super::tests::{assert_no_temps, engine, expect_copied, expect_failed, job, run, scratch};
use super::*;

/// An engine using `openat2`, and one walking components as on old kernels.
fn both_lookups(dst: &std::path::Path) -> [Engine; 2] {
    let mut walking = engine(dst);
    walking
        .dirs
        .as_mut()
        .expect("destination exists")
        .force_component_walk();
    [engine(dst), walking]
}

#[test]
fn non_utf8_and_255_byte_names_are_copied() {
    let s = scratch();
    let long_name = vec![b'n'; 255];
    let names: [&[u8]; 3] = [b"caf\xe9", b"\xff\xfe\x01 odd", &long_name];
    fs::create_dir(s.dst.join(OsStr::from_bytes(b"dir\x80"))).expect("mkdir");
    let mut engine = engine(&s.dst);
    for name in names {
        let src = s.src.join(OsStr::from_bytes(name));
        fs::write(&src, name).expect("write");
        let mut rel = b"dir\x80/".to_vec();
        rel.extend_from_slice(name);
        let (outcome, _) = run(
            &mut engine,
            &job(&src, OsStr::from_bytes(&rel), EntryKind::File),
        );
        assert_eq!(expect_copied(&outcome), name.len() as u64);
        let copy = s.dst.join(OsStr::from_bytes(&rel));
        assert_eq!(fs::read(copy).expect("read"), name);
    }
    assert_no_temps(&s.dst);
}

#[test]
fn parents_are_found_in_any_order_with_the_cached_fd() {
    let s = scratch();
    for dir in ["a", "a/b", "a/b/c", "d"] {
        fs::create_dir(s.dst.join(dir)).expect("mkdir");
    }
    let src = s.src.join("f");
    fs::write(&src, b"x").expect("write");
    for mut engine in both_lookups(&s.dst) {
        // Same parent, child of the cached one, a sibling elsewhere, back up.
        let order = ["a/1", "a/2", "a/b/3", "a/b/c/4", "d/5", "a/b/6", "7"];
        for rel in order {
            fs::remove_file(s.dst.join(rel)).ok();
            let (outcome, _) = run(&mut engine, &job(&src, rel, EntryKind::File));
            expect_copied(&outcome);
            assert_eq!(fs::read(s.dst.join(rel)).expect("read"), b"x", "{rel}");
        }
    }
}

#[test]
fn symlink_in_a_parent_position_fails_and_nothing_is_written_outside() {
    let s = scratch();
    let outside = s.dst.parent().expect("parent").join("outside");
    fs::create_dir(&outside).expect("mkdir outside");
    fs::create_dir(s.dst.join("real")).expect("mkdir real");
    symlink(&outside, s.dst.join("link")).expect("symlink");
    symlink(&outside, s.dst.join("real").join("link")).expect("symlink");
    let src = s.src.join("f");
    fs::write(&src, b"secret").expect("write");
    let link = s.src.join("l");
    symlink("t", &link).expect("symlink");
    let sources = [(&src, EntryKind::File), (&link, EntryKind::Symlink)];
    for mut engine in both_lookups(&s.dst) {
        for rel in ["link/f", "real/link/f", "real/link/sub/f"] {
            for (source, kind) in sources.clone() {
                let (outcome, _) = run(&mut engine, &job(source, rel, kind));
                let (fail_kind, error) = expect_failed(&outcome);
                assert_eq!(fail_kind, FailKind::DestIo);
                assert!(error.contains("is a symbolic link"), "{rel}: {error}");
            }
        }
    }
    assert_eq!(fs::read_dir(&outside).expect("read outside").count(), 0);
    assert_no_temps(&s.dst);
}

#[test]
fn regular_file_in_a_parent_position_fails_clearly() {
    let s = scratch();
    fs::write(s.dst.join("plain"), b"file").expect("write");
    let src = s.src.join("f");
    fs::write(&src, b"data").expect("write");
    let (outcome, _) = run(&mut engine(&s.dst), &job(&src, "plain/f", EntryKind::File));
    let (kind, error) = expect_failed(&outcome);
    assert_eq!(kind, FailKind::DestIo);
    assert!(error.contains("not a directory"), "{error}");
}

#[test]
fn symlink_at_the_final_name_is_replaced_and_its_target_untouched() {
    let s = scratch();
    let outside = s.dst.parent().expect("parent").join("victim");
    fs::write(&outside, b"old target").expect("victim");
    symlink(&outside, s.dst.join("f")).expect("symlink");
    symlink("nowhere", s.dst.join("dangling")).expect("dangling");
    let src = s.src.join("f");
    fs::write(&src, b"new file").expect("write");
    let mut engine = engine(&s.dst);
    for rel in ["f", "dangling"] {
        let (outcome, _) = run(&mut engine, &job(&src, rel, EntryKind::File));
        expect_copied(&outcome);
        let meta = fs::symlink_metadata(s.dst.join(rel)).expect("lstat");
        assert!(meta.is_file(), "{rel} still a symlink");
        assert_eq!(fs::read(s.dst.join(rel)).expect("read"), b"new file");
    }
    assert_eq!(fs::read(&outside).expect("read victim"), b"old target");
    assert_no_temps(&s.dst);
}

/// Creates `depth` nested directories of `component` below `root` through
/// directory fds, returning the innermost fd and the relative path.
fn nest(root: &std::path::Path, component: &[u8], depth: usize) -> (OwnedFd, Vec<u8>) {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut dir = rustix::fs::open(root, flags, Mode::empty()).expect("open root");
    let mut rel = Vec::new();
    for _ in 0..depth {
        rustix::fs::mkdirat(&dir, component, Mode::from_raw_mode(0o755)).expect("mkdirat");
        dir = rustix::fs::openat(&dir, component, flags, Mode::empty()).expect("openat");
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(component);
    }
    (dir, rel)
}

#[test]
fn paths_longer_than_path_max_copy_through_directory_fds() {
    let s = scratch();
    let component = [b'd'; 200];
    let (src_dir, src_rel) = nest(&s.src, &component, 25);
    let (dst_dir, dst_rel) = nest(&s.dst, &component, 25);
    assert!(src_rel.len() > 4096 && dst_rel.len() > 4096);
    let file_flags = OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC;
    let file = rustix::fs::openat(&src_dir, "deep", file_flags, Mode::from_raw_mode(0o644))
        .expect("create deep file");
    rustix::io::write(&file, b"deep contents").expect("write deep");
    symlink_at(&src_dir, "deeplink", b"deep");

    let mut src_path = s.src.as_os_str().as_bytes().to_vec();
    src_path.push(b'/');
    src_path.extend_from_slice(&src_rel);
    for mut engine in both_lookups(&s.dst) {
        for (name, kind) in [("deep", EntryKind::File), ("deeplink", EntryKind::Symlink)] {
            let src = [&src_path[..], b"/", name.as_bytes()].concat();
            let src = PathBuf::from(OsStr::from_bytes(&src));
            let rel = [&dst_rel[..], b"/", name.as_bytes()].concat();
            let (outcome, _) = run(&mut engine, &job(&src, OsStr::from_bytes(&rel), kind));
            expect_copied(&outcome);
        }
    }
    let copy =
        rustix::fs::openat(&dst_dir, "deep", OFlags::RDONLY, Mode::empty()).expect("open copy");
    let mut buf = [0u8; 64];
    let n = rustix::io::read(&copy, &mut buf[..]).expect("read copy");
    assert_eq!(&buf[..n], b"deep contents");
    let target = rustix::fs::readlinkat(&dst_dir, "deeplink", Vec::new()).expect("readlink");
    assert_eq!(target.as_bytes(), b"deep");
    let st = rustix::fs::statat(&dst_dir, "deep", AtFlags::empty()).expect("stat copy");
    assert_eq!(st.st_size, 13);
    assert!(temps_in(dst_dir.as_fd()).is_empty());
}

fn symlink_at(dir: &OwnedFd, name: &str, target: &[u8]) {
    rustix::fs::symlinkat(target, dir, name).expect("symlinkat");
}

/// Temp names directly in `dir` (the deep tree is beyond `PATH_MAX`, so
/// a path-based directory scan cannot reach it).
fn temps_in(dir: std::os::fd::BorrowedFd<'_>) -> Vec<Vec<u8>> {
    let mut entries = rustix::fs::Dir::read_from(dir).expect("read dir");
    let mut temps = Vec::new();
    while let Some(entry) = entries.read() {
        let name = entry.expect("entry").file_name().to_bytes().to_vec();
        if name.starts_with(TEMP_PREFIX.as_bytes()) {
            temps.push(name);
        }
    }
    temps
}
