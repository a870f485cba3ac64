//! `nono run --rollback` and `nono rollback` (issue 24), end to end, as an
//! ordinary user in a lived-in home: an agent script wrecks a real git
//! repository inside its grant, and a restore puts back every byte, mode,
//! link and time (`git status --porcelain` is empty and a fingerprint of
//! every file matches the one taken before). Also: a dry run, a restore
//! refused because a file changed after the run, concurrent runs, a full
//! disk (a small tmpfs), SIGKILL during a snapshot, hostile names, links
//! out of the grant, exclusions, the size limit, a store the agent could
//! write, reflinks on a loop-mounted XFS, and `sudo nono run --audit
//! --rollback` linking the audit session to its snapshot.

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::{Sandbox, TestUser, is_root, output_text, require_recorder, skip};

/// Every path beneath `root` with what a restore must bring back: kind,
/// mode, size, SHA-256 or link target, and mtime (directories too).
fn fingerprint(root: &Path) -> BTreeMap<Vec<u8>, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).expect("lstat");
        let rel = p.strip_prefix(root).expect("beneath").as_os_str().as_bytes().to_vec();
        let what = if m.file_type().is_symlink() {
            format!("link {}", std::fs::read_link(&p).expect("readlink").display())
        } else if m.is_dir() {
            stack.extend(std::fs::read_dir(&p).expect("ls").map(|e| e.expect("entry").path()));
            "dir".to_owned()
        } else {
            let data = std::fs::read(&p).expect("read");
            let sum = openssl::sha::sha256(&data).iter().fold(String::new(), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            });
            format!("file {} {sum}", data.len())
        };
        out.insert(rel, format!("{what} mode {:o} mtime {}.{:09}", m.mode() & 0o7777, m.mtime(), m.mtime_nsec()));
    }
    out
}

/// The differences between two fingerprints, for assertion messages.
fn differences(a: &BTreeMap<Vec<u8>, String>, b: &BTreeMap<Vec<u8>, String>) -> String {
    let mut out = String::new();
    for (k, v) in a {
        match b.get(k) {
            None => {
                let _ = writeln!(out, "missing {:?}: {v}", String::from_utf8_lossy(k));
            }
            Some(w) if w != v => {
                let _ = writeln!(out, "differs {:?}: {v} / {w}", String::from_utf8_lossy(k));
            }
            _ => {}
        }
    }
    for (k, v) in b {
        if !a.contains_key(k) {
            let _ = writeln!(out, "extra {:?}: {v}", String::from_utf8_lossy(k));
        }
    }
    out
}

struct World {
    sb: Sandbox,
    user: TestUser,
    /// Files of the lived-in home, with their contents.
    home_files: Vec<(PathBuf, Vec<u8>)>,
    profile: PathBuf,
}

/// A test user in a lived-in home, and a profile: the built-in base, the
/// workdir read-write, and `extra` (JSON members of the profile).
fn world(test: &str, extra: &str) -> Option<World> {
    if !is_root() {
        skip(test, "needs root to make a test user");
        return None;
    }
    let sb = Sandbox::new();
    let home_files = sb.lived_in_home();
    let user = TestUser::create(test, &sb)?;
    let profile = sb.root().join("p.json");
    std::fs::write(&profile, format!(r#"{{"extends": "base", "filesystem": {{"allow": ["$CWD"]}}{extra}}}"#)).expect("profile");
    Some(World { sb, user, home_files, profile })
}

impl World {
    /// `nono run --profile P EXTRA -- sh -c SCRIPT` as the user, in `dir`.
    fn run_in(&self, dir: &Path, extra: &[&str], script: &str) -> Output {
        self.user
            .nono(&self.sb)
            .current_dir(dir)
            .args(["run", "--profile"])
            .arg(&self.profile)
            .args(extra)
            .args(["--", "sh", "-c", script])
            .output()
            .expect("nono run")
    }

    fn run(&self, extra: &[&str], script: &str) -> Output {
        self.run_in(&self.sb.work(), extra, script)
    }

    /// `nono ARGS` as the user; its output.
    fn nono(&self, args: &[&str]) -> Output {
        self.user.nono(&self.sb).args(args).output().expect("nono")
    }

    /// `nono ARGS` as the user, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.nono(args);
        assert!(out.status.success(), "nono {args:?}: {}", output_text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn store(&self) -> PathBuf {
        self.sb.home().join(".local/state/nono/rollback")
    }

    /// The ids of the snapshots, oldest first.
    fn snapshots(&self) -> Vec<serde_json::Value> {
        let json = self.ok(&["rollback", "list", "--format", "json"]);
        serde_json::from_str::<Vec<serde_json::Value>>(&json).expect("list json")
    }

    /// Writes `files` (relative path, contents) into `dir` as the user.
    fn files(&self, dir: &Path, files: &[(&str, &[u8])]) {
        for (rel, data) in files {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, data).expect("write");
        }
        self.user.chown_tree(dir);
    }

    /// The home's files are byte for byte as they were.
    fn home_untouched(&self) {
        for (p, data) in &self.home_files {
            assert_eq!(&std::fs::read(p).expect("home file"), data, "{} changed", p.display());
        }
    }

    /// Everything in the store is the user's, and no directory is open to others.
    fn store_is_private(&self) {
        let mut stack = vec![self.store()];
        while let Some(p) = stack.pop() {
            let m = std::fs::symlink_metadata(&p).expect("lstat");
            assert_eq!(m.uid(), self.user.uid, "{} is not the user's", p.display());
            if m.is_dir() {
                assert_eq!(m.mode() & 0o077, 0, "{} is open to others: {:o}", p.display(), m.mode());
                stack.extend(std::fs::read_dir(&p).expect("ls").map(|e| e.expect("entry").path()));
            }
        }
    }
}

/// `n` random bytes (`seed` keeps call sites telling which is which; the
/// bytes come from the kernel).
fn random(n: usize, seed: u8) -> Vec<u8> {
    use std::io::Read as _;
    let mut v = Vec::with_capacity(n);
    std::fs::File::open("/dev/urandom").expect("urandom").take(n as u64).read_to_end(&mut v).expect("random bytes");
    if let Some(first) = v.first_mut() {
        *first = seed;
    }
    v
}

/// A git repository with text, a binary, a large file, a sparse file,
/// links, an executable and nested directories, committed.
fn repository(w: &World) {
    let work = w.sb.work();
    w.files(
        &work,
        &[
            ("README.md", b"# project\n"),
            ("src/lib.rs", b"pub fn f() {}\n"),
            ("src/main.rs", b"fn main() { lib::f() }\n"),
            ("docs/guide.md", b"read me\n"),
            ("run.sh", b"#!/bin/sh\necho run\n"),
            ("assets/logo.bin", &random(200_000, 1)),
            ("large.bin", &random(16 << 20, 2)),
            ("nested/a/b/c/deep.txt", b"deep\n"),
            ("nested/top.txt", b"top\n"),
        ],
    );
    std::fs::set_permissions(work.join("run.sh"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let sparse = std::fs::File::create(work.join("sparse.img")).expect("sparse");
    sparse.set_len(64 << 20).expect("truncate");
    std::os::unix::fs::FileExt::write_all_at(&sparse, b"data in the middle", 32 << 20).expect("write");
    std::os::unix::fs::symlink("src/main.rs", work.join("link-rel")).expect("ln");
    std::os::unix::fs::symlink("/etc/passwd", work.join("link-abs")).expect("ln");
    w.user.chown_tree(&work);
    let out = w
        .user
        .run(&w.sb, "sh")
        .args(["-c", "git init -q && git add -A && git -c user.name=u -c user.email=u@x commit -qm init"])
        .output()
        .expect("git");
    assert!(out.status.success(), "git init: {}", output_text(&out));
}

/// What the agent does: deletes, rewrites, renames, creates (binary,
/// large, sparse), retargets and removes links, changes modes, removes a
/// nested directory, and commits it all.
const AGENT: &str = r"
set -e
export HOME=/nonexistent XDG_CONFIG_HOME=/nonexistent
rm README.md
printf 'pub fn f() { rewritten() }\n' > src/lib.rs
mv docs/guide.md docs/GUIDE.md
head -c 300000 /dev/urandom > new.bin
head -c 8388608 /dev/zero > zeros.dat
truncate -s 64M new-sparse.img
printf 'X' | dd of=sparse.img bs=1 seek=1000 conv=notrunc 2>/dev/null
printf 'tail' >> large.bin
ln -sf /etc/hostname link-abs
rm link-rel
ln -s src/lib.rs link-new
chmod 600 run.sh
chmod 700 src
rm -rf nested
mkdir -p made/deeper && printf 'made\n' > made/deeper/file.txt
git add -A
git -c user.name=agent -c user.email=a@x commit -qm 'agent was here'
echo agent-done
";

#[test]
fn an_agent_wrecking_a_git_repository_is_undone_exactly() {
    let test = "an_agent_wrecking_a_git_repository_is_undone_exactly";
    let Some(w) = world(test, "") else { return };
    repository(&w);
    let before = fingerprint(&w.sb.work());
    let out = w.run(&["--rollback"], AGENT);
    assert!(out.status.success(), "the agent failed: {}", output_text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nono: rollback: snapshot "), "{err}");
    assert!(err.contains("undo: nono rollback restore"), "{err}");
    assert_ne!(fingerprint(&w.sb.work()), before, "the agent changed nothing");

    let diff = w.ok(&["rollback", "diff"]);
    for expected in [
        "deleted      ",
        "README.md",
        "renamed      ",
        "docs/GUIDE.md  from ",
        "created      ",
        "new.bin",
        "mode 755 -> 600",
        "target /etc/passwd -> /etc/hostname",
        "nested/a/b/c/deep.txt",
    ] {
        assert!(diff.contains(expected), "diff lacks {expected:?}:\n{diff}");
    }
    assert!(!diff.lines().any(|l| l.ends_with("[after the run]")), "{diff}");
    assert!(!diff.contains("new.bin  from"), "a new file on a reused inode is not a rename:\n{diff}");

    // Nothing changed after the run: no question, no --yes needed.
    let restored = w.ok(&["rollback", "restore"]);
    assert!(restored.contains("restored snapshot"), "{restored}");
    let after = fingerprint(&w.sb.work());
    assert!(before == after, "the tree differs after the restore:\n{}", differences(&before, &after));
    let again = w.ok(&["rollback", "diff"]);
    assert!(again.contains("no changes"), "{again}");
    // (git status refreshes the index afterwards: the last look at the tree.)
    let status = w.user.run(&w.sb, "git").args(["status", "--porcelain"]).output().expect("git status");
    assert!(status.status.success(), "{}", output_text(&status));
    assert_eq!(String::from_utf8_lossy(&status.stdout), "", "git status after the restore");
    w.home_untouched();
    w.store_is_private();
}

#[test]
fn a_dry_run_changes_nothing() {
    let test = "a_dry_run_changes_nothing";
    let Some(w) = world(test, "") else { return };
    repository(&w);
    let out = w.run(&["--rollback"], AGENT);
    assert!(out.status.success(), "{}", output_text(&out));
    let wrecked = fingerprint(&w.sb.work());
    let dry = w.ok(&["rollback", "restore", "--dry-run"]);
    for expected in ["would restore", "write           ", "README.md", "remove          ", "new.bin", "mkdir           "] {
        assert!(dry.contains(expected), "dry run lacks {expected:?}:\n{dry}");
    }
    let json = w.ok(&["rollback", "restore", "--dry-run", "--format", "json"]);
    let steps: Vec<serde_json::Value> = serde_json::from_str(&json).expect("steps as JSON");
    let ops = |op: &str| steps.iter().filter(|s| s["op"] == op).count();
    assert!(ops("write") > 0 && ops("remove") > 0 && ops("make_dir") > 0, "{json}");
    assert!(steps.iter().all(|s| s["needs_consent"] == false), "{json}");
    let csv = w.ok(&["rollback", "diff", "--format", "csv"]);
    assert!(csv.starts_with("what,path,detail,when,recorded\n") && csv.contains("deleted,"), "{csv}");
    let now = fingerprint(&w.sb.work());
    assert!(wrecked == now, "a dry run changed the tree:\n{}", differences(&wrecked, &now));
}

#[test]
fn a_file_changed_after_the_run_is_not_overwritten_without_consent() {
    let test = "a_file_changed_after_the_run_is_not_overwritten_without_consent";
    let Some(w) = world(test, "") else { return };
    let work = w.sb.work();
    w.files(&work, &[("a.txt", b"a before\n"), ("b.txt", b"b before\n")]);
    let out = w.run(&["--rollback"], "echo 'a by the agent' > a.txt; echo 'b by the agent' > b.txt");
    assert!(out.status.success(), "{}", output_text(&out));
    // The user edits b.txt after the run.
    let edit = w.user.run(&w.sb, "sh").args(["-c", "echo 'b by the user' > b.txt"]).output().expect("edit");
    assert!(edit.status.success());
    let diff = w.ok(&["rollback", "diff"]);
    assert!(diff.lines().any(|l| l.contains("b.txt") && l.contains("[after the run]")), "{diff}");
    assert!(diff.lines().any(|l| l.contains("a.txt") && !l.contains("[after the run]")), "{diff}");

    let refused = w.nono(&["rollback", "restore"]);
    assert!(!refused.status.success(), "restored without consent: {}", output_text(&refused));
    let text = output_text(&refused);
    assert!(text.contains("b.txt") && text.contains("without confirmation"), "{text}");
    assert_eq!(std::fs::read_to_string(work.join("a.txt")).expect("a"), "a by the agent\n", "a refused restore changed a.txt");
    assert_eq!(std::fs::read_to_string(work.join("b.txt")).expect("b"), "b by the user\n");

    w.ok(&["rollback", "restore", "--skip-changed"]);
    assert_eq!(std::fs::read_to_string(work.join("a.txt")).expect("a"), "a before\n");
    assert_eq!(std::fs::read_to_string(work.join("b.txt")).expect("b"), "b by the user\n", "--skip-changed overwrote it");

    w.ok(&["rollback", "restore", "--yes"]);
    assert_eq!(std::fs::read_to_string(work.join("b.txt")).expect("b"), "b before\n");
}

#[test]
fn concurrent_runs_each_restore_their_own_tree() {
    let test = "concurrent_runs_each_restore_their_own_tree";
    let Some(w) = world(test, "") else { return };
    let dirs: Vec<PathBuf> = (0..3).map(|i| w.sb.home().join(format!("proj{i}"))).collect();
    let mut before = Vec::new();
    let shared = random(1 << 20, 9);
    for (i, d) in dirs.iter().enumerate() {
        std::fs::create_dir(d).expect("mkdir");
        w.files(d, &[("same-in-all.bin", &shared), ("own.txt", format!("project {i}\n").as_bytes()), ("sub/x", b"x")]);
        before.push(fingerprint(d));
    }
    let script = "sleep 1; rm own.txt; echo changed > sub/x; head -c 100000 /dev/urandom > new.bin";
    let handles: Vec<_> = dirs
        .iter()
        .map(|d| {
            let mut c: Command = w.user.nono(&w.sb);
            c.current_dir(d).args(["run", "--rollback", "--profile"]).arg(&w.profile).args(["--", "sh", "-c", script]);
            std::thread::spawn(move || c.output().expect("nono run"))
        })
        .collect();
    for h in handles {
        let out = h.join().expect("thread");
        assert!(out.status.success(), "{}", output_text(&out));
    }
    let list = w.snapshots();
    assert_eq!(list.len(), 3, "{list:#?}");
    for snap in &list {
        let id = snap["id"].as_str().expect("id");
        let cwd = PathBuf::from(snap["cwd"].as_str().expect("cwd"));
        let i = dirs.iter().position(|d| *d == cwd).expect("a snapshot of each project");
        w.ok(&["rollback", "restore", id]);
        let now = fingerprint(&dirs[i]);
        assert!(before[i] == now, "project {i}:\n{}", differences(&before[i], &now));
    }
    // The same content in three trees is stored once.
    let objects = walk_files(&w.store().join("objects"));
    let mib: Vec<_> = objects.iter().filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() == 1 << 20)).collect();
    assert_eq!(mib.len(), 1, "{mib:?}");
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() { stack.push(path) } else { out.push(path) }
        }
    }
    out
}

/// A mount that is unmounted (and its mount point removed) on drop.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `mount OPTIONS SOURCE AT`.
fn mount(options: &[&str], source: &std::ffi::OsStr, at: &Path) -> Mount {
    std::fs::create_dir_all(at).expect("mount point");
    let out = Command::new("mount").args(options).arg(source).arg(at).output().expect("mount");
    assert!(out.status.success(), "mount {options:?}: {}", output_text(&out));
    Mount(at.to_path_buf())
}

#[test]
fn a_full_disk_leaves_no_snapshot_and_the_command_does_not_run() {
    let test = "a_full_disk_leaves_no_snapshot_and_the_command_does_not_run";
    let Some(w) = world(test, "") else { return };
    let store = w.sb.root().join("small");
    let options = format!("size=2m,mode=0700,uid={},gid={}", w.user.uid, w.user.gid);
    let _m = mount(&["-t", "tmpfs", "-o", &options], "tmpfs".as_ref(), &store);
    let work = w.sb.work();
    w.files(&work, &[("a.bin", &random(3 << 20, 3)), ("b.bin", &random(3 << 20, 4))]);
    let out = w
        .user
        .nono(&w.sb)
        .env("NONO_ROLLBACK_DIR", &store)
        .args(["run", "--rollback", "--profile"])
        .arg(&w.profile)
        .args(["--", "sh", "-c", "touch ran"])
        .output()
        .expect("nono run");
    assert_eq!(out.status.code(), Some(125), "{}", output_text(&out));
    assert!(output_text(&out).contains("no space left"), "{}", output_text(&out));
    assert!(!work.join("ran").exists(), "the command ran without its snapshot");
    let list = w
        .user
        .nono(&w.sb)
        .env("NONO_ROLLBACK_DIR", &store)
        .args(["rollback", "list", "--format", "json"])
        .output()
        .expect("list");
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "[]", "{}", output_text(&list));
    let restore = w.user.nono(&w.sb).env("NONO_ROLLBACK_DIR", &store).args(["rollback", "restore"]).output().expect("restore");
    assert!(!restore.status.success() && output_text(&restore).contains("no snapshots"), "{}", output_text(&restore));
    let prune = w.user.nono(&w.sb).env("NONO_ROLLBACK_DIR", &store).args(["rollback", "prune"]).output().expect("prune");
    assert!(prune.status.success(), "{}", output_text(&prune));
    assert!(walk_files(&store.join("objects")).is_empty() && walk_files(&store.join("tmp")).is_empty());
    assert_eq!(std::fs::read_dir(store.join("snapshots")).expect("ls").count(), 0);
}

#[test]
fn sigkill_during_a_snapshot_leaves_nothing_a_restore_could_use() {
    let test = "sigkill_during_a_snapshot_leaves_nothing_a_restore_could_use";
    let Some(w) = world(test, "") else { return };
    let t0 = Instant::now();
    let work = w.sb.work();
    for d in 0..40 {
        let dir = work.join(format!("d{d}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for f in 0..250 {
            std::fs::write(dir.join(format!("f{f}")), random(4096, (d + f) as u8)).expect("write");
        }
    }
    std::fs::write(work.join("big.bin"), random(64 << 20, 7)).expect("big");
    w.user.chown_tree(&work);
    let snapshots = w.store().join("snapshots");
    let mut child = w
        .user
        .nono(&w.sb)
        .args(["run", "--rollback", "--profile"])
        .arg(&w.profile)
        .args(["--", "sh", "-c", "touch ran"])
        .spawn()
        .expect("nono run");
    let start = Instant::now();
    let partial = loop {
        let found = std::fs::read_dir(&snapshots)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".partial-"));
        if found {
            break true;
        }
        if start.elapsed() > Duration::from_mins(1) || child.try_wait().expect("wait").is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let status = child.wait().expect("wait");
    eprintln!("T killed {:?}", t0.elapsed());
    assert!(partial, "never saw the snapshot in progress (status {status})");
    assert!(!work.join("ran").exists(), "the command ran");
    assert!(w.snapshots().is_empty(), "an interrupted snapshot is listed");
    let restore = w.nono(&["rollback", "restore", "--yes"]);
    assert!(!restore.status.success() && output_text(&restore).contains("no snapshots"), "{}", output_text(&restore));
    // The store still works, and a prune clears what the dead one left.
    eprintln!("T checked {:?}", t0.elapsed());
    let pruned = w.ok(&["rollback", "prune"]);
    eprintln!("T pruned {:?}", t0.elapsed());
    assert!(pruned.contains("1 interrupted snapshot(s) cleaned up"), "{pruned}");
    assert!(walk_files(&w.store().join("tmp")).is_empty());
    let out = w.run(&["--rollback"], "rm -rf d3");
    eprintln!("T rerun {:?} {}", t0.elapsed(), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{}", output_text(&out));
    w.ok(&["rollback", "restore"]);
    assert_eq!(std::fs::read_dir(work.join("d3")).expect("d3 is back").count(), 250);
}

#[test]
fn hostile_names_are_restored_byte_for_byte() {
    let test = "hostile_names_are_restored_byte_for_byte";
    let Some(w) = world(test, "") else { return };
    let work = w.sb.work();
    let names: Vec<Vec<u8>> = vec![
        b"new\nline".to_vec(),
        b"tab\there".to_vec(),
        b"esc\x1b[31mred".to_vec(),
        b"bad\xff\xfeutf8".to_vec(),
        b"-rf".to_vec(),
        b"back\\slash".to_vec(),
        b"star*?[".to_vec(),
        b" spaced ".to_vec(),
        vec![b'n'; 255],
        "\u{202e}txt.exe".as_bytes().to_vec(),
    ];
    for (i, n) in names.iter().enumerate() {
        let dir = work.join(std::ffi::OsStr::from_bytes(n));
        std::fs::create_dir(&dir).expect("dir with a hostile name");
        std::fs::write(dir.join(std::ffi::OsStr::from_bytes(n)), format!("{i}")).expect("file with a hostile name");
    }
    w.user.chown_tree(&work);
    let before = fingerprint(&work);
    // The agent renames every entry and deletes a few (find -print0 keeps names whole).
    let script =
        r#"for d in ./*; do mv -- "$d/$(basename -- "$d")" "$d/renamed"; done; rm -rf ./-rf ./new*; mkdir "$(printf 'x\ny')""#;
    let out = w.run(&["--rollback"], script);
    assert!(out.status.success(), "{}", output_text(&out));
    let diff = w.nono(&["rollback", "diff"]);
    assert!(diff.status.success(), "{}", output_text(&diff));
    assert!(!diff.stdout.contains(&0x1b), "a raw escape reached the terminal:\n{}", String::from_utf8_lossy(&diff.stdout));
    assert!(!diff.stdout.windows(3).any(|w| w == "\u{202e}".as_bytes()), "a raw bidi override reached the terminal");
    assert!(String::from_utf8_lossy(&diff.stdout).contains("bad\\xff\\xfeutf8"), "{}", String::from_utf8_lossy(&diff.stdout));
    w.ok(&["rollback", "restore"]);
    let after = fingerprint(&work);
    assert!(before == after, "{}", differences(&before, &after));
}

#[test]
fn a_restore_never_follows_a_link_out_of_the_grant() {
    let test = "a_restore_never_follows_a_link_out_of_the_grant";
    let Some(w) = world(test, "") else { return };
    let work = w.sb.work();
    w.files(&work, &[("notes/todo.txt", b"mine\n"), (".bashrc", b"# the project's own rc\n"), ("keep.txt", b"k\n")]);
    let before = fingerprint(&work);
    let home = w.sb.home();
    // The agent swaps a directory and a file of its tree for links into the home.
    let script = format!(
        "rm -rf notes && ln -s {h}/notes notes && rm .bashrc && ln -s {h}/.bashrc .bashrc && ln -s {h}/.ssh ssh",
        h = home.display()
    );
    let out = w.run(&["--rollback"], &script);
    assert!(out.status.success(), "{}", output_text(&out));
    w.ok(&["rollback", "restore"]);
    let after = fingerprint(&work);
    assert!(before == after, "{}", differences(&before, &after));
    w.home_untouched();
    assert!(!home.join("notes/todo.txt").exists() || std::fs::read(home.join("notes/todo.txt")).expect("r") == b"buy milk\n");
}

#[test]
fn exclusions_are_reported_and_an_excluded_tree_is_never_taken_for_restored() {
    let test = "exclusions_are_reported_and_an_excluded_tree_is_never_taken_for_restored";
    let Some(w) = world(test, r#", "rollback": {"enabled": true, "exclude": ["*.log"]}"#) else { return };
    let work = w.sb.work();
    w.files(
        &work,
        &[
            ("node_modules/dep/index.js", b"dep v1\n"),
            ("target/debug/app", b"bin\n"),
            ("app.log", b"log\n"),
            ("src.rs", b"src\n"),
        ],
    );
    // The profile turns rollback on; no flag needed.
    let out = w.run(&[], "echo v2 > node_modules/dep/index.js; rm -rf target; echo more >> app.log; echo changed > src.rs");
    assert!(out.status.success(), "{}", output_text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a restore will NOT bring these back"), "{err}");
    for p in ["node_modules (excluded: node_modules/)", "target (excluded: target/)", "app.log (excluded: *.log)"] {
        assert!(err.contains(p), "{p:?} not reported:\n{err}");
    }
    let restored = w.ok(&["rollback", "restore"]);
    assert!(restored.contains("not in the snapshot (never restored)"), "{restored}");
    assert!(
        restored.lines().any(|l| l.contains("node_modules") && l.contains("CHANGED")) || restored.contains("node_modules"),
        "{restored}"
    );
    assert!(restored.lines().any(|l| l.contains("/target") && l.contains("REMOVED")), "{restored}");
    assert_eq!(std::fs::read_to_string(work.join("src.rs")).expect("src"), "src\n");
    assert_eq!(
        std::fs::read_to_string(work.join("node_modules/dep/index.js")).expect("dep"),
        "v2\n",
        "an excluded file was touched"
    );
    assert!(!work.join("target").exists());
    // --no-rollback overrides the profile.
    let before = w.snapshots().len();
    let out = w.run(&["--no-rollback"], "true");
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(w.snapshots().len(), before);
}

#[test]
fn a_snapshot_taken_while_files_change_is_marked_inconsistent_with_the_paths() {
    let test = "a_snapshot_taken_while_files_change_is_marked_inconsistent_with_the_paths";
    let Some(w) = world(test, "") else { return };
    let work = w.sb.work();
    for i in 0..200 {
        w.files(&work, &[(&format!("f{i}.txt"), b"still")]);
    }
    // Another program of the user's keeps writing into the workdir.
    let mut writer = w.user.run(&w.sb, "sh").args(["-c", "while :; do echo x >> busy.log; done"]).spawn().expect("writer");
    w.sb.wait_for(&work.join("busy.log"), Duration::from_secs(10));
    let out = w.run(&["--rollback"], "true");
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(writer.id() as i32, libc::SIGKILL) };
    let _ = writer.wait();
    assert!(out.status.success(), "{}", output_text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is INCONSISTENT") && err.contains("busy.log"), "{err}");
    assert!(!err.lines().any(|l| l.contains("/f1") && l.contains("warning:")), "a still file was named:\n{err}");
    let list = w.ok(&["rollback", "list"]);
    assert!(list.contains("inconsistent (1)"), "{list}");
    let diff = w.ok(&["rollback", "diff"]);
    assert!(diff.contains("INCONSISTENT: 1 path(s) changed while the snapshot was taken") && diff.contains("busy.log"), "{diff}");
}

#[test]
fn the_size_limit_refuses_the_run() {
    let test = "the_size_limit_refuses_the_run";
    let Some(w) = world(test, r#", "rollback": {"max_size": "1M"}"#) else { return };
    let work = w.sb.work();
    w.files(&work, &[("big.bin", &random(3 << 20, 5))]);
    let out = w.run(&["--rollback"], "touch ran");
    assert_eq!(out.status.code(), Some(125), "{}", output_text(&out));
    let text = output_text(&out);
    assert!(text.contains("more than the rollback limit") && text.contains("big.bin"), "{text}");
    assert!(!work.join("ran").exists());
    assert!(w.snapshots().is_empty());
}

#[test]
fn a_store_the_command_could_write_is_refused() {
    let test = "a_store_the_command_could_write_is_refused";
    let Some(w) = world(test, "") else { return };
    let inside = w.sb.work().join(".undo");
    let out = w
        .user
        .nono(&w.sb)
        .env("NONO_ROLLBACK_DIR", &inside)
        .args(["run", "--rollback", "--profile"])
        .arg(&w.profile)
        .args(["--", "sh", "-c", "touch ran"])
        .output()
        .expect("nono run");
    assert_eq!(out.status.code(), Some(125), "{}", output_text(&out));
    assert!(output_text(&out).contains("could alter its own snapshots"), "{}", output_text(&out));
    assert!(!w.sb.work().join("ran").exists() && !inside.exists());
}

#[test]
fn reflinks_on_xfs_clone_instead_of_copying() {
    let test = "reflinks_on_xfs_clone_instead_of_copying";
    if !is_root() {
        skip(test, "needs root to loop-mount an XFS image");
        return;
    }
    if Command::new("mkfs.xfs").arg("-V").output().is_err() {
        skip(test, "mkfs.xfs is missing (cargo xtask setup installs xfsprogs)");
        return;
    }
    let Some(w) = world(test, "") else { return };
    let image = w.sb.root().join("xfs.img");
    std::fs::File::create(&image).expect("image").set_len(512 << 20).expect("size");
    let mk = Command::new("mkfs.xfs").args(["-q", "-m", "reflink=1"]).arg(&image).output().expect("mkfs.xfs");
    assert!(mk.status.success(), "{}", output_text(&mk));
    let mnt = w.sb.root().join("xfs");
    let _m = mount(&["-o", "loop"], image.as_os_str(), &mnt);
    let work = mnt.join("work");
    std::fs::create_dir(&work).expect("work");
    std::fs::set_permissions(&mnt, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    w.files(&work, &[("a.bin", &random(8 << 20, 6)), ("b.txt", b"b\n")]);
    let store = mnt.join("store");
    std::fs::create_dir(&store).expect("store");
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    w.user.chown_tree(&store);
    let before = fingerprint(&work);
    let out = w
        .user
        .nono(&w.sb)
        .current_dir(&work)
        .env("NONO_ROLLBACK_DIR", &store)
        .args(["run", "--rollback", "--profile"])
        .arg(&w.profile)
        .args(["--", "sh", "-c", "head -c 1000 /dev/zero > a.bin; rm b.txt"])
        .output()
        .expect("nono run");
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 cloned"), "{}", output_text(&out));
    let restore = w
        .user
        .nono(&w.sb)
        .current_dir(&work)
        .env("NONO_ROLLBACK_DIR", &store)
        .args(["rollback", "restore"])
        .output()
        .expect("restore");
    assert!(restore.status.success(), "{}", output_text(&restore));
    assert!(String::from_utf8_lossy(&restore.stdout).contains("2 cloned"), "{}", output_text(&restore));
    let after = fingerprint(&work);
    assert!(before == after, "{}", differences(&before, &after));
}

#[test]
fn sudo_audit_rollback_links_the_session_to_its_snapshot() {
    let test = "sudo_audit_rollback_links_the_session_to_its_snapshot";
    let Some(backend) = require_recorder(test) else { return };
    let _ = backend;
    let Some(w) = world(test, "") else { return };
    let work = w.sb.work();
    w.files(&work, &[("a.txt", b"a\n"), ("b.txt", b"b\n")]);
    let before = fingerprint(&work);
    let out = w
        .user
        .sudo_nono(&w.sb)
        .args(["run", "--audit", "--rollback", "--profile"])
        .arg(&w.profile)
        .args(["--", "sh", "-c", "echo changed > a.txt; mv b.txt c.txt; echo new > d.txt"])
        .output()
        .expect("sudo nono run");
    assert!(out.status.success(), "{}", output_text(&out));
    let list = w.snapshots();
    assert_eq!(list.len(), 1);
    let id = list[0]["id"].as_str().expect("id").to_owned();
    let session = list[0]["audit"]["session"].as_i64().expect("an audit session in the snapshot");
    // `audit show` names the snapshot.
    let show = w.user.sudo_nono(&w.sb).args(["audit", "show", &session.to_string()]).output().expect("audit show");
    assert!(show.status.success(), "{}", output_text(&show));
    assert!(String::from_utf8_lossy(&show.stdout).contains(&format!("snapshot:         {id}")), "{}", output_text(&show));
    // The diff, found by the session number, shows what the recording saw do it.
    let diff = w.ok(&["rollback", "diff", &session.to_string()]);
    assert!(diff.contains(&format!("snapshot {id}")), "{diff}");
    assert!(diff.lines().any(|l| l.contains("recorded:") && (l.contains("sh[") || l.contains("mv["))), "{diff}");
    // So does the report.
    let page = w.sb.root().join("state/report.html");
    let rep =
        w.user.sudo_nono(&w.sb).args(["audit", "report", &session.to_string(), "--html"]).arg(&page).output().expect("report");
    assert!(rep.status.success(), "{}", output_text(&rep));
    assert!(std::fs::read_to_string(&page).expect("page").contains(&id));
    // Nothing in the store is root's.
    w.store_is_private();
    w.ok(&["rollback", "restore", &session.to_string()]);
    let after = fingerprint(&work);
    assert!(before == after, "{}", differences(&before, &after));
}
