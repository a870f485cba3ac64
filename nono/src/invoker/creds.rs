//! The calling thread's filesystem identity: fsuid, fsgid and
//! supplementary groups, read and switched with raw system calls.
//!
//! Raw, because the C library's `setgroups` (like `setuid`) changes every
//! thread of the process, and nono needs a thread that is still root for
//! the recorder while the rest acts as the user. The kernel keeps
//! credentials per thread; a new thread starts with a copy of its
//! creator's.

use std::io;

use super::Identity;

/// What the kernel checks file permissions against, for one thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadIdentity {
    pub fsuid: u32,
    pub fsgid: u32,
    pub groups: Vec<u32>,
}

/// An id no user or group has: `setfs[ug]id` with it changes nothing and
/// returns the current value.
const QUERY: u32 = u32::MAX;

fn fsuid() -> u32 {
    // SAFETY: setfsuid with an invalid id only returns the current fsuid.
    unsafe { libc::syscall(libc::SYS_setfsuid, QUERY) as u32 }
}

fn fsgid() -> u32 {
    // SAFETY: as above, for the fsgid.
    unsafe { libc::syscall(libc::SYS_setfsgid, QUERY) as u32 }
}

fn groups() -> io::Result<Vec<u32>> {
    // SAFETY: a zero-sized query returns the count and writes nothing.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut v = vec![0; n as usize];
    // SAFETY: `v` has room for `n` entries.
    let got = unsafe { libc::getgroups(n, v.as_mut_ptr()) };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    v.truncate(got as usize);
    Ok(v)
}

/// The calling thread's filesystem identity.
pub fn thread_identity() -> io::Result<ThreadIdentity> {
    Ok(ThreadIdentity { fsuid: fsuid(), fsgid: fsgid(), groups: groups()? })
}

/// Sets the calling thread's filesystem identity, and checks it took.
fn set(to: &ThreadIdentity) -> io::Result<()> {
    // Groups first: setgroups needs CAP_SETGID, which a non-zero fsuid
    // does not take away, but keeping the order fixed keeps reasoning easy.
    // SAFETY: raw setgroups on a slice that outlives the call; affects
    // this thread only.
    if unsafe { libc::syscall(libc::SYS_setgroups, to.groups.len(), to.groups.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: setfsgid/setfsuid take plain integers and affect this
    // thread only; they report failure only by not changing the value.
    unsafe {
        libc::syscall(libc::SYS_setfsgid, to.fsgid);
        libc::syscall(libc::SYS_setfsuid, to.fsuid);
    }
    let now = thread_identity()?;
    if now.fsuid != to.fsuid || now.fsgid != to.fsgid {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("the filesystem identity stayed {}:{} instead of {}:{}", now.fsuid, now.fsgid, to.fsuid, to.fsgid),
        ));
    }
    Ok(())
}

fn user_of(id: &Identity) -> ThreadIdentity {
    ThreadIdentity { fsuid: id.uid, fsgid: id.gid, groups: id.groups.clone() }
}

/// Root's filesystem identity as it was before [`become_fs_user`]: what
/// [`as_root`] returns to.
static ROOT: std::sync::OnceLock<ThreadIdentity> = std::sync::OnceLock::new();

/// Gives the calling thread `id`'s filesystem identity for good.
pub(super) fn become_fs_user(id: &Identity) -> io::Result<()> {
    let before = thread_identity()?;
    let _ = ROOT.set(before);
    set(&user_of(id))
}

/// Puts the thread's previous identity back when dropped (also when the
/// closure panics).
struct Restore(Option<ThreadIdentity>);

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(prev) = self.0.take()
            && let Err(e) = set(&prev)
        {
            // Continuing with the wrong identity could write as root where
            // the user was meant: stop instead.
            eprintln!("nono: fatal: cannot restore this thread's filesystem identity: {e}");
            std::process::abort();
        }
    }
}

/// Runs `f` with `id`'s filesystem identity on this thread.
pub(super) fn with_fs_user<T>(id: &Identity, f: impl FnOnce() -> T) -> io::Result<T> {
    let want = user_of(id);
    let now = thread_identity()?;
    if now.fsuid == want.fsuid && now.fsgid == want.fsgid {
        return Ok(f());
    }
    set(&want)?;
    let _restore = Restore(Some(now));
    Ok(f())
}

/// Runs `f` with root's filesystem identity on this thread, for the few
/// steps that need root's files (the recorder reads tracefs, which is
/// root's alone). A no-op where nono never took a user's identity.
pub fn as_root<T>(f: impl FnOnce() -> T) -> io::Result<T> {
    let Some(root) = ROOT.get() else { return Ok(f()) };
    let now = thread_identity()?;
    if now.fsuid == root.fsuid {
        return Ok(f());
    }
    set(root)?;
    let _restore = Restore(Some(now));
    Ok(f())
}
