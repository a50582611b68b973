//! Engine tests: contents, metadata, atomic replacement, symlinks, special
//! files and failures. Path-shape tests are in `tests_paths.rs`.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Timespec, Timestamps};

use super::*;
use crate::job::FileTime;

/// A scratch area with a source and a destination root side by side.
pub(super) struct Scratch {
    _dir: tempfile::TempDir,
    pub(super) src: PathBuf,
    pub(super) dst: PathBuf,
}

pub(super) fn scratch() -> Scratch {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    let dst = dir.path().join("dst");
    fs::create_dir(&src).expect("mkdir src");
    fs::create_dir(&dst).expect("mkdir dst");
    Scratch {
        _dir: dir,
        src,
        dst,
    }
}

pub(super) fn engine(dst: &Path) -> Engine {
    Engine::new(dst, CopyOptions::default()).expect("engine")
}

pub(super) fn job(src: &Path, rel_dst: impl AsRef<OsStr>, kind: EntryKind) -> FileJob {
    FileJob {
        id: 1,
        src: src.as_os_str().to_owned(),
        rel_dst: rel_dst.as_ref().to_owned(),
        kind,
        meta: None,
        fresh: false,
        range: None,
    }
}

/// Runs one job, returning its outcome and the sum of reported progress.
pub(super) fn run(engine: &mut Engine, job: &FileJob) -> (Outcome, u64) {
    let mut reported = 0;
    let outcome = engine.copy(job, &mut |n| reported += n);
    (outcome, reported)
}

pub(super) fn expect_copied(outcome: &Outcome) -> u64 {
    match outcome {
        Outcome::Copied { bytes, .. } => *bytes,
        other => panic!("expected Copied, got {other:?}"),
    }
}

pub(super) fn expect_failed(outcome: &Outcome) -> (FailKind, &str) {
    match outcome {
        Outcome::Failed { error, kind } => (*kind, error.as_str()),
        other => panic!("expected Failed, got {other:?}"),
    }
}

/// Every entry below `dir` whose name starts with `TEMP_PREFIX`.
pub(super) fn temps_below(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("entry");
        let path = entry.path();
        if entry
            .file_name()
            .as_bytes()
            .starts_with(TEMP_PREFIX.as_bytes())
        {
            found.push(path.clone());
        }
        if entry.file_type().expect("file type").is_dir() {
            found.extend(temps_below(&path));
        }
    }
    found
}

pub(super) fn assert_no_temps(dir: &Path) {
    assert_eq!(temps_below(dir), Vec::<PathBuf>::new(), "temp files left");
}

fn set_times(path: &Path, times: Times) {
    let times = Timestamps {
        last_access: times.atime.timespec(),
        last_modification: times.mtime.timespec(),
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).expect("utimensat");
}

/// An entry's access and modification times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Times {
    atime: FileTime,
    mtime: FileTime,
}

fn times_of(path: &Path) -> Times {
    let meta = fs::symlink_metadata(path).expect("lstat");
    Times {
        atime: FileTime {
            secs: meta.atime(),
            nanos: meta.atime_nsec(),
        },
        mtime: FileTime {
            secs: meta.mtime(),
            nanos: meta.mtime_nsec(),
        },
    }
}

fn write_file(path: &Path, contents: &[u8], mode: u32) {
    fs::write(path, contents).expect("write source");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Times a source is given, to the nanosecond.
const TIMES: Times = Times {
    atime: FileTime {
        secs: 1_000_000_000,
        nanos: 123_456_789,
    },
    mtime: FileTime {
        secs: 1_500_000_000,
        nanos: 987_654_321,
    },
};

#[test]
fn copies_contents_mode_and_nanosecond_times() {
    let s = scratch();
    let src = s.src.join("a.txt");
    write_file(&src, b"hello engine\n", 0o640);
    set_times(&src, TIMES);
    let (outcome, reported) = run(&mut engine(&s.dst), &job(&src, "a.txt", EntryKind::File));
    assert_eq!(expect_copied(&outcome), 13);
    assert_eq!(reported, 13);
    let copy = s.dst.join("a.txt");
    // Times first: reading the copy updates its atime.
    assert_eq!(times_of(&copy), TIMES);
    assert_eq!(fs::read(&copy).expect("read copy"), b"hello engine\n");
    assert_eq!(fs::metadata(&copy).expect("stat").mode() & 0o7777, 0o640);
    assert_no_temps(&s.dst);
}

/// Copies files of every permission pattern into `dst` (beneath `s.dst`)
/// and checks each copy has its source's bits.
fn assert_modes_copied(s: &Scratch, dst: &str) {
    let mut engine = engine(&s.dst);
    for mode in [0o644, 0o600, 0o755, 0o640, 0o666, 0o777, 0o000, 0o1755] {
        let src = s.src.join(format!("m{mode:o}"));
        write_file(&src, b"x", mode);
        let rel = format!("{dst}/m{mode:o}");
        let (outcome, _) = run(&mut engine, &job(&src, &rel, EntryKind::File));
        expect_copied(&outcome);
        let copied = fs::metadata(s.dst.join(&rel)).expect("stat").mode() & 0o7777;
        assert_eq!(copied, mode, "{rel}: {copied:o}");
    }
}

#[test]
fn permission_bits_the_umask_would_take_are_copied_too() {
    let s = scratch();
    fs::create_dir(s.dst.join("d")).expect("mkdir");
    assert_modes_copied(&s, "d");
    // The root directory takes the other way to its descriptor.
    let mut engine = engine(&s.dst);
    let src = s.src.join("top");
    write_file(&src, b"x", 0o666);
    expect_copied(&run(&mut engine, &job(&src, "top", EntryKind::File)).0);
    assert_eq!(
        fs::metadata(s.dst.join("top")).expect("stat").mode() & 0o777,
        0o666
    );
}

#[test]
fn a_default_acl_in_the_destination_does_not_change_copied_modes() {
    let s = scratch();
    let dir = s.dst.join("acl");
    fs::create_dir(&dir).expect("mkdir");
    // A default ACL of user rwx, group r-x, other ---: files created in
    // the directory would lose their "other" bits.
    let mut acl = 2u32.to_le_bytes().to_vec();
    for (tag, perm) in [(0x01u16, 7u16), (0x04, 5), (0x20, 0)] {
        acl.extend(tag.to_le_bytes());
        acl.extend(perm.to_le_bytes());
        acl.extend(u32::MAX.to_le_bytes());
    }
    let set = rustix::fs::setxattr(
        &dir,
        "system.posix_acl_default",
        &acl,
        rustix::fs::XattrFlags::empty(),
    );
    if let Err(err) = set {
        eprintln!("skipped: this filesystem takes no default ACL here ({err})");
        return;
    }
    let probe = dir.join("probe");
    fs::write(&probe, b"").expect("probe");
    assert_eq!(
        fs::metadata(&probe).expect("stat").mode() & 0o007,
        0,
        "ACL applies"
    );
    fs::remove_file(&probe).expect("remove probe");
    assert_modes_copied(&s, "acl");
}

#[test]
fn named_temp_fallback_copies_and_overwrites_without_leftovers() {
    let s = scratch();
    let src = s.src.join("f");
    write_file(&src, b"new", 0o604);
    set_times(&src, TIMES);
    fs::write(s.dst.join("g"), b"old contents").expect("old");
    let mut engine = engine(&s.dst);
    engine.namer.force_named_temps();
    for name in ["f", "g"] {
        // The previous copy's read updated the source's atime.
        set_times(&src, TIMES);
        let (outcome, _) = run(&mut engine, &job(&src, name, EntryKind::File));
        assert_eq!(expect_copied(&outcome), 3);
        assert_eq!(times_of(&s.dst.join(name)), TIMES);
        assert_eq!(fs::read(s.dst.join(name)).expect("read"), b"new");
        let mode = fs::metadata(s.dst.join(name)).expect("stat").mode();
        assert_eq!(mode & 0o7777, 0o604);
    }
    assert_no_temps(&s.dst);
}

#[test]
fn named_temps_end_with_the_source_mode_whether_created_with_it_or_not() {
    let s = scratch();
    let mut engine = engine(&s.dst);
    engine.namer.force_named_temps();
    // 0644 and 0640 are created as they end (the umask aside); 0444 and
    // 0400 would not let the worker write: 0600 first, then changed.
    for mode in [0o644, 0o640, 0o444, 0o400, 0o755] {
        let name = format!("f{mode:o}");
        let src = s.src.join(&name);
        write_file(&src, b"data", mode);
        let (outcome, _) = run(&mut engine, &job(&src, &name, EntryKind::File));
        assert_eq!(expect_copied(&outcome), 4);
        let copied = fs::metadata(s.dst.join(&name)).expect("stat").mode();
        assert_eq!(copied & 0o7777, mode, "{name}");
    }
    assert_no_temps(&s.dst);
}

#[test]
fn overwrite_replaces_the_file_instead_of_rewriting_it() {
    let s = scratch();
    let src = s.src.join("f");
    write_file(&src, b"new version", 0o644);
    let dst = s.dst.join("f");
    fs::write(&dst, b"old version").expect("old");
    // A reader holding the old file keeps seeing a complete old version: the
    // new one is written elsewhere and renamed over the name.
    let mut old_reader = fs::File::open(&dst).expect("open old");
    let mut engine = engine(&s.dst);
    for _ in 0..2 {
        let (outcome, _) = run(&mut engine, &job(&src, "f", EntryKind::File));
        assert_eq!(expect_copied(&outcome), 11);
    }
    let mut old = String::new();
    old_reader.read_to_string(&mut old).expect("read old");
    assert_eq!(old, "old version");
    assert_eq!(fs::read(&dst).expect("read new"), b"new version");
    assert_no_temps(&s.dst);
}

#[test]
fn empty_file_is_created_with_its_mode() {
    let s = scratch();
    let src = s.src.join("empty");
    write_file(&src, b"", 0o600);
    let (outcome, reported) = run(&mut engine(&s.dst), &job(&src, "empty", EntryKind::File));
    assert_eq!(expect_copied(&outcome), 0);
    assert_eq!(reported, 0);
    let meta = fs::metadata(s.dst.join("empty")).expect("stat");
    assert_eq!((meta.len(), meta.mode() & 0o7777), (0, 0o600));
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn large_file_reports_progress_in_steps_adding_up_to_the_total() {
    for read_write in [false, true] {
        let s = scratch();
        let src = s.src.join("big");
        let data = pattern(10 << 20);
        write_file(&src, &data, 0o644);
        let mut engine = engine(&s.dst);
        engine.data.force_no_reflink();
        if read_write {
            engine.data.force_read_write();
        }
        let mut steps = Vec::new();
        let outcome = engine.copy(&job(&src, "big", EntryKind::File), &mut |n| steps.push(n));
        assert_eq!(expect_copied(&outcome), 10 << 20);
        assert_eq!(steps.iter().sum::<u64>(), 10 << 20);
        assert!(steps.len() >= 2, "one report for 10 MiB: {steps:?}");
        assert!(fs::read(s.dst.join("big")).expect("read") == data);
    }
}

#[test]
fn file_growing_during_the_copy_is_copied_to_its_new_end_and_flagged() {
    let s = scratch();
    let src = s.src.join("growing");
    write_file(&src, &pattern(9 << 20), 0o644);
    let mut appender = fs::OpenOptions::new()
        .append(true)
        .open(&src)
        .expect("open");
    let mut appended = false;
    let mut engine = engine(&s.dst);
    engine.data.force_no_reflink();
    let outcome = engine.copy(&job(&src, "growing", EntryKind::File), &mut |_| {
        if !appended {
            appender.write_all(&[7u8; 4096]).expect("append");
            appended = true;
        }
    });
    let expected = (9 << 20) + 4096;
    assert!(matches!(
        outcome,
        Outcome::Copied { bytes, changed: true, .. } if bytes == expected
    ));
    assert_eq!(
        fs::read(s.dst.join("growing")).expect("read"),
        fs::read(&src).expect("src")
    );
}

#[test]
fn setuid_and_setgid_bits_are_dropped() {
    let s = scratch();
    let src = s.src.join("suid");
    write_file(&src, b"#!/bin/sh\n", 0o6755);
    let (outcome, _) = run(&mut engine(&s.dst), &job(&src, "suid", EntryKind::File));
    expect_copied(&outcome);
    let mode = fs::metadata(s.dst.join("suid")).expect("stat").mode();
    assert_eq!(mode & 0o7777, 0o755);
}

#[test]
fn symlink_target_bytes_and_times_are_copied_exactly() {
    let s = scratch();
    let long_target = vec![b'x'; 4000];
    let targets: [&[u8]; 3] = [b"plain/target", b"caf\xe9/\xff\xfe", &long_target];
    let mut engine = engine(&s.dst);
    for (i, target) in targets.iter().enumerate() {
        let link = s.src.join(format!("link{i}"));
        symlink(OsStr::from_bytes(target), &link).expect("symlink");
        set_times(&link, TIMES);
        let name = format!("link{i}");
        let (outcome, _) = run(&mut engine, &job(&link, &name, EntryKind::Symlink));
        assert_eq!(expect_copied(&outcome), 0);
        // Times first: readlink updates the link's atime.
        assert_eq!(times_of(&s.dst.join(&name)), TIMES);
        let copied = fs::read_link(s.dst.join(&name)).expect("readlink");
        assert_eq!(copied.into_os_string().into_vec(), target.to_vec());
    }
    // Replacing an existing link is atomic too (rename over it).
    let link = s.src.join("link0");
    let (outcome, _) = run(&mut engine, &job(&link, "link1", EntryKind::Symlink));
    expect_copied(&outcome);
    assert_eq!(
        fs::read_link(s.dst.join("link1")).expect("readlink"),
        Path::new("plain/target")
    );
    assert_no_temps(&s.dst);
}

#[test]
fn dereference_copies_the_target_and_reports_dangling_links() {
    let s = scratch();
    write_file(&s.src.join("target"), b"pointed at", 0o644);
    symlink("target", s.src.join("link")).expect("symlink");
    symlink("missing", s.src.join("dangling")).expect("symlink");
    let opts = CopyOptions {
        dereference: true,
        ..CopyOptions::default()
    };
    let mut engine = Engine::new(&s.dst, opts).expect("engine");
    let (outcome, _) = run(
        &mut engine,
        &job(&s.src.join("link"), "copy", EntryKind::Symlink),
    );
    assert_eq!(expect_copied(&outcome), 10);
    assert!(
        fs::symlink_metadata(s.dst.join("copy"))
            .expect("lstat")
            .is_file()
    );
    let (outcome, _) = run(
        &mut engine,
        &job(&s.src.join("dangling"), "d", EntryKind::Symlink),
    );
    let (kind, error) = expect_failed(&outcome);
    assert_eq!(kind, FailKind::SourceIo);
    assert!(error.contains("points to nothing"), "{error}");
}

#[test]
fn fifo_is_skipped_without_opening_it_even_when_listed_as_a_file() {
    let s = scratch();
    let fifo = s.src.join("fifo");
    rustix::fs::mkfifoat(CWD, &fifo, rustix::fs::Mode::from_raw_mode(0o644)).expect("mkfifo");
    let mut engine = engine(&s.dst);
    for kind in [EntryKind::Special, EntryKind::File] {
        let (outcome, _) = run(&mut engine, &job(&fifo, "fifo", kind));
        let Outcome::Skipped { reason } = outcome else {
            panic!("fifo not skipped: {outcome:?}");
        };
        assert_eq!(
            reason.to_string(),
            "skipping special file (fifo); use -a or --specials to recreate"
        );
    }
    assert!(fs::symlink_metadata(s.dst.join("fifo")).is_err());
}

#[test]
fn vanished_source_is_reported_as_vanished() {
    let s = scratch();
    let mut engine = engine(&s.dst);
    for kind in [EntryKind::File, EntryKind::Symlink, EntryKind::Special] {
        let (outcome, _) = run(&mut engine, &job(&s.src.join("gone"), "gone", kind));
        let (fail_kind, error) = expect_failed(&outcome);
        assert_eq!(fail_kind, FailKind::Vanished);
        assert!(error.ends_with("No such file or directory"), "{error}");
    }
    assert_no_temps(&s.dst);
}

#[test]
fn file_changed_into_a_symlink_is_copied_as_a_symlink() {
    let s = scratch();
    let src = s.src.join("was-file");
    symlink("elsewhere", &src).expect("symlink");
    let (outcome, _) = run(&mut engine(&s.dst), &job(&src, "was-file", EntryKind::File));
    expect_copied(&outcome);
    assert_eq!(
        fs::read_link(s.dst.join("was-file")).expect("readlink"),
        Path::new("elsewhere")
    );
}

#[test]
fn a_non_empty_directory_at_the_final_name_fails_and_is_left_alone() {
    let s = scratch();
    let src = s.src.join("f");
    write_file(&src, b"data", 0o644);
    fs::create_dir(s.dst.join("f")).expect("mkdir");
    fs::write(s.dst.join("f").join("inside"), b"keep").expect("inside");
    let mut engine = engine(&s.dst);
    let (outcome, _) = run(&mut engine, &job(&src, "f", EntryKind::File));
    let (kind, error) = expect_failed(&outcome);
    assert_eq!(kind, FailKind::DestIo);
    assert!(error.contains("is a non-empty directory"), "{error}");
    symlink("t", s.src.join("l")).expect("symlink");
    let (outcome, _) = run(&mut engine, &job(&s.src.join("l"), "f", EntryKind::Symlink));
    assert_eq!(expect_failed(&outcome).0, FailKind::DestIo);
    assert_eq!(
        fs::read(s.dst.join("f").join("inside")).expect("read"),
        b"keep"
    );
    assert_no_temps(&s.dst);
}

#[test]
fn a_directory_at_the_final_name_goes_when_empty_or_forced() {
    let s = scratch();
    let src = s.src.join("f");
    write_file(&src, b"data", 0o644);
    fs::create_dir(s.dst.join("empty")).expect("mkdir");
    let (outcome, _) = run(&mut engine(&s.dst), &job(&src, "empty", EntryKind::File));
    expect_copied(&outcome);
    assert_eq!(fs::read(s.dst.join("empty")).expect("read"), b"data");
    fs::create_dir_all(s.dst.join("full/deeper")).expect("mkdir");
    fs::write(s.dst.join("full/deeper/inside"), b"old").expect("inside");
    let forced = CopyOptions {
        force: true,
        ..CopyOptions::default()
    };
    let mut engine = Engine::new(&s.dst, forced).expect("engine");
    let (outcome, _) = run(&mut engine, &job(&src, "full", EntryKind::File));
    expect_copied(&outcome);
    assert_eq!(fs::read(s.dst.join("full")).expect("read"), b"data");
    assert_no_temps(&s.dst);
}

#[test]
fn invalid_destination_path_is_rejected_before_touching_anything() {
    let s = scratch();
    let src = s.src.join("f");
    write_file(&src, b"data", 0o644);
    let (outcome, _) = run(
        &mut engine(&s.dst),
        &job(&src, "../escape", EntryKind::File),
    );
    let (kind, error) = expect_failed(&outcome);
    assert_eq!(kind, FailKind::Other);
    assert!(error.starts_with("invalid destination path"), "{error}");
    assert!(fs::symlink_metadata(s.dst.parent().expect("parent").join("escape")).is_err());
}

#[test]
fn remove_stale_temps_removes_only_leftover_files() {
    let s = scratch();
    let stale = format!("{TEMP_PREFIX}123.4");
    fs::write(s.dst.join(&stale), b"partial").expect("stale");
    symlink("x", s.dst.join(format!("{TEMP_PREFIX}9.9"))).expect("stale link");
    fs::create_dir(s.dst.join(format!("{TEMP_PREFIX}dir"))).expect("dir");
    fs::write(s.dst.join("keep"), b"keep").expect("keep");
    let dir = fs::File::open(&s.dst).expect("open dst");
    let mut others = Vec::new();
    let mut other = |name: &[u8]| others.push(name.to_vec());
    assert_eq!(
        remove_stale_temps_in(dir.as_fd(), "", false, &mut other).expect("remove"),
        2
    );
    assert_eq!(
        others,
        [b"keep".to_vec()],
        "temps are not reported as names"
    );
    let mut left: Vec<OsString> = fs::read_dir(&s.dst)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [OsString::from(format!("{TEMP_PREFIX}dir")), "keep".into()]
    );
}

/// Unmounts on drop, so a failing assertion does not leave a mount behind.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        if let Ok(target) = std::ffi::CString::new(self.0.as_os_str().as_bytes()) {
            // SAFETY: `target` is a valid NUL-terminated path for the call.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Mounts a tmpfs of `size` on `target`; `Err` carries why it could not.
fn mount_tmpfs(target: &Path, size: &std::ffi::CStr) -> std::io::Result<Mount> {
    let target_c = std::ffi::CString::new(target.as_os_str().as_bytes())?;
    // SAFETY: all pointers are valid NUL-terminated strings for the call.
    let rc = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target_c.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            size.as_ptr().cast(),
        )
    };
    if rc == 0 {
        Ok(Mount(target.to_owned()))
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[test]
fn full_destination_gives_no_space_and_leaves_no_temp() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: mounting a tiny tmpfs needs root");
        return;
    }
    let s = scratch();
    let _mount = match mount_tmpfs(&s.dst, c"size=64k") {
        Ok(mount) => mount,
        Err(err) => {
            eprintln!("skipped: cannot mount tmpfs here: {err}");
            return;
        }
    };
    let src = s.src.join("big");
    write_file(&src, &pattern(1 << 20), 0o644);
    let mut engine = engine(&s.dst);
    for force_named in [false, true] {
        if force_named {
            engine.namer.force_named_temps();
        }
        let (outcome, _) = run(&mut engine, &job(&src, "big", EntryKind::File));
        let (kind, error) = expect_failed(&outcome);
        assert_eq!(kind, FailKind::NoSpace, "{error}");
        assert!(fs::symlink_metadata(s.dst.join("big")).is_err());
        assert_no_temps(&s.dst);
    }
}

#[test]
fn a_destination_without_modes_or_fine_times_is_left_alone_when_up_to_date() {
    let s = scratch();
    let src = s.src.join("f");
    write_file(&src, b"same", 0o640);
    write_file(&s.dst.join("f"), b"same", 0o777);
    let at = |path: &Path, nanos| {
        let time = Timespec {
            tv_sec: TIMES.mtime.secs,
            tv_nsec: nanos,
        };
        let times = Timestamps {
            last_access: time,
            last_modification: time,
        };
        rustix::fs::utimensat(CWD, path, &times, AtFlags::empty()).expect("utimensat");
    };
    at(&src, 987_654_321);
    // What a filesystem keeping 10 ms steps made of it.
    at(&s.dst.join("f"), 980_000_000);
    let coarse = CopyOptions {
        compare: crate::job::Compare::QuickCheck,
        modify_window_ns: 9_999_999,
        dest: crate::job::DestCaps {
            modes: false,
            ..crate::job::DestCaps::default()
        },
        ..CopyOptions::default()
    };
    let before = fs::metadata(s.dst.join("f")).expect("stat");
    let (outcome, _) = run(
        &mut Engine::new(&s.dst, coarse).expect("engine"),
        &job(&src, "f", EntryKind::File),
    );
    assert!(matches!(outcome, Outcome::Skipped { .. }), "{outcome:?}");
    let after = fs::metadata(s.dst.join("f")).expect("stat");
    assert_eq!(after.mode() & 0o777, 0o777);
    assert_eq!(
        (after.mtime_nsec(), after.ctime_nsec()),
        (before.mtime_nsec(), before.ctime_nsec())
    );
}
