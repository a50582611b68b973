//! slowfs mounted for real: every kind of change made through the mount
//! lands in the backing directory, reads see the backing's bytes and
//! metadata, requests are served at once, and the counters written at
//! unmount count what was done. Needs root and /dev/fuse; skipped with a
//! printed reason otherwise.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};

const SLOWFS: &str = env!("CARGO_BIN_EXE_slowfs");

struct Mounted {
    dir: PathBuf,
}

impl Mounted {
    /// Mounts a fresh backing directory with `delay_ms`; `None` (and a
    /// printed reason) where this process may not mount FUSE.
    fn new(name: &str, delay_ms: &str) -> Option<Mounted> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 || !Path::new("/dev/fuse").exists() {
            eprintln!("skipped: mounting FUSE needs root and /dev/fuse");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("slowfs-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("back")).unwrap();
        fs::create_dir_all(dir.join("mnt")).unwrap();
        let status = Command::new(SLOWFS)
            .args([
                "--background",
                "--xattrs",
                "--delay-ms",
                delay_ms,
                "--pidfile",
            ])
            .arg(dir.join("pid"))
            .arg("--stats")
            .arg(dir.join("stats"))
            .arg(dir.join("back"))
            .arg(dir.join("mnt"))
            .status()
            .unwrap();
        if !status.success() {
            eprintln!("skipped: the kernel refused the FUSE mount");
            return None;
        }
        Some(Mounted { dir })
    }

    fn mnt(&self) -> PathBuf {
        self.dir.join("mnt")
    }

    fn back(&self) -> PathBuf {
        self.dir.join("back")
    }

    /// Unmounts, waits for the server to exit, and returns its counters.
    fn unmount(&self) -> Vec<(String, String)> {
        let status = Command::new(SLOWFS)
            .arg("--unmount")
            .arg("--pidfile")
            .arg(self.dir.join("pid"))
            .arg(self.mnt())
            .status()
            .unwrap();
        assert!(status.success());
        let text = fs::read_to_string(self.dir.join("stats")).unwrap();
        text.lines()
            .map(|l| {
                let (k, v) = l.split_once('\t').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new(SLOWFS)
            .arg("--unmount")
            .arg(self.mnt())
            .status();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn stat(stats: &[(String, String)], key: &str) -> f64 {
    stats
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.parse().unwrap())
        .unwrap()
}

#[test]
fn changes_through_the_mount_land_in_the_backing_directory() {
    let Some(m) = Mounted::new("changes", "0") else {
        return;
    };
    let mnt = m.mnt();
    fs::create_dir(mnt.join("d")).unwrap();
    fs::write(mnt.join("d/tmp"), b"hello world").unwrap();
    fs::rename(mnt.join("d/tmp"), mnt.join("d/f")).unwrap();
    fs::hard_link(mnt.join("d/f"), mnt.join("link")).unwrap();
    symlink("d/f", mnt.join("sym")).unwrap();
    fs::set_permissions(mnt.join("d/f"), fs::Permissions::from_mode(0o640)).unwrap();
    let when = std::time::UNIX_EPOCH + std::time::Duration::new(1_500_000_000, 123_456_789);
    fs::File::options()
        .write(true)
        .open(mnt.join("d/f"))
        .unwrap()
        .set_modified(when)
        .unwrap();
    xattr_set(&mnt.join("d/f"), "user.k", b"v");
    fs::write(mnt.join("gone"), b"x").unwrap();
    fs::remove_file(mnt.join("gone")).unwrap();

    let back = m.back();
    assert_eq!(fs::read(back.join("d/f")).unwrap(), b"hello world");
    assert!(!back.join("d/tmp").exists() && !back.join("gone").exists());
    let meta = fs::metadata(back.join("d/f")).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_eq!(
        (meta.mtime(), meta.mtime_nsec()),
        (1_500_000_000, 123_456_789)
    );
    assert_eq!(meta.nlink(), 2);
    assert_eq!(fs::read_link(back.join("sym")).unwrap(), Path::new("d/f"));
    assert_eq!(xattr_get(&back.join("d/f"), "user.k"), b"v");
    // Seen through the mount: the backing's inode numbers and metadata.
    let seen = fs::metadata(mnt.join("link")).unwrap();
    assert_eq!(
        (seen.ino(), seen.mode(), seen.mtime_nsec()),
        (meta.ino(), meta.mode(), meta.mtime_nsec())
    );
    let mut names: Vec<_> = fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["d", "link", "sym"]);

    let stats = m.unmount();
    for (kind, at_least) in [
        ("mkdir", 1.0),
        ("create", 2.0),
        ("rename", 1.0),
        ("link", 1.0),
        ("symlink", 1.0),
        ("unlink", 1.0),
        ("setxattr", 1.0),
    ] {
        assert!(stat(&stats, kind) >= at_least, "{kind}: {stats:?}");
    }
}

#[test]
fn requests_are_delayed_and_served_at_once() {
    let Some(m) = Mounted::new("parallel", "200") else {
        return;
    };
    for i in 0..8 {
        fs::write(m.back().join(format!("f{i}")), b"x").unwrap();
    }
    // Eight lookups of names the kernel has not seen, started together:
    // served one at a time they could never overlap.
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (barrier, path) = (barrier.clone(), m.mnt().join(format!("f{i}")));
            std::thread::spawn(move || {
                barrier.wait();
                fs::metadata(path).unwrap().len()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 1);
    }
    let stats = m.unmount();
    assert!(stat(&stats, "peak_in_flight") >= 2.0, "{stats:?}");
    assert!(stat(&stats, "lookup") >= 8.0, "{stats:?}");
    // Each request slept its 200 ms.
    assert!(
        stat(&stats, "busy_seconds") >= 0.2 * stat(&stats, "requests"),
        "{stats:?}"
    );
}

fn xattr_set(path: &Path, name: &str, value: &[u8]) {
    let (p, n) = (cstring(path), std::ffi::CString::new(name).unwrap());
    // SAFETY: valid C strings and a live value buffer.
    let rc = unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(rc, 0, "setxattr: {}", std::io::Error::last_os_error());
}

fn xattr_get(path: &Path, name: &str) -> Vec<u8> {
    let (p, n) = (cstring(path), std::ffi::CString::new(name).unwrap());
    let mut buf = vec![0u8; 64];
    // SAFETY: valid C strings and a live buffer of its length.
    let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    buf.truncate(usize::try_from(len).expect("getxattr failed"));
    buf
}

fn cstring(path: &Path) -> std::ffi::CString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap()
}
