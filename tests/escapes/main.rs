//! The sealed sandbox (issue 12), attacked as an ordinary user.
//!
//! One world for the whole file: a test user whose home holds an SSH key
//! and a shell rc file, and a profile learned with `sudo nono learn` (the
//! command runs as the user) for a small git + python workload that talks
//! TCP to one port. Every attack then runs as that user, with `nono run
//! --profile escapes` (found by name in ~/.config/nono/profiles, where
//! learn wrote it), and each case asserts the errno AND that nothing
//! outside changed: file contents, an outside process still running, an
//! outside listener that received nothing. Where file permissions alone
//! would stop an attack the case would prove nothing, so the sandbox's
//! tree is the user's own: only the sandbox stands in the way. Controls
//! (the same attack with the rule relaxed, or outside the sandbox) show
//! that each test can fail.
//!
//! Rows of issue 12's table: 1 terminal injection, 2 TCP port bypasses,
//! 3 a workdir covering secrets, 4 a profile the agent could rewrite, 5
//! signals, 6 abstract Unix sockets, 7 UDP/ICMP, 8 same-user IPC, 9
//! inherited descriptors, 10 other socket families; then the i386/x32
//! entries, the path tricks that already held, hostile profiles, exit
//! codes and `wrap`. Landlock ABI < 6 (Debian 6.1 in the VM suite) has no
//! scoping: rows 5 and 6 then check that it is reported and that
//! `--strict` refuses.

#[path = "../support/mod.rs"]
mod support;

// The cases, one module per issue; each module is a chapter of attacks
// on the same world.
mod issue12;
mod output;
mod persistence;
mod smaller;
mod sudo_links;
mod terminal;
mod tmp;

use std::io::Read as _;
use std::net::{TcpListener, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use support::{Sandbox, TestUser, is_root, skip};

const PY: &str = "/usr/bin/python3";

fn abi() -> i64 {
    // SAFETY: the documented version query; no pointer is dereferenced.
    unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, 1u32) }
}

/// The learning workload: git, then python connecting to `$PORT`.
const WORKLOAD: &str = r#"set -e
mkdir -p repo && cd repo && git init -q . && echo hello > a.txt && git add a.txt
git -c user.name=n -c user.email=n@example.invalid commit -qm init && cd ..
/usr/bin/python3 -c 'import json, os, socket
s = socket.create_connection(("127.0.0.1", int(os.environ["PORT"])), timeout=5)
s.sendall(b"hi")
s.close()
json.dump({"ok": 1}, open("out.json", "w"))'
"#;

/// Helpers every probe starts with: `attempt(f)` and `sys_(nr, ...)` print
/// the errno name (or OK).
const PRELUDE: &str = r#"import ctypes, errno, os, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def ename(e):
    return errno.errorcode.get(e, str(e))
def sys_(nr, *args):
    conv = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    r = libc.syscall(ctypes.c_long(nr), *conv)
    return "OK" if r >= 0 else ename(ctypes.get_errno())
def attempt(f):
    try:
        f()
        return "OK"
    except OSError as e:
        return ename(e.errno)
"#;

struct World {
    sb: Sandbox,
    user: TestUser,
    /// The port the workload connected to (learned as `open_port`).
    port: u16,
    _listener: TcpListener,
    key: PathBuf,
    bashrc: PathBuf,
}

static WORLD: OnceLock<Result<World, String>> = OnceLock::new();

/// The shared world, or `None` after skipping (a failure under CI).
fn world(test: &str) -> Option<&'static World> {
    match WORLD.get_or_init(build_world) {
        Ok(w) => Some(w),
        Err(why) => {
            skip(test, why);
            None
        }
    }
}

extern "C" fn cleanup() {
    if let Some(Ok(w)) = WORLD.get() {
        let _ = Command::new("pkill").args(["-KILL", "-U", &w.user.uid.to_string()]).status();
        let _ = Command::new("userdel").arg(&w.user.name).output();
        let _ = std::fs::remove_dir_all(w.sb.root());
    }
}

fn build_world() -> Result<World, String> {
    if !is_root() {
        return Err("needs root: a test user, and `sudo nono learn`".into());
    }
    if abi() < 1 {
        return Err("Landlock is not available on this kernel".into());
    }
    for tool in [PY, "/usr/bin/setpriv", "/usr/sbin/useradd"] {
        if !Path::new(tool).exists() {
            return Err(format!("{tool} is missing"));
        }
    }
    if !Command::new("sh")
        .args(["-c", "command -v git"])
        .env("PATH", support::USER_PATH)
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Err("git is missing from the user's PATH".into());
    }
    let sb = Sandbox::new();
    let user = TestUser::create("escapes", &sb).ok_or("no test user")?;
    // SAFETY: registering a plain extern "C" function.
    unsafe { libc::atexit(cleanup) };
    let home = sb.home();
    std::fs::create_dir(home.join(".ssh")).map_err(|e| e.to_string())?;
    let key = home.join(".ssh/id_rsa");
    std::fs::write(&key, "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n").map_err(|e| e.to_string())?;
    let bashrc = home.join(".bashrc");
    std::fs::write(&bashrc, "# rc\n").map_err(|e| e.to_string())?;
    // The whole tree is the user's: file permissions allow every attack
    // below, so only the sandbox can stop them.
    user.chown_tree(sb.root());
    chmod(&home.join(".ssh"), 0o700);
    chmod(&key, 0o600);
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let out = user
        .sudo_nono(&sb)
        .args(["learn", "--no-progress", "--name", "escapes", "--backend"])
        .arg(std::env::var("NONO_TEST_BACKEND").unwrap_or_else(|_| "auto".to_owned()))
        .args(["--", "sh", "-c", WORKLOAD])
        .env("PORT", port.to_string())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("nono learn failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    let w = World { sb, user, port, _listener: listener, key, bashrc };
    if !w.profile().exists() {
        return Err(format!("no profile at {}:\n{}", w.profile().display(), String::from_utf8_lossy(&out.stderr)));
    }
    Ok(w)
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).expect("chmod");
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl World {
    /// Where `nono learn` wrote the profile by default.
    fn profile(&self) -> PathBuf {
        self.sb.home().join(".config/nono/profiles/escapes.json")
    }

    /// `nono ARGS`, as the user.
    fn nono(&self) -> Command {
        self.user.nono(&self.sb)
    }

    /// `nono run --profile escapes EXTRA -- ARGV`, as the user.
    fn run(&self, extra: &[&str], argv: &[&str]) -> Command {
        self.run_under("escapes", extra, argv)
    }

    /// `nono run --profile PROFILE EXTRA -- ARGV`, as the user.
    fn run_under(&self, profile: &str, extra: &[&str], argv: &[&str]) -> Command {
        let mut c = self.nono();
        c.args(["run", "--profile", profile]).args(extra).arg("--").args(argv);
        c
    }

    /// Runs a probe (PRELUDE + `code`, with `args` in `sys.argv[1:]`) under
    /// the learned profile and returns its output lines; it must exit 0.
    fn probe(&self, extra: &[&str], code: &str, args: &[&str]) -> Vec<String> {
        self.probe_under("escapes", extra, code, args)
    }

    /// [`World::probe`] under another profile (a control).
    fn probe_under(&self, profile: &str, extra: &[&str], code: &str, args: &[&str]) -> Vec<String> {
        let out: Output =
            self.run_under(profile, extra, &[PY, "-c", &format!("{PRELUDE}{code}")]).args(args).output().expect("nono run");
        assert!(out.status.success(), "probe failed ({}):\n{}\n{}", out.status, text(&out.stdout), text(&out.stderr));
        text(&out.stdout).lines().map(str::to_owned).collect()
    }

    /// A program run as the user, outside any sandbox.
    fn outside(&self, program: &str) -> Command {
        self.user.run(&self.sb, program)
    }

    /// A long-running process of the user, outside the sandbox.
    fn victim(&self) -> std::process::Child {
        self.outside("sleep").arg("1000").stdout(Stdio::null()).spawn().expect("sleep")
    }
}

/// Collects mismatches so one run reports every case.
#[derive(Default)]
struct Cases(Vec<String>);

impl Cases {
    fn expect(&mut self, what: &str, got: Option<&String>, want: &[&str]) {
        let got = got.map_or("(no output)", String::as_str);
        if !want.contains(&got) {
            self.0.push(format!("{what}: got {got}, want {want:?}"));
        }
    }

    fn check(&mut self, what: &str, ok: bool) {
        if !ok {
            self.0.push(format!("{what}: failed"));
        }
    }

    fn done(self) {
        assert!(self.0.is_empty(), "{} case(s) failed:\n{}", self.0.len(), self.0.join("\n"));
    }
}

/// A process state letter from /proc/PID/stat (R, S, T, Z, ...).
fn state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit(')').next().and_then(|rest| rest.trim().chars().next()).unwrap_or('?')
}

fn alive_and_running(pid: u32) -> bool {
    matches!(state(pid), 'S' | 'R')
}

/// A profile extending the learned one, written outside the workdir.
fn extended(w: &World, file: &str, extra: &str) -> String {
    let p = w.sb.root().join(file);
    std::fs::write(&p, format!("{{\"extends\": \"escapes\", {extra}}}")).expect("profile");
    w.user.chown_tree(&p);
    p.display().to_string()
}

// ---- row 1: keystroke injection into the user's terminal -------------

/// A fresh pty in raw mode: (master, slave).
fn pty() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    let p = nix::pty::openpty(None, None).expect("openpty");
    let mut t = nix::sys::termios::tcgetattr(&p.slave).expect("tcgetattr");
    nix::sys::termios::cfmakeraw(&mut t);
    nix::sys::termios::tcsetattr(&p.slave, nix::sys::termios::SetArg::TCSANOW, &t).expect("tcsetattr");
    (p.master, p.slave)
}

/// Runs `cmd` in a new session whose controlling terminal is `slave`
/// (stdin), the way a user's shell runs the agent.
fn in_terminal(cmd: &mut Command, slave: &std::os::fd::OwnedFd) {
    let fd = slave.as_raw_fd();
    // SAFETY: pre_exec runs in the forked child; setsid, ioctl and dup2 are
    // async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(fd, libc::TIOCSCTTY, 1) < 0 || libc::dup2(fd, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// What is waiting in the terminal's input queue (read from the slave).
fn pending_input(slave: &std::os::fd::OwnedFd, wait: Duration) -> Vec<u8> {
    std::thread::sleep(wait);
    let fd = slave.as_raw_fd();
    // SAFETY: fcntl/read on a descriptor we own, into a local buffer.
    unsafe {
        libc::fcntl(fd, libc::F_SETFL, libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK);
        let mut buf = [0u8; 256];
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        if n > 0 { buf[..n as usize].to_vec() } else { Vec::new() }
    }
}
