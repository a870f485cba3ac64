//! Who nono acts for, and acting as them.
//!
//! People run nono as root (`sudo nono learn`, `sudo nono run --audit`,
//! `sudo nono audit report`) because recording needs it. Everything else
//! nono does is on behalf of the invoking user: their audit database and
//! its directories, the profiles it writes, reports, exports, snapshots.
//!
//! # Threat model
//! The invoking user, and the agent that ran as them, control their home:
//! any path nono is about to open there may have become a symbolic link to
//! a root-only file (`~/.local/state/nono/audit.db -> /etc/ld.so.preload`).
//! A root process that follows it hands the user root. So under sudo nono
//! takes the user's *filesystem* identity (fsuid, fsgid and supplementary
//! groups, per thread) for the whole command, before it starts a single
//! thread: every file it opens, creates or renames is checked by the
//! kernel against the user's own permissions, and is owned by the user
//! without a `chown`. Threads inherit the identity from the thread that
//! starts them. Only the steps that need root's files (loading and
//! attaching the recorder, which reads tracefs) run inside [`as_root`].
//! Its effective uid stays 0, so capabilities that are not about files
//! (`CAP_BPF`, `CAP_PERFMON`, `CAP_SETUID` for the child, `CAP_AUDIT_*`)
//! keep working; the kernel clears the file capabilities
//! (`CAP_DAC_OVERRIDE`, `CAP_FOWNER`, ...) from a thread whose fsuid is
//! not 0 and restores them when it returns to 0.
//!
//! The file helpers in [`fs`] are the one place where nono writes on the
//! user's behalf. They act as the user even on a thread that is not (a
//! helper called from inside [`as_root`], say), and they never write
//! through a symbolic link at the final component: a planted link is a
//! clear error, not a redirected write.
//!
//! This module must not know about recording, profiles or the store; it
//! sits below all of them.

mod creds;
pub mod fs;

use std::ffi::CString;
use std::io;
use std::path::PathBuf;
use std::sync::OnceLock;

pub use creds::{ThreadIdentity, as_root, thread_identity};

/// Why the invoking user could not be established or taken on.
#[derive(Debug, thiserror::Error)]
pub enum InvokerError {
    /// `SUDO_UID` names no user.
    #[error("unknown user id {0} in SUDO_UID")]
    UnknownUser(u32),
    /// `SUDO_UID` or `SUDO_GID` is not a number.
    #[error("invalid {var}={value:?}")]
    BadSudoVar { var: &'static str, value: String },
    /// A user or group lookup, or a credential switch, failed.
    #[error("{call} failed")]
    Sys {
        call: &'static str,
        #[source]
        source: io::Error,
    },
    /// The user's name holds a NUL byte.
    #[error("the user name contains a NUL byte")]
    Nul,
}

fn sys(call: &'static str) -> impl FnOnce(io::Error) -> InvokerError {
    move |source| InvokerError::Sys { call, source }
}

/// Who the command runs as, and whose files nono writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub name: String,
    pub home: PathBuf,
}

impl Identity {
    /// The invoking user when running as root under sudo, else `None`
    /// (nono acts as itself).
    pub fn from_sudo() -> Result<Option<Identity>, InvokerError> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(None);
        }
        let Some(uid) = std::env::var_os("SUDO_UID") else { return Ok(None) };
        let uid_s = uid.to_string_lossy().into_owned();
        let uid: u32 = uid_s.parse().map_err(|_| InvokerError::BadSudoVar { var: "SUDO_UID", value: uid_s })?;
        if uid == 0 {
            return Ok(None);
        }
        let user = nix::unistd::User::from_uid(uid.into())
            .map_err(|e| sys("getpwuid")(e.into()))?
            .ok_or(InvokerError::UnknownUser(uid))?;
        let gid = match std::env::var("SUDO_GID") {
            Ok(g) => g.parse().map_err(|_| InvokerError::BadSudoVar { var: "SUDO_GID", value: g })?,
            Err(_) => user.gid.as_raw(),
        };
        let cname = CString::new(user.name.clone()).map_err(|_| InvokerError::Nul)?;
        let groups = nix::unistd::getgrouplist(&cname, gid.into())
            .map_err(|e| sys("getgrouplist")(e.into()))?
            .into_iter()
            .map(nix::unistd::Gid::as_raw)
            .collect();
        Ok(Some(Identity { uid, gid, groups, name: user.name, home: user.dir }))
    }
}

/// The invoking user, once [`enter`] has run (`None`: nono acts as itself).
static INVOKER: OnceLock<Option<Identity>> = OnceLock::new();

/// Takes the invoking user's filesystem identity on the calling thread,
/// for good, when nono runs under sudo; remembers who that is for
/// [`invoker`]. Call it first thing, on the main thread, before any other
/// thread exists: threads inherit it. Calling it again is a no-op.
pub fn enter() -> Result<Option<&'static Identity>, InvokerError> {
    if let Some(done) = INVOKER.get() {
        return Ok(done.as_ref());
    }
    let identity = Identity::from_sudo()?;
    if let Some(id) = &identity {
        creds::become_fs_user(id).map_err(sys("taking the invoking user's filesystem identity"))?;
    }
    Ok(INVOKER.get_or_init(|| identity).as_ref())
}

/// The invoking user nono acts for, if it runs under sudo and [`enter`]
/// has run.
#[must_use]
pub fn invoker() -> Option<&'static Identity> {
    INVOKER.get().and_then(Option::as_ref)
}

/// Runs `f` with the invoking user's filesystem identity on this thread
/// (switching for the call only if the thread does not have it already).
/// Without an invoker, `f` runs as nono.
pub fn as_user<T>(f: impl FnOnce() -> T) -> Result<T, InvokerError> {
    match invoker() {
        Some(id) => creds::with_fs_user(id, f).map_err(sys("switching to the invoking user's filesystem identity")),
        None => Ok(f()),
    }
}

/// A short description of whose permissions a failed write ran under, for
/// error messages ("as alice").
#[must_use]
pub fn acting_as() -> String {
    let uid = thread_identity().map_or_else(|_| nix::unistd::geteuid().as_raw(), |t| t.fsuid);
    let name = nix::unistd::User::from_uid(uid.into()).ok().flatten().map_or_else(|| format!("uid {uid}"), |u| u.name);
    match invoker() {
        Some(id) if id.uid == uid => format!("as {name} (under sudo, nono writes only what the invoking user may write)"),
        _ => format!("as {name}"),
    }
}

/// Runs `f` with `id`'s filesystem identity on this thread, whoever nono
/// acts for: for tests of code that runs as the user under sudo.
#[doc(hidden)]
pub fn with_identity<T>(id: &Identity, f: impl FnOnce() -> T) -> Result<T, InvokerError> {
    creds::with_fs_user(id, f).map_err(sys("switching the filesystem identity"))
}

#[cfg(test)]
pub(crate) mod tests;
