//! Files nono writes on the invoking user's behalf: the audit database and
//! its directories, profiles, reports. Every helper here runs with the
//! invoking user's filesystem identity (see the module above), so the
//! kernel's own permission checks decide what may be written, and refuses
//! a symbolic link at the final component instead of writing through it.
//! Intermediate directories may be links (a home on another disk, a
//! dotfiles repository): as the user, following them reaches only what the
//! user could reach anyway.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::{InvokerError, acting_as, as_user};

/// A write on the user's behalf that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The path is a symbolic link: nono never writes through one.
    #[error(
        "refusing to write through the symbolic link {path}: nono does not follow a link where it writes (remove the \
         link or choose another path)"
    )]
    Symlink { path: PathBuf },
    /// The path exists and is not a regular file.
    #[error("{path} is not a regular file")]
    NotAFile { path: PathBuf },
    /// The kernel refused the operation to the user nono acts as.
    #[error("cannot {what} {path} {who}")]
    Io {
        what: &'static str,
        path: PathBuf,
        who: String,
        #[source]
        source: io::Error,
    },
    /// Taking the user's identity failed.
    #[error(transparent)]
    Invoker(#[from] InvokerError),
}

impl FsError {
    /// The underlying OS error, if any.
    #[must_use]
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            FsError::Io { source, .. } => source.raw_os_error(),
            FsError::Symlink { .. } => Some(libc::ELOOP),
            _ => None,
        }
    }
}

fn io_err<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> FsError + 'p {
    move |source| {
        if source.raw_os_error() == Some(libc::ELOOP) {
            return FsError::Symlink { path: path.to_path_buf() };
        }
        FsError::Io { what, path: path.to_path_buf(), who: acting_as(), source }
    }
}

/// Makes `dir` and its missing ancestors, each `0700`, as the user.
/// Existing directories are left as they are.
pub fn make_private_dirs(dir: &Path) -> Result<(), FsError> {
    as_user(|| {
        let missing: Vec<&Path> =
            dir.ancestors().take_while(|d| !d.as_os_str().is_empty() && std::fs::symlink_metadata(d).is_err()).collect();
        for d in missing.iter().rev() {
            match std::fs::DirBuilder::new().mode(0o700).create(d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("create the directory", d)(e)),
            }
        }
        Ok(())
    })?
}

/// Opens `path` for reading and writing, creating it `0600` if missing, as
/// the user. A symbolic link or anything but a regular file is refused.
pub fn open_private_file(path: &Path) -> Result<File, FsError> {
    as_user(|| {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(path)
            .map_err(io_err("open", path))?;
        let meta = f.metadata().map_err(io_err("inspect", path))?;
        if !meta.file_type().is_file() {
            return Err(FsError::NotAFile { path: path.to_path_buf() });
        }
        Ok(f)
    })?
}

/// Refuses a symbolic link or a non-file at `path`, if anything is there.
fn refuse_links(path: &Path) -> Result<Option<std::fs::Metadata>, FsError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(FsError::Symlink { path: path.to_path_buf() }),
        Ok(m) if !m.file_type().is_file() => Err(FsError::NotAFile { path: path.to_path_buf() }),
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("inspect", path)(e)),
    }
}

/// A temp name beside `path`, unique to this process and call.
fn temp_beside(path: &Path) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = OsString::from(".");
    name.push(path.file_name().unwrap_or_else(|| std::ffi::OsStr::new("out")));
    name.push(format!(".nono-{}-{n}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Creates a fresh temp file beside `path` (never an existing entry, never
/// through a link).
fn create_temp(path: &Path, mode: u32) -> Result<(PathBuf, File), FsError> {
    let tmp = temp_beside(path);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(io_err("create a file in the directory of", path))?;
    Ok((tmp, f))
}

/// Writes `data` to `path` atomically, as the user: a fresh temp file in
/// the same directory, flushed to disk, renamed over `path` (a rename
/// replaces what is there, never follows it). An existing file keeps its
/// permission bits; a new one gets `mode` (less the umask). A symbolic
/// link or a non-file at `path` is refused.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), FsError> {
    as_user(|| {
        let existing = refuse_links(path)?;
        let (tmp, mut f) = create_temp(path, mode)?;
        let result = (|| {
            if let Some(m) = &existing {
                f.set_permissions(std::fs::Permissions::from_mode(m.mode() & 0o7777)).map_err(io_err("set the mode of", &tmp))?;
            }
            f.write_all(data).map_err(io_err("write", &tmp))?;
            f.sync_all().map_err(io_err("flush", &tmp))?;
            drop(f);
            std::fs::rename(&tmp, path).map_err(io_err("replace", path))?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
                && let Ok(d) = File::open(dir)
            {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    })?
}

/// Checks, as the user, that [`write_atomic`] could write `path`: no link
/// or directory there, an existing file only with `force`, and a new file
/// can be made in its directory. Run it before long work (recording), so
/// a bad output path costs nothing.
pub fn check_writable(path: &Path, force: bool) -> Result<(), FsError> {
    as_user(|| {
        if refuse_links(path)?.is_some() && !force {
            return Err(FsError::Io {
                what: "overwrite",
                path: path.to_path_buf(),
                who: "without --force (pass --force, or --output to choose another file)".to_owned(),
                source: io::Error::from(io::ErrorKind::AlreadyExists),
            });
        }
        let (tmp, f) = create_temp(path, 0o600)?;
        drop(f);
        std::fs::remove_file(&tmp).map_err(io_err("remove", &tmp))
    })?
}
