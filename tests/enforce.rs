//! End-to-end specification of `nono run` and `nono wrap` under real
//! Landlock and seccomp, run by an ordinary user (a sandbox tested as root
//! hides bugs, and `nono run` refuses to give root a profile that reads
//! `/etc`: root could read `/etc/shadow`): what a hand-written profile
//! allows works, and every attacker step fails with EACCES although file
//! permissions would allow it. `tests/escapes.rs` attacks a learned profile.

mod support;

use std::net::TcpListener;
use std::process::{Output, Stdio};
use std::time::Duration;

use support::{Sandbox, TestUser, kernel_required, skip};

const PY: &str = "/usr/bin/python3";

fn abi() -> i64 {
    // SAFETY: the documented version query; no pointer is dereferenced.
    unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, 1u32) }
}

/// Landlock is required on this machine kind (ABI 7); elsewhere the
/// tests skip with a reason, unless the kernel is required.
fn landlock(test: &str) -> bool {
    // SAFETY: the documented version query; no pointer is dereferenced.
    let abi = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, 1u32) };
    if abi < 1 {
        return skip(test, "Landlock is not available on this kernel");
    }
    true
}

fn profile(sb: &Sandbox, json: &str) -> std::path::PathBuf {
    let p = sb.root().join("profile.json");
    std::fs::write(&p, json).expect("profile");
    p
}

fn run(sb: &Sandbox, user: &TestUser, extra: &[&str], argv: &[&str]) -> Output {
    let mut c = user.nono(sb);
    c.arg("run").args(extra).arg("--").args(argv);
    c.output().expect("nono run")
}

/// A sandbox and an ordinary user who owns its workdir, home and temp dir.
fn user_sandbox(test: &str) -> Option<(Sandbox, TestUser)> {
    if !landlock(test) {
        return None;
    }
    let sb = Sandbox::new();
    let user = TestUser::create(test, &sb)?;
    Some((sb, user))
}

/// A python probe that prints the errno name of `body` (OK on success).
fn probe(body: &str) -> String {
    format!(
        "import errno, os, socket, sys\ntry:\n    {body}\n    print('OK')\nexcept OSError as e:\n    print(errno.errorcode.get(e.errno, e.errno))"
    )
}

/// The system interpreter (under /usr, which `base` grants; a pyenv shim
/// in root's home would be out of the user's reach).
fn py(sb: &Sandbox, user: &TestUser, profile: &std::path::Path, extra: &[&str], body: &str) -> String {
    let mut args = vec!["--profile", profile.to_str().expect("utf8")];
    args.extend_from_slice(extra);
    let out = run(sb, user, &args, &[PY, "-c", &probe(body)]);
    assert!(out.status.success(), "probe failed to run: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn have_python() -> bool {
    std::path::Path::new(PY).exists()
}

#[test]
fn a_hand_written_profile_allows_its_grants_and_denies_attacks() {
    let test = "a_hand_written_profile_allows_its_grants_and_denies_attacks";
    if !have_python() && !skip(test, "/usr/bin/python3 is needed for the probes") {
        return;
    }
    let Some((sb, user)) = user_sandbox(test) else { return };
    std::fs::create_dir_all(sb.home().join(".ssh")).expect("ssh");
    std::fs::write(sb.home().join(".ssh/id_rsa"), "secret").expect("key");
    std::fs::write(sb.work().join("notes.txt"), "notes").expect("notes");
    std::fs::create_dir_all(sb.root().join("ro")).expect("ro");
    std::fs::write(sb.root().join("ro/data.txt"), "data").expect("data");
    std::fs::create_dir_all(sb.root().join("outside")).expect("outside");
    // All of it is the user's: only the sandbox stands in the way.
    for d in [sb.home(), sb.work(), sb.root().join("ro"), sb.root().join("outside")] {
        user.chown_tree(&d);
    }
    let ok = TcpListener::bind("127.0.0.1:0").expect("listener");
    let other = TcpListener::bind("127.0.0.1:0").expect("listener");
    let (ok_port, other_port) = (ok.local_addr().expect("a").port(), other.local_addr().expect("a").port());
    let p = profile(
        &sb,
        &format!(
            r#"{{"extends": "base", "filesystem": {{"allow": ["$CWD"], "read": ["{ro}"]}},
                "network": {{"open_port": [{ok_port}], "listen_port": []}}}}"#,
            ro = sb.root().join("ro").display()
        ),
    );
    let w = sb.work();
    let outside = sb.root().join("outside");
    // Allowed.
    assert_eq!(py(&sb, &user, &p, &[], &format!("open('{}/new.txt', 'w').write('x')", w.display())), "OK");
    assert_eq!(py(&sb, &user, &p, &[], &format!("open('{}/data.txt').read()", sb.root().join("ro").display())), "OK");
    assert_eq!(py(&sb, &user, &p, &[], &format!("socket.create_connection(('127.0.0.1', {ok_port}), timeout=5).close()")), "OK");
    // Denied.
    let key = sb.home().join(".ssh/id_rsa");
    assert_eq!(py(&sb, &user, &p, &[], &format!("open('{}').read()", key.display())), "EACCES", "read ~/.ssh/id_rsa");
    assert_eq!(py(&sb, &user, &p, &[], &format!("open('{}/evil', 'w')", outside.display())), "EACCES", "write outside");
    assert!(!outside.join("evil").exists());
    let renamed = py(&sb, &user, &p, &[], &format!("os.rename('{}/notes.txt', '{}/stolen')", w.display(), outside.display()));
    assert!(renamed == "EXDEV" || renamed == "EACCES", "rename out of the workdir: {renamed}");
    assert!(w.join("notes.txt").exists());
    // Older Landlock ABIs cannot restrict TCP ports (< 4): nono runs anyway,
    // says so, and --strict refuses (tested below). Below ABI 3 Landlock
    // cannot restrict truncate either; there the broker decides truncate(2),
    // so a read-only file stays whole on every ABI. The VM suite runs this on
    // Debian 6.1 (ABI 2).
    let abi = abi();
    let expect = |min_abi: i64| if abi >= min_abi { "EACCES" } else { "OK" };
    assert_eq!(
        py(&sb, &user, &p, &[], &format!("os.truncate('{}/data.txt', 0)", sb.root().join("ro").display())),
        "EACCES",
        "truncate read-only"
    );
    assert_eq!(std::fs::read_to_string(sb.root().join("ro/data.txt")).expect("data"), "data");
    assert_eq!(
        py(&sb, &user, &p, &[], &format!("socket.create_connection(('127.0.0.1', {other_port}), timeout=5).close()")),
        expect(4),
        "connect to an unlisted port"
    );
    assert_eq!(py(&sb, &user, &p, &[], "socket.socket().bind(('127.0.0.1', 0))"), expect(4), "bind with listen_port []");
    if abi < 4 {
        let out = run(&sb, &user, &["--profile", p.to_str().expect("utf8")], &["true"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("TCP port rules need Landlock ABI 4"), "dropped rights not reported: {err}");
    }
    // --block-net: UDP and raw sockets too (seccomp), TCP to the allowed port too.
    assert_eq!(py(&sb, &user, &p, &["--block-net"], "socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"), "EACCES", "UDP");
    assert_eq!(py(&sb, &user, &p, &["--block-net"], "socket.socket(socket.AF_INET, socket.SOCK_STREAM)"), "EACCES", "TCP socket");
    assert_eq!(py(&sb, &user, &p, &["--block-net"], "socket.socket(socket.AF_UNIX).close()"), "OK", "Unix sockets stay");
    // Without --block-net, the baseline still closes UDP (the profile has no network.udp).
    assert_eq!(py(&sb, &user, &p, &[], "socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"), "EACCES", "UDP without a udp key");
    // --read / --write / --allow add grants from the command line; a grant
    // covering a sensitive path needs --allow-sensitive as well.
    let home = sb.home().display().to_string();
    let out = run(&sb, &user, &["--profile", p.to_str().expect("utf8"), "--read", &home], &["true"]);
    assert_eq!(out.status.code(), Some(125), "--read ~ covers ~/.ssh: {}", String::from_utf8_lossy(&out.stderr));
    let ssh = sb.home().join(".ssh").display().to_string();
    assert_eq!(
        py(&sb, &user, &p, &["--read", &home, "--allow-sensitive", &ssh], &format!("open('{}').read()", key.display())),
        "OK"
    );
}

#[test]
fn exit_status_signals_and_exec_errors_pass_through() {
    let test = "exit_status_signals_and_exec_errors_pass_through";
    let Some((sb, user)) = user_sandbox(test) else { return };
    let p = profile(&sb, r#"{"extends": "base", "filesystem": {"allow": ["$CWD"]}}"#);
    let ps = p.to_str().expect("utf8");
    assert_eq!(run(&sb, &user, &["--profile", ps], &["sh", "-c", "exit 9"]).status.code(), Some(9));
    let out = run(&sb, &user, &["--profile", ps], &["no-such-program-nono"]);
    assert_eq!(out.status.code(), Some(127), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&sb, &user, &["--profile", ps], &["/nonexistent"]);
    assert_eq!(out.status.code(), Some(127), "{}", String::from_utf8_lossy(&out.stderr));

    let child = user
        .nono(&sb)
        .args(["run", "--profile", ps, "--", "sh", "-c", "trap 'exit 5' TERM; touch started; while :; do sleep 0.1; done"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("nono run");
    sb.wait_for(&sb.work().join("started"), Duration::from_secs(30));
    // setpriv execs nono in place: this pid is nono's.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).expect("kill");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));

    // wrap: no supervisor, same sandbox.
    let evil = format!("/var/tmp/nono-wrap-evil-{}", std::process::id());
    let out = user
        .nono(&sb)
        .args(["wrap", "--profile", ps, "--", "sh", "-c", &format!("cat /etc/hostname >/dev/null && echo x > {evil}")])
        .output()
        .expect("wrap");
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!std::path::Path::new(&evil).exists());
}

#[test]
fn malformed_and_hostile_profiles_are_refused_before_running() {
    let sb = Sandbox::new();
    let marker = sb.work().join("ran");
    let cases = [
        ("{\"filesystem\": {\"alow\": [\"/\"]}}", "profile.json:1:"),
        ("{\"filesystem\": {\"read\": [\"../../etc\"]}}", "not absolute"),
        ("{\"filesystem\": {\"read\": [\"/usr/../etc\"]}}", "`..`"),
        ("{\"filesystem\": {\"read\": [\"$SECRET/x\"]}}", "unknown variable"),
        ("{\"extends\": \"./profile.json\"}", "cycle"),
        ("{\"extends\": \"no-such-builtin\"}", "unknown built-in"),
        ("not json", "profile.json:1:"),
    ];
    for (text, want) in cases {
        let p = profile(&sb, text);
        // As root: these fail while loading, before any check of who runs.
        let out = sb
            .cmd()
            .args(["run", "--profile", p.to_str().expect("utf8"), "--", "touch", marker.to_str().expect("utf8")])
            .output()
            .expect("nono run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{text}: {err}");
        assert!(err.contains(want), "{text}: expected {want:?} in: {err}");
        assert!(!marker.exists(), "{text}: the command ran");
    }
}

#[test]
fn strict_refuses_what_the_kernel_cannot_enforce() {
    // On this kernel (ABI >= 6) nothing is dropped, so --strict runs; the
    // refusal path is covered by the unit test of `degradation` and by the
    // VM suite on Debian 6.1 (ABI 2).
    let test = "strict_refuses_what_the_kernel_cannot_enforce";
    let Some((sb, user)) = user_sandbox(test) else { return };
    let p = profile(&sb, r#"{"extends": "base", "network": {"open_port": []}}"#);
    let out = run(&sb, &user, &["--strict", "--profile", p.to_str().expect("utf8")], &["true"]);
    if abi() >= 6 {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    } else {
        assert_eq!(out.status.code(), Some(125));
        assert!(String::from_utf8_lossy(&out.stderr).contains("--strict"));
    }
    // A rule only the supervisor's broker can enforce: `run` enforces it
    // where seccomp user notification works; `wrap` has no supervisor, so
    // --strict refuses it there.
    let p = profile(&sb, r#"{"extends": "base", "network": {"udp": {"dns": true}}}"#);
    let out = run(&sb, &user, &["--strict", "--profile", p.to_str().expect("utf8")], &["true"]);
    if nono::kernel::seccomp_notify().is_ok() {
        // Below ABI 6 --strict refuses for scoping, but never for this.
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() || abi() < 6, "run enforces network.udp through its broker: {err}");
        assert!(!err.contains("network.udp"), "run enforces network.udp through its broker: {err}");
    } else {
        assert_eq!(out.status.code(), Some(125), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = user
        .nono(&sb)
        .args(["wrap", "--strict", "--profile", p.to_str().expect("utf8"), "--", "true"])
        .output()
        .expect("nono wrap");
    assert_eq!(out.status.code(), Some(125), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("network.udp"), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = kernel_required();
}

#[test]
fn setup_reports_the_seccomp_baseline() {
    let out = std::process::Command::new(support::NONO).args(["setup", "--check-only"]).output().expect("setup");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("seccomp baseline")).unwrap_or_else(|| panic!("no baseline line:\n{text}"));
    assert!(line.contains("available"), "{line}");
}

/// Issue 22 §7: plain `nono run` (no root, no `--audit`) is not silent. What
/// nono's supervisor refused (the broker's and the seccomp baseline's
/// refusals) is listed at the end of the run; a command that fails with
/// nothing seen gets one line on how to see why; a command that succeeds
/// with nothing refused gets no line at all.
#[test]
fn a_plain_run_reports_what_the_supervisor_refused() {
    let test = "a_plain_run_reports_what_the_supervisor_refused";
    if !have_python() && !skip(test, "/usr/bin/python3 is needed for the probes") {
        return;
    }
    if nono::kernel::seccomp_notify().is_err()
        && !skip(test, "no seccomp user notification: nono runs without its supervisor's broker")
    {
        return;
    }
    let sb = Sandbox::new();
    sb.lived_in_home();
    let Some(user) = TestUser::create(test, &sb) else { return };
    let home = sb.home().display().to_string();
    let p = profile(&sb, r#"{"extends": "base", "filesystem": {"allow": ["$CWD"]}}"#);
    let p = p.to_str().expect("utf8");
    // A netlink socket (seccomp baseline), a chmod outside the write grants
    // (broker), and a read Landlock refuses (invisible without root).
    let code = format!(
        r#"import os, socket
for f in (lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0), lambda: os.chmod("{home}/.bashrc", 0o600), lambda: open("{home}/.ssh/id_ed25519").read()):
    try:
        f()
        print("OK")
    except OSError as e:
        print(e.errno)
"#
    );
    let out = run(&sb, &user, &["--profile", p], &[PY, "-c", &code]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout.lines().collect::<Vec<_>>(), ["13", "13", "13"], "each attempt is refused with EACCES:\n{stderr}");
    assert!(stderr.contains("the sandbox refused 2 call(s)"), "the refusals are counted:\n{stderr}");
    assert!(stderr.contains("socket netlink") && stderr.contains("[seccomp]"), "the baseline's refusal is named:\n{stderr}");
    assert!(stderr.contains(".bashrc") && stderr.contains("[broker]"), "the broker's refusal is named:\n{stderr}");
    // The command fails and the supervisor saw nothing (Landlock refused).
    let out = run(&sb, &user, &["--profile", p], &["cat", &format!("{home}/.ssh/id_ed25519")]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // Below Landlock ABI 6 (the 6.1 guest) every run also warns about what
    // the kernel cannot enforce; that is not about this run's refusals.
    let ours = |l: &&str| l.starts_with("nono:") && !l.contains("Landlock ABI");
    let hints: Vec<&str> = stderr.lines().filter(ours).collect();
    assert_eq!(hints.len(), 1, "one line on how to see why:\n{stderr}");
    assert!(hints[0].contains("sudo nono run --audit") && hints[0].contains("--kernel-audit"), "{stderr}");
    // Success with nothing refused: not a word from nono.
    let out = run(&sb, &user, &["--profile", p], &["true"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success() && !stderr.lines().any(|l| ours(&l)), "a clean run is silent:\n{stderr}");
}

/// Issue 22 §4b: a profile learned from `echo hi > f` carries the harmless
/// devices and the command's own terminal, so a later `2>/dev/null` works.
/// (The learner's side belongs to helper "sens": until it lands, the
/// learned profile has no `/dev/null` and this fails on the redirect.)
#[test]
fn a_learned_profile_keeps_the_harmless_devices() {
    let test = "a_learned_profile_keeps_the_harmless_devices";
    if !support::is_root() && !skip(test, "needs root: `sudo nono learn`") {
        return;
    }
    let Some(backend) = support::require_recorder(test) else { return };
    let sb = Sandbox::new();
    sb.lived_in_home();
    let Some(user) = TestUser::create(test, &sb) else { return };
    let learned = sb.home().join("echo.json");
    let out = user
        .sudo_nono(&sb)
        .args(["learn", "--no-progress", "--force", "--backend", &backend, "--output"])
        .arg(&learned)
        .args(["--", "sh", "-c", "echo hi > f"])
        .output()
        .expect("learn");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&learned).expect("profile");
    for dev in ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "$TTY"] {
        assert!(text.contains(dev), "the learned profile lacks {dev}:\n{text}");
    }
    std::fs::remove_file(sb.work().join("f")).expect("rm f");
    let out = run(
        &sb,
        &user,
        &["--profile", learned.to_str().expect("utf8")],
        &["sh", "-c", "ls nosuch 2>/dev/null; echo hi > f; echo ok"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok", "{stderr}");
    assert!(!stderr.contains("Permission denied") && !stderr.contains("cannot create"), "no redirect was refused:\n{stderr}");
}
