//! The seccomp user-notification listener: receive a blocked syscall,
//! check it is still pending, answer it (continue, a value, an errno, or a
//! descriptor installed in the caller).
//!
//! Every answer names the notification's id; the kernel drops answers to
//! ids that are no longer pending (the caller was killed or interrupted),
//! so a late answer can never land on another syscall.

use std::io;
use std::os::fd::{AsRawFd as _, BorrowedFd, OwnedFd};

/// One blocked syscall.
#[derive(Clone, Copy, Debug)]
pub struct Notif {
    pub id: u64,
    /// Thread id of the caller, in nono's pid namespace.
    pub pid: u32,
    pub nr: i32,
    pub arch: u32,
    pub args: [u64; 6],
}

/// The answer to one notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Let the kernel run the syscall (Landlock still decides).
    Continue,
    /// The syscall returns this value (the broker performed it).
    Value(i64),
    /// The syscall fails with this errno.
    Error(i32),
}

/// The listener descriptor of a filter.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
}

fn sys(call: &'static str) -> impl FnOnce(io::Error) -> super::BrokerError {
    move |source| super::BrokerError::Sys { call, source }
}

impl Listener {
    #[must_use]
    pub fn new(fd: OwnedFd) -> Listener {
        Listener { fd }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd as _;
        self.fd.as_fd()
    }

    /// Waits for the next notification. `Ok(None)`: the one that woke us
    /// was cancelled before it could be read (the caller was interrupted);
    /// try again.
    pub fn recv(&self) -> Result<Option<Notif>, super::BrokerError> {
        // SAFETY: the kernel requires a zeroed struct; seccomp_notif is
        // plain integers, so all-zero is a valid value.
        let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: RECV writes one seccomp_notif into `n`, which outlives the call.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &raw mut n) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT | libc::EINTR) => Ok(None),
                _ => Err(sys("ioctl(SECCOMP_IOCTL_NOTIF_RECV)")(e)),
            };
        }
        Ok(Some(Notif { id: n.id, pid: n.pid, nr: n.data.nr, arch: n.data.arch, args: n.data.args }))
    }

    /// Whether the notification is still pending: its caller has not been
    /// killed or interrupted, so what was read from its memory is its.
    #[must_use]
    pub fn valid(&self, id: u64) -> bool {
        let mut id = id;
        // SAFETY: ID_VALID reads one u64.
        unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &raw mut id) == 0 }
    }

    /// Answers a notification. An answer to a notification that is no
    /// longer pending fails with ENOENT, which is not an error for nono.
    pub fn reply(&self, id: u64, reply: Reply) -> Result<(), super::BrokerError> {
        let mut resp = libc::seccomp_notif_resp { id, val: 0, error: 0, flags: 0 };
        match reply {
            Reply::Continue => resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
            Reply::Value(v) => resp.val = v,
            Reply::Error(e) => resp.error = -e,
        }
        // SAFETY: SEND reads one seccomp_notif_resp.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &raw mut resp) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENOENT) {
                return Err(sys("ioctl(SECCOMP_IOCTL_NOTIF_SEND)")(e));
            }
        }
        Ok(())
    }

    /// Installs `fd` in the caller as its next free descriptor and answers
    /// the notification with that number, atomically (`ADDFD_FLAG_SEND`).
    pub fn reply_fd(&self, id: u64, fd: BorrowedFd<'_>, cloexec: bool) -> Result<Option<i32>, super::BrokerError> {
        let mut add = libc::seccomp_notif_addfd {
            id,
            flags: libc::SECCOMP_ADDFD_FLAG_SEND as u32,
            srcfd: fd.as_raw_fd() as u32,
            newfd: 0,
            newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
        };
        // SAFETY: ADDFD reads one seccomp_notif_addfd; `fd` stays open for the call.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ADDFD, &raw mut add) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT) => Ok(None),
                _ => Err(sys("ioctl(SECCOMP_IOCTL_NOTIF_ADDFD)")(e)),
            };
        }
        Ok(Some(r))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_notification_structs_have_the_kernel_layout() {
        // include/uapi/linux/seccomp.h: seccomp_data is 64 bytes, the
        // notification 80, the response 24, addfd 24.
        assert_eq!(std::mem::size_of::<libc::seccomp_data>(), 64);
        assert_eq!(std::mem::size_of::<libc::seccomp_notif>(), 80);
        assert_eq!(std::mem::size_of::<libc::seccomp_notif_resp>(), 24);
        assert_eq!(std::mem::size_of::<libc::seccomp_notif_addfd>(), 24);
    }
}
