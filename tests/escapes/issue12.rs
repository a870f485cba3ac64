//! Issue 12's table, row by row, plus the path tricks that already held,
//! hostile profiles, exit codes and `wrap`.

use super::*;

const TIOCSTI_PROBE: &str = r"import fcntl, termios
print(attempt(lambda: fcntl.ioctl(0, termios.TIOCSTI, b'X')))
print(sys_(16, 0, termios.TIOCSTI | (0x5a << 32), ctypes.c_char_p(b'Y')))
print(sys_(16, 0, termios.TIOCLINUX, ctypes.c_char_p(b'\x06')))
";

#[test]
fn row1_tiocsti_cannot_type_into_the_users_terminal() {
    let Some(w) = world("row1_tiocsti_cannot_type_into_the_users_terminal") else { return };
    // Control, outside the sandbox: the injection works where the kernel
    // allows it (dev.tty.legacy_tiocsti), so the check below can fail.
    let (_m, slave) = pty();
    let mut control = w.outside(PY);
    control.args(["-c", &format!("{PRELUDE}{TIOCSTI_PROBE}")]);
    in_terminal(&mut control, &slave);
    let out = control.output().expect("control");
    let control_lines = text(&out.stdout);
    let injected = pending_input(&slave, Duration::from_millis(300));
    if control_lines.starts_with("OK") {
        assert_eq!(injected, b"XY", "the control injected through TIOCSTI (upper bits of cmd ignored by the kernel)");
    } else {
        eprintln!("note: TIOCSTI is refused here even outside the sandbox ({control_lines:?}); checking the errno only");
    }

    let (_m, slave) = pty();
    let mut attack = w.run(&[], &[PY, "-c", &format!("{PRELUDE}{TIOCSTI_PROBE}")]);
    in_terminal(&mut attack, &slave);
    let out = attack.output().expect("attack");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    let mut c = Cases::default();
    c.expect("ioctl(TIOCSTI) on the controlling terminal", lines.first(), &["EPERM"]);
    c.expect("ioctl(TIOCSTI) with garbage in the upper 32 bits", lines.get(1), &["EPERM"]);
    c.expect("ioctl(TIOCLINUX)", lines.get(2), &["EPERM"]);
    c.check("nothing was typed into the terminal", pending_input(&slave, Duration::from_millis(300)).is_empty());
    c.done();
}

// ---- row 2: TCP port rules ---------------------------------------------

#[test]
fn row2_tcp_port_rules_cannot_be_bypassed() {
    let Some(w) = world("row2_tcp_port_rules_cannot_be_bypassed") else { return };
    let outside = TcpListener::bind("127.0.0.1:0").expect("listener");
    outside.set_nonblocking(true).expect("nonblocking");
    let q = outside.local_addr().expect("addr").port();
    let code = r#"P, Q = int(sys.argv[1]), int(sys.argv[2])
MPTCP = 262
print(attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM, MPTCP).connect(("127.0.0.1", Q))))
print(attempt(lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM | socket.SOCK_NONBLOCK, MPTCP)))
print(attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM, 132)))
print(attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_SEQPACKET, 132)))
print(attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)))
s = socket.socket()
print(attempt(lambda: s.sendto(b"fastopen", socket.MSG_FASTOPEN, ("127.0.0.1", Q))))
print(attempt(lambda: s.sendmsg([b"fastopen"], [], socket.MSG_FASTOPEN, ("127.0.0.1", Q))))
print(sys_(307, s.fileno(), 0, 1, socket.MSG_FASTOPEN | (7 << 32)))
print(attempt(lambda: socket.create_connection(("127.0.0.1", Q), timeout=5)))
print(attempt(lambda: socket.socket().bind(("127.0.0.1", 0))))
print(attempt(lambda: socket.create_connection(("127.0.0.1", P), timeout=5).close()))
print(attempt(lambda: socket.socket().listen(1)))
"#;
    let lines = w.probe(&[], code, &[&w.port.to_string(), &q.to_string()]);
    let tcp = if abi() >= 4 { "EACCES" } else { "OK" };
    let mut c = Cases::default();
    c.expect("MPTCP socket + connect to an unlisted port", lines.first(), &["EACCES"]);
    c.expect("MPTCP socket (IPv6, SOCK_NONBLOCK)", lines.get(1), &["EACCES"]);
    c.expect("SCTP stream socket", lines.get(2), &["EACCES"]);
    c.expect("SCTP SOCK_SEQPACKET socket", lines.get(3), &["EACCES"]);
    c.expect("raw IP socket", lines.get(4), &["EACCES"]);
    c.expect("sendto(MSG_FASTOPEN) to an unlisted port", lines.get(5), &["EACCES"]);
    c.expect("sendmsg(MSG_FASTOPEN) to an unlisted port", lines.get(6), &["EACCES"]);
    c.expect("sendmmsg(MSG_FASTOPEN, upper garbage in flags)", lines.get(7), &["EACCES"]);
    c.expect("plain TCP connect to an unlisted port (Landlock ABI 4)", lines.get(8), &[tcp]);
    c.expect("TCP bind with listen_port [] (Landlock ABI 4)", lines.get(9), &[tcp]);
    c.expect("TCP connect to the learned port still works", lines.get(10), &["OK"]);
    // listen() on a socket nobody bound picks an ephemeral port itself;
    // Landlock's bind rule never sees it, the broker refuses it.
    let listen = if nono::kernel::seccomp_notify().is_ok() { "EACCES" } else { "OK" };
    c.expect("listen() on an unbound TCP socket (ephemeral port)", lines.get(11), &[listen]);
    if abi() >= 4 {
        c.check(
            "the outside listener received no connection",
            matches!(outside.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        );
    }
    c.done();
}

// ---- row 11: metadata, and pathname Unix sockets (the broker) -------------

#[test]
fn row11_metadata_and_unix_sockets_need_the_broker() {
    let Some(w) = world("row11_metadata_and_unix_sockets_need_the_broker") else { return };
    if nono::kernel::seccomp_notify().is_err() {
        skip("row11_metadata_and_unix_sockets_need_the_broker", "no seccomp user notification: nono runs without its broker");
        return;
    }
    let sock = w.sb.root().join("tmp/outside.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("outside socket");
    w.user.chown_tree(&sock);
    listener.set_nonblocking(true).expect("nonblocking");
    let key = w.key.display().to_string();
    let code = r#"K, S = sys.argv[1], sys.argv[2]
print(attempt(lambda: os.chmod(K, 0o644)))
print(attempt(lambda: os.chown(K, os.getuid(), os.getgid())))
print(attempt(lambda: os.utime(K, (0, 0))))
print(attempt(lambda: os.setxattr(K, "user.nono", b"x")))
fd = os.open(".", os.O_RDONLY)
print(attempt(lambda: os.chmod(os.path.basename(K), 0o644, dir_fd=os.open(os.path.dirname(K), os.O_PATH))))
def unix():
    s = socket.socket(socket.AF_UNIX)
    s.connect(S)
print(attempt(unix))
def unix_dgram():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(b"x", S)
print(attempt(unix_dgram))
open("mine.txt", "w").write("x")
print(attempt(lambda: os.chmod("mine.txt", 0o755)))
"#;
    let lines = w.probe(&[], code, &[&key, &sock.display().to_string()]);
    let mut c = Cases::default();
    c.expect("chmod 644 ~/.ssh/id_rsa", lines.first(), &["EACCES"]);
    c.expect("chown ~/.ssh/id_rsa", lines.get(1), &["EACCES"]);
    c.expect("utime ~/.ssh/id_rsa", lines.get(2), &["EACCES"]);
    c.expect("setxattr on ~/.ssh/id_rsa", lines.get(3), &["EACCES"]);
    c.expect("fchmodat through an O_PATH dirfd", lines.get(4), &["EACCES"]);
    c.expect("connect to an unlearned Unix socket", lines.get(5), &["EACCES"]);
    c.expect("sendto an unlearned Unix socket path", lines.get(6), &["EACCES"]);
    c.expect("control: chmod in the workdir", lines.get(7), &["OK"]);
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&w.key).expect("key").permissions().mode() & 0o777;
    c.check(&format!("the key's mode is unchanged ({mode:o})"), mode == 0o600);
    c.check("the outside socket got no connection", listener.accept().is_err());
    c.done();
}

// ---- row 3: a workdir that covers secrets ---------------------------------

#[test]
fn row3_a_grant_covering_secrets_is_refused_at_run_time() {
    let Some(w) = world("row3_a_grant_covering_secrets_is_refused_at_run_time") else { return };
    let p = w.sb.root().join("cwd.json");
    std::fs::write(&p, r#"{"extends": "base", "filesystem": {"allow": ["$CWD"]}}"#).expect("profile");
    let ps = p.display().to_string();
    let home = w.sb.home();
    let mut c = Cases::default();
    // `cd ~ && nono run --profile p.json -- cat ~/.ssh/id_rsa`
    let out = w.nono().current_dir(&home).args(["run", "--profile", &ps, "--", "cat", ".ssh/id_rsa"]).output().expect("run");
    let err = text(&out.stderr);
    c.check(&format!("workdir = $HOME: exit 125 (got {:?})", out.status.code()), out.status.code() == Some(125));
    c.check(
        &format!("the refusal names the grant and ~/.ssh: {err}"),
        err.contains(&format!("grant on {}", home.display())) && err.contains(&format!("- {} (", home.join(".ssh").display())),
    );
    c.check("the refusal names ~/.bashrc", err.contains(&format!("- {} (", w.bashrc.display())));
    c.check("and says how to allow it", err.contains("--allow-sensitive PATH"));
    c.check("the key was not printed", !text(&out.stdout).contains("secret"));
    // --write on ~/.bashrc itself.
    let out = w.run(&["--write", &w.bashrc.display().to_string()], &["true"]).output().expect("run");
    c.check(
        &format!("a write grant on ~/.bashrc: exit 125 ({})", text(&out.stderr)),
        out.status.code() == Some(125) && text(&out.stderr).contains("could write it"),
    );
    // Control: with the user's explicit consent it runs (so the refusal above is the check, not something else).
    let out = w
        .nono()
        .current_dir(&home)
        .args(["run", "--allow-sensitive", &home.display().to_string(), "--profile", &ps, "--", "cat", ".ssh/id_rsa"])
        .output()
        .expect("run");
    c.check(
        &format!("--allow-sensitive ~ lets it run ({})", text(&out.stderr)),
        out.status.success() && text(&out.stdout).contains("secret"),
    );
    // Exactness: the learned profile reads /etc, which holds /etc/shadow,
    // but this user cannot read it, so nothing is refused.
    let out = w.run(&[], &["true"]).output().expect("run");
    c.check(
        &format!("/etc readable but /etc/shadow not: runs ({})", text(&out.stderr)),
        out.status.success() && !text(&out.stderr).contains("refusing"),
    );
    c.done();
}

// ---- row 4: a profile the agent could rewrite ---------------------------

#[test]
fn row4_a_profile_the_command_could_rewrite_is_refused() {
    let Some(w) = world("row4_a_profile_the_command_could_rewrite_is_refused") else { return };
    let mut c = Cases::default();
    // learn's default output is outside the workdir, the user's, private.
    let meta = std::fs::metadata(w.profile()).expect("learned profile");
    let dir = std::fs::metadata(w.profile().parent().expect("dir")).expect("dir");
    c.check("the learned profile belongs to the user", std::os::unix::fs::MetadataExt::uid(&meta) == w.user.uid);
    c.check("its directory is 0700", std::os::unix::fs::PermissionsExt::mode(&dir.permissions()) & 0o777 == 0o700);
    // The old default: a profile in the workdir.
    let inside = w.sb.work().join("p.json");
    std::fs::copy(w.profile(), &inside).expect("copy");
    w.user.chown_tree(&inside);
    let out = w.nono().args(["run", "--profile", "./p.json", "--", "true"]).output().expect("run");
    let err = text(&out.stderr);
    c.check(
        &format!("a profile in the workdir: exit 125 naming file and grant ({err})"),
        out.status.code() == Some(125) && err.contains("p.json lies beneath the grant on"),
    );
    // An `extends` file in the workdir.
    std::fs::write(w.sb.work().join("inner.json"), "{}").expect("inner");
    let outer = w.sb.root().join("outer.json");
    std::fs::write(&outer, r#"{"extends": ["escapes", "./work/inner.json"]}"#).expect("outer");
    let out = w.nono().args(["run", "--profile", &outer.display().to_string(), "--", "true"]).output().expect("run");
    c.check(
        &format!("an extends file in the workdir: exit 125 ({})", text(&out.stderr)),
        out.status.code() == Some(125) && text(&out.stderr).contains("inner.json lies beneath"),
    );
    // And from inside, the real profile cannot be rewritten.
    let before = std::fs::read(w.profile()).expect("profile");
    let lines = w.probe(&[], "print(attempt(lambda: open(sys.argv[1], 'a').write('x')))", &[&w.profile().display().to_string()]);
    c.expect("writing the learned profile from inside", lines.first(), &["EACCES"]);
    c.check("the learned profile is unchanged", std::fs::read(w.profile()).expect("profile") == before);
    c.done();
}

// ---- row 5: signals -------------------------------------------------------

#[test]
fn row5_signals_stay_inside_the_sandbox() {
    let Some(w) = world("row5_signals_stay_inside_the_sandbox") else { return };
    let mut victim = w.victim();
    let pid = victim.id();
    std::thread::sleep(Duration::from_millis(100));
    let mut c = Cases::default();
    if abi() < 6 {
        scoping_is_reported_and_strict_refuses(w, &mut c, "signal scoping needs Landlock ABI 6");
    } else {
        let code = r"import signal
pid = int(sys.argv[1])
print(attempt(lambda: os.kill(pid, signal.SIGSTOP)))
def pidfd_kill():
    signal.pidfd_send_signal(os.pidfd_open(pid), signal.SIGKILL)
print(attempt(pidfd_kill))
print(attempt(lambda: os.kill(os.getppid(), signal.SIGKILL)))
print(attempt(lambda: os.kill(-1, signal.SIGKILL)))
";
        let lines = w.probe(&[], code, &[&pid.to_string()]);
        // In the pid namespace nono gives the command (issue 21 §5) the
        // outside process has no pid at all (ESRCH), and the parent is the
        // namespace's init, which ignores what its namespace sends it (OK,
        // and nothing happens: the probe goes on printing).
        c.expect("kill -STOP of the user's process outside", lines.first(), &["EPERM", "ESRCH"]);
        c.expect("pidfd_send_signal to the user's process outside", lines.get(1), &["EPERM", "ESRCH"]);
        c.expect("killing the supervisor (nono) or its guardian", lines.get(2), &["EPERM", "OK"]);
        c.expect("kill(-1, SIGKILL)", lines.get(3), &["EPERM", "ESRCH", "OK"]);
        c.check("the outside process is still running, not stopped", alive_and_running(pid));
        // Control: with sandbox.signal_outside the same kill works.
        let p = extended(w, "signals.json", r#""sandbox": {"signal_outside": true}"#);
        let lines = w.probe_under(
            &p,
            &[],
            "import signal\nprint(attempt(lambda: os.kill(int(sys.argv[1]), signal.SIGSTOP)))",
            &[&pid.to_string()],
        );
        c.expect("control: sandbox.signal_outside lets it stop the process", lines.first(), &["OK"]);
        c.check("control: the process is stopped", state(pid) == 'T');
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGCONT);
    }
    let _ = victim.kill();
    let _ = victim.wait();
    c.done();
}

/// Below ABI 6: the run says scoping is missing, and `--strict` refuses.
fn scoping_is_reported_and_strict_refuses(w: &World, c: &mut Cases, message: &str) {
    let out = w.run(&[], &["true"]).output().expect("run");
    c.check(
        &format!("ABI < 6: the run reports {message:?} ({})", text(&out.stderr)),
        out.status.success() && text(&out.stderr).contains(message),
    );
    let out = w.run(&["--strict"], &["true"]).output().expect("run");
    c.check(
        &format!("ABI < 6: --strict refuses ({})", text(&out.stderr)),
        out.status.code() == Some(125) && text(&out.stderr).contains("--strict"),
    );
}

// ---- row 6: abstract Unix sockets ---------------------------------------

const ABSTRACT_SERVER: &str = r#"import socket, sys
name, log = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\0" + name)
s.listen(5)
d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
d.bind("\0" + name + "-dgram")
open(log + ".ready", "w").close()
s.settimeout(0.1)
d.settimeout(0.1)
while True:
    try:
        c, _ = s.accept()
        open(log, "ab").write(b"connect:" + c.recv(100))
    except socket.timeout:
        pass
    try:
        open(log, "ab").write(b"dgram:" + d.recv(100))
    except socket.timeout:
        pass
"#;

#[test]
fn row6_abstract_unix_sockets_outside_are_unreachable() {
    let Some(w) = world("row6_abstract_unix_sockets_outside_are_unreachable") else { return };
    let name = format!("nono-escape-{}", std::process::id());
    let log = w.sb.root().join("abstract.log");
    let mut server = w.outside(PY).args(["-c", ABSTRACT_SERVER, &name]).arg(&log).spawn().expect("server");
    w.sb.wait_for(&PathBuf::from(format!("{}.ready", log.display())), Duration::from_secs(30));
    let mut c = Cases::default();
    if abi() < 6 {
        scoping_is_reported_and_strict_refuses(w, &mut c, "abstract Unix socket scoping needs Landlock ABI 6");
    } else {
        let code = r#"name = sys.argv[1]
def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("\0" + name)
    s.sendall(b"pwned")
print(attempt(connect))
print(attempt(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"pwned", "\0" + name + "-dgram")))
"#;
        let lines = w.probe(&[], code, &[&name]);
        c.expect("connect to an abstract socket served outside", lines.first(), &["EPERM"]);
        c.expect("sendto an abstract datagram socket outside", lines.get(1), &["EPERM"]);
        std::thread::sleep(Duration::from_millis(400));
        c.check("the outside server received nothing", std::fs::read(&log).unwrap_or_default().is_empty());
        // Control: with sandbox.abstract_unix_outside the connect gets through.
        let p = extended(w, "abstract.json", r#""sandbox": {"abstract_unix_outside": true}"#);
        let lines = w.probe_under(&p, &[], code, &[&name]);
        c.expect("control: abstract_unix_outside lets it connect", lines.first(), &["OK"]);
        std::thread::sleep(Duration::from_millis(400));
        c.check("control: the server saw it", !std::fs::read(&log).unwrap_or_default().is_empty());
    }
    let _ = server.kill();
    let _ = server.wait();
    c.done();
}

// ---- row 7: UDP and ICMP ---------------------------------------------------

const UDP_PROBE: &str = r#"R = int(sys.argv[1])
print(attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"exfil", ("127.0.0.1", R))))
print(attempt(lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)))
print(attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, socket.IPPROTO_UDP)))
print(attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM, 136)))
print(attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)))
print(attempt(lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_ICMPV6)))
print(attempt(lambda: socket.socketpair(socket.AF_INET, socket.SOCK_DGRAM)))
"#;

#[test]
fn row7_udp_and_icmp_are_closed_without_a_profile_key() {
    let Some(w) = world("row7_udp_and_icmp_are_closed_without_a_profile_key") else { return };
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("udp");
    receiver.set_nonblocking(true).expect("nonblocking");
    let r = receiver.local_addr().expect("addr").port().to_string();
    let lines = w.probe(&[], UDP_PROBE, &[&r]);
    let mut c = Cases::default();
    c.expect("UDP v4 sendto (DNS-style exfiltration)", lines.first(), &["EACCES"]);
    c.expect("UDP v6 socket", lines.get(1), &["EACCES"]);
    c.expect("UDP socket with SOCK_NONBLOCK|SOCK_CLOEXEC", lines.get(2), &["EACCES"]);
    c.expect("UDP-Lite socket", lines.get(3), &["EACCES"]);
    c.expect("ICMP echo socket", lines.get(4), &["EACCES"]);
    c.expect("ICMPv6 echo socket", lines.get(5), &["EACCES"]);
    c.expect("socketpair(AF_INET, SOCK_DGRAM)", lines.get(6), &["EACCES"]);
    let mut buf = [0u8; 64];
    c.check("the outside UDP receiver got nothing", receiver.recv(&mut buf).is_err());
    if nono::kernel::seccomp_notify().is_ok() {
        // `network.udp` opens UDP sockets; the broker checks destinations:
        // one the profile never saw is refused...
        let p = extended(w, "udp.json", r#""network": {"udp": {}}"#);
        let lines = w.probe_under(&p, &[], UDP_PROBE, &[&r]);
        c.expect("UDP to a destination the profile does not list", lines.first(), &["EACCES"]);
        std::thread::sleep(Duration::from_millis(100));
        c.check("the receiver still got nothing", receiver.recv(&mut buf).is_err());
        // ...control: the listed one is reached.
        let p = extended(w, "udp-to.json", &format!(r#""network": {{"udp": {{"to": ["127.0.0.1:{r}"]}}}}"#));
        let lines = w.probe_under(&p, &[], UDP_PROBE, &[&r]);
        c.expect("control: a listed UDP destination", lines.first(), &["OK"]);
    } else {
        // Without the broker, `network.udp` opens UDP to anywhere (reported).
        let p = extended(w, "udp.json", r#""network": {"udp": {}}"#);
        let lines = w.probe_under(&p, &[], UDP_PROBE, &[&r]);
        c.expect("control: network.udp lets it send", lines.first(), &["OK"]);
    }
    std::thread::sleep(Duration::from_millis(100));
    c.check("control: the receiver got it", receiver.recv(&mut buf).is_ok());
    c.done();
}

// ---- row 8: same-user IPC --------------------------------------------------

const IPC_KEY: i64 = 0x6e6f_6e6f;

/// Outside the sandbox, as the user: a key in the user keyring and a `SysV`
/// shared-memory segment, both holding "secret". Prints the key id.
const IPC_SETUP: &str = r#"K = int(sys.argv[1])
libc.syscall(250, 1, 0)                   # KEYCTL_JOIN_SESSION_KEYRING (a fresh one)
libc.syscall(250, 8, -4, -3)              # KEYCTL_LINK user keyring -> session: we possess it
key = libc.syscall(248, b"user", b"nono-escape", b"secret", 6, -4)
print(key if key >= 0 else "NOKEY-" + ename(ctypes.get_errno()))
libc.shmat.restype = ctypes.c_void_p
shm = libc.shmget(K, 4096, 0o1600)
addr = libc.shmat(shm, None, 0)
ctypes.memmove(addr, b"secret", 6)
print(shm)
"#;

/// Outside again: the key's payload and the segment's first bytes.
const IPC_CHECK: &str = r#"K, key = int(sys.argv[1]), int(sys.argv[2])
libc.syscall(250, 1, 0)
libc.syscall(250, 8, -4, -3)
buf = ctypes.create_string_buffer(64)
n = libc.syscall(250, 11, key, buf, 64) if key > 0 else -1
print(buf.raw[:n].decode() if n > 0 else "NOKEY")
libc.shmat.restype = ctypes.c_void_p
addr = libc.shmat(libc.shmget(K, 0, 0), None, 0)
print(ctypes.string_at(addr, 6).decode())
print(attempt(lambda: None) if libc.msgget(K, 0) < 0 and ctypes.get_errno() == errno.ENOENT else "MSGQ-EXISTS")
"#;

#[test]
fn row8_same_user_ipc_is_closed() {
    let Some(w) = world("row8_same_user_ipc_is_closed") else { return };
    let k = IPC_KEY + i64::from(std::process::id() % 1000);
    let out = w.outside(PY).args(["-c", &format!("{PRELUDE}{IPC_SETUP}"), &k.to_string()]).output().expect("setup");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let setup = text(&out.stdout);
    let mut setup_lines = setup.lines();
    let key = setup_lines.next().unwrap_or_default().to_owned();
    let shm = setup_lines.next().unwrap_or_default().to_owned();
    let key_id: i64 = key.parse().unwrap_or(-1);
    let code = r#"K, key, shm = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
buf = ctypes.create_string_buffer(64)
print(sys_(250, 11, key, buf, 64))                          # keyctl(KEYCTL_READ)
print(sys_(250, 2, key, ctypes.c_char_p(b"pwned"), 5))       # keyctl(KEYCTL_UPDATE)
print(sys_(248, ctypes.c_char_p(b"user"), ctypes.c_char_p(b"x"), ctypes.c_char_p(b"y"), 1, -4))   # add_key
print(sys_(249, ctypes.c_char_p(b"user"), ctypes.c_char_p(b"nono-escape"), 0, -4))               # request_key
print(sys_(29, K, 0, 0))                                     # shmget
print(sys_(30, shm, 0, 0))                                   # shmat
print(sys_(68, K, 0o1600))                                   # msgget (create)
print(sys_(64, K, 1, 0o1600))                                # semget (create)
print(sys_(240, ctypes.c_char_p(b"/nono-escape"), os.O_CREAT | os.O_RDWR, 0o600, 0))  # mq_open
"#;
    let lines = w.probe(&[], code, &[&k.to_string(), &key_id.max(1).to_string(), &shm]);
    let mut c = Cases::default();
    for (i, what) in ["keyctl READ of a key added outside", "keyctl UPDATE", "add_key", "request_key"].iter().enumerate() {
        c.expect(what, lines.get(i), &["EPERM"]);
    }
    for (i, what) in ["shmget of a segment created outside", "shmat", "msgget", "semget", "mq_open"].iter().enumerate() {
        c.expect(what, lines.get(4 + i), &["EPERM"]);
    }
    let out = w
        .outside(PY)
        .args(["-c", &format!("{PRELUDE}{IPC_CHECK}"), &k.to_string(), &key_id.to_string()])
        .output()
        .expect("check");
    let after: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    if key_id > 0 {
        c.expect("the key outside still reads \"secret\"", after.first(), &["secret"]);
    } else {
        eprintln!("note: keyrings unavailable here ({key}); only the errno was checked");
    }
    c.expect("the shared memory outside still holds \"secret\"", after.get(1), &["secret"]);
    c.expect("no message queue was created", after.get(2), &["OK"]);
    // Clean up the segment and the key.
    let _ = w
        .outside(PY)
        .args(["-c", &format!("{PRELUDE}libc.shmctl(libc.shmget({k}, 0, 0), 0, None)\nlibc.syscall(250, 21, {key_id})")])
        .output();
    c.done();
}

// ---- row 9: inherited descriptors -----------------------------------------

#[test]
fn row9_inherited_descriptors_are_closed() {
    let Some(w) = world("row9_inherited_descriptors_are_closed") else { return };
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("udp");
    receiver.set_nonblocking(true).expect("nonblocking");
    let r = receiver.local_addr().expect("addr").port().to_string();
    let sender = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup with a zeroed params struct of the right size.
    let ring = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) } as i32;
    let code = r#"R = int(sys.argv[1])
print(attempt(lambda: os.fstat(50)))
print(attempt(lambda: socket.socket(fileno=50).sendto(b"leak", ("127.0.0.1", R))))
print(attempt(lambda: os.fstat(51)))
print(sys_(426, 51, 1, 0, 0, 0, 0))
def is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False
print([fd for fd in range(4096) if is_open(fd)])
"#;
    let with_inherited = |extra: &[&str]| {
        let mut cmd = w.run(extra, &[PY, "-c", &format!("{PRELUDE}{code}"), &r]);
        let (udp, ring) = (sender.as_raw_fd(), ring);
        // SAFETY: dup2 in the forked child, before exec: what a careless
        // parent (a shell, an IDE) leaves open for the agent.
        unsafe {
            cmd.pre_exec(move || {
                libc::dup2(udp, 50);
                if ring >= 0 {
                    libc::dup2(ring, 51);
                }
                Ok(())
            });
        }
        let out = cmd.output().expect("run");
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).lines().map(str::to_owned).collect::<Vec<_>>()
    };
    let lines = with_inherited(&[]);
    let mut c = Cases::default();
    c.expect("an inherited UDP socket is closed", lines.first(), &["EBADF"]);
    c.expect("sending on it", lines.get(1), &["EBADF"]);
    c.expect("an inherited io_uring ring is closed", lines.get(2), &["EBADF"]);
    c.expect("io_uring_enter on it", lines.get(3), &["EPERM"]);
    c.expect("nothing above 2 is open", lines.get(4), &["[0, 1, 2]"]);
    let mut buf = [0u8; 64];
    c.check("the outside UDP receiver got nothing", receiver.recv(&mut buf).is_err());
    // Control: --pass-fd keeps the one the user names (and then it works).
    let lines = with_inherited(&["--pass-fd", "50"]);
    c.expect("control: --pass-fd 50 keeps it", lines.first(), &["OK"]);
    c.expect("control: the ring stays closed", lines.get(2), &["EBADF"]);
    std::thread::sleep(Duration::from_millis(100));
    if nono::kernel::seccomp_notify().is_ok() {
        // A passed socket is the user's choice, but where it sends is still
        // the profile's: the broker refuses a destination it does not list.
        c.expect("a passed UDP socket sending to an unlisted destination", lines.get(1), &["EACCES"]);
        c.check("the receiver got nothing", receiver.recv(&mut buf).is_err());
    } else {
        c.expect("control: and it sends", lines.get(1), &["OK"]);
        c.check("control: the receiver got it", receiver.recv(&mut buf).is_ok());
    }
    if ring >= 0 {
        // SAFETY: closing the ring we created.
        unsafe { libc::close(ring) };
    }
    c.done();
}

// ---- row 10: other socket families ----------------------------------------

#[test]
fn row10_netlink_vsock_and_other_families_are_closed() {
    let Some(w) = world("row10_netlink_vsock_and_other_families_are_closed") else { return };
    let code = r"print(attempt(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)))
print(attempt(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0)))
print(attempt(lambda: socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)))
print(attempt(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM)))
print(attempt(lambda: socket.socket(socket.AF_ALG, socket.SOCK_SEQPACKET)))
print(attempt(lambda: socket.socket(15, socket.SOCK_RAW, 2)))
print(attempt(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()))
";
    let lines = w.probe(&[], code, &[]);
    let mut c = Cases::default();
    for (i, what) in
        ["netlink route (NETLINK_ROUTE dump)", "netlink datagram", "AF_VSOCK", "AF_PACKET", "AF_ALG", "AF_KEY"].iter().enumerate()
    {
        c.expect(what, lines.get(i), &["EACCES"]);
    }
    c.expect("Unix sockets stay open", lines.get(6), &["OK"]);
    c.done();
}

// ---- the i386 and x32 entry points -----------------------------------------

const INT80: &str = r"import mmap
code = bytes([0xb8, 0x14, 0, 0, 0, 0xcd, 0x80, 0xc3])   # mov eax, 20 (getpid); int 0x80; ret
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
m.write(code)
f = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
print(f())
";

#[test]
fn the_i386_and_x32_entries_kill_the_command() {
    let Some(w) = world("the_i386_and_x32_entries_kill_the_command") else { return };
    let sigsys = 128 + libc::SIGSYS;
    let out = w.run(&[], &[PY, "-c", &format!("{PRELUDE}print(libc.syscall(0x40000000 | 39))")]).output().expect("run");
    assert_eq!(out.status.code(), Some(sigsys), "x32 getpid: {}", text(&out.stderr));
    let control = w.outside(PY).args(["-c", &format!("{PRELUDE}{INT80}")]).output().expect("control");
    if !control.status.success() {
        eprintln!("note: no i386 entry on this kernel ({}); int 0x80 not tested", control.status);
        return;
    }
    let out = w.run(&[], &[PY, "-c", &format!("{PRELUDE}{INT80}")]).output().expect("run");
    assert_eq!(out.status.code(), Some(sigsys), "int 0x80: {}", text(&out.stderr));
}

// ---- what already held: path and process tricks ----------------------------

#[test]
fn path_and_process_tricks_still_fail() {
    let Some(w) = world("path_and_process_tricks_still_fail") else { return };
    let work = w.sb.work();
    let link = work.join("key-link");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&w.key, &link).expect("symlink");
    let mut victim = w.victim();
    let pid = victim.id().to_string();
    std::thread::sleep(Duration::from_millis(100));
    let outside = w.sb.root().join("outside.txt");
    let code = r#"key, work, pid, outside, bashrc = sys.argv[1:6]
print(attempt(lambda: open(work + "/key-link").read()))
print(attempt(lambda: os.link(key, work + "/hard")))
print(attempt(lambda: open("/proc/self/root" + key).read()))
print(attempt(lambda: open("/proc/%s/root%s" % (pid, key)).read()))
print(attempt(lambda: open("/proc/%s/environ" % pid).read()))
print(attempt(lambda: open("/proc/%s/mem" % pid, "rb").read(1)))
def by_handle():
    h = ctypes.create_string_buffer(struct.pack("Ii", 128, 0) + bytes(128))
    mount_id = ctypes.c_int()
    if libc.syscall(303, -100, key.encode(), h, ctypes.byref(mount_id), 0) < 0:
        raise OSError(ctypes.get_errno(), "name_to_handle_at")
    if libc.syscall(304, -100, h, os.O_RDONLY) < 0:
        raise OSError(ctypes.get_errno(), "open_by_handle_at")
print(attempt(by_handle))
print(sys_(425, 4, ctypes.create_string_buffer(120)))
libc.unshare(0x10000000 | 0x00020000)
print(sys_(165, ctypes.c_char_p(os.path.dirname(key).encode()), ctypes.c_char_p((work + "/repo").encode()), 0, 4096, 0))
print(attempt(lambda: open(key).read()))
print(attempt(lambda: os.rename(work, work + "-moved")))
print(attempt(lambda: open(outside, "w").write("x")))
print(attempt(lambda: open(bashrc, "a").write("echo PWNED\n")))
# Landlock restricts truncate from ABI 3: below, it would empty the file.
print(attempt(lambda: os.truncate(bashrc, 0)) if sys.argv[6] == "truncate" else "EACCES")
"#;
    let bashrc = w.bashrc.display().to_string();
    let lines = w.probe(
        &[],
        code,
        &[
            &w.key.display().to_string(),
            &work.display().to_string(),
            &pid,
            &outside.display().to_string(),
            &bashrc,
            if abi() >= 3 { "truncate" } else { "skip" },
        ],
    );
    let mut c = Cases::default();
    c.expect("read the key through a symlink in the workdir", lines.first(), &["EACCES"]);
    c.expect("hardlink the key into the workdir", lines.get(1), &["EXDEV", "EACCES"]);
    c.expect("read it through /proc/self/root", lines.get(2), &["EACCES"]);
    c.expect("read it through /proc/<outside pid>/root", lines.get(3), &["EACCES"]);
    c.expect("/proc/<outside pid>/environ", lines.get(4), &["EACCES"]);
    c.expect("/proc/<outside pid>/mem", lines.get(5), &["EACCES"]);
    c.expect("open_by_handle_at", lines.get(6), &["EPERM"]);
    c.expect("io_uring (openat without the open syscall)", lines.get(7), &["EPERM"]);
    c.expect("mount --bind after unshare(USER|NS)", lines.get(8), &["EPERM"]);
    c.expect("read the key after unshare", lines.get(9), &["EACCES"]);
    c.expect("rename the workdir", lines.get(10), &["EACCES"]);
    c.expect("write outside the workdir", lines.get(11), &["EACCES"]);
    c.expect("append to ~/.bashrc", lines.get(12), &["EACCES"]);
    c.expect("truncate ~/.bashrc (from Landlock ABI 3)", lines.get(13), &["EACCES"]);
    c.check("no hardlink appeared", !work.join("hard").exists());
    c.check("the workdir was not moved", work.is_dir());
    c.check("nothing was written outside", !outside.exists());
    c.check("~/.bashrc is unchanged", std::fs::read_to_string(&w.bashrc).expect("rc") == "# rc\n");
    c.check("the outside process is still running", alive_and_running(victim.id()));
    // Control: outside the sandbox, the same user reads the victim's environ.
    let out = w.outside("cat").arg(format!("/proc/{pid}/environ")).output().expect("cat");
    c.check("control: outside the sandbox /proc/<pid>/environ is readable", out.status.success());
    let _ = std::fs::remove_file(&link);
    let _ = victim.kill();
    let _ = victim.wait();
    c.done();
}

// ---- hostile profiles -------------------------------------------------------

/// `nono run --profile SPEC -- true` as the user: (exit code, stderr, time).
fn run_profile(w: &World, spec: &Path) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let out = w.nono().args(["run", "--profile"]).arg(spec).args(["--", "true"]).output().expect("run");
    (out.status.code(), text(&out.stderr), started.elapsed())
}

#[test]
fn hostile_profiles_fail_fast_with_a_clear_error() {
    let Some(w) = world("hostile_profiles_fail_fast_with_a_clear_error") else { return };
    let dir = w.sb.root().join("hostile");
    std::fs::create_dir_all(&dir).expect("dir");
    let fifo = dir.join("fifo.json");
    let _ = std::fs::remove_file(&fifo);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
    std::fs::write(dir.join("extends-fifo.json"), r#"{"extends": "./fifo.json"}"#).expect("ext");
    // 12 parents x 7 levels over 8 files: exponential without memoising.
    for level in 0..8 {
        let text = if level == 7 {
            // The bottom grants what `true` needs (a ninth level would be too deep).
            r#"{"filesystem": {"read": ["/usr", "/lib", "/lib64", "/bin", "/etc"]}}"#.to_owned()
        } else {
            let parents: Vec<String> = (0..12).map(|_| format!("\"./fan{}.json\"", level + 1)).collect();
            format!("{{\"extends\": [{}]}}", parents.join(", "))
        };
        std::fs::write(dir.join(format!("fan{level}.json")), text).expect("fan");
    }
    let many: Vec<String> = (0..70).map(|i| format!("\"./many{i}.json\"")).collect();
    for i in 0..70 {
        std::fs::write(dir.join(format!("many{i}.json")), "{}").expect("many");
    }
    std::fs::write(dir.join("many.json"), format!("{{\"extends\": [{}]}}", many.join(", "))).expect("many");
    w.user.chown_tree(&dir);
    // Not a speed test: a bound that tells "loads each file once" from
    // "hangs" (the fan-out without memoising is 12^7, about 36 million
    // loads: minutes). Scaled by what starting nono costs here, three
    // times over plus 3 s, since an emulated guest beside a build takes
    // seconds just to start it and a sandboxed run starts more.
    let started = Instant::now();
    let out = w.nono().arg("--version").output().expect("nono --version");
    assert!(out.status.success());
    let second = started.elapsed() * 3 + Duration::from_secs(3);
    let mut c = Cases::default();
    for (spec, want) in [
        (fifo.clone(), "is a FIFO, not a regular file"),
        (dir.join("extends-fifo.json"), "fifo.json is a FIFO, not a regular file"),
        (PathBuf::from("/dev/zero"), "is a character device, not a regular file"),
        (dir.join("many.json"), "more than 64 distinct files"),
        (dir.clone(), "is a directory, not a regular file"),
    ] {
        let (code, err, took) = run_profile(w, &spec);
        c.check(
            &format!("{}: exit 125 with {want:?} within {second:?} (got {code:?} in {took:?}: {err})", spec.display()),
            code == Some(125) && err.contains(want) && took < second,
        );
    }
    let (code, err, took) = run_profile(w, &dir.join("fan0.json"));
    c.check(
        &format!("a 12x7 extends fan-out loads once per file, fast (got {code:?} in {took:?}: {err})"),
        code == Some(0) && took < second,
    );
    c.done();
}

#[test]
fn nono_stays_killable_while_it_loads_a_profile() {
    let Some(w) = world("nono_stays_killable_while_it_loads_a_profile") else { return };
    // A large, valid profile: about 500,000 grants take a while to plan.
    let big = w.sb.root().join("big.json");
    let paths = vec!["\"/usr\""; 500_000].join(",");
    std::fs::write(&big, format!("{{\"filesystem\": {{\"read\": [{paths}]}}}}")).expect("big");
    w.user.chown_tree(&big);
    let marker = w.sb.work().join("ran");
    let mut child = w
        .nono()
        .args(["run", "--profile"])
        .arg(&big)
        .args(["--", "touch"])
        .arg(&marker)
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    std::thread::sleep(Duration::from_millis(150));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    // setpriv execs nono in place: the pid is nono's.
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("kill");
    let started = Instant::now();
    let status = child.wait().expect("wait");
    let mut err = String::new();
    let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGTERM),
        "nono must die of SIGTERM while loading ({status}, {err})"
    );
    assert!(started.elapsed() < Duration::from_secs(2), "it died promptly: {:?}", started.elapsed());
    assert!(!marker.exists(), "the command never ran");
}

// ---- exit codes ------------------------------------------------------------

#[test]
fn exit_codes_tell_missing_from_unexecutable() {
    let Some(w) = world("exit_codes_tell_missing_from_unexecutable") else { return };
    let work = w.sb.work();
    std::fs::write(work.join("plain.txt"), "not a program\n").expect("plain");
    std::fs::write(work.join("bad-interp.sh"), "#!/nonexistent/interpreter\n").expect("script");
    chmod(&work.join("bad-interp.sh"), 0o755);
    w.user.chown_tree(&work);
    let mut c = Cases::default();
    for (mode, sub) in [("run", vec!["run", "--profile", "escapes", "--"]), ("wrap", vec!["wrap", "--profile", "escapes", "--"])]
    {
        for (argv, want) in [
            ("/nonexistent", 127),
            ("no-such-program-nono", 127),
            ("./plain.txt", 126),
            ("./repo", 126),
            ("./bad-interp.sh", 126),
        ] {
            let out = w.nono().args(&sub).arg(argv).output().expect("nono");
            c.check(
                &format!("{mode} {argv}: exit {want} (got {:?}: {})", out.status.code(), text(&out.stderr)),
                out.status.code() == Some(want),
            );
        }
    }
    c.done();
}

// ---- wrap --------------------------------------------------------------------

#[test]
fn wrap_has_the_same_baseline_and_names_what_it_cannot_enforce() {
    let Some(w) = world("wrap_has_the_same_baseline_and_names_what_it_cannot_enforce") else { return };
    let code = r"print(attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)))
print(sys_(425, 4, ctypes.create_string_buffer(120)))
print(attempt(lambda: os.fstat(50)))
print(attempt(lambda: open(sys.argv[1]).read()))
";
    let mut cmd = w.nono();
    cmd.args(["wrap", "--profile", "escapes", "--", PY, "-c", &format!("{PRELUDE}{code}")]).arg(&w.key);
    // SAFETY: dup2 in the forked child before exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::dup2(2, 50);
            Ok(())
        });
    }
    let out = cmd.output().expect("wrap");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    let mut c = Cases::default();
    c.expect("wrap: UDP", lines.first(), &["EACCES"]);
    c.expect("wrap: io_uring", lines.get(1), &["EPERM"]);
    c.expect("wrap: an inherited descriptor", lines.get(2), &["EBADF"]);
    c.expect("wrap: the key", lines.get(3), &["EACCES"]);
    // Rules only the supervisor's broker can enforce: said once, and --strict refuses.
    let p = extended(w, "broker.json", r#""network": {"unix_connect": ["/run/user/1/bus"]}"#);
    let out = w.nono().args(["wrap", "--profile", &p, "--", "true"]).output().expect("wrap");
    let err = text(&out.stderr);
    c.check(
        &format!("wrap names unix_connect as not enforced ({err})"),
        out.status.success() && err.contains("nono wrap has no supervisor") && err.contains("network.unix_connect"),
    );
    c.check("...once", err.matches("network.unix_connect").count() == 1);
    let out = w.nono().args(["wrap", "--strict", "--profile", &p, "--", "true"]).output().expect("wrap");
    c.check(
        &format!("wrap --strict refuses ({})", text(&out.stderr)),
        out.status.code() == Some(125) && text(&out.stderr).contains("--strict"),
    );
    let out = w.nono().args(["run", "--strict", "--profile", &p, "--", "true"]).output().expect("run");
    if nono::kernel::seccomp_notify().is_ok() {
        // Below ABI 6 --strict refuses for scoping, but never for this.
        c.check(
            &format!("run enforces it through its broker, even with --strict ({})", text(&out.stderr)),
            (out.status.success() || abi() < 6) && !text(&out.stderr).contains("network.unix_connect"),
        );
    } else {
        c.check(
            &format!("run without seccomp notification names it and --strict refuses ({})", text(&out.stderr)),
            out.status.code() == Some(125) && text(&out.stderr).contains("network.unix_connect"),
        );
    }
    c.done();
}

// ---- scoping by ABI ------------------------------------------------------------

#[test]
fn scoping_is_on_from_abi_6_and_reported_below() {
    let Some(w) = world("scoping_is_on_from_abi_6_and_reported_below") else { return };
    let out = w.run(&["--strict"], &["true"]).output().expect("run");
    let err = text(&out.stderr);
    if abi() >= 6 {
        assert!(out.status.success() && !err.contains("scoping"), "ABI {}: --strict runs, nothing degraded: {err}", abi());
    } else {
        assert_eq!(out.status.code(), Some(125), "ABI {}: --strict refuses: {err}", abi());
        assert!(err.contains("signal scoping needs Landlock ABI 6"), "{err}");
        let relaxed = extended(w, "relaxed.json", r#""sandbox": {"signal_outside": true, "abstract_unix_outside": true}"#);
        let out = w.nono().args(["run", "--profile", &relaxed, "--", "true"]).output().expect("run");
        assert!(!text(&out.stderr).contains("scoping"), "nothing to scope, nothing reported: {}", text(&out.stderr));
    }
}
