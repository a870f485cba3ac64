//! End-to-end specification of `nono run` and `nono wrap` under real
//! Landlock and seccomp: what a hand-written profile allows works, and
//! every attacker step fails with EACCES.

mod support;

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::{Sandbox, kernel_required, skip};

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

fn run(sb: &Sandbox, extra: &[&str], argv: &[&str]) -> Output {
    let mut c = sb.cmd();
    c.arg("run").args(extra).arg("--").args(argv);
    c.output().expect("nono run")
}

/// A python probe that prints the errno name of `body` (OK on success).
fn probe(body: &str) -> String {
    format!(
        "import errno, os, socket, sys\ntry:\n    {body}\n    print('OK')\nexcept OSError as e:\n    print(errno.errorcode.get(e.errno, e.errno))"
    )
}

/// The real interpreter and its installation prefix (python3 may be a
/// pyenv shim living in a home directory the profile does not grant).
fn python() -> (String, String) {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable); print(sys.base_prefix)"])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    (lines.next().unwrap_or("python3").to_owned(), lines.next().unwrap_or("/usr").to_owned())
}

fn py(sb: &Sandbox, profile: &std::path::Path, extra: &[&str], body: &str) -> String {
    let (exe, prefix) = python();
    let mut args = vec!["--profile", profile.to_str().expect("utf8"), "--read", &prefix];
    args.extend_from_slice(extra);
    let out = run(sb, &args, &[&exe, "-c", &probe(body)]);
    assert!(out.status.success(), "probe failed to run: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn have_python() -> bool {
    Command::new("python3").arg("-c").arg("pass").status().is_ok_and(|s| s.success())
}

#[test]
fn a_hand_written_profile_allows_its_grants_and_denies_attacks() {
    let test = "a_hand_written_profile_allows_its_grants_and_denies_attacks";
    if !landlock(test) || (!have_python() && !skip(test, "python3 is needed for the probes")) {
        return;
    }
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.home().join(".ssh")).expect("ssh");
    std::fs::write(sb.home().join(".ssh/id_rsa"), "secret").expect("key");
    std::fs::write(sb.work().join("notes.txt"), "notes").expect("notes");
    std::fs::create_dir_all(sb.root().join("ro")).expect("ro");
    std::fs::write(sb.root().join("ro/data.txt"), "data").expect("data");
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
    // Allowed.
    assert_eq!(py(&sb, &p, &[], &format!("open('{}/new.txt', 'w').write('x')", w.display())), "OK");
    assert_eq!(py(&sb, &p, &[], &format!("open('{}/data.txt').read()", sb.root().join("ro").display())), "OK");
    assert_eq!(py(&sb, &p, &[], &format!("socket.create_connection(('127.0.0.1', {ok_port}), timeout=5).close()")), "OK");
    // Denied.
    let key = sb.home().join(".ssh/id_rsa");
    assert_eq!(py(&sb, &p, &[], &format!("open('{}').read()", key.display())), "EACCES", "read ~/.ssh/id_rsa");
    assert_eq!(py(&sb, &p, &[], &format!("open('{}/evil', 'w')", sb.root().display())), "EACCES", "write outside");
    let renamed = py(&sb, &p, &[], &format!("os.rename('{}/notes.txt', '{}/stolen')", w.display(), sb.root().display()));
    assert!(renamed == "EXDEV" || renamed == "EACCES", "rename out of the workdir: {renamed}");
    assert!(w.join("notes.txt").exists());
    // Older Landlock ABIs cannot restrict truncate (< 3) or TCP ports (< 4):
    // nono runs anyway, says so, and --strict refuses (tested below). The
    // VM suite runs this on Debian 6.1 (ABI 2).
    let abi = abi();
    let expect = |min_abi: i64| if abi >= min_abi { "EACCES" } else { "OK" };
    assert_eq!(
        py(&sb, &p, &[], &format!("os.truncate('{}/data.txt', 0)", sb.root().join("ro").display())),
        expect(3),
        "truncate read-only"
    );
    if abi >= 3 {
        assert_eq!(std::fs::read_to_string(sb.root().join("ro/data.txt")).expect("data"), "data");
    }
    assert_eq!(
        py(&sb, &p, &[], &format!("socket.create_connection(('127.0.0.1', {other_port}), timeout=5).close()")),
        expect(4),
        "connect to an unlisted port"
    );
    assert_eq!(py(&sb, &p, &[], "socket.socket().bind(('127.0.0.1', 0))"), expect(4), "bind with listen_port []");
    if abi < 4 {
        let out = run(&sb, &["--profile", p.to_str().expect("utf8")], &["true"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("TCP port rules need Landlock ABI 4"), "dropped rights not reported: {err}");
    }
    // --block-net: UDP and raw sockets too (seccomp), TCP to the allowed port too.
    assert_eq!(py(&sb, &p, &["--block-net"], "socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"), "EACCES", "UDP");
    assert_eq!(
        py(&sb, &p, &["--block-net"], &format!("socket.create_connection(('127.0.0.1', {ok_port}), timeout=5).close()")),
        "EACCES"
    );
    assert_eq!(py(&sb, &p, &["--block-net"], "socket.socket(socket.AF_UNIX).close()"), "OK", "Unix sockets stay");
    // --read / --write / --allow add grants from the command line.
    assert_eq!(py(&sb, &p, &["--read", sb.home().to_str().expect("utf8")], &format!("open('{}').read()", key.display())), "OK");
}

#[test]
fn exit_status_signals_and_exec_errors_pass_through() {
    let test = "exit_status_signals_and_exec_errors_pass_through";
    if !landlock(test) {
        return;
    }
    let sb = Sandbox::new();
    let p = profile(&sb, r#"{"extends": "base", "filesystem": {"allow": ["$CWD"]}}"#);
    let ps = p.to_str().expect("utf8");
    assert_eq!(run(&sb, &["--profile", ps], &["sh", "-c", "exit 9"]).status.code(), Some(9));
    let out = run(&sb, &["--profile", ps], &["no-such-program-nono"]);
    assert_eq!(out.status.code(), Some(127), "{}", String::from_utf8_lossy(&out.stderr));

    let child = sb
        .cmd()
        .args(["run", "--profile", ps, "--", "sh", "-c", "trap 'exit 5' TERM; touch started; while :; do sleep 0.1; done"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("nono run");
    sb.wait_for(&sb.work().join("started"), Duration::from_secs(30));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).expect("kill");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));

    // wrap: no supervisor, same sandbox.
    let out = sb
        .cmd()
        .args(["wrap", "--profile", ps, "--", "sh", "-c", "cat /etc/hostname >/dev/null && echo x > /var/tmp/nono-wrap-evil"])
        .output()
        .expect("wrap");
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!std::path::Path::new("/var/tmp/nono-wrap-evil").exists());
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
        let out = run(&sb, &["--profile", p.to_str().expect("utf8")], &["touch", marker.to_str().expect("utf8")]);
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
    if !landlock(test) {
        return;
    }
    let sb = Sandbox::new();
    let p = profile(&sb, r#"{"extends": "base", "network": {"open_port": []}}"#);
    let out = run(&sb, &["--strict", "--profile", p.to_str().expect("utf8")], &["true"]);
    // SAFETY: version query as above.
    let abi = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, 1u32) };
    if abi >= 5 {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    } else {
        assert_eq!(out.status.code(), Some(125));
        assert!(String::from_utf8_lossy(&out.stderr).contains("--strict"));
    }
    let _ = kernel_required();
}
