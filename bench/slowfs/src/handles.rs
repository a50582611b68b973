//! Open file and directory handles, by the number the kernel quotes back.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fuser::{Errno, FileHandle};

use crate::sys::Dirent;

#[derive(Clone)]
pub enum Handle {
    File(Arc<OwnedFd>),
    /// A directory's listing, taken when it was opened.
    Dir(Arc<Vec<Dirent>>),
}

pub struct Handles {
    /// Locked only to add, find or remove; the I/O runs on a clone of
    /// the handle, so a release that races a read closes after it.
    map: Mutex<HashMap<u64, Handle>>,
    next: AtomicU64,
}

impl Handles {
    pub fn new() -> Handles {
        Handles {
            map: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        }
    }

    pub fn add(&self, handle: Handle) -> FileHandle {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        self.map.lock().expect("handle lock").insert(fh, handle);
        FileHandle(fh)
    }

    pub fn get(&self, fh: FileHandle) -> Result<Handle, Errno> {
        let map = self.map.lock().expect("handle lock");
        map.get(&fh.0).cloned().ok_or(Errno::EBADF)
    }

    pub fn file(&self, fh: FileHandle) -> Result<Arc<OwnedFd>, Errno> {
        match self.get(fh)? {
            Handle::File(fd) => Ok(fd),
            Handle::Dir(_) => Err(Errno::EISDIR),
        }
    }

    pub fn dir(&self, fh: FileHandle) -> Result<Arc<Vec<Dirent>>, Errno> {
        match self.get(fh)? {
            Handle::Dir(entries) => Ok(entries),
            Handle::File(_) => Err(Errno::ENOTDIR),
        }
    }

    pub fn remove(&self, fh: FileHandle) {
        self.map.lock().expect("handle lock").remove(&fh.0);
    }
}
