//! The process behind one notification: its memory (read once, so a
//! racing thread cannot change what the broker decided on), its
//! descriptors (duplicated with `pidfd_getfd`, so the broker acts on the
//! very object the caller named), its working directory and umask.
//!
//! Failures are errnos for the caller: memory it cannot read is EFAULT, as
//! the kernel would answer.

use std::ffi::CString;
use std::os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd};

use super::notif::Notif;

/// Longest path a syscall accepts, with its NUL.
pub const PATH_MAX: usize = 4096;

/// Read access to the caller of one notification.
pub struct Caller {
    pub tid: i32,
    pidfd: Option<OwnedFd>,
}

/// An errno to answer the caller with.
pub type Errno = i32;

fn last_errno() -> Errno {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

impl Caller {
    #[must_use]
    pub fn new(n: &Notif) -> Caller {
        Caller::for_tid(n.pid as i32)
    }

    /// The caller thread `tid` (from a notification received earlier).
    #[must_use]
    pub fn for_tid(tid: i32) -> Caller {
        Caller { tid, pidfd: None }
    }

    /// `len` bytes at `addr` of the caller's memory.
    pub fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
        let mut buf = vec![0u8; len];
        if len == 0 {
            return Ok(buf);
        }
        let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: len };
        let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: len };
        // SAFETY: `local` points into `buf` (len bytes, alive for the call);
        // the remote range is only read by the kernel, with permission checks.
        let n = unsafe { libc::process_vm_readv(self.tid, &raw const local, 1, &raw const remote, 1, 0) };
        if n < 0 {
            return Err(match last_errno() {
                libc::ESRCH => libc::ESRCH,
                _ => libc::EFAULT,
            });
        }
        if n as usize != len {
            return Err(libc::EFAULT);
        }
        Ok(buf)
    }

    /// Writes `bytes` at `addr` of the caller's memory (the results a
    /// syscall reports through its arguments, like `sendmmsg`'s lengths).
    pub fn write(&self, addr: u64, bytes: &[u8]) -> Result<(), Errno> {
        let local = libc::iovec { iov_base: bytes.as_ptr().cast_mut().cast(), iov_len: bytes.len() };
        let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: bytes.len() };
        // SAFETY: the kernel only reads `local` (bytes, alive for the call)
        // and writes the caller's memory after its own permission checks.
        let n = unsafe { libc::process_vm_writev(self.tid, &raw const local, 1, &raw const remote, 1, 0) };
        if n < 0 || n as usize != bytes.len() { Err(libc::EFAULT) } else { Ok(()) }
    }

    /// A plain-data struct at `addr`.
    pub fn read_struct<T: Copy>(&self, addr: u64) -> Result<T, Errno> {
        let bytes = self.read(addr, std::mem::size_of::<T>())?;
        // SAFETY: `bytes` holds exactly size_of::<T>() bytes and T is a
        // plain-data kernel struct (every bit pattern valid) read unaligned.
        Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
    }

    /// The NUL-terminated string at `addr` (without the NUL), at most
    /// `PATH_MAX` bytes: ENAMETOOLONG beyond, EFAULT if unreadable.
    pub fn read_cstr(&self, addr: u64) -> Result<Vec<u8>, Errno> {
        if addr == 0 {
            return Err(libc::EFAULT);
        }
        const PAGE: u64 = 4096;
        let mut out = Vec::new();
        let mut at = addr;
        while out.len() < PATH_MAX {
            // Never cross a page boundary in one read: the next page may be
            // unmapped although the string ends before it.
            let chunk = (PAGE - at % PAGE).min((PATH_MAX - out.len()) as u64) as usize;
            let bytes = self.read(at, chunk)?;
            if let Some(end) = bytes.iter().position(|&b| b == 0) {
                out.extend_from_slice(&bytes[..end]);
                return Ok(out);
            }
            out.extend_from_slice(&bytes);
            at += chunk as u64;
        }
        Err(libc::ENAMETOOLONG)
    }

    /// A pidfd of the caller's process.
    pub fn pidfd(&mut self) -> Result<BorrowedFd<'_>, Errno> {
        use std::os::fd::AsFd as _;
        if self.pidfd.is_none() {
            // A thread's own pidfd (PIDFD_THREAD, Linux 6.9) works for
            // pidfd_getfd since threads share their descriptors; older
            // kernels need the thread group leader.
            const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;
            // SAFETY: plain syscall; a non-negative result is a new descriptor we own.
            let mut fd = unsafe { libc::syscall(libc::SYS_pidfd_open, self.tid, PIDFD_THREAD) };
            if fd < 0 {
                let tgid = tgid_of(self.tid).ok_or(libc::ESRCH)?;
                // SAFETY: as above.
                fd = unsafe { libc::syscall(libc::SYS_pidfd_open, tgid, 0u32) };
            }
            if fd < 0 {
                return Err(last_errno());
            }
            // SAFETY: fd is a fresh descriptor returned by the kernel.
            self.pidfd = Some(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        self.pidfd.as_ref().map(|f| f.as_fd()).ok_or(libc::ESRCH)
    }

    /// A duplicate of the caller's descriptor `fd`: the same open file.
    pub fn getfd(&mut self, fd: i32) -> Result<OwnedFd, Errno> {
        if fd < 0 {
            return Err(libc::EBADF);
        }
        let pidfd = self.pidfd()?.as_raw_fd();
        // SAFETY: plain syscall; a non-negative result is a new descriptor we own.
        let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0u32) };
        if r < 0 {
            return Err(last_errno());
        }
        // SAFETY: r is a fresh descriptor returned by the kernel.
        Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
    }

    /// The directory a `*at` call's path is relative to: the caller's
    /// working directory for `AT_FDCWD`, else its descriptor.
    pub fn base(&mut self, dirfd: i32) -> Result<OwnedFd, Errno> {
        if dirfd == libc::AT_FDCWD {
            return open_path(&format!("/proc/{}/cwd", self.tid), libc::O_DIRECTORY);
        }
        self.getfd(dirfd)
    }

    /// The caller's umask (from `/proc/<tid>/status`), 0o022 if unknown.
    #[must_use]
    pub fn umask(&self) -> u32 {
        status_field(self.tid, "Umask:").and_then(|v| u32::from_str_radix(v.trim(), 8).ok()).unwrap_or(0o022)
    }

    /// The caller's process id (thread group).
    #[must_use]
    pub fn tgid(&self) -> Option<i32> {
        tgid_of(self.tid)
    }
}

fn status_field(tid: i32, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    text.lines().find_map(|l| l.strip_prefix(key)).map(str::to_owned)
}

fn tgid_of(tid: i32) -> Option<i32> {
    status_field(tid, "Tgid:").and_then(|v| v.trim().parse().ok())
}

/// `open(path, O_PATH | O_CLOEXEC | extra)`, following symlinks.
pub fn open_path(path: &str, extra: i32) -> Result<OwnedFd, Errno> {
    let c = CString::new(path).map_err(|_| libc::EINVAL)?;
    // SAFETY: `c` is a valid C string; a non-negative result is a new descriptor we own.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC | extra) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: fd is a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Caller {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        Caller { tid, pidfd: None }
    }

    #[test]
    fn strings_are_read_once_up_to_their_nul_even_across_pages() {
        // A string that ends right before an unmapped page must read fine.
        // SAFETY: anonymous mapping of two pages, then the second is unmapped.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                8192,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        // SAFETY: unmapping the second page of our own mapping.
        unsafe { libc::munmap(base.cast::<u8>().add(4096).cast(), 4096) };
        let text = b"/tmp/x\0";
        let at = 4096 - text.len();
        // SAFETY: writes inside the first (still mapped) page.
        unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), base.cast::<u8>().add(at), text.len()) };
        let c = me();
        assert_eq!(c.read_cstr(base as u64 + at as u64).expect("read"), b"/tmp/x");
        // No NUL before the hole: EFAULT, never a guess.
        // SAFETY: overwrites the NUL inside the mapped page.
        unsafe { *base.cast::<u8>().add(4095) = b'y' };
        assert_eq!(c.read_cstr(base as u64 + at as u64), Err(libc::EFAULT));
        assert_eq!(c.read_cstr(0), Err(libc::EFAULT));
        // SAFETY: unmapping the first page.
        unsafe { libc::munmap(base, 4096) };
    }

    #[test]
    fn descriptors_are_duplicated_from_the_caller() {
        let mut c = me();
        let f = std::fs::File::open("/proc/self/status").expect("open");
        let dup = c.getfd(f.as_raw_fd()).expect("pidfd_getfd of our own fd");
        let a = std::fs::metadata(format!("/proc/self/fd/{}", f.as_raw_fd())).expect("stat");
        let b = std::fs::metadata(format!("/proc/self/fd/{}", dup.as_raw_fd())).expect("stat");
        use std::os::unix::fs::MetadataExt as _;
        assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()));
        assert_eq!(c.getfd(-1).err(), Some(libc::EBADF));
        assert!(c.umask() <= 0o777);
    }
}
