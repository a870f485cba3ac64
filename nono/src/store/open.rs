//! Opening the database: creating its directory and file (as the invoking
//! user, through `invoker`), the per-connection PRAGMAs and the migrations.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::invoker;

use super::{BUSY_TIMEOUT, SCHEMA_VERSION, Store, StoreError, busy_or, migrations, readonly};

/// Opens a connection and sets the per-connection PRAGMAs.
pub(super) fn connect(path: &Path) -> Result<Connection, StoreError> {
    let open = |source| StoreError::Open { path: path.to_path_buf(), source };
    // NOFOLLOW: SQLite refuses a database path that is a symbolic link
    // (the file was checked already; this closes the gap to its open).
    let conn = Connection::open_with_flags(path, OpenFlags::default() | OpenFlags::SQLITE_OPEN_NOFOLLOW).map_err(open)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open)?;
    // Only takes effect on a new, empty database (before WAL is enabled):
    // larger pages mean fewer b-tree splits during ingest.
    conn.pragma_update(None, "page_size", 32768).map_err(open)?;
    // journal_mode needs the lock briefly when it changes the mode.
    conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| busy_or(path, e, open))?;
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(open)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(open)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    migrations().to_latest(conn).map_err(|e| match e {
        rusqlite_migration::Error::RusqliteError { err, .. } => {
            busy_or(path, err, |source| StoreError::Open { path: path.to_path_buf(), source })
        }
        source => StoreError::Migrate { path: path.to_path_buf(), source },
    })
}

/// `SQLite` opens `-wal` and `-shm` beside the database by name, following
/// links; as the user that can only reach the user's own files, but a
/// planted link deserves a clear error, not "unable to open database file".
fn refuse_linked_side_files(path: &Path) -> Result<(), StoreError> {
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let side = std::path::PathBuf::from(side);
        if std::fs::symlink_metadata(&side).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(invoker::fs::FsError::Symlink { path: side }.into());
        }
    }
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it.
    ///
    /// Everything here happens as the invoking user under sudo (see
    /// `invoker`): missing parent directories are created 0700 and a new
    /// database file 0600, owned by whoever nono acts as, and `SQLite`'s
    /// `-wal`/`-shm` files likewise. A symbolic link at the database's own
    /// path is refused, so is anything but a regular file.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        invoker::as_user(|| Store::open_as_user(path)).map_err(invoker::fs::FsError::from)?
    }

    fn open_as_user(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            invoker::fs::make_private_dirs(dir)?;
        }
        // Create the file ourselves so its mode never depends on the umask,
        // and so a planted link is refused before SQLite sees the path.
        drop(invoker::fs::open_private_file(path)?);
        refuse_linked_side_files(path)?;
        let mut conn = connect(path)?;
        migrate(&mut conn, path)?;
        readonly::tune_reader(&conn).map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?;
        let store = Store { conn, path: path.to_path_buf() };
        // Writers settle what dead recorders left (readers only report it).
        if let Err(e) = store.reap_stale() {
            log::warn!("could not mark sessions of dead recorders as incomplete: {e}");
        }
        Ok(store)
    }

    /// Opens a database that must already exist, for reading and writing
    /// (migrating it if needed).
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        refuse_linked_side_files(path)?;
        let mut conn = connect(path)?;
        migrate(&mut conn, path)?;
        readonly::tune_reader(&conn).map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?;
        Ok(Store { conn, path: path.to_path_buf() })
    }

    /// Opens a database that must already exist, for reading only: nothing
    /// is created or changed, not even the state of a session whose recorder
    /// died (see [`Session::recorder_gone`]). It works in a directory this
    /// user cannot write (see `readonly`). A database of an older schema
    /// is upgraded first, which needs write access; without it the error
    /// says so.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        refuse_linked_side_files(path)?;
        let (conn, _mode) = readonly::connect_read_only(path)?;
        let found: usize = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?;
        let needed = SCHEMA_VERSION;
        if found > needed {
            return Err(StoreError::TooNew { path: path.to_path_buf(), found, needed });
        }
        if found == needed {
            return Ok(Store { conn, path: path.to_path_buf() });
        }
        drop(conn);
        let upgraded = connect(path).and_then(|mut c| migrate(&mut c, path));
        match upgraded {
            Ok(()) => {}
            Err(StoreError::Open { source, .. }) if readonly::is_read_only_error(&source) => {
                return Err(StoreError::TooOld { path: path.to_path_buf(), found, needed, source });
            }
            Err(e) => return Err(e),
        }
        let (conn, _mode) = readonly::connect_read_only(path)?;
        Ok(Store { conn, path: path.to_path_buf() })
    }
}
