//! Issue 21 §3: `$TMPDIR` is a private per-run directory, not the shared
//! `/tmp`.
//!
//! Under the built-in `base` and under the learned profile: the command's
//! `TMPDIR` is a fresh 0700 directory of the user's, what it creates there
//! is gone after the run, and it cannot write the shared `/tmp` (nor the
//! caller's own temp dir) at all, so it can neither leave files there for
//! other programs nor plant a symlink for one to follow. A control shows
//! the user can do both outside the sandbox. A planted per-user parent (a
//! symlink, or another user's directory) is refused, and the directory of
//! a run whose nono was killed (SIGKILL) is removed by the next run.

use super::*;

/// Prints TMPDIR, its mode and owner, then tries the shared temp dirs.
const TMP_PROBE: &str = r#"tmp, shared, caller, bashrc = sys.argv[1:5]
t = os.environ["TMPDIR"]
st = os.stat(t)
print(t)
print(oct(st.st_mode & 0o777), st.st_uid == os.getuid())
print(attempt(lambda: open(os.path.join(t, "mine.txt"), "w").write("x")))
print(attempt(lambda: open(os.path.join(shared, tmp), "w").write("x")))
print(attempt(lambda: os.symlink(bashrc, os.path.join(shared, tmp + ".link"))))
print(attempt(lambda: open(os.path.join(caller, tmp), "w").write("x")))
print(attempt(lambda: os.symlink(bashrc, os.path.join(caller, tmp + ".link"))))
print(attempt(lambda: os.mkdir(os.path.join(shared, "tmux-%d" % os.getuid()))))
"#;

fn tmp_probe(w: &World, profile: Option<&str>, name: &str) -> Output {
    let caller = w.sb.root().join("tmp").display().to_string();
    let bashrc = w.bashrc.display().to_string();
    let code = format!("{PRELUDE}{TMP_PROBE}");
    let args = [name, "/tmp", &caller, &bashrc];
    match profile {
        Some(p) => w.run_under(p, &[], &[PY, "-c", &code]).args(args).output().expect("run"),
        None => w.outside(PY).args(["-c", &code]).args(args).output().expect("outside"),
    }
}

fn cleanup_shared(w: &World, name: &str) {
    for dir in [PathBuf::from("/tmp"), w.sb.root().join("tmp")] {
        let _ = std::fs::remove_file(dir.join(name));
        let _ = std::fs::remove_file(dir.join(format!("{name}.link")));
    }
    let _ = std::fs::remove_dir(format!("/tmp/tmux-{}", w.user.uid));
}

#[test]
fn tmpdir_is_private_and_the_shared_tmp_is_closed() {
    let Some(w) = world("tmpdir_is_private_and_the_shared_tmp_is_closed") else { return };
    let name = format!("nono-escape-{}", std::process::id());
    let tmux = PathBuf::from(format!("/tmp/tmux-{}", w.user.uid));
    let tmux_existed = tmux.exists();
    let mut c = Cases::default();
    // Control: outside the sandbox the user writes both temp dirs.
    let out = tmp_probe(w, None, &name);
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    c.expect("control: a file in the shared /tmp", lines.get(3), &["OK"]);
    c.expect("control: a symlink in the shared /tmp", lines.get(4), &["OK"]);
    c.expect("control: a file in the caller's TMPDIR", lines.get(5), &["OK"]);
    cleanup_shared(w, &name);
    for profile in ["base", "escapes"] {
        let out = tmp_probe(w, Some(profile), &name);
        c.check(&format!("{profile}: the probe ran ({})", text(&out.stderr)), out.status.success());
        let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
        let private = PathBuf::from(lines.first().cloned().unwrap_or_default());
        let parent = w.sb.root().join("tmp").join(format!("nono-{}", w.user.uid));
        c.check(
            &format!("{profile}: TMPDIR {} is a run dir under {}", private.display(), parent.display()),
            private.parent() == Some(parent.as_path()),
        );
        c.expect(&format!("{profile}: TMPDIR is 0700 and the user's"), lines.get(1), &["0o700 True"]);
        // base grants $TMPDIR; the learned profile only what its workload
        // used (no temp file): either way the directory is the run's own.
        let own = if profile == "base" { &["OK"][..] } else { &["OK", "EACCES"][..] };
        c.expect(&format!("{profile}: a file in TMPDIR"), lines.get(2), own);
        c.expect(&format!("{profile}: a file in the shared /tmp"), lines.get(3), &["EACCES"]);
        c.expect(&format!("{profile}: a symlink planted in the shared /tmp"), lines.get(4), &["EACCES"]);
        c.expect(&format!("{profile}: a file in the caller's TMPDIR"), lines.get(5), &["EACCES"]);
        c.expect(&format!("{profile}: a symlink in the caller's TMPDIR"), lines.get(6), &["EACCES"]);
        c.expect(&format!("{profile}: pre-creating /tmp/tmux-UID"), lines.get(7), &["EACCES", "EEXIST"]);
        c.check(
            &format!("{profile}: the private dir is gone after the run"),
            !private.as_os_str().is_empty() && !private.exists(),
        );
        c.check(&format!("{profile}: nothing appeared in the shared /tmp"), !Path::new("/tmp").join(&name).exists());
        c.check(
            &format!("{profile}: no link in the shared /tmp"),
            std::fs::symlink_metadata(Path::new("/tmp").join(format!("{name}.link"))).is_err(),
        );
        c.check(&format!("{profile}: nothing in the caller's TMPDIR"), !w.sb.root().join("tmp").join(&name).exists());
        c.check(&format!("{profile}: no /tmp/tmux-UID made"), tmux.exists() == tmux_existed);
        cleanup_shared(w, &name);
    }
    c.done();
}

/// The per-user parent `TMPDIR/nono-UID` is created by nono; one planted
/// there (a symlink to a directory of the victim's, or another user's
/// directory) is refused, and nothing is created through it.
#[test]
fn a_planted_per_user_temp_parent_is_refused() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let Some(w) = world("a_planted_per_user_temp_parent_is_refused") else { return };
    // A caller's TMPDIR of its own, so the shared world's parent is untouched.
    let base = w.sb.root().join("tmp-planted");
    let target = w.sb.root().join("tmp-target");
    let _ = std::fs::remove_dir_all(&base);
    let _ = std::fs::remove_dir_all(&target);
    std::fs::create_dir(&base).expect("mkdir");
    std::fs::create_dir(&target).expect("mkdir");
    chmod(&base, 0o1777);
    let parent = base.join(format!("nono-{}", w.user.uid));
    let mut c = Cases::default();
    // Another user's (root's) directory in its place.
    std::fs::create_dir(&parent).expect("mkdir");
    chmod(&parent, 0o777);
    let out = w.run_under("base", &[], &["true"]).env("TMPDIR", &base).output().expect("run");
    c.check(
        &format!("another user's directory: refused with 125 ({})", text(&out.stderr)),
        out.status.code() == Some(125) && text(&out.stderr).contains("belongs to uid 0"),
    );
    c.check("nothing was made in it", std::fs::read_dir(&parent).expect("list").next().is_none());
    std::fs::remove_dir(&parent).expect("rmdir");
    // A symlink to a directory (of the user's, even: it is not nono's).
    std::os::unix::fs::symlink(&target, &parent).expect("symlink");
    w.user.chown_tree(&target);
    let out = w.run_under("base", &[], &["true"]).env("TMPDIR", &base).output().expect("run");
    c.check(
        &format!("a symlink: refused with 125 ({})", text(&out.stderr)),
        out.status.code() == Some(125) && text(&out.stderr).contains("symbolic link"),
    );
    c.check("nothing was made through the link", std::fs::read_dir(&target).expect("list").next().is_none());
    std::fs::remove_file(&parent).expect("rm");
    // Control: with the plant gone, the run works and leaves a 0700 parent.
    let out = w.run_under("base", &[], &["true"]).env("TMPDIR", &base).output().expect("run");
    c.check(&format!("control: the run works ({})", text(&out.stderr)), out.status.success());
    let meta = std::fs::symlink_metadata(&parent).expect("the parent exists");
    c.check(
        "control: a 0700 directory of the user's",
        meta.is_dir() && meta.uid() == w.user.uid && meta.permissions().mode() & 0o777 == 0o700,
    );
    let _ = std::fs::remove_dir_all(&base);
    let _ = std::fs::remove_dir_all(&target);
    c.done();
}

/// nono killed with SIGKILL leaves its run's directory; the next run removes it
/// (its process is gone), and leaves a live run's alone.
#[test]
fn the_next_run_removes_the_temp_dir_of_a_killed_run() {
    let Some(w) = world("the_next_run_removes_the_temp_dir_of_a_killed_run") else { return };
    let marker = w.sb.work().join("killed-run-tmpdir");
    let _ = std::fs::remove_file(&marker);
    let script = format!("echo \"$TMPDIR\" > {}; exec sleep 1000", marker.display());
    let mut child = w
        .run_under("base", &["--write", "."], &["sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run");
    w.sb.wait_for(&marker, Duration::from_secs(30));
    let mut dir = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while dir.trim().is_empty() && Instant::now() < deadline {
        dir = std::fs::read_to_string(&marker).unwrap_or_default();
        std::thread::sleep(Duration::from_millis(20));
    }
    let dir = PathBuf::from(dir.trim());
    let _ = child.kill();
    let _ = child.wait();
    let mut c = Cases::default();
    c.check(&format!("the killed run's {} is left behind", dir.display()), dir.is_dir());
    let out = w.run_under("base", &[], &["true"]).output().expect("run");
    c.check(&format!("the next run works ({})", text(&out.stderr)), out.status.success());
    c.check(&format!("and removed {}", dir.display()), !dir.exists());
    c.done();
}
