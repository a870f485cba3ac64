//! Read-only connections, for the commands that only read (`audit
//! sessions|show|query|summary|check`, `learn --from`).
//!
//! A WAL database is read through its `-shm` index, which a reader must be
//! able to open or create. That fails in a directory the reader cannot
//! write (a database copied for review, another user's state directory,
//! a read-only mount) unless the writer left `-wal`/`-shm` behind. Such a
//! database is then opened `immutable`: no locks, no `-wal`/`-shm`, the
//! main file taken as final. That is exact only when nothing is waiting in
//! a `-wal` file and nobody can be writing; in a directory where no `-wal`
//! can be created, no writer can be. So `immutable` is used only when the
//! normal read-only open failed and there is no `-wal` with content.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::{BUSY_TIMEOUT, StoreError};

/// Page cache of a reader, KiB: a glob's rows are spread over the file.
const READER_CACHE_KIB: i64 = 32 * 1024;
/// Bytes of the file a reader maps instead of copying pages out of the OS
/// cache (`SQLite` caps it at its compile-time limit, 2 GiB by default).
/// nono never truncates a database, which is what makes a mapping fault.
const READER_MMAP_BYTES: i64 = 2 << 30;

/// How a read-only connection was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// `mode=ro`: sees a live writer's committed transactions.
    ReadOnly,
    /// `immutable=1`: the main file as it is (see the module docs).
    Immutable,
}

/// Whether `e` says the file or its directory cannot be written (or the
/// `-shm` index cannot be opened for that reason).
pub(super) fn is_read_only_error(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied))
}

fn side_file(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// `file:` URI of `path` with `query`, every byte outside the unreserved
/// set percent-encoded (a path may hold `?`, `#`, `%` or any byte).
fn uri(path: &Path, query: &str) -> String {
    use std::fmt::Write as _;
    use std::os::unix::ffi::OsStrExt as _;
    let mut out = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out.push('?');
    out.push_str(query);
    out
}

/// Opens `path` for reading only, without creating or changing anything
/// (see the module docs for when `immutable` applies).
pub(super) fn connect_read_only(path: &Path) -> Result<(Connection, ReadMode), StoreError> {
    let open_err = |source| StoreError::Open { path: path.to_path_buf(), source };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(uri(path, "mode=ro"), flags).map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    // The first read opens the -shm index: this is where a read-only
    // directory shows.
    let (conn, mode) = match conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(())) {
        Ok(()) => (conn, ReadMode::ReadOnly),
        Err(e) if is_read_only_error(&e) => {
            drop(conn);
            let wal = side_file(path, "-wal");
            if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
                return Err(StoreError::ReadOnly {
                    path: path.to_path_buf(),
                    fix: format!(
                        "its directory cannot be written and {} holds changes not yet copied into it; copy the \
                         database together with its -wal file to a writable directory and read the copy, or have its \
                         owner fold the changes in (the next `nono learn` or `nono run --audit` on it does, as does \
                         `sqlite3 DB 'PRAGMA wal_checkpoint'`)",
                        wal.display()
                    ),
                });
            }
            let conn = Connection::open_with_flags(uri(path, "immutable=1"), flags).map_err(open_err)?;
            conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(())).map_err(open_err)?;
            (conn, ReadMode::Immutable)
        }
        Err(e) => return Err(open_err(e)),
    };
    tune_reader(&conn).map_err(open_err)?;
    Ok((conn, mode))
}

/// Per-connection settings of every connection that reads events.
pub(super) fn tune_reader(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
    conn.pragma_update(None, "mmap_size", READER_MMAP_BYTES)?;
    conn.set_prepared_statement_cache_capacity(32);
    // `rarray(?)`: a path glob's events are read by a list of ids.
    rusqlite::vtab::array::load_module(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_escape_every_special_byte() {
        use std::os::unix::ffi::OsStrExt as _;
        let p = Path::new(std::ffi::OsStr::from_bytes(b"/tmp/a b?c#d%e\xff/audit.db"));
        assert_eq!(uri(p, "mode=ro"), "file:/tmp/a%20b%3Fc%23d%25e%FF/audit.db?mode=ro");
    }
}
