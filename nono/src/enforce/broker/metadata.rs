//! Metadata changes (`chmod`, `chown`, timestamps, extended attributes):
//! the broker resolves the target once (`fs::metadata_target` checks the
//! policy on it) and performs the change on its own descriptor of that
//! object, as the user, so the permission checks are the user's and a
//! racing rename cannot redirect it.

use std::ffi::CString;
use std::os::fd::{AsRawFd as _, OwnedFd};

use super::caller::{Caller, Errno};
use super::fs::metadata_target;
use super::notif::{Notif, Reply};
use super::plan::BrokerPlan;
use super::{AuditNote, Handled};
use crate::event::Op;

/// `fchmodat2(2)` (Linux 6.6), absent from older libc headers.
const SYS_FCHMODAT2: i64 = 452;
/// `setxattrat(2)` and `removexattrat(2)` (Linux 6.13).
const SYS_SETXATTRAT: i64 = 463;
const SYS_REMOVEXATTRAT: i64 = 466;
/// Longest xattr value the kernel accepts (`XATTR_SIZE_MAX`).
const XATTR_SIZE_MAX: usize = 65536;
/// Longest xattr name (`XATTR_NAME_MAX`).
const XATTR_NAME_MAX: usize = 255;

fn last_errno() -> Errno {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

/// The syscalls this module answers.
pub const SYSCALLS: &[i64] = &[
    libc::SYS_chmod,
    libc::SYS_fchmod,
    libc::SYS_fchmodat,
    SYS_FCHMODAT2,
    libc::SYS_chown,
    libc::SYS_lchown,
    libc::SYS_fchown,
    libc::SYS_fchownat,
    libc::SYS_utime,
    libc::SYS_utimes,
    libc::SYS_futimesat,
    libc::SYS_utimensat,
    libc::SYS_setxattr,
    libc::SYS_lsetxattr,
    libc::SYS_fsetxattr,
    libc::SYS_removexattr,
    libc::SYS_lremovexattr,
    libc::SYS_fremovexattr,
    SYS_SETXATTRAT,
    SYS_REMOVEXATTRAT,
];

/// What to change once the target is known.
enum Change {
    Mode(u32),
    Owner(u32, u32),
    /// `None`: now (a NULL `times`).
    Times(Option<[libc::timespec; 2]>),
    SetXattr {
        name: Vec<u8>,
        value: Vec<u8>,
        flags: i32,
    },
    RemoveXattr {
        name: Vec<u8>,
    },
}

/// Where the target is: a path relative to a directory descriptor, or a
/// descriptor itself.
struct Target {
    dirfd: i32,
    path: Option<Vec<u8>>,
    follow: bool,
}

pub(super) fn handle(n: &Notif, caller: &mut Caller, plan: &BrokerPlan, valid: &dyn Fn() -> bool) -> Option<Handled> {
    let nr = i64::from(n.nr);
    if nr == libc::SYS_truncate {
        return Some(truncate(n, caller, plan, valid));
    }
    if !SYSCALLS.contains(&nr) {
        return None;
    }
    Some(match decode(n, caller) {
        Ok(Some((target, change))) => perform(nr, caller, plan, target, change, valid),
        Ok(None) => Handled::cont(),
        Err(e) => Handled::reply(Reply::Error(e)),
    })
}

fn path(caller: &Caller, addr: u64) -> Result<Option<Vec<u8>>, Errno> {
    caller.read_cstr(addr).map(Some)
}

/// Reads the call's arguments once.
fn decode(n: &Notif, caller: &Caller) -> Result<Option<(Target, Change)>, Errno> {
    let a = n.args;
    let at = |dirfd: u64, p: u64, flags: u64| -> Result<Target, Errno> {
        let flags = flags as i32;
        let p = if p == 0 { None } else { path(caller, p)? };
        // An empty path with AT_EMPTY_PATH names the descriptor itself.
        let p = p.filter(|p| !(p.is_empty() && flags & libc::AT_EMPTY_PATH != 0));
        Ok(Target { dirfd: dirfd as i32, path: p, follow: flags & libc::AT_SYMLINK_NOFOLLOW == 0 })
    };
    let cwd =
        |p: u64, follow: bool| -> Result<Target, Errno> { Ok(Target { dirfd: libc::AT_FDCWD, path: path(caller, p)?, follow }) };
    let fd = |f: u64| Target { dirfd: f as i32, path: None, follow: true };
    let owner = |u: u64, g: u64| Change::Owner(u as u32, g as u32);
    let out = match i64::from(n.nr) {
        libc::SYS_chmod => (cwd(a[0], true)?, Change::Mode(a[1] as u32)),
        libc::SYS_fchmod => (fd(a[0]), Change::Mode(a[1] as u32)),
        libc::SYS_fchmodat => (at(a[0], a[1], 0)?, Change::Mode(a[2] as u32)),
        SYS_FCHMODAT2 => (at(a[0], a[1], a[3])?, Change::Mode(a[2] as u32)),
        libc::SYS_chown => (cwd(a[0], true)?, owner(a[1], a[2])),
        libc::SYS_lchown => (cwd(a[0], false)?, owner(a[1], a[2])),
        libc::SYS_fchown => (fd(a[0]), owner(a[1], a[2])),
        libc::SYS_fchownat => (at(a[0], a[1], a[4])?, owner(a[2], a[3])),
        libc::SYS_utime => (cwd(a[0], true)?, Change::Times(utimbuf(caller, a[1])?)),
        libc::SYS_utimes => (cwd(a[0], true)?, Change::Times(timevals(caller, a[1])?)),
        libc::SYS_futimesat => (at(a[0], a[1], 0)?, Change::Times(timevals(caller, a[2])?)),
        libc::SYS_utimensat => (at(a[0], a[1], a[3])?, Change::Times(timespecs(caller, a[2])?)),
        libc::SYS_setxattr | libc::SYS_lsetxattr | libc::SYS_fsetxattr => {
            let target = match i64::from(n.nr) {
                libc::SYS_fsetxattr => fd(a[0]),
                nr => cwd(a[0], nr == libc::SYS_setxattr)?,
            };
            let size = a[3] as usize;
            if size > XATTR_SIZE_MAX {
                return Err(libc::E2BIG);
            }
            (target, Change::SetXattr { name: xattr_name(caller, a[1])?, value: caller.read(a[2], size)?, flags: a[4] as i32 })
        }
        libc::SYS_removexattr | libc::SYS_lremovexattr | libc::SYS_fremovexattr => {
            let target = match i64::from(n.nr) {
                libc::SYS_fremovexattr => fd(a[0]),
                nr => cwd(a[0], nr == libc::SYS_removexattr)?,
            };
            (target, Change::RemoveXattr { name: xattr_name(caller, a[1])? })
        }
        // The *xattrat calls take a struct nono does not broker yet: refused
        // (never let through unchecked).
        SYS_SETXATTRAT | SYS_REMOVEXATTRAT => return Err(libc::EPERM),
        _ => return Ok(None),
    };
    Ok(Some(out))
}

fn xattr_name(caller: &Caller, addr: u64) -> Result<Vec<u8>, Errno> {
    let name = caller.read_cstr(addr)?;
    if name.is_empty() || name.len() > XATTR_NAME_MAX {
        return Err(libc::ERANGE);
    }
    Ok(name)
}

fn utimbuf(caller: &Caller, addr: u64) -> Result<Option<[libc::timespec; 2]>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    let b: libc::utimbuf = caller.read_struct(addr)?;
    Ok(Some([libc::timespec { tv_sec: b.actime, tv_nsec: 0 }, libc::timespec { tv_sec: b.modtime, tv_nsec: 0 }]))
}

fn timevals(caller: &Caller, addr: u64) -> Result<Option<[libc::timespec; 2]>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    let t: [libc::timeval; 2] = caller.read_struct(addr)?;
    let ts = |v: libc::timeval| libc::timespec { tv_sec: v.tv_sec, tv_nsec: v.tv_usec * 1000 };
    Ok(Some([ts(t[0]), ts(t[1])]))
}

fn timespecs(caller: &Caller, addr: u64) -> Result<Option<[libc::timespec; 2]>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    caller.read_struct(addr).map(Some)
}

fn perform(nr: i64, caller: &mut Caller, plan: &BrokerPlan, t: Target, change: Change, valid: &dyn Fn() -> bool) -> Handled {
    let shown = t.path.as_deref().map(crate::event::escape_bytes);
    let audit = |shown: Option<String>| AuditNote { op: Op::Metadata, path: shown, path2: None, arg: nr as u64, net: None };
    let obj = match metadata_target(caller, plan, t.dirfd, t.path.as_deref(), t.follow) {
        Ok(o) => o,
        Err(libc::EACCES) => return Handled::refused(libc::EACCES, audit(shown)),
        Err(e) => return Handled::reply_noted(Reply::Error(e), audit(shown)),
    };
    if !valid() {
        return Handled::gone();
    }
    let reply = match apply(&obj, change) {
        Ok(()) => Reply::Value(0),
        Err(e) => Reply::Error(e),
    };
    Handled::reply_noted(reply, audit(shown))
}

/// Performs the change on `obj` (an `O_PATH` descriptor of the target).
fn apply(obj: &OwnedFd, change: Change) -> Result<(), Errno> {
    let fd = obj.as_raw_fd();
    let proc_path = CString::new(format!("/proc/self/fd/{fd}")).map_err(|_| libc::EINVAL)?;
    let empty = c"";
    // SAFETY (each call): `fd` is our open O_PATH descriptor, the strings
    // are valid C strings and the buffers outlive the calls.
    let r = unsafe {
        match change {
            // chmod through the descriptor's magic link reaches the object
            // itself; a symlink's own mode cannot be changed on Linux.
            Change::Mode(mode) => {
                let mut st: libc::stat = std::mem::zeroed();
                libc::fstat(fd, &raw mut st);
                if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                    *libc::__errno_location() = libc::EOPNOTSUPP;
                    -1
                } else {
                    libc::chmod(proc_path.as_ptr(), mode & 0o7777)
                }
            }
            Change::Owner(u, g) => libc::fchownat(fd, empty.as_ptr(), u, g, libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW),
            Change::Times(times) => {
                let p = times.as_ref().map_or(std::ptr::null(), |t| t.as_ptr());
                libc::utimensat(libc::AT_FDCWD, proc_path.as_ptr(), p, 0)
            }
            Change::SetXattr { name, value, flags } => {
                let name = CString::new(name).map_err(|_| libc::EINVAL)?;
                libc::setxattr(proc_path.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), flags)
            }
            Change::RemoveXattr { name } => {
                let name = CString::new(name).map_err(|_| libc::EINVAL)?;
                libc::removexattr(proc_path.as_ptr(), name.as_ptr())
            }
        }
    };
    if r < 0 { Err(last_errno()) } else { Ok(()) }
}

/// `truncate(2)` by path where Landlock cannot restrict it (ABI below 3,
/// see [`super::rules`]): allowed only on a file beneath a rule with
/// `write_file`, performed on the broker's own descriptor of that object
/// as the user; anything else is refused (EACCES).
fn truncate(n: &Notif, caller: &mut Caller, plan: &BrokerPlan, valid: &dyn Fn() -> bool) -> Handled {
    let audit = |shown: Option<String>| AuditNote { op: Op::Truncate, path: shown, path2: None, arg: n.args[1], net: None };
    let Ok(len) = i64::try_from(n.args[1]) else { return Handled::reply(Reply::Error(libc::EINVAL)) };
    let p = match caller.read_cstr(n.args[0]) {
        Ok(p) => p,
        Err(e) => return Handled::reply(Reply::Error(e)),
    };
    let shown = Some(crate::event::escape_bytes(&p));
    let obj = match super::fs::write_target(caller, plan, &p) {
        Ok(o) => o,
        Err(libc::EACCES) => return Handled::refused(libc::EACCES, audit(shown)),
        Err(e) => return Handled::reply_noted(Reply::Error(e), audit(shown)),
    };
    if !valid() {
        return Handled::gone();
    }
    let reply = match truncate_object(&obj, len) {
        Ok(()) => Reply::Value(0),
        Err(e) => Reply::Error(e),
    };
    Handled::reply_noted(reply, audit(shown))
}

/// Opens `obj` (an `O_PATH` descriptor) for writing through its magic link
/// (the user's permission check applies) and truncates it.
fn truncate_object(obj: &OwnedFd, len: i64) -> Result<(), Errno> {
    let proc_path = CString::new(format!("/proc/self/fd/{}", obj.as_raw_fd())).map_err(|_| libc::EINVAL)?;
    // SAFETY: a valid C string; a non-negative result is a descriptor we close below.
    let fd = unsafe { libc::open(proc_path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: our descriptor, closed once.
    let r = unsafe { libc::ftruncate(fd, len) };
    let e = last_errno();
    // SAFETY: as above.
    unsafe { libc::close(fd) };
    if r < 0 { Err(e) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    /// The broker answers exactly the metadata calls the recorder records
    /// (`seen_by_recorder` relies on it: an answered call the recorder did
    /// not see would leave no event, one it saw twice two).
    #[test]
    fn the_broker_and_the_recorder_agree_on_metadata_calls() {
        let mut ours: Vec<i64> = super::SYSCALLS.to_vec();
        let mut recorded: Vec<i64> = nono_common::sysno::METADATA.iter().map(|n| i64::from(*n)).collect();
        ours.sort_unstable();
        recorded.sort_unstable();
        assert_eq!(ours, recorded);
    }
}
