//! The invoker's helpers on real files, as root and as another user.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

use super::fs::{FsError, check_writable, make_private_dirs, write_atomic};
use super::*;

fn other_user() -> Identity {
    Identity { uid: 4321, gid: 4322, groups: vec![4322], name: "t".into(), home: "/".into() }
}

/// Runs `f` on a fresh thread acting as uid 4321 / gid 4322 for files, the
/// way nono's threads act for the invoking user under sudo; `None` without
/// root (after saying why; a failure under CI). Shared with the store's
/// tests.
pub(crate) fn as_other<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    if !nix::unistd::geteuid().is_root() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "acting as another user needs root and CI requires it");
        eprintln!("skipped: acting as another user needs root");
        return None;
    }
    Some(std::thread::spawn(move || with_identity(&other_user(), f).expect("switch")).join().expect("thread"))
}

#[test]
fn a_file_is_written_atomically_and_never_through_a_planted_link() {
    let d = tempfile::tempdir().expect("tmp");
    let dir = d.path().join("cfg/nono/profiles");
    make_private_dirs(&dir).expect("dirs");
    assert_eq!(std::fs::metadata(&dir).expect("meta").permissions().mode() & 0o777, 0o700);
    let out = dir.join("a.json");
    check_writable(&out, false).expect("writable");
    write_atomic(&out, b"{}\n", 0o600).expect("write");
    assert_eq!(std::fs::read_to_string(&out).expect("read"), "{}\n");
    assert_eq!(std::fs::metadata(&out).expect("meta").mode() & 0o777, 0o600);
    assert!(check_writable(&out, false).is_err(), "exists without --force");
    check_writable(&out, true).expect("--force");
    assert!(matches!(check_writable(&dir, true), Err(FsError::NotAFile { .. })), "a directory, even with --force");
    // An existing file keeps its mode.
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    write_atomic(&out, b"{\"x\": 1}\n", 0o600).expect("rewrite");
    assert_eq!(std::fs::metadata(&out).expect("meta").mode() & 0o777, 0o640);
    // A link at the target is refused, whether it dangles or not, and what
    // it points at is untouched.
    let victim = d.path().join("victim");
    std::fs::write(&victim, "keep").expect("victim");
    let link = dir.join("b.json");
    std::os::unix::fs::symlink(&victim, &link).expect("plant");
    assert!(matches!(write_atomic(&link, b"x", 0o600), Err(FsError::Symlink { .. })));
    assert!(matches!(check_writable(&link, true), Err(FsError::Symlink { .. })));
    let dangling = dir.join("c.json");
    std::os::unix::fs::symlink(d.path().join("nowhere"), &dangling).expect("plant");
    assert!(matches!(write_atomic(&dangling, b"x", 0o600), Err(FsError::Symlink { .. })));
    assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "keep");
    assert!(!d.path().join("nowhere").exists());
    // No temp file is left behind.
    let left: Vec<_> = std::fs::read_dir(&dir).expect("ls").filter_map(Result::ok).map(|e| e.file_name()).collect();
    assert_eq!(left.len(), 3, "{left:?}");
}

#[test]
fn as_the_user_the_kernel_decides_and_the_files_are_theirs() {
    let d = tempfile::tempdir().expect("tmp");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let open = d.path().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let root_only = d.path().join("root-only");
    std::fs::create_dir(&root_only).expect("mkdir");
    let (o, r) = (open.clone(), root_only.clone());
    let Some((mine, refused, dirs)) = as_other(move || {
        (
            write_atomic(&o.join("r.html"), b"page", 0o644).map_err(|e| e.to_string()),
            write_atomic(&r.join("r.html"), b"page", 0o644).map_err(|e| (e.raw_os_error(), e.to_string())),
            make_private_dirs(&r.join("a/b")).map_err(|e| e.to_string()),
        )
    }) else {
        return;
    };
    mine.expect("a directory the user may write");
    let m = std::fs::metadata(open.join("r.html")).expect("stat");
    assert_eq!((m.uid(), m.gid()), (4321, 4322), "owned by the user without a chown");
    let (errno, text) = refused.expect_err("root's directory");
    assert_eq!(errno, Some(libc::EACCES), "{text}");
    assert!(text.contains("as uid 4321"), "names whose permissions applied: {text}");
    dirs.expect_err("no directories in root's");
    assert_eq!(std::fs::read_dir(&root_only).expect("ls").count(), 0);
}

#[test]
fn a_thread_returns_to_its_identity_after_a_switch() {
    if !nix::unistd::geteuid().is_root() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "needs root under CI");
        return;
    }
    std::thread::spawn(|| {
        let before = thread_identity().expect("read");
        let inside = with_identity(&other_user(), || thread_identity().expect("read")).expect("switch");
        assert_eq!((inside.fsuid, inside.fsgid, inside.groups), (4321, 4322, vec![4322]));
        assert_eq!(thread_identity().expect("read"), before);
    })
    .join()
    .expect("thread");
}
