//! Starting the traced command so that not one of its operations escapes
//! the trace: the child is forked, blocks on a pipe until the parent has
//! put its pid in the traced set, and only then drops privileges and execs.
//!
//! Threat model: under `sudo`, nono runs as root but the agent must not.
//! The child runs as the invoking user (SUDO_UID/SUDO_GID, that user's
//! supplementary groups, HOME/USER/LOGNAME), and dies if nono dies so it
//! never continues unrecorded. Everything the child does after `fork` is
//! async-signal-safe, except an optional [`PreExec`] hook (the sandbox of
//! `nono run --audit`); callers that pass one must fork while the process
//! is still single-threaded, so no lock can be held in the child.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::{Path, PathBuf};

/// Why the command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("command is empty")]
    EmptyCommand,
    #[error("command not found: {0:?} (searched PATH)")]
    NotFound(OsString),
    #[error("{what} contains a NUL byte")]
    Nul { what: &'static str },
    #[error("unknown user id {0} in SUDO_UID")]
    UnknownUser(u32),
    #[error("invalid {var}={value:?}")]
    BadSudoVar { var: &'static str, value: String },
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

fn sys(call: &'static str) -> impl FnOnce(io::Error) -> SpawnError {
    move |source| SpawnError::Sys { call, source }
}

/// Who the child runs as.
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
    /// (the child keeps nono's own credentials).
    pub fn from_sudo() -> Result<Option<Identity>, SpawnError> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(None);
        }
        let Some(uid) = std::env::var_os("SUDO_UID") else { return Ok(None) };
        let uid_s = uid.to_string_lossy().into_owned();
        let uid: u32 = uid_s.parse().map_err(|_| SpawnError::BadSudoVar { var: "SUDO_UID", value: uid_s })?;
        if uid == 0 {
            return Ok(None);
        }
        let user = nix::unistd::User::from_uid(uid.into())
            .map_err(|e| sys("getpwuid")(e.into()))?
            .ok_or(SpawnError::UnknownUser(uid))?;
        let gid = match std::env::var("SUDO_GID") {
            Ok(g) => g.parse().map_err(|_| SpawnError::BadSudoVar { var: "SUDO_GID", value: g })?,
            Err(_) => user.gid.as_raw(),
        };
        let cname = CString::new(user.name.clone()).map_err(|_| SpawnError::Nul { what: "user name" })?;
        let groups = nix::unistd::getgrouplist(&cname, gid.into())
            .map_err(|e| sys("getgrouplist")(e.into()))?
            .into_iter()
            .map(nix::unistd::Gid::as_raw)
            .collect();
        Ok(Some(Identity { uid, gid, groups, name: user.name, home: user.dir }))
    }
}

/// What to run and how.
#[derive(Debug)]
pub struct Command {
    pub argv: Vec<OsString>,
    pub cwd: PathBuf,
    pub env: Vec<(OsString, OsString)>,
    pub identity: Option<Identity>,
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
        Command { argv, cwd, env, identity }
    }

    /// The program `execve` will run, resolved through the child's PATH:
    /// lets callers fail before loading anything if it does not exist.
    pub fn program(&self) -> Result<PathBuf, SpawnError> {
        let program = self.argv.first().ok_or(SpawnError::EmptyCommand)?;
        resolve(program, &self.env, &self.cwd)
    }
}

/// A forked child waiting at the gate.
#[derive(Debug)]
pub struct Gated {
    pub pid: nix::unistd::Pid,
    go: Option<OwnedFd>,
    errors: OwnedFd,
}

/// Resolves `program` the way `execvp` would, using the child's PATH.
fn resolve(program: &OsStr, env: &[(OsString, OsString)], cwd: &Path) -> Result<PathBuf, SpawnError> {
    if program.as_bytes().contains(&b'/') {
        return Ok(cwd.join(program));
    }
    let path =
        env.iter().find(|(k, _)| k == "PATH").map_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"), |(_, v)| v.clone());
    for dir in std::env::split_paths(&path) {
        let candidate = cwd.join(dir).join(program);
        if let Ok(meta) = std::fs::metadata(&candidate) {
            use std::os::unix::fs::PermissionsExt as _;
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    Err(SpawnError::NotFound(program.to_owned()))
}

fn cstring(bytes: &[u8], what: &'static str) -> Result<CString, SpawnError> {
    CString::new(bytes).map_err(|_| SpawnError::Nul { what })
}

/// Steps the child reports on the error pipe (index into this table).
const STEPS: [&str; 9] = [
    "sigprocmask",
    "wait for the tracer",
    "setgroups",
    "setgid",
    "setuid",
    "prctl(PR_SET_PDEATHSIG)",
    "chdir",
    "execve",
    "applying the sandbox",
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
    let ids = cmd.identity.as_ref().map(|i| (i.uid, i.gid));

    let (gate_r, gate_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| sys("pipe2")(e.into()))?;
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| sys("pipe2")(e.into()))?;
    // SAFETY: fork is called with everything pre-allocated; the child below
    // only makes raw async-signal-safe system calls and then execs or _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(sys("fork")(io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: child side; see child_main.
        unsafe {
            // The parent's ends: holding the gate's write end would keep the
            // child from ever seeing the tracer vanish.
            libc::close(gate_w.as_raw_fd());
            libc::close(err_r.as_raw_fd());
            child_main(gate_r.as_raw_fd(), err_w.as_raw_fd(), &exe_c, &argv_p, &env_p, &cwd_c, &groups, ids, pre_exec)
        }
    }
    drop(gate_r);
    drop(err_w);
    Ok(Gated { pid: nix::unistd::Pid::from_raw(pid), go: Some(gate_w), errors: err_r })
}

/// The child: wait at the gate, drop privileges, exec. Never returns.
#[expect(clippy::too_many_arguments, reason = "everything is pre-built before fork; no allocation allowed here")]
unsafe fn child_main(
    gate: libc::c_int,
    err: libc::c_int,
    exe: &CString,
    argv: &[*const libc::c_char],
    env: &[*const libc::c_char],
    cwd: &CString,
    groups: &[libc::gid_t],
    ids: Option<(u32, u32)>,
    pre_exec: Option<PreExec<'_>>,
) -> ! {
    // SAFETY (whole body): only async-signal-safe libc calls on memory that
    // was allocated before fork and is not shared with any other thread.
    unsafe {
        let fail = |step: usize| -> ! {
            let errno = *libc::__errno_location();
            let msg = [step as u8, 0, 0, 0, 0];
            let mut buf = msg;
            buf[1..5].copy_from_slice(&errno.to_ne_bytes());
            libc::write(err, buf.as_ptr().cast(), buf.len());
            libc::_exit(127);
        };
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut empty);
        if libc::sigprocmask(libc::SIG_SETMASK, &raw const empty, std::ptr::null_mut()) != 0 {
            fail(0);
        }
        let mut byte = 0u8;
        loop {
            let n = libc::read(gate, (&raw mut byte).cast(), 1);
            if n == 1 {
                break;
            }
            if n == 0 {
                // The tracer went away before releasing us: never run untraced.
                libc::_exit(125);
            }
            if *libc::__errno_location() != libc::EINTR {
                fail(1);
            }
        }
        if let Some((uid, gid)) = ids {
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
                fail(2);
            }
            if libc::setresgid(gid, gid, gid) != 0 {
                fail(3);
            }
            if libc::setresuid(uid, uid, uid) != 0 {
                fail(4);
            }
        }
        // Set after the credential change, which would clear it.
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
            fail(5);
        }
        if libc::chdir(cwd.as_ptr()) != 0 {
            fail(6);
        }
        if let Some(hook) = pre_exec {
            if let Err(errno) = hook() {
                *libc::__errno_location() = errno;
                fail(8);
            }
        }
        libc::execve(exe.as_ptr(), argv.as_ptr(), env.as_ptr());
        fail(7);
    }
}

impl Gated {
    /// Lets the child proceed and reports whether its exec succeeded.
    pub fn release(&mut self) -> Result<(), SpawnError> {
        let go = self.go.take().ok_or(SpawnError::Sys { call: "release", source: io::Error::other("child already released") })?;
        nix::unistd::write(&go, &[1]).map_err(|e| sys("write to the child's gate")(e.into()))?;
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
mod tests {
    use super::*;

    /// Children forked by concurrently running tests inherit each other's
    /// gate pipes (CLOEXEC only acts at exec), which would keep a gate
    /// open; these tests fork one at a time.
    static FORK: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn resolve_searches_the_childs_path() {
        let env = vec![(OsString::from("PATH"), OsString::from("/nonexistent:/bin:/usr/bin"))];
        let p = resolve(OsStr::new("sh"), &env, Path::new("/")).expect("sh exists");
        assert!(p.ends_with("sh"));
        assert!(matches!(resolve(OsStr::new("no-such-program-nono"), &env, Path::new("/")), Err(SpawnError::NotFound(_))));
        assert_eq!(resolve(OsStr::new("./x"), &env, Path::new("/w")).expect("relative"), PathBuf::from("/w/./x"));
    }

    #[test]
    fn a_released_child_runs_and_exec_failures_are_reported() {
        let _serial = FORK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let cmd = Command::new(vec!["true".into()], PathBuf::from("/"), None);
        let mut g = fork_gated(&cmd).expect("fork");
        g.release().expect("exec true");
        let status = nix::sys::wait::waitpid(g.pid, None).expect("wait");
        assert_eq!(status, nix::sys::wait::WaitStatus::Exited(g.pid, 0));

        let cmd = Command::new(vec!["true".into()], PathBuf::from("/nonexistent-dir-nono"), None);
        let mut g = fork_gated(&cmd).expect("fork");
        let err = g.release().expect_err("chdir fails");
        assert!(err.to_string().contains("chdir"), "{err}");
        let _ = nix::sys::wait::waitpid(g.pid, None);
    }

    #[test]
    fn a_child_whose_tracer_vanishes_never_runs() {
        let _serial = FORK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let cmd = Command::new(vec!["true".into()], PathBuf::from("/"), None);
        let g = fork_gated(&cmd).expect("fork");
        let pid = g.pid;
        drop(g);
        let status = nix::sys::wait::waitpid(pid, None).expect("wait");
        assert_eq!(status, nix::sys::wait::WaitStatus::Exited(pid, 125));
    }
}
