//! Filesystems the tests mount: tmpfs, a fresh loop image of ext4 (also
//! with casefolded directories), xfs, btrfs or exfat, and read-only bind
//! mounts. Each is unmounted (and its image deleted) on drop, even when an
//! assertion fails; where it cannot be mounted (not root, a tool missing,
//! the kernel refusing) the error is the reason to print as the skip.

use std::ffi::CString;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A filesystem a test can mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fs {
    Tmpfs,
    Ext4,
    /// ext4 made with `-O casefold`; tests write into a directory with
    /// `chattr +F`, whose names are looked up without regard to case.
    Ext4Casefold,
    Xfs,
    Btrfs,
    /// The kernel's exfat driver, or exfat-fuse where the kernel has none.
    Exfat,
}

/// How to make and mount a loop image of one filesystem.
struct Recipe {
    mkfs: &'static str,
    /// The Debian package with `mkfs`, for the skip message.
    package: &'static str,
    mkfs_args: &'static [&'static str],
    /// The image's size: sparse, so only what mkfs and the test write
    /// takes space.
    size_mib: u64,
    /// `mount -t` types to try in order.
    types: &'static [&'static str],
}

impl Fs {
    pub fn name(self) -> &'static str {
        match self {
            Fs::Tmpfs => "tmpfs",
            Fs::Ext4 => "ext4",
            Fs::Ext4Casefold => "ext4 with casefold",
            Fs::Xfs => "xfs",
            Fs::Btrfs => "btrfs",
            Fs::Exfat => "exfat",
        }
    }

    /// Whether the filesystem keeps what a Unix tree has: symlinks,
    /// permission bits and nanosecond times (exfat keeps none of them).
    pub fn is_unix(self) -> bool {
        self != Fs::Exfat
    }

    fn recipe(self) -> Option<Recipe> {
        let ext4 = |mkfs_args| Recipe {
            mkfs: "mkfs.ext4",
            package: "e2fsprogs",
            mkfs_args,
            size_mib: 64,
            types: &["ext4"],
        };
        match self {
            Fs::Tmpfs => None,
            Fs::Ext4 => Some(ext4(&["-q", "-F"])),
            Fs::Ext4Casefold => Some(ext4(&["-q", "-F", "-O", "casefold"])),
            // mkfs.xfs refuses filesystems under 300 MiB.
            Fs::Xfs => Some(Recipe {
                mkfs: "mkfs.xfs",
                package: "xfsprogs",
                mkfs_args: &["-q", "-f"],
                size_mib: 320,
                types: &["xfs"],
            }),
            Fs::Btrfs => Some(Recipe {
                mkfs: "mkfs.btrfs",
                package: "btrfs-progs",
                mkfs_args: &["-q", "-f"],
                size_mib: 256,
                types: &["btrfs"],
            }),
            Fs::Exfat => Some(Recipe {
                mkfs: "mkfs.exfat",
                package: "exfatprogs",
                mkfs_args: &[],
                size_mib: 64,
                types: &["exfat", "exfat-fuse"],
            }),
        }
    }
}

/// A filesystem mounted by a test. Fields drop in order: the mount first,
/// then the image it was on.
pub struct Mounted {
    dir: PathBuf,
    _mount: Mount,
    _image: Option<tempfile::TempDir>,
}

impl Mounted {
    /// A fresh `fs` mounted on `target`, an existing empty directory.
    pub fn new(fs: Fs, target: &Path) -> Result<Mounted, String> {
        need_root(fs.name())?;
        let Some(recipe) = fs.recipe() else {
            return Mounted::tmpfs(target, "size=64m");
        };
        if fs == Fs::Ext4Casefold && lacks_casefold() {
            return Err(format!(
                "this kernel's ext4 has no casefold ({EXT4_FEATURES}/casefold is missing: built without CONFIG_UNICODE)"
            ));
        }
        let image_dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let image = image_dir.path().join(format!("{}.img", recipe.types[0]));
        make_image(&recipe, &image)?;
        let mount = mount_image(fs, &recipe, &image, target)?;
        let dir = if fs == Fs::Ext4Casefold {
            casefolded_dir(target)?
        } else {
            target.to_path_buf()
        };
        Ok(Mounted {
            dir,
            _mount: mount,
            _image: Some(image_dir),
        })
    }

    /// A tmpfs on `target` with mount `options` (such as `size=4m`).
    pub fn tmpfs(target: &Path, options: &str) -> Result<Mounted, String> {
        need_root("tmpfs")?;
        let mount = mount(None, target, Some("tmpfs"), 0, Some(options))
            .map_err(|e| format!("the kernel refused to mount tmpfs: {e}"))?;
        Ok(Mounted {
            dir: target.to_path_buf(),
            _mount: mount,
            _image: None,
        })
    }

    /// `dir` bind-mounted onto itself, read-only.
    pub fn read_only_bind(dir: &Path) -> Result<Mounted, String> {
        need_root("bind-mount a directory")?;
        let bind = mount(Some(dir), dir, None, libc::MS_BIND, None)
            .map_err(|e| format!("cannot bind-mount here: {e}"))?;
        // The remount changes the bind mount, which `bind` unmounts.
        let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY;
        mount(None, dir, None, flags, None)
            .map(std::mem::forget)
            .map_err(|e| format!("cannot make the bind mount read-only: {e}"))?;
        Ok(Mounted {
            dir: dir.to_path_buf(),
            _mount: bind,
            _image: None,
        })
    }

    /// Where the test writes: the mount point, or the casefolded
    /// directory in it.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The optional features the kernel's ext4 has, once ext4 is loaded.
const EXT4_FEATURES: &str = "/sys/fs/ext4/features";

/// Whether ext4 is loaded without casefold. Mounting says more, and
/// less clearly, where ext4 is not loaded yet.
fn lacks_casefold() -> bool {
    let features = Path::new(EXT4_FEATURES);
    features.is_dir() && !features.join("casefold").exists()
}

fn need_root(what: &str) -> Result<(), String> {
    if rustix::process::geteuid().is_root() {
        Ok(())
    } else {
        Err(format!("needs root to mount {what}"))
    }
}

/// A sparse file of the recipe's size at `image`, formatted.
fn make_image(recipe: &Recipe, image: &Path) -> Result<(), String> {
    let file = fs::File::create(image).map_err(|e| format!("{}: {e}", image.display()))?;
    file.set_len(recipe.size_mib << 20)
        .map_err(|e| format!("{}: {e}", image.display()))?;
    drop(file);
    let mut mkfs = Command::new(find_tool(recipe.mkfs));
    mkfs.args(recipe.mkfs_args).arg(image);
    let install = format!("apt-get install {}", recipe.package);
    run_tool(&mut mkfs, recipe.mkfs, &install)
}

/// Mounts `image` on `target` through `mount -o loop`, which sets up the
/// loop device (freed again on unmount) and runs a FUSE helper such as
/// `mount.exfat-fuse` where the type names one.
fn mount_image(fs: Fs, recipe: &Recipe, image: &Path, target: &Path) -> Result<Mount, String> {
    let mut refusals = Vec::new();
    for fstype in recipe.types {
        let mut mount = Command::new(find_tool("mount"));
        mount
            .args(["-o", "loop", "-t", fstype])
            .arg(image)
            .arg(target);
        match run_tool(&mut mount, "mount", "apt-get install mount") {
            Ok(()) => return Ok(Mount(c_path(target))),
            Err(why) => refusals.push(format!("-t {fstype}: {why}")),
        }
    }
    Err(format!(
        "cannot mount {} here ({})",
        fs.name(),
        refusals.join("; ")
    ))
}

/// Makes `folded` in the mount and gives it the casefold attribute.
fn casefolded_dir(target: &Path) -> Result<PathBuf, String> {
    let dir = target.join("folded");
    fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut chattr = Command::new(find_tool("chattr"));
    chattr.arg("+F").arg(&dir);
    run_tool(&mut chattr, "chattr", "apt-get install e2fsprogs")?;
    Ok(dir)
}

/// Runs a tool; `Err` says it is missing (and how to install it) or what
/// it printed when it failed.
fn run_tool(command: &mut Command, name: &str, install: &str) -> Result<(), String> {
    match command.output() {
        Ok(Output { status, .. }) if status.success() => Ok(()),
        Ok(output) => Err(format!(
            "{name} failed ({status}): {}",
            String::from_utf8_lossy(&output.stderr).trim(),
            status = output.status
        )),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            Err(format!("{name} is not installed ({install})"))
        }
        Err(e) => Err(format!("{name}: {e}")),
    }
}

/// `name` from `PATH`, or from the sbin directories a user's `PATH` may
/// lack; just `name` if it is nowhere (running it then says so).
fn find_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("no NUL in test paths")
}

/// A mount made by the test, unmounted on drop even when an assertion
/// fails, so no test leaves a mount behind.
struct Mount(CString);

impl Drop for Mount {
    fn drop(&mut self) {
        // A plain unmount frees a loop device at once; a busy mount is
        // detached instead and goes when its last user does.
        // SAFETY: the pointer is a valid NUL-terminated path for the call.
        if unsafe { libc::umount2(self.0.as_ptr(), 0) } != 0 {
            // SAFETY: as above.
            unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// `mount(2)`; `Err` says why it could not (not root, no permission in
/// this container), so the caller can skip.
fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> std::io::Result<Mount> {
    let c = |bytes: &[u8]| CString::new(bytes).expect("no NUL in test paths");
    let source = source.map(c_path);
    let target = c_path(target);
    let fstype = fstype.map(|s| c(s.as_bytes()));
    let data = data.map(|s| c(s.as_bytes()));
    let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is null or a valid NUL-terminated string that
    // outlives the call.
    let rc = unsafe {
        libc::mount(
            ptr(&source),
            target.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data).cast(),
        )
    };
    if rc == 0 {
        Ok(Mount(target))
    } else {
        Err(std::io::Error::last_os_error())
    }
}
