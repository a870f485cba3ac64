//! Shared harness for the end-to-end tests: a fresh temp dir per test with
//! a workdir, a home and an audit database; the real `nono` binary; and the
//! kernel-capability gate (skip with a reason, or fail under CI).

#![allow(dead_code, reason = "each test binary uses a different part of the harness")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nono::event::Event;

pub const NONO: &str = env!("CARGO_BIN_EXE_nono");

/// Whether a missing kernel capability must fail the test instead of
/// skipping it.
pub fn kernel_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") || std::env::var("NONO_REQUIRE_KERNEL").is_ok_and(|v| v == "1")
}

/// Skips (returns false) with a printed reason, or panics when the kernel
/// is required.
pub fn skip(test: &str, why: &str) -> bool {
    assert!(!kernel_required(), "{test}: {why} (CI=true / NONO_REQUIRE_KERNEL=1: not skipping)");
    eprintln!("SKIP {test}: {why}");
    false
}

/// A made-up read of `path` by pid 4242 ("agent"), `i` ms after a fixed
/// start, for tests that fill a store through the library.
pub fn event(i: i64, op: nono::event::Op, path: &str) -> Event {
    Event {
        time_ns: 1_763_884_800_000_000_000 + i * 1_000_000,
        pid: 4242,
        tid: 4242,
        ppid: 1,
        uid: 1000,
        comm: "agent".into(),
        exe: Some("/usr/bin/agent".into()),
        op,
        path: Some(path.into()),
        path2: None,
        access: nono::event::Access { read: true, ..nono::event::Access::default() },
        arg: 0,
        file_type: 0o100_000,
        outcome: nono::event::Outcome::Ok,
        net: None,
        incomplete: false,
    }
}

/// A finished command's status, stdout and stderr, for assertion messages.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The recorder backend to test (`NONO_TEST_BACKEND`, default `auto`), or
/// `None` after printing why the test is skipped.
pub fn require_recorder(test: &str) -> Option<String> {
    if !is_root() {
        skip(test, "recording needs root (CAP_BPF, CAP_PERFMON)");
        return None;
    }
    Some(std::env::var("NONO_TEST_BACKEND").unwrap_or_else(|_| "auto".to_owned()))
}

/// A fresh directory tree for one test.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

/// The result of one `nono learn` run, read back from its database.
#[derive(Debug)]
pub struct Learned {
    pub code: Option<i32>,
    pub stderr: String,
    pub events: Vec<Event>,
    pub session_id: i64,
    pub session_state: String,
    pub session_lost: u64,
}

impl Learned {
    /// Reads the latest session of `db`.
    pub fn read(db: &Path) -> Result<Learned, String> {
        let store = nono::store::Store::open_existing(db).map_err(|e| e.to_string())?;
        store.reap_stale().map_err(|e| e.to_string())?;
        let session = store.session("latest").map_err(|e| e.to_string())?;
        let mut events = Vec::new();
        store
            .events(session.id, |e| {
                events.push(e);
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        events.sort_by_key(|e| e.time_ns);
        Ok(Learned {
            code: None,
            stderr: String::new(),
            events,
            session_id: session.id,
            session_state: session.state.as_str().to_owned(),
            session_lost: session.lost(),
        })
    }

    /// The pid of the command itself (its first exec).
    pub fn root_pid(&self) -> u32 {
        self.events.iter().find(|e| e.op == nono::event::Op::Exec).map_or(0, |e| e.pid)
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new().prefix("nono-test-").tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("work")).expect("work");
        std::fs::create_dir(dir.path().join("home")).expect("home");
        std::fs::create_dir(dir.path().join("tmp")).expect("tmp");
        std::fs::create_dir(dir.path().join("state")).expect("state");
        Sandbox { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The workdir (the command's cwd, `$CWD` in profiles). Canonical, so
    /// recorded paths compare equal.
    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work").canonicalize().expect("canonical workdir")
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home").canonicalize().expect("canonical home")
    }

    /// The audit database, in a directory of its own that a test user
    /// owns: under sudo nono writes it as that user.
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("state/audit.db")
    }

    pub fn profile(&self) -> PathBuf {
        self.dir.path().join("learned.json")
    }

    /// A `nono` command with this sandbox's workdir, home and database.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(NONO);
        // A private $TMPDIR: profiles grant $TMPDIR, and the sandbox itself
        // lives under the system temp dir.
        c.current_dir(self.work())
            .env("HOME", self.home())
            .env("TMPDIR", self.dir.path().join("tmp"))
            .env("NONO_DB", self.db())
            .env_remove("XDG_STATE_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_CACHE_HOME");
        c
    }

    /// `nono learn --backend B [extra] --output PROFILE -- argv`.
    pub fn learn_command(&self, backend: &str, extra: &[&str], argv: &[&str]) -> Command {
        let mut c = self.cmd();
        c.arg("learn").args(["--backend", backend, "--db"]).arg(self.db()).arg("--output").arg(self.profile());
        c.arg("--force").args(extra).arg("--").args(argv);
        c
    }

    pub fn learn(&self, backend: &str, argv: &[&str]) -> Learned {
        self.learn_with(backend, &[], argv)
    }

    pub fn learn_with(&self, backend: &str, extra: &[&str], argv: &[&str]) -> Learned {
        let out = self.learn_command(backend, extra, argv).output().expect("run nono learn");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let mut learned =
            Learned::read(&self.db()).unwrap_or_else(|e| panic!("reading the audit db: {e}\nnono stderr:\n{stderr}"));
        learned.code = out.status.code();
        learned.stderr = stderr;
        learned
    }

    /// Runs `nono ARGS` (the database comes from `NONO_DB`) and returns stdout; panics on failure.
    pub fn nono(&self, args: &[&str]) -> String {
        let mut c = self.cmd();
        c.args(args);
        let out = c.output().expect("run nono");
        assert!(out.status.success(), "nono {args:?} failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Fills the home with what a real user's home holds (dotfiles, shell
    /// rc files, `~/.ssh`, `~/.gitconfig`, tool caches and an agent's
    /// state), so tests see what a lived-in home makes nono do. Returns the
    /// files a sandbox must never change or read: each is listed with its
    /// contents, for a byte-for-byte check afterwards. Call it before
    /// [`TestUser::create`], which gives the home to the user.
    pub fn lived_in_home(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let home = self.home();
        let files: &[(&str, &str, u32)] = &[
            (".bashrc", "# ~/.bashrc\nexport PS1='$ '\nalias ll='ls -l'\n", 0o644),
            (".profile", "# ~/.profile\n[ -f ~/.bashrc ] && . ~/.bashrc\n", 0o644),
            (".bash_history", "ls\ngit status\n", 0o600),
            (".gitconfig", "[user]\n\tname = Test User\n\temail = test@example.invalid\n", 0o644),
            (".config/git/ignore", "*.swp\n", 0o644),
            (
                ".ssh/id_ed25519",
                "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n",
                0o600,
            ),
            (".ssh/id_ed25519.pub", "ssh-ed25519 AAAAnotreal test@example.invalid\n", 0o644),
            (".ssh/known_hosts", "example.invalid ssh-ed25519 AAAAnotreal\n", 0o644),
            (".ssh/config", "Host *\n  IdentitiesOnly yes\n", 0o600),
            (".aws/credentials", "[default]\naws_secret_access_key = not-a-real-secret\n", 0o600),
            (".npmrc", "//registry.example.invalid/:_authToken=not-a-real-token\n", 0o600),
            (".local/bin/hello", "#!/bin/sh\necho hello\n", 0o755),
            (".config/autostart/.keep", "", 0o644),
            (".cache/pip/.keep", "", 0o644),
            ("notes/todo.txt", "buy milk\n", 0o644),
            (".viminfo", "# viminfo\n", 0o600),
        ];
        let mut out = Vec::new();
        for (rel, text, mode) in files {
            let path = home.join(rel);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir in home");
            std::fs::write(&path, text).expect("write a dotfile");
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(*mode)).expect("chmod");
            out.push((path, text.as_bytes().to_vec()));
        }
        for d in [".ssh", ".aws"] {
            std::fs::set_permissions(home.join(d), std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("chmod");
        }
        out
    }

    pub fn wait_for(&self, path: &Path, timeout: Duration) {
        let start = Instant::now();
        while !path.exists() {
            assert!(start.elapsed() < timeout, "{} did not appear within {timeout:?}", path.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The PATH an unprivileged test user gets: system directories only (the
/// development host's own PATH starts with tools under /root, which an
/// ordinary user cannot reach).
pub const USER_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// An ordinary user made for one test, whose home is the test sandbox's
/// `home/`. Tests run `sudo nono learn` (root with `SUDO_UID`) and
/// `nono run` as this user, the way real users do: a sandbox tested as root
/// hides bugs (root passes every file permission check). Removed on drop.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl TestUser {
    /// Creates the user and hands it the sandbox's workdir, home and temp
    /// dir. `None` (after printing why, or failing under CI) without root.
    pub fn create(test: &str, sb: &Sandbox) -> Option<TestUser> {
        if !is_root() {
            skip(test, "creating a test user needs root");
            return None;
        }
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("nono-t{}x{n}", std::process::id());
        let out = Command::new("useradd")
            .args(["--no-create-home", "--no-log-init", "--user-group", "--shell", "/bin/sh", "--home-dir"])
            .arg(sb.home())
            .arg(&name)
            .output()
            .expect("run useradd");
        assert!(out.status.success(), "useradd {name}: {}", String::from_utf8_lossy(&out.stderr));
        let user = nix::unistd::User::from_name(&name).expect("getpwnam").expect("the new user exists");
        let me = TestUser { name, uid: user.uid.as_raw(), gid: user.gid.as_raw() };
        // The sandbox root is root's 0700 temp dir: let the user through,
        // and give it its three directories.
        std::fs::set_permissions(sb.root(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod sandbox");
        for d in [sb.work(), sb.home(), sb.root().join("tmp"), sb.root().join("state")] {
            me.chown_tree(&d);
        }
        Some(me)
    }

    /// Gives `path` and everything beneath it to the user.
    pub fn chown_tree(&self, path: &Path) {
        let status = Command::new("chown").arg("-R").arg(format!("{}:{}", self.uid, self.gid)).arg(path).status().expect("chown");
        assert!(status.success(), "chown -R {}", path.display());
    }

    /// `nono ARGS...` run by the user (no root at all), in the sandbox's
    /// workdir, with HOME, TMPDIR and NONO_DB of the sandbox.
    pub fn nono(&self, sb: &Sandbox) -> Command {
        let mut c = Command::new("setpriv");
        c.args(["--reuid", &self.uid.to_string(), "--regid", &self.gid.to_string(), "--init-groups", "--"]).arg(NONO);
        self.env(&mut c, sb);
        c
    }

    /// Any program run by the user, with the same environment.
    pub fn run(&self, sb: &Sandbox, program: &str) -> Command {
        let mut c = Command::new("setpriv");
        c.args(["--reuid", &self.uid.to_string(), "--regid", &self.gid.to_string(), "--init-groups", "--"]).arg(program);
        self.env(&mut c, sb);
        c
    }

    /// `sudo nono ARGS...` on the user's behalf: root, with the variables
    /// sudo sets (nono runs the command as the user, from `SUDO_UID`).
    pub fn sudo_nono(&self, sb: &Sandbox) -> Command {
        let mut c = Command::new(NONO);
        self.env(&mut c, sb);
        c.env("SUDO_UID", self.uid.to_string())
            .env("SUDO_GID", self.gid.to_string())
            .env("SUDO_USER", &self.name)
            .env("SUDO_COMMAND", "nono");
        c
    }

    fn env(&self, c: &mut Command, sb: &Sandbox) {
        c.current_dir(sb.work())
            .env_clear()
            .env("HOME", sb.home())
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .env("PATH", USER_PATH)
            .env("TMPDIR", sb.root().join("tmp"))
            .env("NONO_DB", sb.db())
            .env("LANG", "C.UTF-8");
        if let Ok(v) = std::env::var("NONO_LOG") {
            c.env("NONO_LOG", v);
        }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // Processes the test left behind would keep userdel from working.
        let _ = Command::new("pkill").args(["-KILL", "-U", &self.uid.to_string()]).status();
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}
