//! The broker (issue 14), end to end, as an ordinary user: what Landlock
//! cannot express is performed or refused by `nono run`'s supervisor.
//!
//! - A Claude-like atomic save of `~/.app.json` (lock directory, random
//!   temp sibling, rename over) beside `~/.ssh` and `~/.bashrc`, learned
//!   once with `sudo nono learn`, replays three times with no sandbox
//!   denial, and under that very profile the secrets stay shut.
//! - `chmod +x` in the workdir works; `chmod` of a secret does not.
//! - A mode-preserving atomic save of `~/.toolrc` (`fchmod` and `futimens`
//!   of the temp file, then a rename) in a lived-in home is learned as a
//!   brokered rule with the `metadata` op and replays twice, keeping the
//!   dotfile's mode and mtime; without that op it is refused.
//! - Pathname Unix sockets: only the learned one is reachable.
//! - A thread that swaps a path component for a symlink into `~/.ssh`
//!   while another runs brokered operations, 10,000 times: nothing is ever
//!   created or changed outside the grant.
//!
//! Each test builds its own sandbox and user; the tree is the user's own,
//! so file permissions would allow every attack and only the sandbox stops
//! them.

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Sandbox, TestUser, is_root, output_text, skip};

const PY: &str = "/usr/bin/python3";

/// The save, as Claude Code does it for `~/.claude.json`: read, lock
/// directory (touched while held), a temp sibling with the pid and a
/// random number, rename over, unlock, read again. `n` counts the saves.
const SAVE: &str = r#"import json, os, random
H = os.environ["HOME"]
T = f"{H}/.app.json"
def save():
    cfg = json.load(open(T))
    cfg["n"] += 1
    os.mkdir(T + ".lock")
    os.utime(T + ".lock")
    tmp = f"{T}.tmp.{os.getpid()}.{random.randrange(10**12)}"
    with open(tmp, "w") as f:
        json.dump(cfg, f)
    os.rename(tmp, T)
    os.rmdir(T + ".lock")
save()
save()
print("n =", json.load(open(T))["n"])
"#;

fn ready(test: &str) -> bool {
    if !is_root() {
        return skip(test, "needs root: a test user, and `sudo nono learn`");
    }
    if !Path::new(PY).exists() {
        return skip(test, "/usr/bin/python3 is missing");
    }
    if nono::kernel::seccomp_notify().is_err() {
        return skip(test, "seccomp user notification is unavailable: nono runs without its broker here");
    }
    true
}

/// A sandbox whose home holds an SSH key, a shell rc file and the app's
/// config, all the user's; `None` (after saying why) when [`ready`] is not.
fn world(test: &str) -> Option<(Sandbox, TestUser)> {
    if !ready(test) {
        return None;
    }
    let sb = Sandbox::new();
    let user = TestUser::create(test, &sb)?;
    let home = sb.home();
    std::fs::create_dir(home.join(".ssh")).expect("ssh");
    std::fs::write(home.join(".ssh/id_rsa"), "secret\n").expect("key");
    std::fs::write(home.join(".bashrc"), "# rc\n").expect("rc");
    std::fs::write(home.join(".app.json"), "{\"n\": 0}").expect("config");
    user.chown_tree(sb.root());
    std::fs::set_permissions(home.join(".ssh/id_rsa"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    Some((sb, user))
}

fn script(sb: &Sandbox, user: &TestUser, name: &str, text: &str) -> PathBuf {
    let p = sb.work().join(name);
    std::fs::write(&p, text).expect("script");
    user.chown_tree(&p);
    p
}

/// `sudo nono learn --output P -- python3 SCRIPT`.
fn learn(sb: &Sandbox, user: &TestUser, script: &Path) -> PathBuf {
    let profile = sb.root().join("app.json");
    let out = user
        .sudo_nono(sb)
        .args(["learn", "--no-progress", "--force", "--output"])
        .arg(&profile)
        .args(["--", PY])
        .arg(script)
        .output()
        .expect("nono learn");
    assert!(out.status.success(), "learn failed: {}", output_text(&out));
    profile
}

/// The sandbox denials of the last session, from the audit store.
fn denials(sb: &Sandbox, user: &TestUser) -> String {
    let out =
        user.sudo_nono(sb).args(["audit", "query", "--session", "last", "--result", "denied"]).output().expect("audit query");
    assert!(out.status.success(), "{}", output_text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_atomic_save_beside_secrets_is_learned_once_and_replays_three_times() {
    let test = "an_atomic_save_beside_secrets_is_learned_once_and_replays_three_times";
    let Some((sb, user)) = world(test) else { return };
    let save = script(&sb, &user, "save.py", SAVE);
    let profile = learn(&sb, &user, &save);
    let json = std::fs::read_to_string(&profile).expect("profile");
    let p: serde_json::Value = serde_json::from_str(&json).expect("json");
    let brokered = &p["filesystem"]["brokered"];
    assert!(brokered.as_array().is_some_and(|b| !b.is_empty()), "no brokered rule learned:\n{json}");
    assert!(json.contains(".app.json.tmp.*") && json.contains(".app.json.lock"), "{json}");
    assert!(!json.contains("\"$HOME\"") || !json.contains("make_reg"), "never $HOME itself:\n{json}");
    for run in 1..=3 {
        let out = user
            .sudo_nono(&sb)
            .args(["run", "--audit", "--profile"])
            .arg(&profile)
            .args(["--", PY])
            .arg(&save)
            .output()
            .expect("nono run");
        assert!(out.status.success(), "replay {run}: {}", output_text(&out));
        let expect = format!("n = {}", 2 * (run + 1));
        assert!(String::from_utf8_lossy(&out.stdout).contains(&expect), "replay {run}, expected {expect}: {}", output_text(&out));
        let d = denials(&sb, &user);
        assert!(d.lines().filter(|l| !l.trim().is_empty()).count() <= 1, "replay {run} had sandbox denials:\n{d}");
    }
    // Nothing is left behind: no temp sibling, no lock.
    let left: Vec<String> = std::fs::read_dir(sb.home())
        .expect("home")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with(".app.json."))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // The same profile, attacked: each fails, and nothing outside changes.
    let attack = script(
        &sb,
        &user,
        "attack.py",
        r#"import errno, os, socket
H = os.environ["HOME"]
def attempt(name, f):
    try:
        f(); print(name, "OK")
    except OSError as e:
        print(name, errno.errorcode.get(e.errno, e.errno))
attempt("write-bashrc", lambda: open(f"{H}/.bashrc", "a").write("evil\n"))
attempt("create-authorized-keys", lambda: open(f"{H}/.ssh/authorized_keys", "w").write("evil"))
attempt("chmod-key", lambda: os.chmod(f"{H}/.ssh/id_rsa", 0o644))
def over_bashrc():
    t = f"{H}/.app.json.tmp.1.1"
    open(t, "w").write("evil\n")
    os.rename(t, f"{H}/.bashrc")
attempt("rename-temp-over-bashrc", over_bashrc)
attempt("temp-name-in-ssh", lambda: open(f"{H}/.ssh/.app.json.tmp.2.2", "w"))
def unix():
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.environ["SOCK"])
attempt("unix-connect-unlearned", unix)
"#,
    );
    let sock_path = sb.root().join("tmp/outside.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).expect("outside socket");
    user.chown_tree(&sock_path);
    listener.set_nonblocking(true).expect("nonblocking");
    let out = user
        .nono(&sb)
        .env("SOCK", &sock_path)
        .args(["run", "--profile"])
        .arg(&profile)
        .args(["--", PY])
        .arg(&attack)
        .output()
        .expect("nono run");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    for (case, errno) in [
        ("write-bashrc", "EACCES"),
        ("create-authorized-keys", "EACCES"),
        ("chmod-key", "EACCES"),
        ("rename-temp-over-bashrc", "EACCES"),
        ("temp-name-in-ssh", "EACCES"),
        ("unix-connect-unlearned", "EACCES"),
    ] {
        assert!(stdout.lines().any(|l| l == format!("{case} {errno}")), "{case}: expected {errno}:\n{}", output_text(&out));
    }
    assert_eq!(std::fs::read_to_string(sb.home().join(".bashrc")).expect("rc"), "# rc\n");
    assert!(!sb.home().join(".ssh/authorized_keys").exists());
    assert!(!sb.home().join(".ssh/.app.json.tmp.2.2").exists());
    let mode = std::fs::metadata(sb.home().join(".ssh/id_rsa")).expect("key").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key's mode changed");
    assert!(listener.accept().is_err(), "the outside socket got a connection");
}

#[test]
fn metadata_changes_are_allowed_beneath_write_grants_only() {
    let test = "metadata_changes_are_allowed_beneath_write_grants_only";
    let Some((sb, user)) = world(test) else { return };
    let profile = sb.root().join("p.json");
    std::fs::write(
        &profile,
        r#"{"extends": "base", "filesystem": {"allow": ["$CWD"], "read_file": ["$HOME/.app.json"]},
            "network": {"open_port": [], "listen_port": []}}"#,
    )
    .expect("profile");
    let tool = sb.work().join("tool.sh");
    std::fs::write(&tool, "#!/bin/sh\necho ran\n").expect("tool");
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    user.chown_tree(&tool);
    let out = user
        .nono(&sb)
        .args(["run", "--profile"])
        .arg(&profile)
        .args([
            "--",
            "sh",
            "-c",
            "chmod +x tool.sh && ./tool.sh && touch -d @0 tool.sh; chmod 666 \"$HOME/.app.json\"; echo chmod-config=$?",
        ])
        .output()
        .expect("nono run");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("ran"), "chmod +x in the workdir: {}", output_text(&out));
    assert!(stdout.contains("chmod-config=1"), "a read-only file's mode: {}", output_text(&out));
    let mode = std::fs::metadata(sb.home().join(".app.json")).expect("config").permissions().mode() & 0o777;
    assert_ne!(mode, 0o666);
    use std::os::unix::fs::MetadataExt as _;
    assert_eq!(std::fs::metadata(&tool).expect("tool").mtime(), 0, "utimensat in the workdir");
}

/// The race: thread A flips `$CWD/l` between a symlink to `$HOME` and one
/// to `$HOME/.ssh` (atomic renames); thread B creates `l/.app.json.tmp.N`,
/// renames it over `l/.app.json`, and `chmod`s `l/id_rsa`. Whatever B
/// sees, the broker acts only on what it resolved: a brokered name in
/// `$HOME`, never a file in `~/.ssh`.
const RACE_C: &str = r#"
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
static volatile int stop;
static void *flip(void *arg) {
    (void)arg;
    while (!stop) {
        rename("la", "l");
        rename("lb", "l");
        symlink(getenv("HOME"), "la");
        char ssh[4096];
        snprintf(ssh, sizeof ssh, "%s/.ssh", getenv("HOME"));
        symlink(ssh, "lb");
    }
    return NULL;
}
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    char ssh[4096];
    snprintf(ssh, sizeof ssh, "%s/.ssh", getenv("HOME"));
    symlink(getenv("HOME"), "la");
    symlink(ssh, "lb");
    rename("la", "l");
    symlink(getenv("HOME"), "la");
    pthread_t t;
    pthread_create(&t, NULL, flip, NULL);
    int created = 0;
    for (int i = 0; i < n; i++) {
        char tmp[64];
        snprintf(tmp, sizeof tmp, "l/.app.json.tmp.%d.%d", getpid(), i);
        int fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY, 0644);
        if (fd >= 0) {
            created++;
            write(fd, "{\"n\": 0}", 8);
            close(fd);
            rename(tmp, "l/.app.json");
            unlink(tmp);
        }
        chmod("l/id_rsa", 0644);
        mkdir("l/.app.json.lock", 0755);
        rmdir("l/.app.json.lock");
    }
    stop = 1;
    pthread_join(t, NULL);
    printf("created %d of %d\n", created, n);
    return 0;
}
"#;

#[test]
fn a_symlink_race_never_reaches_outside_the_grant() {
    let test = "a_symlink_race_never_reaches_outside_the_grant";
    if !Command::new("cc").arg("--version").output().is_ok_and(|o| o.status.success()) {
        skip(test, "cc is needed to build the racer");
        return;
    }
    let Some((sb, user)) = world(test) else { return };
    let src = sb.root().join("race.c");
    std::fs::write(&src, RACE_C).expect("source");
    let bin = sb.work().join("race");
    let cc = Command::new("cc").args(["-O2", "-pthread", "-o"]).arg(&bin).arg(&src).output().expect("cc");
    assert!(cc.status.success(), "cc: {}", output_text(&cc));
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let profile = sb.root().join("p.json");
    std::fs::write(
        &profile,
        format!(
            r#"{{"extends": "base", "filesystem": {{"allow": ["$CWD"],
                "rules": [{{"path": "$HOME/.app.json", "access": ["read_file", "write_file"], "file": true}}],
                "brokered": [{{"dir": "$HOME", "names": [".app.json", ".app.json.tmp.*", ".app.json.lock"],
                               "ops": ["create", "rename", "remove", "mkdir", "rmdir"]}}]}},
                "network": {{"open_port": [], "listen_port": []}}}}"#
        ),
    )
    .expect("profile");
    user.chown_tree(&bin);
    let ssh_before: Vec<String> = listing(&sb.home().join(".ssh"));
    let out =
        user.nono(&sb).args(["run", "--profile"]).arg(&profile).arg("--").arg(&bin).arg("10000").output().expect("nono run");
    assert!(out.status.success(), "{}", output_text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let created: u32 = stdout.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(created > 0, "no brokered create went through, so the race proved nothing: {}", output_text(&out));
    assert_eq!(listing(&sb.home().join(".ssh")), ssh_before, "something appeared in ~/.ssh");
    let mode = std::fs::metadata(sb.home().join(".ssh/id_rsa")).expect("key").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key's mode changed");
    assert_eq!(std::fs::read_to_string(sb.home().join(".ssh/id_rsa")).expect("key"), "secret\n");
    // Everything it created is a brokered name in $HOME.
    for name in listing(&sb.home()) {
        assert!(
            // (the lock directory stays when the link flipped between mkdir and rmdir)
            [".ssh", ".bashrc", ".app.json", ".app.json.lock"].contains(&name.as_str()) || name.starts_with(".app.json.tmp."),
            "unexpected entry in $HOME: {name}"
        );
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    v.sort();
    v
}

#[test]
fn only_learned_unix_sockets_are_reachable() {
    let test = "only_learned_unix_sockets_are_reachable";
    let Some((sb, user)) = world(test) else { return };
    // Outside servers' sockets live outside the temp dir: `nono run` gives
    // the command a private `$TMPDIR`, so `$TMPDIR/x.sock` would name
    // another file there.
    let dir = sb.root().join("sockets");
    std::fs::create_dir(&dir).expect("mkdir");
    user.chown_tree(&dir);
    let learned_sock = dir.join("learned.sock");
    let other_sock = dir.join("other.sock");
    let serve = |p: &Path| {
        let l = std::os::unix::net::UnixListener::bind(p).expect("bind");
        user.chown_tree(p);
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                use std::io::Write as _;
                let _ = c.write_all(b"hello\n");
            }
        });
    };
    serve(&learned_sock);
    serve(&other_sock);
    let client = script(
        &sb,
        &user,
        "client.py",
        r#"import errno, os, socket, sys
for p in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(p)
        print(os.path.basename(p), s.recv(6).decode().strip())
    except OSError as e:
        print(os.path.basename(p), errno.errorcode.get(e.errno, e.errno))
"#,
    );
    let out = user
        .sudo_nono(&sb)
        .args(["learn", "--no-progress", "--force", "--output"])
        .arg(sb.root().join("u.json"))
        .args(["--", PY])
        .arg(&client)
        .arg(&learned_sock)
        .output()
        .expect("learn");
    assert!(out.status.success(), "{}", output_text(&out));
    let profile = std::fs::read_to_string(sb.root().join("u.json")).expect("profile");
    assert!(profile.contains("learned.sock"), "unix_connect not learned:\n{profile}");
    let out = user
        .nono(&sb)
        .args(["run", "--profile"])
        .arg(sb.root().join("u.json"))
        .args(["--", PY])
        .arg(&client)
        .arg(&learned_sock)
        .arg(&other_sock)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("learned.sock hello"), "{}", output_text(&out));
    assert!(stdout.contains("other.sock EACCES"), "{}", output_text(&out));
}

/// A test server on port 0 and its client in one tree (Go's httptest,
/// pytest-httpserver): `argv[1]`, when given, is a loopback port outside
/// the sandbox to try as well.
const OWN_SERVER: &str = r#"import errno, socket, sys, threading
def ask(name, srv, host="127.0.0.1"):
    def serve():
        c, _ = srv.accept()
        c.sendall(b"ok")
        c.close()
    threading.Thread(target=serve, daemon=True).start()
    try:
        c = socket.create_connection((host, srv.getsockname()[1]), timeout=10)
        print(name, c.recv(2).decode())
    except OSError as e:
        print(name, errno.errorcode.get(e.errno, e.errno))
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(4)
ask("own server:", srv)
# listen() with no bind: the kernel binds it to a port of its choosing.
auto = socket.socket()
auto.listen(4)
ask("autobound server:", auto)
# The unspecified address reaches this host's loopback (issue 21 §5).
any4 = socket.socket()
any4.bind(("127.0.0.1", 0))
any4.listen(4)
ask("own server at 0.0.0.0:", any4, "0.0.0.0")
any6 = socket.socket(socket.AF_INET6)
any6.bind(("::1", 0))
any6.listen(4)
ask("own server at [::]:", any6, "::")
if len(sys.argv) > 1:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
        print("outside: connected")
    except OSError as e:
        print("outside:", errno.errorcode.get(e.errno, e.errno))
"#;

#[test]
fn a_server_on_an_ephemeral_port_is_reachable_by_its_own_tree_only() {
    let test = "a_server_on_an_ephemeral_port_is_reachable_by_its_own_tree_only";
    let Some((sb, user)) = world(test) else { return };
    let own = script(&sb, &user, "own_server.py", OWN_SERVER);
    let profile = learn(&sb, &user, &own);
    let p: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&profile).expect("profile")).expect("json");
    let ports = p["network"]["open_port"].as_array().cloned().unwrap_or_default();
    assert!(ports.is_empty(), "the ephemeral port was granted: {ports:?}");
    // Somebody else's server on a loopback ephemeral port, as an IDE's.
    // Below ABI 4 Landlock has no TCP rules: nothing refuses it (and
    // `nono run` says so), while the tree's own server must work anyway.
    let tcp_rules = nono::enforce::kernel_abi() >= 4;
    let outside = std::net::TcpListener::bind("127.0.0.1:0").expect("outside listener");
    let port = outside.local_addr().expect("addr").port().to_string();
    for run in 1..=2 {
        let out = user
            .nono(&sb)
            .args(["run", "--profile"])
            .arg(&profile)
            .args(["--", PY])
            .arg(&own)
            .arg(&port)
            .output()
            .expect("nono run");
        let text = output_text(&out);
        assert!(out.status.success(), "run {run}: {text}");
        assert!(text.contains("own server: ok"), "run {run}: the tree could not reach its own server: {text}");
        assert!(text.contains("autobound server: ok"), "run {run}: a listen() without bind() under listen_port [0]: {text}");
        assert!(text.contains("own server at 0.0.0.0: ok"), "run {run}: a connect to 0.0.0.0 of its own server: {text}");
        assert!(text.contains("own server at [::]: ok"), "run {run}: a connect to [::] of its own server: {text}");
        let want = if tcp_rules { "outside: EACCES" } else { "outside: connected" };
        assert!(text.contains(want), "run {run}: expected {want:?} for a listener outside the sandbox: {text}");
    }
    outside.set_nonblocking(true).expect("nonblocking");
    assert_eq!(outside.accept().is_ok(), !tcp_rules, "the outside listener was connected to (or not, without TCP rules)");
}

/// A mode-preserving atomic save of a dotfile, as git, editors and many
/// config writers do it: read `~/.toolrc`, write `~/.toolrc.tmp`, copy the
/// original's mode (`fchmod`) and times (`futimens`) onto it, rename it
/// over. `count=N` counts the saves.
const MODE_PRESERVING_SAVE: &str = r#"import os
T = os.path.join(os.environ["HOME"], ".toolrc")
old = os.stat(T)
n = int(open(T).read().split("=")[1]) + 1
fd = os.open(T + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
os.write(fd, f"count={n}\n".encode())
os.fchmod(fd, old.st_mode & 0o7777)
os.utime(fd, ns=(old.st_atime_ns, old.st_mtime_ns))
os.fsync(fd)
os.close(fd)
os.rename(T + ".tmp", T)
print("count", n)
"#;

/// Issue 22: metadata changes are recorded, learned as the brokered rule's
/// `metadata` op, and performed by the broker. In a lived-in home, as an
/// ordinary user after `sudo nono learn`, the save replays twice with no
/// sandbox denial, keeps the dotfile's mode and mtime, and touches nothing
/// else; without the learned `metadata` op the same save is refused.
#[test]
fn a_mode_preserving_save_of_a_dotfile_is_learned_once_and_replays_twice() {
    let test = "a_mode_preserving_save_of_a_dotfile_is_learned_once_and_replays_twice";
    if !ready(test) {
        return;
    }
    let sb = Sandbox::new();
    let untouched = sb.lived_in_home();
    let rc = sb.home().join(".toolrc");
    std::fs::write(&rc, "count=0\n").expect("rc");
    let Some(user) = TestUser::create(test, &sb) else { return };
    user.chown_tree(sb.root());
    // Not what a new file gets (0666 & ~umask), and an mtime long past.
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let past = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    std::fs::File::options().write(true).open(&rc).expect("rc").set_modified(past).expect("mtime");
    let kept = |when: &str| {
        let meta = std::fs::metadata(&rc).expect("rc");
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600, "{when}: the mode was not kept");
        assert_eq!(meta.modified().expect("mtime"), past, "{when}: the mtime was not kept");
    };
    let save = script(&sb, &user, "save.py", MODE_PRESERVING_SAVE);
    let profile = learn(&sb, &user, &save);
    kept("learn");
    let json = std::fs::read_to_string(&profile).expect("profile");
    let p: serde_json::Value = serde_json::from_str(&json).expect("json");
    let rule = p["filesystem"]["brokered"]
        .as_array()
        .and_then(|b| b.iter().find(|r| r["names"].as_array().is_some_and(|n| n.iter().any(|n| n == ".toolrc.tmp"))))
        .unwrap_or_else(|| panic!("no brokered rule for the save:\n{json}"));
    assert!(rule["ops"].as_array().is_some_and(|o| o.iter().any(|o| o == "metadata")), "no metadata op:\n{json}");
    let rules = p["filesystem"]["rules"].as_array().cloned().unwrap_or_default();
    assert!(
        !rules
            .iter()
            .any(|r| r["path"] == "$HOME" || (r["path"] == "$HOME/.toolrc" && r["access"].to_string().contains("write"))),
        "the chmod was granted as a write grant:\n{json}"
    );
    let run = |profile: &Path| {
        user.sudo_nono(&sb)
            .args(["run", "--audit", "--profile"])
            .arg(profile)
            .args(["--", PY])
            .arg(&save)
            .output()
            .expect("nono run")
    };
    for replay in 1..=2 {
        let out = run(&profile);
        assert!(out.status.success(), "replay {replay}: {}", output_text(&out));
        let want = format!("count {}", replay + 1);
        assert!(String::from_utf8_lossy(&out.stdout).contains(&want), "replay {replay}: {}", output_text(&out));
        let d = denials(&sb, &user);
        assert!(d.lines().filter(|l| !l.trim().is_empty()).count() <= 1, "replay {replay} had sandbox denials:\n{d}");
        kept(&format!("replay {replay}"));
        assert!(!sb.home().join(".toolrc.tmp").exists(), "replay {replay} left its temp file");
    }
    for (path, bytes) in &untouched {
        assert_eq!(&std::fs::read(path).expect("a lived-in file"), bytes, "{} changed", path.display());
    }
    // The control: the same profile without the `metadata` op refuses the
    // fchmod, and the dotfile stays as the last replay left it.
    let mut stripped = p.clone();
    for r in stripped["filesystem"]["brokered"].as_array_mut().expect("brokered") {
        r["ops"].as_array_mut().expect("ops").retain(|o| o != "metadata");
    }
    let control = sb.root().join("no-metadata.json");
    std::fs::write(&control, serde_json::to_string(&stripped).expect("json")).expect("control profile");
    let out = run(&control);
    assert!(!out.status.success() && output_text(&out).contains("PermissionError"), "{}", output_text(&out));
    let d = denials(&sb, &user);
    assert!(d.contains("metadata") && d.contains(".toolrc.tmp"), "the refused fchmod is the broker's denial:\n{d}");
    assert_eq!(std::fs::read_to_string(&rc).expect("rc"), "count=3\n");
    kept("control");
}
