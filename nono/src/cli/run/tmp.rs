//! The run's private temp dir (issue 21 §3): `nono run` and `nono wrap`
//! give the command a `TMPDIR` of its own, so nothing it leaves in a temp
//! dir is shared with the user's other programs, and the shared `/tmp`
//! (where another program's predictable names live: `/tmp/tmux-UID`, log
//! files) needs no grant at all.
//!
//! Layout: `BASE/nono-UID/run-PID-START`, where BASE is the caller's
//! `TMPDIR` (an absolute directory) or `/tmp`, UID the user the command
//! runs as, PID and START nono's pid and its start time in clock ticks
//! (`/proc/PID/stat`, field 22), which together name one process for as
//! long as the machine is up. Both directories are 0700 and the user's.
//!
//! Threat model: BASE is world-writable and the sandboxed user (or any
//! other) may have planted names in it. Every step is made as the user
//! (under sudo, with the user's filesystem identity, `setfsuid`), relative
//! to an open directory, never following a symlink: the per-user parent is
//! opened `O_NOFOLLOW | O_DIRECTORY` and must be a directory the user owns,
//! else nono refuses to run (another user's directory there is a plant).
//! Removal is made as the user too, so at worst it removes what the user
//! could have removed.
//!
//! Lifetime: `run` removes the directory when the command is gone (also
//! when it was killed). When nono itself is killed (SIGKILL), or after `wrap`
//! (which execs the command in place: the process that made the directory
//! *is* the command, same PID and start time), the directory stays until
//! that process is gone; the next `run` or `wrap` of the same user removes
//! every `run-PID-START` whose process no longer exists.
//!
//! This module must not touch anything outside BASE/nono-UID.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, FromRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::record::spawn::Identity;

/// The variables the command gets pointing at the directory. `TMPDIR` is
/// always set; `TMP` and `TEMP` (honoured by some runtimes, such as
/// Python's `tempfile`) are redirected only when the caller has them, so a
/// program that reads them does not write where the sandbox cannot.
pub const VARIABLES: [&str; 3] = ["TMPDIR", "TMP", "TEMP"];

/// A private temp dir, removed on drop unless [`PrivateTmp::keep`] was
/// called.
#[derive(Debug)]
pub struct PrivateTmp {
    path: PathBuf,
    fs_ids: Option<(u32, u32)>,
    keep: bool,
}

impl PrivateTmp {
    /// Creates this run's directory, after removing those of runs that are
    /// gone. `identity`: the user the command runs as (sudo).
    pub fn create(identity: Option<&Identity>) -> anyhow::Result<PrivateTmp> {
        let base = std::env::var_os("TMPDIR")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute() && p.is_dir())
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        let uid = identity.map_or_else(|| nix::unistd::geteuid().as_raw(), |i| i.uid);
        let fs_ids = identity.map(|i| (i.uid, i.gid));
        let me = std::process::id();
        let name = format!("run-{me}-{}", start_time(me).context("reading nono's own start time")?);
        let parent_name = format!("nono-{uid}");
        let parent_path = base.join(&parent_name);
        as_user(fs_ids, || -> anyhow::Result<()> {
            let base_fd =
                open_dir(None, base.as_os_str(), false).with_context(|| format!("opening the temp dir {}", base.display()))?;
            let parent = own_dir(&base_fd, &parent_name, uid)
                .with_context(|| format!("preparing {} (the user's private temp dirs)", parent_path.display()))?;
            remove_stale(&parent, &parent_path);
            mkdir(&parent, &name).with_context(|| format!("creating {}", parent_path.join(&name).display()))?;
            // Checked like the parent: it must be what we just made.
            own_dir(&parent, &name, uid).map(drop)
        })?;
        Ok(PrivateTmp { path: parent_path.join(name), fs_ids, keep: false })
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the directory for the next run to clean (`wrap`, which execs
    /// the command in this process).
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        std::mem::take(&mut self.path)
    }

    /// Sets the variables of [`VARIABLES`] in `env` to the directory.
    pub fn apply_to(&self, env: &mut Vec<(std::ffi::OsString, std::ffi::OsString)>) {
        let had: Vec<bool> = VARIABLES.iter().map(|v| env.iter().any(|(k, _)| k == *v)).collect();
        env.retain(|(k, _)| !VARIABLES.iter().any(|v| k == *v));
        for (v, had) in VARIABLES.iter().zip(had) {
            if had || *v == "TMPDIR" {
                env.push(((*v).into(), self.path.clone().into_os_string()));
            }
        }
    }
}

impl Drop for PrivateTmp {
    fn drop(&mut self) {
        if self.keep || self.path.as_os_str().is_empty() {
            return;
        }
        let path = self.path.clone();
        let removed = as_user(self.fs_ids, || std::fs::remove_dir_all(&path).map_err(anyhow::Error::from));
        if let Err(e) = removed {
            eprintln!("nono: warning: could not remove the run's temp dir {}: {e:#}", path.display());
        }
    }
}

/// Field 22 of `/proc/PID/stat`: the start time in clock ticks since boot.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count
    // from the last `)`.
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

/// Removes the directories of runs whose process is gone: `run-PID-START`
/// where PID no longer exists or started at another time. Best effort:
/// what cannot be removed now is tried again by the next run.
fn remove_stale(parent: &OwnedFd, parent_path: &Path) {
    let Ok(entries) = std::fs::read_dir(parent_path) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((pid, start)) = name.to_str().and_then(parse_run_name) else { continue };
        if start_time(pid) == Some(start) {
            continue;
        }
        // The entry must still be a directory of this parent (we hold it
        // open), not a link someone put in its place.
        if open_dir(Some(parent), name.as_os_str(), true).is_ok() {
            let _ = std::fs::remove_dir_all(parent_path.join(&name));
        }
    }
}

fn parse_run_name(name: &str) -> Option<(u32, u64)> {
    let rest = name.strip_prefix("run-")?;
    let (pid, start) = rest.split_once('-')?;
    Some((pid.parse().ok()?, start.parse().ok()?))
}

fn cstr(name: &OsStr) -> anyhow::Result<CString> {
    CString::new(name.as_bytes()).context("a temp dir name contains a NUL byte")
}

/// Opens a directory (relative to `at`, else the cwd or absolute), with
/// `O_NOFOLLOW` when `nofollow`.
fn open_dir(at: Option<&OwnedFd>, name: &OsStr, nofollow: bool) -> anyhow::Result<OwnedFd> {
    let c = cstr(name)?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | if nofollow { libc::O_NOFOLLOW } else { 0 };
    let dirfd = at.map_or(libc::AT_FDCWD, AsRawFd::as_raw_fd);
    // SAFETY: openat with a valid C string; a non-negative result is ours.
    let fd = unsafe { libc::openat(dirfd, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `mkdirat(at, name, 0700)`; an existing entry is fine (checked after).
fn mkdir(at: &OwnedFd, name: &str) -> anyhow::Result<()> {
    let c = cstr(OsStr::new(name))?;
    // SAFETY: mkdirat with a valid C string.
    if unsafe { libc::mkdirat(at.as_raw_fd(), c.as_ptr(), 0o700) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(e.into());
        }
    }
    Ok(())
}

/// Makes (if missing) and opens `at/name` as a 0700 directory owned by
/// `uid`, never through a symlink. A directory there that another user
/// owns is refused; the user's own with a wider mode is narrowed.
fn own_dir(at: &OwnedFd, name: &str, uid: u32) -> anyhow::Result<OwnedFd> {
    mkdir(at, name)?;
    let fd = open_dir(Some(at), OsStr::new(name), true).map_err(|e| {
        // O_NOFOLLOW | O_DIRECTORY on a symlink: ENOTDIR (or ELOOP).
        let errno = e.downcast_ref::<std::io::Error>().and_then(std::io::Error::raw_os_error);
        if matches!(errno, Some(libc::ELOOP | libc::ENOTDIR)) {
            anyhow::anyhow!("{name} is a symbolic link or not a directory (planted?); remove it or set TMPDIR elsewhere")
        } else {
            e
        }
    })?;
    // SAFETY: fstat into a local struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(fd.as_raw_fd(), &raw mut st) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    if st.st_uid != uid {
        bail!(
            "{name} belongs to uid {}, not to uid {uid} (planted by another user?); remove it or set TMPDIR elsewhere",
            st.st_uid
        );
    }
    if st.st_mode & 0o777 != 0o700 {
        // SAFETY: fchmod on our descriptor.
        if unsafe { libc::fchmod(fd.as_raw_fd(), 0o700) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
    }
    Ok(fd)
}

/// Runs `f` with the user's filesystem identity on this thread (`fs_ids`:
/// under sudo), so the kernel checks every step as it would for the user.
fn as_user<T>(fs_ids: Option<(u32, u32)>, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let Some((uid, gid)) = fs_ids else { return f() };
    // SAFETY: setfsuid/setfsgid change only this thread's filesystem
    // credentials; they are restored below whatever `f` returns.
    let (old_uid, old_gid) = unsafe {
        let g = libc::syscall(libc::SYS_setfsgid, gid) as u32;
        let u = libc::syscall(libc::SYS_setfsuid, uid) as u32;
        (u, g)
    };
    // setfsuid reports no error: check that it took.
    // SAFETY: -1 (as u32::MAX) only queries.
    let now = unsafe { libc::syscall(libc::SYS_setfsuid, u32::MAX) } as u32;
    let out = if now == uid { f() } else { Err(anyhow::anyhow!("could not take uid {uid}'s filesystem identity")) };
    // SAFETY: restoring the previous values.
    unsafe {
        libc::syscall(libc::SYS_setfsuid, old_uid);
        libc::syscall(libc::SYS_setfsgid, old_gid);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_names_parse_back() {
        assert_eq!(parse_run_name("run-42-12345"), Some((42, 12345)));
        assert_eq!(parse_run_name("run-42"), None);
        assert_eq!(parse_run_name("other"), None);
        assert!(start_time(std::process::id()).is_some());
    }
}
