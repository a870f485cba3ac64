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
//! `nono run` and `nono wrap` also close every inherited descriptor above
//! 2 (an inherited socket or `io_uring` ring would bypass the sandbox's
//! socket rules), except those passed with `--pass-fd`: see
//! [`Command::keep_fds`] and [`seal_fds`].

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
    #[error("{0}: found, but not an executable file")]
    NotExecutable(PathBuf),
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
    /// `None`: the command inherits nono's descriptors. `Some(keep)`:
    /// every descriptor above 2 is closed at exec except those in `keep`
    /// (sorted, each above 2), which stay open across it.
    pub keep_fds: Option<Vec<i32>>,
    /// The forking thread already has `identity`'s credentials (nono's
    /// supervised run forks from a thread that took them): the child keeps
    /// them instead of switching itself.
    pub creds_ready: bool,
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
        Command { argv, cwd, env, identity, keep_fds: None, creds_ready: false }
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
const STEPS: [&str; 10] = [
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
            let fds = Fds { gate: gate_r.as_raw_fd(), err: err_w.as_raw_fd(), keep: keep_fds.as_deref() };
            child_main(fds, &exe_c, &argv_p, &env_p, &cwd_c, &groups, ids, pre_exec)
        }
    }
    drop(gate_r);
    drop(err_w);
    Ok(Gated { pid: nix::unistd::Pid::from_raw(pid), go: Some(gate_w), errors: err_r })
}

/// The child's descriptors: the gate, the error pipe, and what to keep
/// across exec (`None`: everything).
#[derive(Clone, Copy)]
struct Fds<'a> {
    gate: libc::c_int,
    err: libc::c_int,
    keep: Option<&'a [i32]>,
}

/// The child: wait at the gate, drop privileges, exec. Never returns.
#[expect(clippy::too_many_arguments, reason = "everything is pre-built before fork; no allocation allowed here")]
unsafe fn child_main(
    fds: Fds<'_>,
    exe: &CString,
    argv: &[*const libc::c_char],
    env: &[*const libc::c_char],
    cwd: &CString,
    groups: &[libc::gid_t],
    ids: Option<(u32, u32)>,
    pre_exec: Option<PreExec<'_>>,
) -> ! {
    let Fds { gate, err, keep } = fds;
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
        if let Some(Err(errno)) = pre_exec.map(|hook| hook()) {
            *libc::__errno_location() = errno;
            fail(8);
        }
        if let Some(Err(errno)) = keep.map(seal_fds) {
            *libc::__errno_location() = errno;
            fail(9);
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
    fn resolve_tells_a_missing_command_from_one_that_cannot_run() {
        let d = tempfile::tempdir().expect("tmp");
        std::fs::write(d.path().join("plain"), "#!/bin/sh\n").expect("file");
        let env = vec![(OsString::from("PATH"), d.path().as_os_str().to_owned())];
        let e = resolve(OsStr::new("plain"), &env, Path::new("/")).expect_err("not executable");
        assert!(matches!(e, SpawnError::NotExecutable(_)), "{e}");
        assert_eq!(e.exit_code(), Some(126));
        assert_eq!(resolve(OsStr::new("nope"), &env, Path::new("/")).expect_err("missing").exit_code(), Some(127));
        let exec = |errno| SpawnError::Child { step: "execve", source: io::Error::from_raw_os_error(errno) };
        assert_eq!(exec(libc::ENOENT).exit_code(), Some(127));
        for errno in [libc::EACCES, libc::ENOEXEC, libc::EISDIR, libc::ETXTBSY] {
            assert_eq!(exec(errno).exit_code(), Some(126), "{errno}");
        }
        assert_eq!(SpawnError::Child { step: "chdir", source: io::Error::from_raw_os_error(2) }.exit_code(), None);
    }

    #[test]
    fn a_sealed_child_keeps_only_the_passed_descriptors() {
        let _serial = FORK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let d = tempfile::tempdir().expect("tmp");
        let out = d.path().join("fds");
        // High numbers, so they cannot be mistaken for what `ls` opens;
        // F_DUPFD leaves them inheritable, like a shell's redirections.
        let devnull = std::fs::File::open("/dev/null").expect("open");
        // SAFETY: duplicating a descriptor we own; the copies are closed below.
        let (leaked_fd, passed_fd) =
            unsafe { (libc::fcntl(devnull.as_raw_fd(), libc::F_DUPFD, 60), libc::fcntl(devnull.as_raw_fd(), libc::F_DUPFD, 70)) };
        assert!(leaked_fd >= 60 && passed_fd >= 70);
        let script = format!("ls /proc/self/fd > {}", out.display());
        let mut cmd = Command::new(vec!["sh".into(), "-c".into(), script.into()], PathBuf::from("/"), None);
        cmd.keep_fds = Some(vec![passed_fd]);
        let mut g = fork_gated(&cmd).expect("fork");
        g.release().expect("exec");
        let _ = nix::sys::wait::waitpid(g.pid, None);
        let fds: Vec<i32> =
            std::fs::read_to_string(&out).expect("listing").split_whitespace().filter_map(|s| s.parse().ok()).collect();
        assert!(fds.contains(&passed_fd), "{fds:?} passed {passed_fd} leaked {leaked_fd}");
        assert!(!fds.contains(&leaked_fd), "{fds:?}");
        // 0-2, the passed one, and the descriptor `ls` opens for /proc/self/fd.
        assert!(fds.iter().filter(|f| **f > 2).count() <= 2, "{fds:?}");
        // SAFETY: closing the copies made above.
        unsafe {
            libc::close(leaked_fd);
            libc::close(passed_fd);
        }
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
