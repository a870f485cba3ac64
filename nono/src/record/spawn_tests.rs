//! Unit tests of `spawn`: forks, gates, exec failures and sealed descriptors.

use super::*;

/// Children forked by concurrently running tests inherit each other's
/// gate pipes (CLOEXEC only acts at exec), which would keep a gate
/// open; these tests fork one at a time.
static FORK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn resolve_searches_the_childs_path() {
    let env = vec![(OsString::from("PATH"), OsString::from("/nonexistent:/bin:/usr/bin"))];
    let p = resolve(OsStr::new("sh"), &env, Path::new("/")).expect("sh exists");
    assert!(p.ends_with("sh"));
    assert!(matches!(resolve(OsStr::new("no-such-program-nono"), &env, Path::new("/")), Err(SpawnError::NotFound(_))));
    assert_eq!(resolve(OsStr::new("./x"), &env, Path::new("/w")).expect("relative"), PathBuf::from("/w/./x"));
}

#[test]
fn a_released_child_runs_and_exec_failures_are_reported() {
    let _serial = FORK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let cmd = Command::new(vec!["true".into()], PathBuf::from("/"), None);
    let mut g = fork_gated(&cmd).expect("fork");
    g.release().expect("exec true");
    let status = nix::sys::wait::waitpid(g.pid, None).expect("wait");
    assert_eq!(status, nix::sys::wait::WaitStatus::Exited(g.pid, 0));

    let cmd = Command::new(vec!["true".into()], PathBuf::from("/nonexistent-dir-nono"), None);
    let mut g = fork_gated(&cmd).expect("fork");
    let err = g.release().expect_err("chdir fails");
    assert!(err.to_string().contains("chdir"), "{err}");
    let _ = nix::sys::wait::waitpid(g.pid, None);
}

#[test]
fn resolve_tells_a_missing_command_from_one_that_cannot_run() {
    let d = tempfile::tempdir().expect("tmp");
    std::fs::write(d.path().join("plain"), "#!/bin/sh\n").expect("file");
    let env = vec![(OsString::from("PATH"), d.path().as_os_str().to_owned())];
    let e = resolve(OsStr::new("plain"), &env, Path::new("/")).expect_err("not executable");
    assert!(matches!(e, SpawnError::NotExecutable(_)), "{e}");
    assert_eq!(e.exit_code(), Some(126));
    assert_eq!(resolve(OsStr::new("nope"), &env, Path::new("/")).expect_err("missing").exit_code(), Some(127));
    let exec = |errno| SpawnError::Child { step: "execve", source: io::Error::from_raw_os_error(errno) };
    assert_eq!(exec(libc::ENOENT).exit_code(), Some(127));
    for errno in [libc::EACCES, libc::ENOEXEC, libc::EISDIR, libc::ETXTBSY] {
        assert_eq!(exec(errno).exit_code(), Some(126), "{errno}");
    }
    assert_eq!(SpawnError::Child { step: "chdir", source: io::Error::from_raw_os_error(2) }.exit_code(), None);
}

#[test]
fn a_sealed_child_keeps_only_the_passed_descriptors() {
    let _serial = FORK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let d = tempfile::tempdir().expect("tmp");
    let out = d.path().join("fds");
    // High numbers, so they cannot be mistaken for what `ls` opens;
    // F_DUPFD leaves them inheritable, like a shell's redirections.
    let devnull = std::fs::File::open("/dev/null").expect("open");
    // SAFETY: duplicating a descriptor we own; the copies are closed below.
    let (leaked_fd, passed_fd) =
        unsafe { (libc::fcntl(devnull.as_raw_fd(), libc::F_DUPFD, 60), libc::fcntl(devnull.as_raw_fd(), libc::F_DUPFD, 70)) };
    assert!(leaked_fd >= 60 && passed_fd >= 70);
    let script = format!("ls /proc/self/fd > {}", out.display());
    let mut cmd = Command::new(vec!["sh".into(), "-c".into(), script.into()], PathBuf::from("/"), None);
    cmd.keep_fds = Some(vec![passed_fd]);
    let mut g = fork_gated(&cmd).expect("fork");
    g.release().expect("exec");
    let _ = nix::sys::wait::waitpid(g.pid, None);
    let fds: Vec<i32> =
        std::fs::read_to_string(&out).expect("listing").split_whitespace().filter_map(|s| s.parse().ok()).collect();
    assert!(fds.contains(&passed_fd), "{fds:?} passed {passed_fd} leaked {leaked_fd}");
    assert!(!fds.contains(&leaked_fd), "{fds:?}");
    // 0-2, the passed one, and the descriptor `ls` opens for /proc/self/fd.
    assert!(fds.iter().filter(|f| **f > 2).count() <= 2, "{fds:?}");
    // SAFETY: closing the copies made above.
    unsafe {
        libc::close(leaked_fd);
        libc::close(passed_fd);
    }
}

#[test]
fn a_child_whose_tracer_vanishes_never_runs() {
    let _serial = FORK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let cmd = Command::new(vec!["true".into()], PathBuf::from("/"), None);
    let g = fork_gated(&cmd).expect("fork");
    let pid = g.pid;
    drop(g);
    let status = nix::sys::wait::waitpid(pid, None).expect("wait");
    assert_eq!(status, nix::sys::wait::WaitStatus::Exited(pid, 125));
}
