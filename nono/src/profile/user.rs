//! The user's own profiles: where `nono learn` writes them
//! (`$XDG_CONFIG_HOME/nono/profiles/NAME.json`, outside any workdir, so
//! the agent that was recorded cannot rewrite the profile of its next run
//! by editing its workdir) and how they are listed.
//!
//! # Writing as the user
//! Under `sudo`, nono is root but the directory belongs to the user, and
//! the recorded agent ran as that user: it could have planted a symlink
//! where nono is about to write. So every write here happens in a forked
//! child that first drops to the user's credentials: directories are made
//! `0700`, the profile goes to a fresh temp name (`O_CREAT|O_EXCL|
//! O_NOFOLLOW`, never through a planted link) and is renamed over the
//! target (a rename replaces a symlink, never follows it). The child only
//! makes raw syscalls on buffers built before `fork`.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use super::Vars;

/// Whose credentials a write uses (`None` in [`write_file`]: nono's own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// `(name, path)` of every `*.json` in the user's profiles directory, by name.
#[must_use]
pub fn list(vars: &Vars) -> Vec<(String, PathBuf)> {
    let Ok(dir) = std::fs::read_dir(vars.profiles_dir()) else { return Vec::new() };
    let mut out: Vec<(String, PathBuf)> = dir
        .filter_map(Result::ok)
        .filter_map(|e| {
            let path = e.path();
            let name = path.file_stem()?.to_str()?.to_owned();
            (path.extension().is_some_and(|x| x == "json") && !name.starts_with('.')).then_some((name, path))
        })
        .collect();
    out.sort();
    out
}

/// What the child does once it runs as the owner.
enum Op<'a> {
    /// Make each directory (0700) that does not exist yet, in order.
    MakeDirs(&'a [CString]),
    /// Create `tmp` exclusively and remove it again: proves the directory
    /// is writable, before anything is recorded.
    Probe { tmp: &'a CString },
    /// Write `data` to `tmp` (exclusively), then rename it to `to`.
    Write { tmp: &'a CString, to: &'a CString, data: &'a [u8] },
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// The temp name a profile is written to before the rename.
fn temp_for(path: &Path) -> PathBuf {
    let name = path.file_name().map_or_else(|| "profile".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.nono-tmp"))
}

/// Makes `dir` and its missing parents (0700), as `owner`.
pub fn make_dirs(dir: &Path, owner: Option<&Owner>) -> io::Result<()> {
    let mut missing: Vec<&Path> = dir.ancestors().take_while(|d| std::fs::symlink_metadata(d).is_err()).collect();
    missing.reverse();
    let dirs = missing.iter().map(|d| cpath(d)).collect::<io::Result<Vec<_>>>()?;
    as_owner(owner, &Op::MakeDirs(&dirs))
}

/// Checks, as `owner`, that a profile can be written at `path`: it is not
/// a directory, exists only with `force`, and its directory takes a new
/// file. Run it before recording, so a bad `--output` costs nothing.
pub fn check_writable(path: &Path, force: bool, owner: Option<&Owner>) -> io::Result<()> {
    if path.is_dir() {
        return Err(io::Error::new(io::ErrorKind::IsADirectory, format!("{} is a directory", path.display())));
    }
    if std::fs::symlink_metadata(path).is_ok() && !force {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} already exists; pass --force to overwrite it or --output to choose another file", path.display()),
        ));
    }
    let tmp = cpath(&temp_for(path))?;
    as_owner(owner, &Op::Probe { tmp: &tmp })
}

/// Writes `data` to `path` atomically, as `owner`.
pub fn write_file(path: &Path, data: &[u8], owner: Option<&Owner>) -> io::Result<()> {
    let tmp = cpath(&temp_for(path))?;
    let to = cpath(path)?;
    as_owner(owner, &Op::Write { tmp: &tmp, to: &to, data })
}

/// Runs `op` in a child with `owner`'s credentials (or nono's own).
fn as_owner(owner: Option<&Owner>, op: &Op<'_>) -> io::Result<()> {
    // SAFETY: the child below only makes raw syscalls on memory allocated
    // before fork, then _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: child side, see above.
        unsafe { libc::_exit(child(owner, op)) }
    }
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &raw mut status, 0) };
        if r == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    match (libc::WIFEXITED(status), libc::WEXITSTATUS(status)) {
        (true, 0) => Ok(()),
        (true, errno) => Err(io::Error::from_raw_os_error(errno)),
        _ => Err(io::Error::other("the writer process was killed")),
    }
}

/// The child's work; returns 0 or an errno (as its exit code).
fn child(owner: Option<&Owner>, op: &Op<'_>) -> i32 {
    // SAFETY (whole body): raw syscalls on buffers built before fork.
    unsafe {
        let errno = || *libc::__errno_location();
        if let Some(o) = owner
            && (libc::setgroups(o.groups.len(), o.groups.as_ptr()) != 0
                || libc::setresgid(o.gid, o.gid, o.gid) != 0
                || libc::setresuid(o.uid, o.uid, o.uid) != 0)
        {
            return errno();
        }
        let create = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        match op {
            Op::MakeDirs(dirs) => {
                for d in *dirs {
                    if libc::mkdir(d.as_ptr(), 0o700) != 0 && errno() != libc::EEXIST {
                        return errno();
                    }
                }
                0
            }
            Op::Probe { tmp } => {
                // A leftover (or planted) temp entry is removed, never followed.
                libc::unlink(tmp.as_ptr());
                let fd = libc::open(tmp.as_ptr(), create, 0o600);
                if fd < 0 {
                    return errno();
                }
                libc::close(fd);
                libc::unlink(tmp.as_ptr());
                0
            }
            Op::Write { tmp, to, data } => {
                libc::unlink(tmp.as_ptr());
                let fd = libc::open(tmp.as_ptr(), create, 0o600);
                if fd < 0 {
                    return errno();
                }
                let mut off = 0;
                while off < data.len() {
                    let n = libc::write(fd, data[off..].as_ptr().cast(), data.len() - off);
                    if n < 0 && errno() == libc::EINTR {
                        continue;
                    }
                    if n <= 0 {
                        let e = if n < 0 { errno() } else { libc::EIO };
                        libc::close(fd);
                        libc::unlink(tmp.as_ptr());
                        return e;
                    }
                    off += n as usize;
                }
                if libc::fsync(fd) != 0 || libc::close(fd) != 0 || libc::rename(tmp.as_ptr(), to.as_ptr()) != 0 {
                    let e = errno();
                    libc::unlink(tmp.as_ptr());
                    return e;
                }
                0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_is_written_atomically_and_never_through_a_planted_link() {
        let d = tempfile::tempdir().expect("tmp");
        let dir = d.path().join("cfg/nono/profiles");
        make_dirs(&dir, None).expect("dirs");
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&dir).expect("meta").permissions());
        assert_eq!(mode & 0o777, 0o700);
        let out = dir.join("a.json");
        check_writable(&out, false, None).expect("writable");
        write_file(&out, b"{}\n", None).expect("write");
        assert_eq!(std::fs::read_to_string(&out).expect("read"), "{}\n");
        assert!(check_writable(&out, false, None).is_err(), "exists without --force");
        check_writable(&out, true, None).expect("--force");
        assert!(check_writable(&dir, true, None).is_err(), "a directory, even with --force");
        // Symlinks planted at the temp name and at the target are replaced,
        // never followed.
        let victim = d.path().join("victim");
        std::fs::write(&victim, "keep").expect("victim");
        std::os::unix::fs::symlink(&victim, temp_for(&out)).expect("plant");
        write_file(&out, b"{\"x\": 1}\n", None).expect("write over a planted temp link");
        std::fs::remove_file(&out).expect("rm");
        std::os::unix::fs::symlink(&victim, &out).expect("plant");
        write_file(&out, b"{\"y\": 2}\n", None).expect("write over a planted link");
        assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "keep");
        assert!(!std::fs::symlink_metadata(&out).expect("out").file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&out).expect("read"), "{\"y\": 2}\n");
    }
}
