//! The system calls snapshots are made of, relative to directory
//! descriptors: nothing here resolves a whole path from `/` except
//! [`open_dir_path`], and nothing follows a symbolic link at the final
//! component. Thin wrappers: each returns the `io::Error` of its call.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

/// `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`: a path
/// that leaves its directory or crosses a link of any kind is refused.
pub const RESOLVE_STRICT: u64 = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;

fn cstr(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

/// Opens `path` (absolute) as a directory, following links on the way as
/// any program would; the caller compares what it got with what it expects.
pub fn open_dir_path(path: &Path) -> io::Result<OwnedFd> {
    let c = cstr(path.as_os_str().as_bytes())?;
    // SAFETY: `c` is a valid C string; a non-negative result is a new descriptor we own.
    let fd = check(unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) })?;
    // SAFETY: fd is fresh and ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat(2)` of one name in `dir`, never following a link there.
pub fn openat(dir: BorrowedFd<'_>, name: &[u8], flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    // SAFETY: valid descriptor and C string; a non-negative result is a new descriptor we own.
    let fd = check(unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags | libc::O_NOFOLLOW | libc::O_CLOEXEC, mode) })?;
    // SAFETY: fd is fresh and ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat2(2)`: `path` is resolved beneath `dir` with `resolve`.
pub fn openat2(dir: BorrowedFd<'_>, path: &[u8], flags: i32, mode: u32, resolve: u64) -> io::Result<OwnedFd> {
    let c = cstr(if path.is_empty() { b"." } else { path })?;
    // open_how is non-exhaustive in libc: zero it, then set the fields.
    // SAFETY: plain integers; all-zero is valid.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = u64::from(mode);
    how.resolve = resolve;
    // SAFETY: `c` and `how` outlive the call; a non-negative result is a new descriptor we own.
    let fd = unsafe {
        libc::syscall(libc::SYS_openat2, dir.as_raw_fd(), c.as_ptr(), &raw const how, std::mem::size_of::<libc::open_how>())
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is fresh and ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and output pointer.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &raw mut st) })?;
    Ok(st)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`: the entry itself, never what
/// a link points to.
pub fn lstatat(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<libc::stat> {
    let c = cstr(name)?;
    // SAFETY: stat is plain data.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, C string and output pointer.
    check(unsafe { libc::fstatat(dir.as_raw_fd(), c.as_ptr(), &raw mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

pub fn readlinkat(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Vec<u8>> {
    let c = cstr(name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: valid descriptor and C string; the buffer has the given length.
    let n = unsafe { libc::readlinkat(dir.as_raw_fd(), c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// Every name in the directory `dir` (opened for reading, at its start),
/// without `.` and `..`.
pub fn read_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: getdents64 writes at most `buf.len()` bytes into `buf`.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, dir.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Ok(names);
        }
        let mut off = 0usize;
        let n = n as usize;
        // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
        while off + 19 <= n {
            let reclen = usize::from(u16::from_ne_bytes([buf[off + 16], buf[off + 17]]));
            if reclen == 0 || off + reclen > n {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "getdents64 returned a malformed record"));
            }
            let name_bytes = &buf[off + 19..off + reclen];
            let len = name_bytes.iter().position(|&b| b == 0).unwrap_or(name_bytes.len());
            let name = &name_bytes[..len];
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
            off += reclen;
        }
    }
}

pub fn mkdirat(dir: BorrowedFd<'_>, name: &[u8], mode: u32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid descriptor and C string.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode) }).map(drop)
}

pub fn unlinkat(dir: BorrowedFd<'_>, name: &[u8], is_dir: bool) -> io::Result<()> {
    let c = cstr(name)?;
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: valid descriptor and C string.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) }).map(drop)
}

/// `renameat2(2)` within or across two directory descriptors; a rename
/// replaces the entry at `to`, never what it points to.
pub fn renameat2(from_dir: BorrowedFd<'_>, from: &[u8], to_dir: BorrowedFd<'_>, to: &[u8], flags: u32) -> io::Result<()> {
    let (a, b) = (cstr(from)?, cstr(to)?);
    // SAFETY: valid descriptors and C strings.
    let r =
        unsafe { libc::syscall(libc::SYS_renameat2, from_dir.as_raw_fd(), a.as_ptr(), to_dir.as_raw_fd(), b.as_ptr(), flags) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

pub fn symlinkat(target: &[u8], dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    let (t, n) = (cstr(target)?, cstr(name)?);
    // SAFETY: valid descriptor and C strings.
    check(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), n.as_ptr()) }).map(drop)
}

pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: valid descriptor.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode) }).map(drop)
}

/// Changes the mode of the entry `name` in `dir`, which must not be a
/// symbolic link: `fchmodat2(AT_SYMLINK_NOFOLLOW)` (Linux 6.6), else the
/// mode of an `O_PATH` descriptor of the entry through `/proc/self/fd`,
/// which names that inode and follows nothing further.
pub fn chmod_at(dir: BorrowedFd<'_>, name: &[u8], mode: u32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid descriptor and C string.
    let r = unsafe { libc::syscall(libc::SYS_fchmodat2, dir.as_raw_fd(), c.as_ptr(), mode, libc::AT_SYMLINK_NOFOLLOW) };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if !matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EINVAL)) {
        return Err(e);
    }
    chmod_via_proc(dir, name, mode)
}

/// [`chmod_at`] for kernels before 6.6: the mode of an `O_PATH`
/// descriptor's inode, through `/proc/self/fd`.
pub fn chmod_via_proc(dir: BorrowedFd<'_>, name: &[u8], mode: u32) -> io::Result<()> {
    let fd = openat(dir, name, libc::O_PATH, 0)?;
    let st = fstat(std::os::fd::AsFd::as_fd(&fd))?;
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    let proc = cstr(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_bytes())?;
    // SAFETY: a valid C string naming our own descriptor.
    check(unsafe { libc::chmod(proc.as_ptr(), mode) }).map(drop)
}

fn timespec(t: (i64, u32)) -> libc::timespec {
    libc::timespec { tv_sec: t.0, tv_nsec: i64::from(t.1) }
}

pub fn futimens(fd: BorrowedFd<'_>, atime: (i64, u32), mtime: (i64, u32)) -> io::Result<()> {
    let times = [timespec(atime), timespec(mtime)];
    // SAFETY: valid descriptor and a two-element array.
    check(unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) }).map(drop)
}

/// Sets the times of the entry `name` itself (a link's own times, never its target's).
pub fn utimensat_nofollow(dir: BorrowedFd<'_>, name: &[u8], atime: (i64, u32), mtime: (i64, u32)) -> io::Result<()> {
    let c = cstr(name)?;
    let times = [timespec(atime), timespec(mtime)];
    // SAFETY: valid descriptor, C string and a two-element array.
    check(unsafe { libc::utimensat(dir.as_raw_fd(), c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) }).map(drop)
}

/// `ioctl(dst, FICLONE, src)`: `dst` shares `src`'s extents (copy on
/// write) where the filesystem supports it.
pub fn ficlone(dst: BorrowedFd<'_>, src: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: FICLONE takes the source descriptor as its integer argument.
    check(unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) }).map(drop)
}

/// Whether a FICLONE failure means "not here" (another filesystem, or one
/// without reflinks) rather than a real error.
pub fn clone_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EXDEV | libc::EOPNOTSUPP | libc::EINVAL | libc::ENOTTY | libc::ENOSYS | libc::EPERM | libc::EBADF)
    )
}

pub fn syncfs(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: valid descriptor.
    check(unsafe { libc::syncfs(fd.as_raw_fd()) }).map(drop)
}

pub fn fsync(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: valid descriptor.
    check(unsafe { libc::fsync(fd.as_raw_fd()) }).map(drop)
}

/// `flock(2)`; `Ok(false)` when `nonblocking` and someone else holds it.
pub fn flock(fd: BorrowedFd<'_>, op: i32, nonblocking: bool) -> io::Result<bool> {
    let op = if nonblocking { op | libc::LOCK_NB } else { op };
    loop {
        // SAFETY: valid descriptor.
        if unsafe { libc::flock(fd.as_raw_fd(), op) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EWOULDBLOCK) if nonblocking => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// `lseek(fd, off, SEEK_DATA|SEEK_HOLE)`; `None` past the last data.
pub fn seek(fd: BorrowedFd<'_>, off: u64, whence: i32) -> io::Result<Option<u64>> {
    // SAFETY: valid descriptor.
    let r = unsafe { libc::lseek(fd.as_raw_fd(), off as i64, whence) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENXIO) {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(Some(r as u64))
}

/// Free bytes for an unprivileged user on the filesystem of `fd`.
pub fn free_bytes(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: statvfs is plain data.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and output pointer.
    check(unsafe { libc::fstatvfs(fd.as_raw_fd(), &raw mut s) })?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// Random bits for names (snapshot ids, temp files).
pub fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // SAFETY: getrandom writes at most 4 bytes into `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), libc::GRND_NONBLOCK) };
    if n == 4 {
        u32::from_ne_bytes(b)
    } else {
        // No entropy yet this early in boot: the time and pid are unique enough for a name that is also created exclusively.
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
            ^ std::process::id().rotate_left(16)
    }
}

/// A stat's modification, change and access times as `(seconds, nanoseconds)`.
#[must_use]
pub fn times(st: &libc::stat) -> [(i64, u32); 3] {
    [(st.st_mtime, st.st_mtime_nsec as u32), (st.st_ctime, st.st_ctime_nsec as u32), (st.st_atime, st.st_atime_nsec as u32)]
}
