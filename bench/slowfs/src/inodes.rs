//! The inode table: every inode the kernel holds a reference to, by node
//! id, with an `O_PATH` descriptor of the backing inode and the kernel's
//! lookup count.
//!
//! A node id is the backing inode number, except that the backing root is
//! node 1 (FUSE's root) and a backing inode numbered 1, if any, takes the
//! root's number: one backing file system, so the numbers are unique, and
//! `stat` through the mount shows the real inode numbers (hard links keep
//! theirs, as `cp -a` and `rsync -H` need).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use fuser::Errno;

struct Entry {
    fd: Arc<OwnedFd>,
    /// Lookups the kernel has not forgotten yet; at 0 the entry goes.
    lookups: u64,
}

pub struct Inodes {
    root: Arc<OwnedFd>,
    root_ino: u64,
    /// Locked only to find, add or count; system calls on a descriptor
    /// run on a clone of its `Arc`, outside the lock, so a forget that
    /// races an operation closes the descriptor only after it.
    table: Mutex<HashMap<u64, Entry>>,
}

impl Inodes {
    pub fn new(root: OwnedFd, root_ino: u64) -> Inodes {
        Inodes {
            root: Arc::new(root),
            root_ino,
            table: Mutex::new(HashMap::new()),
        }
    }

    /// The node id of a backing inode number.
    pub fn node_of(&self, ino: u64) -> u64 {
        if ino == self.root_ino {
            fuser::INodeNo::ROOT.0
        } else if ino == fuser::INodeNo::ROOT.0 {
            self.root_ino
        } else {
            ino
        }
    }

    /// The descriptor of node `node`; `ESTALE` for one the kernel forgot.
    pub fn get(&self, node: u64) -> Result<Arc<OwnedFd>, Errno> {
        if node == fuser::INodeNo::ROOT.0 {
            return Ok(self.root.clone());
        }
        let table = self.table.lock().expect("inode table lock");
        table.get(&node).map(|e| e.fd.clone()).ok_or(Errno::ESTALE)
    }

    /// Counts one lookup of backing inode `ino`, whose descriptor is `fd`
    /// (dropped if the inode is known already), and returns its node id.
    pub fn remember(&self, ino: u64, fd: OwnedFd) -> u64 {
        let node = self.node_of(ino);
        if node == fuser::INodeNo::ROOT.0 {
            return node;
        }
        let mut table = self.table.lock().expect("inode table lock");
        table
            .entry(node)
            .and_modify(|e| e.lookups += 1)
            .or_insert_with(|| Entry {
                fd: Arc::new(fd),
                lookups: 1,
            });
        node
    }

    /// The kernel dropped `count` references to `node`.
    pub fn forget(&self, node: u64, count: u64) {
        let mut table = self.table.lock().expect("inode table lock");
        if let Some(entry) = table.get_mut(&node) {
            entry.lookups = entry.lookups.saturating_sub(count);
            if entry.lookups == 0 {
                table.remove(&node);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd() -> OwnedFd {
        std::fs::File::open("/").unwrap().into()
    }

    #[test]
    fn the_root_is_node_1_and_inode_1_takes_the_roots_number() {
        let inodes = Inodes::new(fd(), 77);
        assert_eq!(
            (inodes.node_of(77), inodes.node_of(1), inodes.node_of(5)),
            (1, 77, 5)
        );
    }

    #[test]
    fn an_entry_lives_until_every_lookup_is_forgotten() {
        let inodes = Inodes::new(fd(), 77);
        assert_eq!(inodes.remember(5, fd()), 5);
        assert_eq!(inodes.remember(5, fd()), 5);
        inodes.forget(5, 1);
        assert!(inodes.get(5).is_ok());
        inodes.forget(5, 1);
        assert_eq!(inodes.get(5).err(), Some(Errno::ESTALE));
    }
}
