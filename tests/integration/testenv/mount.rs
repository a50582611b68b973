//! Mounts made by the tests, unmounted on drop.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A mount made by the test, unmounted on drop even when an assertion
/// fails, so no test leaves a mount behind.
pub struct Mount(CString);

impl Drop for Mount {
    fn drop(&mut self) {
        // SAFETY: the pointer is a valid NUL-terminated path for the call.
        unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
    }
}

/// `mount(2)`; `Err` says why it could not (not root, no permission in
/// this container), so the caller can skip.
pub fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> std::io::Result<Mount> {
    let c = |bytes: &[u8]| CString::new(bytes).expect("no NUL in test paths");
    let source = source.map(|p| c(p.as_os_str().as_bytes()));
    let target = c(target.as_os_str().as_bytes());
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
