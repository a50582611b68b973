//! The passthrough: every FUSE request served from the backing directory
//! after the delay, with entries, attributes and negative lookups cached
//! by the kernel for a TTL, as an NFS client caches them.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, IoctlFlags, KernelConfig, LockOwner, OpenFlags, PollEvents,
    PollFlags, PollNotifier, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyLseek, ReplyOpen, ReplyPoll,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::handles::{Handle, Handles};
use crate::inodes::Inodes;
use crate::stats::{Op, Stats};
use crate::sys::{self, Result, XattrReply, check};

/// How the mount behaves, apart from the delay (which `Stats` applies).
pub struct Settings {
    /// How long the kernel may trust an entry, an attribute or a negative
    /// lookup without asking again.
    pub ttl: Duration,
    /// Pass extended attributes through; without, the first xattr request
    /// answers "not implemented" and the kernel asks no more (as on an NFS
    /// mount without xattr support).
    pub xattrs: bool,
    /// The kernel's limit of background requests (readahead, release).
    pub max_background: u16,
    /// Offer READDIRPLUS (names with attributes, as NFS and most network
    /// file systems list directories); without, every entry a client
    /// stats after listing is a LOOKUP of its own.
    pub readdirplus: bool,
}

pub struct SlowFs {
    inodes: Inodes,
    handles: Handles,
    stats: Arc<Stats>,
    settings: Settings,
}

const GENERATION: Generation = Generation(0);

impl SlowFs {
    pub fn new(root: OwnedFd, stats: Arc<Stats>, settings: Settings) -> io::Result<SlowFs> {
        let st = sys::fstat(&root).map_err(sys::io_error)?;
        if sys::kind(st.st_mode) != FileType::Directory {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        Ok(SlowFs {
            inodes: Inodes::new(root, st.st_ino),
            handles: Handles::new(),
            stats,
            settings,
        })
    }

    /// Looks `name` up beneath `parent` and counts the kernel's new
    /// reference to it.
    fn entry(&self, parent: &OwnedFd, name: &CString) -> Result<FileAttr> {
        let fd = sys::open_path(parent, name)?;
        let st = sys::fstat(&fd)?;
        let node = self.inodes.remember(st.st_ino, fd);
        Ok(sys::attr(&st, node))
    }

    fn attr_of(&self, node: u64) -> Result<FileAttr> {
        let fd = self.inodes.get(node)?;
        Ok(sys::attr(&sys::fstat(&*fd)?, node))
    }

    fn reply_entry(&self, reply: ReplyEntry, result: Result<FileAttr>) {
        match result {
            Ok(attr) => reply.entry(&self.settings.ttl, &attr, GENERATION),
            Err(e) => reply.error(e),
        }
    }

    fn lookup_entry(&self, parent: u64, name: &OsStr) -> Result<FileAttr> {
        let dir = self.inodes.get(parent)?;
        self.entry(&dir, &sys::name(name)?)
    }

    /// Runs `make` (a `mkdirat`, `symlinkat`, ...) on the parent's
    /// descriptor and the new name, then looks the new entry up.
    fn make(
        &self,
        parent: u64,
        name: &OsStr,
        make: impl FnOnce(&OwnedFd, &CString) -> libc::c_int,
    ) -> Result<FileAttr> {
        let dir = self.inodes.get(parent)?;
        let name = sys::name(name)?;
        check(make(&dir, &name))?;
        self.entry(&dir, &name)
    }

    fn set_attr(&self, node: u64, change: &AttrChange) -> Result<FileAttr> {
        let fd = self.inodes.get(node)?;
        let empty = CString::default();
        let symlink = sys::kind(sys::fstat(&*fd)?.st_mode) == FileType::Symlink;
        // Owner before mode: a chown clears setuid and setgid.
        if change.uid.is_some() || change.gid.is_some() {
            let (uid, gid) = (
                change.uid.unwrap_or(u32::MAX),
                change.gid.unwrap_or(u32::MAX),
            );
            // SAFETY: `empty` is a valid C string; `fd` is open.
            check(unsafe {
                libc::fchownat(
                    fd.as_raw_fd(),
                    empty.as_ptr(),
                    uid,
                    gid,
                    libc::AT_EMPTY_PATH,
                )
            })?;
        }
        if let Some(mode) = change.mode.filter(|_| !symlink) {
            // SAFETY: the path is a valid C string.
            check(unsafe { libc::chmod(sys::proc_path(&*fd).as_ptr(), mode & 0o7777) })?;
        }
        if let Some(size) = change.size {
            let size = libc::off_t::try_from(size).map_err(|_| Errno::EFBIG)?;
            // SAFETY: the path is a valid C string.
            check(unsafe { libc::truncate(sys::proc_path(&*fd).as_ptr(), size) })?;
        }
        if change.atime.is_some() || change.mtime.is_some() {
            let times = [sys::timespec(change.atime), sys::timespec(change.mtime)];
            // SAFETY: `empty` is a valid C string and `times` two timespecs.
            check(unsafe {
                libc::utimensat(
                    fd.as_raw_fd(),
                    empty.as_ptr(),
                    times.as_ptr(),
                    libc::AT_EMPTY_PATH,
                )
            })?;
        }
        self.attr_of(node)
    }

    fn create_file(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        flags: i32,
    ) -> Result<(FileAttr, FileHandle)> {
        let dir = self.inodes.get(parent)?;
        let name = sys::name(name)?;
        let flags = flags | libc::O_CREAT | libc::O_CLOEXEC;
        // SAFETY: `name` is a valid C string; the descriptor is checked by `owned`.
        let file =
            sys::owned(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, mode) })?;
        // The inode's O_PATH handle, taken from the file just opened (not by
        // name again, which may have changed since).
        let path_fd = sys::reopen(&file, libc::O_PATH)?;
        let st = sys::fstat(&file)?;
        let node = self.inodes.remember(st.st_ino, path_fd);
        Ok((
            sys::attr(&st, node),
            self.handles.add(Handle::File(Arc::new(file))),
        ))
    }

    fn open_dir(&self, node: u64) -> Result<FileHandle> {
        let fd = self.inodes.get(node)?;
        let entries = sys::list_dir(&*fd)?;
        Ok(self.handles.add(Handle::Dir(Arc::new(entries))))
    }

    /// Fills a READDIRPLUS reply from `offset`: each entry looked up (and
    /// counted as a reference the kernel now holds), as NFS's READDIRPLUS
    /// returns attributes with names.
    fn fill_plus(
        &self,
        node: u64,
        fh: FileHandle,
        offset: u64,
        reply: &mut ReplyDirectoryPlus,
    ) -> Result<()> {
        let entries = self.handles.dir(fh)?;
        let dir = self.inodes.get(node)?;
        let dir_st = sys::fstat(&*dir)?;
        let ttl = self.settings.ttl;
        for (i, e) in entries.iter().enumerate().skip(offset as usize) {
            let next = i as u64 + 1;
            let name = e.name.as_bytes();
            if name == b"." || name == b".." {
                // The kernel does not instantiate dot entries: no reference.
                let attr = sys::attr(&dir_st, self.inodes.node_of(e.ino));
                if reply.add(attr.ino, next, &e.name, &ttl, &attr, GENERATION) {
                    break;
                }
                continue;
            }
            // An entry removed since the listing is left out.
            let Ok(attr) = self.entry(&dir, &sys::cstr(name)?) else {
                continue;
            };
            if reply.add(attr.ino, next, &e.name, &ttl, &attr, GENERATION) {
                // Not sent: the kernel holds no reference to it.
                self.inodes.forget(attr.ino.0, 1);
                break;
            }
        }
        Ok(())
    }

    fn xattr_get(&self, node: u64, name: &OsStr, size: u32) -> Result<XattrReply> {
        let fd = self.xattr_target(node)?.ok_or(Errno::NO_XATTR)?;
        let path = sys::proc_path(&*fd);
        let name = sys::name(name)?;
        // SAFETY: both strings are valid; the closure's buffer is live for `len` bytes.
        sys::xattr_value(size, |buf, len| unsafe {
            libc::getxattr(path.as_ptr(), name.as_ptr(), buf, len)
        })
    }

    fn xattr_list(&self, node: u64, size: u32) -> Result<XattrReply> {
        let Some(fd) = self.xattr_target(node)? else {
            return Ok(if size == 0 {
                XattrReply::Size(0)
            } else {
                XattrReply::Data(Vec::new())
            });
        };
        let path = sys::proc_path(&*fd);
        // SAFETY: the path is valid; the closure's buffer is live for `len` bytes.
        sys::xattr_value(size, |buf, len| unsafe {
            libc::listxattr(path.as_ptr(), buf.cast(), len)
        })
    }

    /// The descriptor whose `/proc/self/fd` name reaches the inode for an
    /// xattr call; `None` for a symlink, which that name would follow.
    fn xattr_target(&self, node: u64) -> Result<Option<Arc<OwnedFd>>> {
        if !self.settings.xattrs {
            return Err(Errno::ENOSYS);
        }
        let fd = self.inodes.get(node)?;
        let symlink = sys::kind(sys::fstat(&*fd)?.st_mode) == FileType::Symlink;
        Ok((!symlink).then_some(fd))
    }

    fn xattr_change(&self, node: u64, call: impl FnOnce(&CString) -> libc::c_int) -> Result<()> {
        let fd = self.xattr_target(node)?.ok_or(Errno::EPERM)?;
        check(call(&sys::proc_path(&*fd))).map(drop)
    }
}

/// The changes of one SETATTR request.
struct AttrChange {
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    size: Option<u64>,
    atime: Option<TimeOrNow>,
    mtime: Option<TimeOrNow>,
}

fn reply_empty(reply: ReplyEmpty, result: Result<()>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

fn reply_xattr(reply: ReplyXattr, result: Result<XattrReply>) {
    match result {
        Ok(XattrReply::Size(n)) => reply.size(n),
        Ok(XattrReply::Data(data)) => reply.data(&data),
        Err(e) => reply.error(e),
    }
}

/// A negative entry: "no such name", which the kernel may remember for
/// the TTL instead of asking again.
fn negative() -> FileAttr {
    FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

impl Filesystem for SlowFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        // Parallel lookups in one directory, READDIRPLUS when it pays
        // (Linux's NFS heuristic), O_TRUNC in the open, cached symlinks.
        let mut wanted = InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_ATOMIC_O_TRUNC
            | InitFlags::FUSE_CACHE_SYMLINKS;
        if self.settings.readdirplus {
            wanted |= InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO;
        }
        if let Err(unsupported) = config.add_capabilities(wanted) {
            let _ = config.add_capabilities(wanted - unsupported);
        }
        let background = self.settings.max_background;
        let _ = config.set_max_background(background);
        let _ = config.set_congestion_threshold(background - background / 4);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let _served = self.stats.serve(Op::Lookup);
        match self.lookup_entry(parent.0, name) {
            Err(e) if e == Errno::ENOENT => {
                reply.entry(&self.settings.ttl, &negative(), GENERATION)
            }
            result => self.reply_entry(reply, result),
        }
    }

    // Batched forgets reach this once per node, so the count is of nodes.
    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.stats.count(Op::Forget);
        self.inodes.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let _served = self.stats.serve(Op::Getattr);
        match self.attr_of(ino.0) {
            Ok(attr) => reply.attr(&self.settings.ttl, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let _served = self.stats.serve(Op::Setattr);
        let change = AttrChange {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
        };
        match self.set_attr(ino.0, &change) {
            Ok(attr) => reply.attr(&self.settings.ttl, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let _served = self.stats.serve(Op::Readlink);
        match self.inodes.get(ino.0).and_then(|fd| sys::read_link(&*fd)) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let _served = self.stats.serve(Op::Mknod);
        // SAFETY: `name` is a valid C string; `dir` is open.
        let result = self.make(parent.0, name, |dir, name| unsafe {
            libc::mknodat(
                dir.as_raw_fd(),
                name.as_ptr(),
                mode,
                libc::dev_t::from(rdev),
            )
        });
        self.reply_entry(reply, result);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let _served = self.stats.serve(Op::Mkdir);
        // SAFETY: `name` is a valid C string; `dir` is open.
        let result = self.make(parent.0, name, |dir, name| unsafe {
            libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode)
        });
        self.reply_entry(reply, result);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _served = self.stats.serve(Op::Unlink);
        reply_empty(reply, remove(&self.inodes, parent.0, name, 0));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _served = self.stats.serve(Op::Rmdir);
        reply_empty(
            reply,
            remove(&self.inodes, parent.0, name, libc::AT_REMOVEDIR),
        );
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let _served = self.stats.serve(Op::Symlink);
        let result = sys::name(target.as_os_str()).and_then(|target| {
            // SAFETY: both names are valid C strings; `dir` is open.
            self.make(parent.0, link_name, |dir, name| unsafe {
                libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr())
            })
        });
        self.reply_entry(reply, result);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let _served = self.stats.serve(Op::Rename);
        let result = (|| {
            let (from, to) = (self.inodes.get(parent.0)?, self.inodes.get(newparent.0)?);
            let (name, newname) = (sys::name(name)?, sys::name(newname)?);
            // SAFETY: both names are valid C strings; both directories are open.
            check(unsafe {
                libc::renameat2(
                    from.as_raw_fd(),
                    name.as_ptr(),
                    to.as_raw_fd(),
                    newname.as_ptr(),
                    flags.bits(),
                )
            })
            .map(drop)
        })();
        reply_empty(reply, result);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let _served = self.stats.serve(Op::Link);
        let result = self.inodes.get(ino.0).and_then(|fd| {
            let source = sys::proc_path(&*fd);
            // SAFETY: both names are valid C strings; `dir` is open.
            self.make(newparent.0, newname, |dir, name| unsafe {
                libc::linkat(
                    libc::AT_FDCWD,
                    source.as_ptr(),
                    dir.as_raw_fd(),
                    name.as_ptr(),
                    libc::AT_SYMLINK_FOLLOW,
                )
            })
        });
        self.reply_entry(reply, result);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let _served = self.stats.serve(Op::Open);
        match self
            .inodes
            .get(ino.0)
            .and_then(|fd| sys::reopen(&*fd, flags.0))
        {
            Ok(file) => reply.opened(
                self.handles.add(Handle::File(Arc::new(file))),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let _served = self.stats.serve(Op::Read);
        match self
            .handles
            .file(fh)
            .and_then(|fd| sys::read_at(&*fd, offset, size))
        {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let _served = self.stats.serve(Op::Write);
        match self
            .handles
            .file(fh)
            .and_then(|fd| sys::write_at(&*fd, offset, data))
        {
            Ok(n) => reply.written(u32::try_from(n).unwrap_or(u32::MAX)),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Writes went through already; the round trip is what NFS's
        // close-to-open flush costs.
        let _served = self.stats.serve(Op::Flush);
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let _served = self.stats.serve(Op::Release);
        self.handles.remove(fh);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _served = self.stats.serve(Op::Fsync);
        let result = self.handles.file(fh).and_then(|fd| {
            // SAFETY: `fd` is an open descriptor.
            check(unsafe {
                if datasync {
                    libc::fdatasync(fd.as_raw_fd())
                } else {
                    libc::fsync(fd.as_raw_fd())
                }
            })
            .map(drop)
        });
        reply_empty(reply, result);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let _served = self.stats.serve(Op::Opendir);
        match self.open_dir(ino.0) {
            Ok(fh) => reply.opened(fh, FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let _served = self.stats.serve(Op::Readdir);
        let entries = match self.handles.dir(fh) {
            Ok(entries) => entries,
            Err(e) => return reply.error(e),
        };
        for (i, e) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(
                INodeNo(self.inodes.node_of(e.ino)),
                i as u64 + 1,
                e.kind,
                &e.name,
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let _served = self.stats.serve(Op::Readdirplus);
        match self.fill_plus(ino.0, fh, offset, &mut reply) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let _served = self.stats.serve(Op::Releasedir);
        self.handles.remove(fh);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _served = self.stats.serve(Op::Fsyncdir);
        let result = self
            .inodes
            .get(ino.0)
            .and_then(|fd| sys::reopen(&*fd, libc::O_RDONLY | libc::O_DIRECTORY))
            .and_then(|dir| {
                // SAFETY: `dir` is an open descriptor.
                check(unsafe { libc::fsync(dir.as_raw_fd()) }).map(drop)
            });
        reply_empty(reply, result);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let _served = self.stats.serve(Op::Statfs);
        let result = self.inodes.get(INodeNo::ROOT.0).and_then(|fd| {
            let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
            // SAFETY: `st` is written by the call on success, which `check` tells.
            check(unsafe { libc::fstatfs(fd.as_raw_fd(), st.as_mut_ptr()) })?;
            // SAFETY: the call succeeded, so it filled `st`.
            Ok(unsafe { st.assume_init() })
        });
        match result {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namelen as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let _served = self.stats.serve(Op::Setxattr);
        let result = sys::name(name).and_then(|name| {
            // SAFETY: both strings are valid; `value` is live for its length.
            self.xattr_change(ino.0, |path| unsafe {
                libc::setxattr(
                    path.as_ptr(),
                    name.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    flags,
                )
            })
        });
        reply_empty(reply, result);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let _served = self.stats.serve(Op::Getxattr);
        reply_xattr(reply, self.xattr_get(ino.0, name, size));
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let _served = self.stats.serve(Op::Listxattr);
        reply_xattr(reply, self.xattr_list(ino.0, size));
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _served = self.stats.serve(Op::Removexattr);
        let result = sys::name(name).and_then(|name| {
            // SAFETY: both strings are valid C strings.
            self.xattr_change(ino.0, |path| unsafe {
                libc::removexattr(path.as_ptr(), name.as_ptr())
            })
        });
        reply_empty(reply, result);
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let _served = self.stats.serve(Op::Access);
        let result = self.inodes.get(ino.0).and_then(|fd| {
            // SAFETY: the path is a valid C string.
            check(unsafe { libc::access(sys::proc_path(&*fd).as_ptr(), mask.bits()) }).map(drop)
        });
        reply_empty(reply, result);
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let _served = self.stats.serve(Op::Create);
        match self.create_file(parent.0, name, mode, flags) {
            Ok((attr, fh)) => reply.created(
                &self.settings.ttl,
                &attr,
                GENERATION,
                fh,
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    // The requests below are not passed through (as on a plain NFS mount):
    // each is counted and delayed, and "not implemented" makes the kernel
    // stop sending most of them.

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        let _served = self.stats.serve(Op::Ioctl);
        reply.error(Errno::ENOSYS);
    }

    fn poll(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _ph: PollNotifier,
        _events: PollEvents,
        _flags: PollFlags,
        reply: ReplyPoll,
    ) {
        let _served = self.stats.serve(Op::Poll);
        reply.error(Errno::ENOSYS);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        let _served = self.stats.serve(Op::Fallocate);
        reply.error(Errno::ENOSYS);
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: i64,
        _whence: i32,
        reply: ReplyLseek,
    ) {
        let _served = self.stats.serve(Op::Lseek);
        reply.error(Errno::ENOSYS);
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let _served = self.stats.serve(Op::CopyFileRange);
        reply.error(Errno::ENOSYS);
    }
}

fn remove(inodes: &Inodes, parent: u64, name: &OsStr, flags: i32) -> Result<()> {
    let dir = inodes.get(parent)?;
    let name = sys::name(name)?;
    // SAFETY: `name` is a valid C string; `dir` is open.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
}
