//! Issue 21 §5, the smaller holes of the supervisor.
//!
//! - `kill -9` of nono leaves nothing of the command's tree running: not
//!   the command, not a background child of its shell, not a grandchild
//!   that double-forked away from it. For `nono run` (a pid namespace
//!   here), for `nono run` with the subreaper fallback, and for `sudo nono
//!   learn`; and the same for `nono run` when the command simply exits.
//! - The broker's in-place replace of a brokered file that has a Landlock
//!   file rule streams the content: a 3 GiB sparse temp renamed over it
//!   keeps nono's peak RSS small, and the result is right (same inode,
//!   same bytes, holes kept).

use super::*;

/// The pids of the processes whose argv is exactly `sleep TAG`.
fn sleepers(tag: &str) -> Vec<u32> {
    let want = format!("sleep\0{tag}\0");
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == want.as_bytes()) && state(pid) != 'Z' {
            out.push(pid);
        }
    }
    out
}

/// Waits until `f` holds (a deadline only so a failure cannot hang: a
/// `sudo nono learn` in the emulated VM guests takes many seconds to load
/// its programs while other tests run beside it).
fn until(f: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(240);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    f()
}

/// The tree: a shell with a background child, a double-forked grandchild
/// (its parent exits at once: an orphan), and a foreground sleep.
fn tree(tag: u32) -> String {
    format!("sleep {tag}1 & (sleep {tag}2 &) ; sleep {tag}3")
}

fn tags(tag: u32) -> [String; 3] {
    [format!("{tag}1"), format!("{tag}2"), format!("{tag}3")]
}

fn all_running(tag: u32) -> bool {
    tags(tag).iter().all(|t| sleepers(t).len() == 1)
}

fn none_left(tag: u32) -> bool {
    tags(tag).iter().all(|t| sleepers(t).is_empty())
}

fn kill_nono_mid_run(c: &mut Cases, what: &str, mut cmd: Command, tag: u32) {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start nono");
    c.check(&format!("{what}: the tree started"), until(|| all_running(tag)));
    // nono itself: setpriv execs it, and `sudo nono` is nono.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL).expect("kill -9");
    let _ = child.wait();
    c.check(&format!("{what}: nothing of the tree survives kill -9 of nono"), until(|| none_left(tag)));
    for t in tags(tag) {
        for p in sleepers(&t) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p as i32), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

#[test]
fn kill_9_of_nono_ends_the_whole_tree() {
    let Some(w) = world("kill_9_of_nono_ends_the_whole_tree") else { return };
    let mut c = Cases::default();
    let base = 7_100 + std::process::id() % 100 * 10;
    let t = base;
    kill_nono_mid_run(&mut c, "run", w.run_under("base", &[], &["sh", "-c", &tree(t)]), t);
    let t = base + 1;
    kill_nono_mid_run(
        &mut c,
        "run --containment subreaper",
        w.run_under("base", &["--containment", "subreaper"], &["sh", "-c", &tree(t)]),
        t,
    );
    let t = base + 2;
    let mut learn = w.user.sudo_nono(&w.sb);
    learn.args(["learn", "--no-progress", "--force", "--output"]).arg(w.sb.root().join("killed.json"));
    learn.args(["--", "sh", "-c", &tree(t)]);
    kill_nono_mid_run(&mut c, "sudo nono learn", learn, t);
    // Control: the same tree outside nono, its shell killed, leaves its
    // children running (so the checks above can fail).
    let t = base + 3;
    let mut outside = w.outside("sh").args(["-c", &tree(t)]).stdout(Stdio::null()).spawn().expect("sh");
    c.check("control: the tree started", until(|| all_running(t)));
    let _ = outside.kill();
    let _ = outside.wait();
    c.check(
        "control: its children outlive the shell",
        sleepers(&format!("{t}1")).len() == 1 && sleepers(&format!("{t}2")).len() == 1,
    );
    for tg in tags(t) {
        for p in sleepers(&tg) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p as i32), nix::sys::signal::Signal::SIGKILL);
        }
    }
    c.done();
}

#[test]
fn what_the_command_leaves_running_ends_when_it_exits() {
    let Some(w) = world("what_the_command_leaves_running_ends_when_it_exits") else { return };
    let mut c = Cases::default();
    let base = 7_600 + std::process::id() % 100 * 10;
    // Exits once both are running (pgrep reads the host's /proc, which
    // base grants).
    let script = |t: u32| format!("sleep {t}1 & (sleep {t}2 &) ; until pgrep -x -f 'sleep {t}2' >/dev/null; do :; done; exit 3");
    for (i, extra) in [&[][..], &["--containment", "subreaper"][..]].iter().enumerate() {
        let t = base + i as u32;
        let out = w.run_under("base", extra, &["sh", "-c", &script(t)]).output().expect("run");
        c.check(
            &format!("run {extra:?}: the command's status passes through ({})", text(&out.stderr)),
            out.status.code() == Some(3),
        );
        c.check(
            &format!("run {extra:?}: nothing left running"),
            until(|| sleepers(&format!("{t}1")).is_empty() && sleepers(&format!("{t}2")).is_empty()),
        );
    }
    c.done();
}

/// The peak resident set of a process, in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

const GIB3: u64 = 3 << 30;

/// The save: a brokered temp sibling made 3 GiB (sparse, data at both
/// ends), renamed over the brokered target; then it waits for the test to
/// read nono's peak RSS.
const BIG_SAVE: &str = r#"import os, time
h, work = os.environ["HOME"], os.getcwd()
fd = os.open(h + "/big.dat.tmp", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
os.ftruncate(fd, 3 << 30)
os.pwrite(fd, b"head", 0)
os.pwrite(fd, b"tail", (3 << 30) - 4)
os.close(fd)
os.rename(h + "/big.dat.tmp", h + "/big.dat")
f = open(h + "/big.dat", "rb")
print(f.read(4).decode())
open(work + "/renamed", "w").close()
while not os.path.exists(work + "/go"):
    time.sleep(0.02)
"#;

#[test]
fn a_3gib_sparse_replace_is_streamed() {
    use std::io::Seek as _;
    use std::os::unix::fs::MetadataExt as _;
    let test = "a_3gib_sparse_replace_is_streamed";
    let Some(w) = world(test) else { return };
    if nono::kernel::seccomp_notify().is_err() {
        skip(test, "no seccomp user notification: nono runs without its broker");
        return;
    }
    let target = w.sb.home().join("big.dat");
    std::fs::write(&target, "old content\n").expect("target");
    w.user.chown_tree(&target);
    let ino = std::fs::metadata(&target).expect("meta").ino();
    for f in ["renamed", "go"] {
        let _ = std::fs::remove_file(w.sb.work().join(f));
    }
    // A Landlock file rule on the target (so the replace must keep its
    // inode) and a brokered rule for the save's names.
    let p = w.sb.root().join("big.json");
    std::fs::write(
        &p,
        r#"{"extends": "base", "filesystem": {"allow": ["$CWD"], "allow_file": ["$HOME/big.dat"],
           "brokered": [{"dir": "$HOME", "names": ["big.dat", "big.dat.tmp"], "ops": ["create", "write", "rename", "remove"]}]}}"#,
    )
    .expect("profile");
    let child = w
        .run_under(&p.display().to_string(), &[], &[PY, "-c", BIG_SAVE])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    let renamed = w.sb.work().join("renamed");
    let mut c = Cases::default();
    c.check("the save finished", until(|| renamed.exists()));
    let peak = peak_rss_kib(child.id());
    std::fs::write(w.sb.work().join("go"), "").expect("go");
    let out = child.wait_with_output().expect("wait");
    c.check(&format!("the run succeeded ({})", text(&out.stderr)), out.status.success());
    c.expect(
        "the sandbox reads its new file through the same rule",
        text(&out.stdout).lines().next().map(str::to_owned).as_ref(),
        &["head"],
    );
    c.check(&format!("nono's peak RSS stayed small: {peak} KiB"), peak > 0 && peak < 200 * 1024);
    let meta = std::fs::metadata(&target).expect("target");
    c.check("the target kept its inode", meta.ino() == ino);
    c.check(&format!("the target is 3 GiB ({})", meta.len()), meta.len() == GIB3);
    c.check(&format!("its holes stayed holes ({} blocks)", meta.blocks()), meta.blocks() * 512 < 16 << 20);
    let mut f = std::fs::File::open(&target).expect("open");
    let mut head = [0u8; 4];
    f.read_exact(&mut head).expect("head");
    f.seek(std::io::SeekFrom::Start(GIB3 - 4)).expect("seek");
    let mut tail = [0u8; 4];
    f.read_exact(&mut tail).expect("tail");
    c.check("head and tail are the new content", &head == b"head" && &tail == b"tail");
    c.check("the temp is gone", !w.sb.home().join("big.dat.tmp").exists());
    let _ = std::fs::remove_file(&target);
    c.done();
}

/// `nono setup --check-only` says how the tree is made to end with nono
/// here, for the user who asks.
#[test]
fn setup_says_how_the_tree_ends_with_nono() {
    let Some(w) = world("setup_says_how_the_tree_ends_with_nono") else { return };
    let out = w.nono().args(["setup", "--check-only"]).output().expect("setup");
    let report = text(&out.stdout);
    let line = report.lines().find(|l| l.trim_start().starts_with("tree ends with nono")).unwrap_or_default();
    assert!(
        line.contains("a pid namespace in an unprivileged user namespace") || line.contains("subreaper guardian"),
        "setup names the containment:\n{report}"
    );
}
