//! Issue 21 §2: the sandbox reaches only the command's own terminal.
//!
//! Each case opens ptys of the test user (their slaves belong to the user,
//! as a terminal emulator's would), runs the command with one of them as
//! its terminal, and tries the other: under the built-in `base` and under
//! a profile learned in a terminal, opening the other pty fails with
//! EACCES for reading and for writing, and nothing typed there is read,
//! while the command's own terminal works. A control shows the user can
//! open both outside the sandbox, so only the sandbox stands in the way.

use super::*;

/// A pty whose slave belongs to the test user: (master, slave, its path).
fn user_pty(w: &World) -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd, PathBuf) {
    let (master, slave) = pty();
    let path = std::fs::read_link(format!("/proc/self/fd/{}", slave.as_raw_fd())).expect("the pty's path");
    nix::unistd::chown(&path, Some(w.user.uid.into()), Some(w.user.gid.into())).expect("chown the pty");
    chmod(&path, 0o600);
    (master, slave, path)
}

/// Opens each path for reading and for writing (`O_NOCTTY`), and
/// `/dev/tty`; one line per attempt.
const OPEN_PROBE: &str = r#"own, other = sys.argv[1], sys.argv[2]
def opener(p, flags):
    def f():
        fd = os.open(p, flags | os.O_NOCTTY | os.O_NONBLOCK)
        if flags == os.O_WRONLY:
            os.write(fd, b"\x1b]52;c;cHduZWQ=\x07")
        else:
            try:
                os.read(fd, 64)
            except BlockingIOError:
                pass
        os.close(fd)
    return f
for p in (own, other):
    print(attempt(opener(p, os.O_RDONLY)))
    print(attempt(opener(p, os.O_WRONLY)))
print(attempt(opener("/dev/tty", os.O_RDONLY)))
"#;

/// What the command wrote to a terminal (read from its master).
fn written_to(master: &std::os::fd::OwnedFd) -> Vec<u8> {
    let fd = master.as_raw_fd();
    // SAFETY: fcntl/read on a descriptor we own, into a local buffer.
    unsafe {
        libc::fcntl(fd, libc::F_SETFL, libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK);
        let mut buf = [0u8; 512];
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        if n > 0 { buf[..n as usize].to_vec() } else { Vec::new() }
    }
}

/// Runs `OPEN_PROBE` in `own` (its stdin and controlling terminal) under
/// `profile`, or outside the sandbox when `None`; returns the lines.
fn probe_in_terminal(w: &World, profile: Option<&str>, own: &std::os::fd::OwnedFd, own_path: &Path, other: &Path) -> Vec<String> {
    let code = format!("{PRELUDE}{OPEN_PROBE}");
    let own_s = own_path.display().to_string();
    let other_s = other.display().to_string();
    let mut cmd = if let Some(p) = profile {
        w.run_under(p, &[], &[PY, "-c", &code, &own_s, &other_s])
    } else {
        let mut c = w.outside(PY);
        c.args(["-c", &code, &own_s, &other_s]);
        c
    };
    in_terminal(&mut cmd, own);
    let out = cmd.output().expect("probe");
    assert!(
        out.status.success(),
        "probe under {profile:?} failed ({}):\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout).lines().map(str::to_owned).collect()
}

fn expect_only_own(c: &mut Cases, under: &str, lines: &[String]) {
    c.expect(&format!("{under}: read its own terminal"), lines.first(), &["OK"]);
    c.expect(&format!("{under}: write its own terminal"), lines.get(1), &["OK"]);
    c.expect(&format!("{under}: read the user's other terminal"), lines.get(2), &["EACCES"]);
    c.expect(&format!("{under}: write the user's other terminal (OSC 52)"), lines.get(3), &["EACCES"]);
    c.expect(&format!("{under}: /dev/tty (its own controlling terminal)"), lines.get(4), &["OK"]);
}

#[test]
fn the_sandbox_reaches_only_its_own_terminal_under_base() {
    let Some(w) = world("the_sandbox_reaches_only_its_own_terminal_under_base") else { return };
    let (_own_m, own, own_path) = user_pty(w);
    let (other_m, _other, other_path) = user_pty(w);
    let mut c = Cases::default();
    // Control: outside the sandbox the user opens both.
    let lines = probe_in_terminal(w, None, &own, &own_path, &other_path);
    for (i, what) in ["read own", "write own", "read other", "write other", "/dev/tty"].iter().enumerate() {
        c.expect(&format!("control, outside: {what}"), lines.get(i), &["OK"]);
    }
    let _ = written_to(&other_m);
    let lines = probe_in_terminal(w, Some("base"), &own, &own_path, &other_path);
    expect_only_own(&mut c, "base", &lines);
    c.check("nothing reached the other terminal", written_to(&other_m).is_empty());
    c.done();
}

/// A profile learned while the command used its terminal grants that
/// terminal as `$TTY`, never all of `/dev/pts`. (Needs the learner's side
/// of issue 21 §2, helper "sens": until it lands, learn writes `/dev/pts`
/// and this case fails on "read the user's other terminal".)
#[test]
fn the_sandbox_reaches_only_its_own_terminal_under_a_learned_profile() {
    let test = "the_sandbox_reaches_only_its_own_terminal_under_a_learned_profile";
    let Some(w) = world(test) else { return };
    let (_m, learn_tty, learn_path) = user_pty(w);
    let mut learn = w.user.sudo_nono(&w.sb);
    learn.args(["learn", "--no-progress", "--force", "--name", "tty", "--backend"]);
    learn.arg(std::env::var("NONO_TEST_BACKEND").unwrap_or_else(|_| "auto".to_owned()));
    learn.args(["--", PY, "-c", &format!("{PRELUDE}{OPEN_PROBE}")]).arg(&learn_path).arg(&learn_path);
    in_terminal(&mut learn, &learn_tty);
    let out = learn.output().expect("learn");
    assert!(out.status.success(), "learn in a terminal failed:\n{}", text(&out.stderr));
    let profile = w.sb.home().join(".config/nono/profiles/tty.json");
    let written = std::fs::read_to_string(&profile).expect("the learned profile");
    let (_own_m, own, own_path) = user_pty(w);
    let (other_m, _other, other_path) = user_pty(w);
    let lines = probe_in_terminal(w, Some("tty"), &own, &own_path, &other_path);
    let mut c = Cases::default();
    c.check(&format!("the learned profile names no /dev/pts:\n{written}"), !written.contains("/dev/pts"));
    expect_only_own(&mut c, "learned", &lines);
    c.check("nothing reached the other terminal", written_to(&other_m).is_empty());
    c.done();
}

/// A command given no terminal (its output redirected, from an interactive
/// shell) cannot reach the shell's terminal through `/dev/tty`.
#[test]
fn dev_tty_is_refused_when_the_command_was_given_no_terminal() {
    let Some(w) = world("dev_tty_is_refused_when_the_command_was_given_no_terminal") else { return };
    let (master, slave, _path) = user_pty(w);
    let code = format!("{PRELUDE}print(attempt(lambda: os.close(os.open('/dev/tty', os.O_WRONLY))))\n");
    let fd = slave.as_raw_fd();
    let run = |mut cmd: Command| -> Output {
        // SAFETY: pre_exec in the forked child; setsid and ioctl are
        // async-signal-safe. stdin stays /dev/null.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() < 0 || libc::ioctl(fd, libc::TIOCSCTTY, 1) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.stdin(Stdio::null()).output().expect("run")
    };
    let mut control = w.outside(PY);
    control.args(["-c", &code]);
    let control = run(control);
    let out = run(w.run_under("base", &[], &[PY, "-c", &code]));
    let mut c = Cases::default();
    c.expect(
        "control: outside, /dev/tty opens the shell's terminal",
        text(&control.stdout).lines().next().map(str::to_owned).as_ref(),
        &["OK"],
    );
    c.expect("base: /dev/tty", text(&out.stdout).lines().next().map(str::to_owned).as_ref(), &["EACCES"]);
    // A profile of the user's that grants /dev/tty says why it is skipped.
    let p = extended(w, "devtty.json", r#""filesystem": {"allow_file": ["/dev/tty"]}"#);
    let out = run(w.run_under(&p, &[], &[PY, "-c", &code]));
    c.expect("a user profile: /dev/tty", text(&out.stdout).lines().next().map(str::to_owned).as_ref(), &["EACCES"]);
    c.check(
        &format!("nono says why ({})", text(&out.stderr)),
        text(&out.stderr).contains("rule skipped: /dev/tty") && text(&out.stderr).contains("no terminal"),
    );
    drop(master);
    c.done();
}

/// Granting the command its own terminal with `ioctl_dev` leaves the
/// seccomp baseline's TIOCSTI/TIOCLINUX row intact.
#[test]
fn tiocsti_stays_refused_on_the_commands_own_terminal() {
    let Some(w) = world("tiocsti_stays_refused_on_the_commands_own_terminal") else { return };
    let (_m, own, own_path) = user_pty(w);
    let code = r"import fcntl, termios
p = sys.argv[1]
fd = os.open(p, os.O_RDWR | os.O_NOCTTY)
print(attempt(lambda: fcntl.ioctl(fd, termios.TIOCSTI, b'X')))
print(attempt(lambda: fcntl.ioctl(0, termios.TIOCSTI, b'Y')))
print(sys_(16, fd, termios.TIOCLINUX, ctypes.c_char_p(b'\x06')))
print(attempt(lambda: fcntl.ioctl(fd, termios.TIOCGWINSZ, b'\0' * 8)))
";
    let mut cmd = w.run_under("base", &[], &[PY, "-c", &format!("{PRELUDE}{code}")]);
    cmd.arg(&own_path);
    in_terminal(&mut cmd, &own);
    let out = cmd.output().expect("run");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    let mut c = Cases::default();
    c.expect("TIOCSTI on $TTY opened by path", lines.first(), &["EPERM"]);
    c.expect("TIOCSTI on stdin", lines.get(1), &["EPERM"]);
    c.expect("TIOCLINUX", lines.get(2), &["EPERM"]);
    c.expect("an ordinary ioctl (TIOCGWINSZ) on $TTY works", lines.get(3), &["OK"]);
    c.check("nothing was typed into the terminal", pending_input(&own, Duration::from_millis(300)).is_empty());
    c.check(
        &format!("the refusals are reported at the end of the run ({})", text(&out.stderr)),
        text(&out.stderr).contains("TIOCSTI") || nono::kernel::seccomp_notify().is_err(),
    );
    c.done();
}
