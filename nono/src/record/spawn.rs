//! Starting the traced command so that not one of its operations escapes
//! the trace: the child is forked, blocks on a pipe until the parent has
//! put its pid in the traced set, and only then drops privileges and execs.
//!
//! Threat model: under `sudo`, nono runs as root but the agent must not.
//! The child runs as the invoking user (`SUDO_UID`/`SUDO_GID`, that user's
//! supplementary groups, `HOME`/`USER`/`LOGNAME`), and dies if nono dies so it
//! never continues unrecorded. Everything the child does after `fork` is
//! async-signal-safe, except an optional [`PreExec`] hook (the sandbox of
//! `nono run --audit`); callers that pass one must fork while the process
//! is still single-threaded, so no lock can be held in the child.
//!
//! The child is not the command itself but nono's *guardian*, which forks
//! the command once the sandbox is in place and makes its whole tree end
//! with nono (a pid namespace, or a subreaper): see [`super::guardian`].
//!
//! `nono run` and `nono wrap` also close every inherited descriptor above
//! 2 (an inherited socket or `io_uring` ring would bypass the sandbox's
//! socket rules), except those passed with `--pass-fd`: see
//! [`Command::keep_fds`] and [`seal_fds`].

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::{Path, PathBuf};

use super::guardian::{self, Containment};

/// Why the command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("command is empty")]
    EmptyCommand,
    #[error("command not found: {0:?} (searched PATH)")]
    NotFound(OsString),
    #[error("{0}: found, but not an executable file")]
    NotExecutable(PathBuf),
    #[error("{what} contains a NUL byte")]
    Nul { what: &'static str },
    #[error("{call} failed")]
    Sys {
        call: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("the command could not be executed: {step} failed")]
    Child {
        step: &'static str,
        #[source]
        source: io::Error,
    },
}

impl SpawnError {
    /// The shell's convention: 127 when the command does not exist, 126
    /// when it exists but cannot be executed; `None` for nono's own
    /// failures (125).
    #[must_use]
    pub fn exit_code(&self) -> Option<u8> {
        match self {
            SpawnError::NotFound(_) => Some(127),
            SpawnError::NotExecutable(_) => Some(126),
            SpawnError::Child { step: "execve", source } => {
                Some(if matches!(source.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) { 127 } else { 126 })
            }
            _ => None,
        }
    }
}

fn sys(call: &'static str) -> impl FnOnce(io::Error) -> SpawnError {
    move |source| SpawnError::Sys { call, source }
}

pub use crate::invoker::Identity;

/// What to run and how.
#[derive(Debug)]
pub struct Command {
    pub argv: Vec<OsString>,
    pub cwd: PathBuf,
    pub env: Vec<(OsString, OsString)>,
    pub identity: Option<Identity>,
    /// `None`: the command inherits nono's descriptors. `Some(keep)`:
    /// every descriptor above 2 is closed at exec except those in `keep`
    /// (sorted, each above 2), which stay open across it.
    pub keep_fds: Option<Vec<i32>>,
    /// The forking thread already has `identity`'s credentials (nono's
    /// supervised run forks from a thread that took them): the child keeps
    /// them instead of switching itself.
    pub creds_ready: bool,
    /// How the tree is made to end with nono. [`Containment::PidNamespace`]
    /// forks with a raw `clone`: then the pre-exec hook must be
    /// async-signal-safe, or this process single-threaded. Where the
    /// namespace cannot be made, the subreaper is used (see
    /// [`Gated::containment`]).
    pub containment: Containment,
    /// With the subreaper: put the command in a nested Landlock domain
    /// that scopes signals (ABI 6; skipped below), so it cannot kill or
    /// stop its guardian. Only for a sandboxed run whose profile keeps
    /// signals inside (`nono learn` confines nothing).
    pub shield_guardian: bool,
}

impl Command {
    /// The command with nono's environment, adjusted for `identity`.
    #[must_use]
    pub fn new(argv: Vec<OsString>, cwd: PathBuf, identity: Option<Identity>) -> Command {
        let mut env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        if let Some(id) = &identity {
            env.retain(|(k, _)| !matches!(k.as_bytes(), b"HOME" | b"USER" | b"LOGNAME" | b"MAIL"));
            env.push(("HOME".into(), id.home.clone().into_os_string()));
            env.push(("USER".into(), id.name.clone().into()));
            env.push(("LOGNAME".into(), id.name.clone().into()));
        }
        Command {
            argv,
            cwd,
            env,
            identity,
            keep_fds: None,
            creds_ready: false,
            containment: Containment::Subreaper,
            shield_guardian: false,
        }
    }

    /// The program `execve` will run, resolved through the child's PATH:
    /// lets callers fail before loading anything if it does not exist.
    pub fn program(&self) -> Result<PathBuf, SpawnError> {
        let program = self.argv.first().ok_or(SpawnError::EmptyCommand)?;
        resolve(program, &self.env, &self.cwd)
    }
}

/// A forked child (the guardian) waiting at the gate.
#[derive(Debug)]
pub struct Gated {
    pub pid: nix::unistd::Pid,
    /// What the guardian got: the requested containment, or the subreaper
    /// when no pid namespace could be made.
    pub containment: Containment,
    go: Option<OwnedFd>,
    errors: OwnedFd,
    /// The command's wait status, written by the guardian.
    status: OwnedFd,
    /// The user namespace's ids, mapped at release (from a thread outside
    /// the sandbox; the forking thread may be confined).
    id_maps: Option<(u32, u32)>,
}

/// Resolves `program` the way `execvp` would, using the child's PATH: a
/// name with a `/` is taken as is (`execve` reports what is wrong with
/// it); otherwise the first executable regular file on PATH. A PATH entry
/// that exists but is not executable is skipped, and reported when nothing
/// else is found (126, like a shell).
fn resolve(program: &OsStr, env: &[(OsString, OsString)], cwd: &Path) -> Result<PathBuf, SpawnError> {
    if program.as_bytes().contains(&b'/') {
        return Ok(cwd.join(program));
    }
    let path =
        env.iter().find(|(k, _)| k == "PATH").map_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"), |(_, v)| v.clone());
    let mut not_executable = None;
    for dir in std::env::split_paths(&path) {
        let candidate = cwd.join(dir).join(program);
        if let Ok(meta) = std::fs::metadata(&candidate) {
            use std::os::unix::fs::PermissionsExt as _;
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
            not_executable.get_or_insert(candidate);
        }
    }
    Err(not_executable.map_or_else(|| SpawnError::NotFound(program.to_owned()), SpawnError::NotExecutable))
}

/// Marks every descriptor above 2 close-on-exec, except `keep` (sorted,
/// each above 2), whose close-on-exec flag is cleared so they survive the
/// exec. Close-on-exec rather than close: the caller's error pipe must
/// keep working until the exec succeeds. Async-signal-safe (raw syscalls
/// only), so it may run in a child after `fork`. Returns the errno.
pub fn seal_fds(keep: &[i32]) -> Result<(), i32> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    let errno = || {
        // SAFETY: reading this thread's errno.
        unsafe { *libc::__errno_location() }
    };
    let cloexec = |first: libc::c_uint, last: libc::c_uint| {
        // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets descriptor flags.
        if first <= last && unsafe { libc::syscall(libc::SYS_close_range, first, last, CLOSE_RANGE_CLOEXEC) } != 0 {
            return Err(errno());
        }
        Ok(())
    };
    let mut first: libc::c_uint = 3;
    for &k in keep {
        let Ok(k) = libc::c_uint::try_from(k) else { continue };
        if k < first {
            continue;
        }
        cloexec(first, k - 1)?;
        // SAFETY: F_SETFD on a descriptor number; no memory is touched.
        if unsafe { libc::fcntl(k as libc::c_int, libc::F_SETFD, 0) } != 0 {
            return Err(errno());
        }
        first = k.saturating_add(1);
    }
    cloexec(first, libc::c_uint::MAX)
}

fn cstring(bytes: &[u8], what: &'static str) -> Result<CString, SpawnError> {
    CString::new(bytes).map_err(|_| SpawnError::Nul { what })
}

/// Steps the child reports on the error pipe (index into this table).
const STEPS: [&str; 12] = [
    "sigprocmask",
    "wait for the tracer",
    "setgroups",
    "setgid",
    "setuid",
    "prctl(PR_SET_PDEATHSIG)",
    "chdir",
    "execve",
    "applying the sandbox",
    "closing inherited descriptors",
    "prctl(PR_SET_CHILD_SUBREAPER)",
    "fork",
];

/// Runs in the child after the gate, the credential change and `chdir`,
/// just before `execve` (e.g. Landlock's `restrict_self`). On failure it
/// returns an errno, after printing its own explanation to stderr.
pub type PreExec<'a> = &'a mut dyn FnMut() -> Result<(), i32>;

/// Forks the child, which blocks until [`Gated::release`].
///
/// # Safety contract
/// Call while no other thread of this process can hold a lock the child
/// would need; the child only calls async-signal-safe functions anyway.
pub fn fork_gated(cmd: &Command) -> Result<Gated, SpawnError> {
    fork_gated_with(cmd, None)
}

/// [`fork_gated`] with a hook run in the child just before `execve`.
/// Call it while this process is single-threaded.
pub fn fork_gated_with(cmd: &Command, pre_exec: Option<PreExec<'_>>) -> Result<Gated, SpawnError> {
    let program = cmd.argv.first().ok_or(SpawnError::EmptyCommand)?;
    let exe = resolve(program, &cmd.env, &cmd.cwd)?;
    let exe_c = cstring(exe.as_os_str().as_bytes(), "the program path")?;
    let argv_c = cmd.argv.iter().map(|a| cstring(a.as_bytes(), "an argument")).collect::<Result<Vec<_>, _>>()?;
    let env_c = cmd
        .env
        .iter()
        .map(|(k, v)| {
            let mut kv = k.clone().into_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            cstring(&kv, "an environment variable")
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cwd_c = cstring(cmd.cwd.as_os_str().as_bytes(), "the working directory")?;
    let mut argv_p: Vec<*const libc::c_char> = argv_c.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut env_p: Vec<*const libc::c_char> = env_c.iter().map(|c| c.as_ptr()).collect();
    env_p.push(std::ptr::null());
    let groups: Vec<libc::gid_t> = cmd.identity.as_ref().map(|i| i.groups.clone()).unwrap_or_default();
    let keep_fds = cmd.keep_fds.clone();
    let ids = if cmd.creds_ready { None } else { cmd.identity.as_ref().map(|i| (i.uid, i.gid)) };

    let (gate_w, gate_r) = std::os::unix::net::UnixStream::pair().map_err(sys("socketpair"))?;
    let (gate_w, gate_r): (OwnedFd, OwnedFd) = (gate_w.into(), gate_r.into());
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| sys("pipe2")(e.into()))?;
    let (status_r, status_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK).map_err(|e| sys("pipe2")(e.into()))?;
    // SAFETY: getpid/geteuid have no preconditions.
    let (me, euid) = unsafe { (libc::getpid(), libc::geteuid()) };
    let mut containment = cmd.containment;
    let mut id_maps = None;
    let pid = if containment == Containment::PidNamespace {
        // Not root (or a thread that took the user's identity): the pid
        // namespace needs a user namespace the child owns.
        let userns = euid != 0;
        let flags = libc::CLONE_NEWPID as libc::c_ulong | if userns { libc::CLONE_NEWUSER as libc::c_ulong } else { 0 };
        let pid = guardian::raw_fork(flags);
        if pid < 0 {
            log::debug!("no pid namespace ({}): the guardian is a subreaper", io::Error::last_os_error());
            containment = Containment::Subreaper;
        } else if userns {
            // SAFETY: getegid has no preconditions.
            id_maps = Some((euid, unsafe { libc::getegid() }));
        }
        pid
    } else {
        -1
    };
    let pid = if containment == Containment::Subreaper {
        guardian::become_subreaper();
        // SAFETY: fork is called with everything pre-allocated; the child
        // below only makes raw async-signal-safe system calls and then
        // execs or _exits.
        unsafe { libc::fork() }
    } else {
        pid
    };
    if pid < 0 {
        return Err(sys("fork")(io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: child side; see child_main.
        unsafe {
            // The parent's ends: holding the gate's other end would keep the
            // child from ever seeing the tracer vanish.
            libc::close(gate_w.as_raw_fd());
            libc::close(err_r.as_raw_fd());
            libc::close(status_r.as_raw_fd());
            let fds =
                Fds { gate: gate_r.as_raw_fd(), err: err_w.as_raw_fd(), status: status_w.as_raw_fd(), keep: keep_fds.as_deref() };
            let who = Who { ids, parent: me, containment, shield: cmd.shield_guardian };
            child_main(fds, who, &exe_c, &argv_p, &env_p, &cwd_c, &groups, pre_exec)
        }
    }
    drop(gate_r);
    drop(err_w);
    drop(status_w);
    Ok(Gated { pid: nix::unistd::Pid::from_raw(pid), containment, go: Some(gate_w), errors: err_r, status: status_r, id_maps })
}

/// Who the guardian is: the credentials to take, its parent (nono) and
/// its containment.
#[derive(Clone, Copy)]
struct Who {
    ids: Option<(u32, u32)>,
    parent: libc::pid_t,
    containment: Containment,
    shield: bool,
}

/// The child's descriptors: the gate, the error pipe, the status pipe, and
/// what to keep across exec (`None`: everything).
#[derive(Clone, Copy)]
struct Fds<'a> {
    gate: libc::c_int,
    err: libc::c_int,
    status: libc::c_int,
    keep: Option<&'a [i32]>,
}

/// The child (the guardian): wait at the gate, drop privileges, apply the
/// sandbox, fork the command and stay behind it. Never returns.
#[expect(clippy::too_many_arguments, reason = "everything is pre-built before fork; no allocation allowed here")]
unsafe fn child_main(
    fds: Fds<'_>,
    who: Who,
    exe: &CString,
    argv: &[*const libc::c_char],
    env: &[*const libc::c_char],
    cwd: &CString,
    groups: &[libc::gid_t],
    pre_exec: Option<PreExec<'_>>,
) -> ! {
    let Fds { gate, err, status, keep } = fds;
    let Who { ids, parent, containment, shield } = who;
    // SAFETY (whole body): only async-signal-safe libc calls and raw
    // system calls on memory that was allocated before fork and is not
    // shared with any other thread.
    unsafe {
        let fail = |step: usize| -> ! {
            let errno = *libc::__errno_location();
            let msg = [step as u8, 0, 0, 0, 0];
            let mut buf = msg;
            buf[1..5].copy_from_slice(&errno.to_ne_bytes());
            libc::write(err, buf.as_ptr().cast(), buf.len());
            libc::_exit(127);
        };
        // Its name in `ps` and in recorded process trees.
        libc::prctl(libc::PR_SET_NAME, c"nono-guardian".as_ptr(), 0, 0, 0);
        // The guardian takes the signals it forwards, and SIGCHLD, with
        // sigwaitinfo; the command gets an empty mask back below.
        let mask = guardian::guardian_mask();
        if libc::sigprocmask(libc::SIG_SETMASK, &raw const mask, std::ptr::null_mut()) != 0 {
            fail(0);
        }
        let death = if containment == Containment::PidNamespace { libc::SIGKILL } else { libc::SIGTERM };
        // Before the gate already (the credential change below clears it,
        // so it is set again after).
        libc::prctl(libc::PR_SET_PDEATHSIG, death, 0, 0, 0);
        let children = match guardian::recv_gate(gate) {
            Ok(fd) => fd,
            // The tracer went away before releasing us: never run untraced.
            Err(0) => libc::_exit(125),
            Err(e) => {
                *libc::__errno_location() = e;
                fail(1)
            }
        };
        libc::close(gate);
        if let Some((uid, gid)) = ids {
            // Raw system calls: glibc's wrappers would try to change the
            // credentials of threads that exist only in the parent.
            if libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) != 0 {
                fail(2);
            }
            if libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0 {
                fail(3);
            }
            if libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0 {
                fail(4);
            }
        }
        // Set after the credential change, which would clear it.
        if libc::prctl(libc::PR_SET_PDEATHSIG, death, 0, 0, 0) != 0 {
            fail(5);
        }
        // nono may have died before that: its end of the error pipe is
        // then closed, and nothing may start unsupervised.
        let mut p = libc::pollfd { fd: err, events: libc::POLLOUT, revents: 0 };
        if libc::poll(&raw mut p, 1, 0) < 0 || p.revents & libc::POLLERR != 0 {
            libc::_exit(125);
        }
        if containment == Containment::Subreaper && libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
            fail(10);
        }
        if libc::chdir(cwd.as_ptr()) != 0 {
            fail(6);
        }
        if let Some(Err(errno)) = pre_exec.map(|hook| hook()) {
            *libc::__errno_location() = errno;
            fail(8);
        }
        if let Some(Err(errno)) = keep.map(seal_fds) {
            *libc::__errno_location() = errno;
            fail(9);
        }
        let command = guardian::raw_fork(0);
        if command < 0 {
            fail(11);
        }
        if command == 0 {
            // The command: the mask and SIGPIPE as a shell would give them
            // (nono, a Rust program, ignores SIGPIPE, which exec keeps).
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&raw mut empty);
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            if libc::sigprocmask(libc::SIG_SETMASK, &raw const empty, std::ptr::null_mut()) != 0 {
                fail(0);
            }
            // It dies with its guardian.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                fail(5);
            }
            if shield && containment == Containment::Subreaper {
                guardian::scope_signals();
            }
            libc::execve(exe.as_ptr(), argv.as_ptr(), env.as_ptr());
            fail(7);
        }
        // The error pipe now belongs to the command: it closes at its exec.
        libc::close(err);
        // Nothing in the sandbox may attach to the guardian, and in a user
        // namespace it keeps no capability.
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        if containment == Containment::PidNamespace {
            let mut header = [0x2008_0522u32, 0]; // _LINUX_CAPABILITY_VERSION_3, this thread
            let data = [0u32; 6];
            libc::syscall(libc::SYS_capset, header.as_mut_ptr(), data.as_ptr());
        }
        let g = guardian::Guardian { command, containment, parent, children, status };
        g.run()
    }
}

impl Gated {
    /// The command's status, given the guardian's (`guardian`, from
    /// waitpid): what the guardian reported, else its own. Then, with the
    /// subreaper, ends whatever of the tree came to nono.
    #[must_use]
    pub fn command_status(&self, guardian: nix::sys::wait::WaitStatus) -> nix::sys::wait::WaitStatus {
        use std::os::fd::AsFd as _;
        if self.containment == Containment::Subreaper {
            guardian::end_inherited_tree();
        }
        let Some(raw) = guardian::read_status(self.status.as_fd()) else { return guardian };
        nix::sys::wait::WaitStatus::from_raw(self.pid, raw).unwrap_or(guardian)
    }

    /// Lets the child proceed and reports whether its exec succeeded.
    pub fn release(&mut self) -> Result<(), SpawnError> {
        use std::os::fd::AsFd as _;
        let go = self.go.take().ok_or(SpawnError::Sys { call: "release", source: io::Error::other("child already released") })?;
        let pid = self.pid.as_raw();
        if let Some((uid, gid)) = self.id_maps {
            // The child's /proc files are root's when nono runs under sudo;
            // nono's filesystem identity is the user's there (`invoker`).
            crate::invoker::as_root(|| guardian::write_id_maps(pid, uid, gid))
                .and_then(|r| r)
                .map_err(sys("mapping the user namespace's ids"))?;
        }
        let children = (self.containment == Containment::Subreaper).then(|| guardian::children_file(pid)).flatten();
        guardian::send_gate(go.as_fd(), children.as_ref().map(std::os::fd::AsFd::as_fd))
            .map_err(sys("releasing the child's gate"))?;
        drop(go);
        // The error pipe closes on a successful exec (CLOEXEC) or carries
        // the failing step and errno.
        let mut buf = [0u8; 5];
        let n = loop {
            match nix::unistd::read(&self.errors, &mut buf) {
                Err(nix::errno::Errno::EINTR) => {}
                other => break other.map_err(|e| sys("read from the child's error pipe")(e.into()))?,
            }
        };
        if n == 5 {
            let step = STEPS.get(usize::from(buf[0])).copied().unwrap_or("setup");
            let errno = i32::from_ne_bytes([buf[1], buf[2], buf[3], buf[4]]);
            return Err(SpawnError::Child { step, source: io::Error::from_raw_os_error(errno) });
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "spawn_tests.rs"]
mod tests;
