//! The audit store: recorded sessions and their events in one `SQLite` file.
//!
//! This module owns the database: opening it (file modes, ownership under
//! sudo, per-connection PRAGMAs), the numbered migrations, the session
//! lifecycle, the batched [`writer`] and the read-side [`query`]. It must not
//! print, parse arguments, or know about eBPF and Landlock.
//!
//! Threat model: the database is an audit trail of what an untrusted agent
//! did, so it is private to the user who ran nono (directory 0700, file
//! 0600, owned by the sudo user when nono runs under sudo). Recorded paths
//! are data, never SQL: every value is a bound parameter.

mod attribute;
mod encode;
mod query;
mod readonly;
mod stream;
mod tally;
mod writer;

use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension as _, params};
use rusqlite_migration::{M, Migrations};
use serde::Serialize;

use crate::event::{Access, DenyBy, Event, NetAddr, Op, Outcome};

pub use query::{
    ErrorCount, EventRow, MethodCount, OpCount, OutcomeTally, PathCount, PathGlob, ProcessRow, Query, ResultClass, Summary,
    UnknownResultClass, errno_name,
};
pub use writer::{CHANNEL_BATCHES, WriterHandle, WriterStats, bench_ingest, spawn_writer, synthetic_event};

/// How long a connection waits for another writer before reporting "busy".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema version [`migrations`] lead to (`PRAGMA user_version`).
const SCHEMA_VERSION: usize = 5;

/// The schema, one numbered file per step. Append only: never edit a
/// migration that has shipped.
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("migrations/0001_init.sql")),
        M::up(include_str!("migrations/0002_session_ranges.sql")),
        M::up(include_str!("migrations/0003_bucketed_path_index.sql")),
        M::up(include_str!("migrations/0004_attribution_and_sockets.sql")),
        M::up_with_hook(include_str!("migrations/0005_session_aggregates_and_postings.sql"), backfill_aggregates),
    ])
}

/// Migration 0005's backfill: aggregates and postings for every session.
fn backfill_aggregates(tx: &rusqlite::Transaction<'_>) -> rusqlite_migration::HookResult {
    tally::settle_all(tx).map_err(|e| match e {
        StoreError::Sql { source, .. } => rusqlite_migration::HookError::RusqliteError(source),
        other => rusqlite_migration::HookError::Hook(other.to_string()),
    })
}

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `open_existing` found no database file.
    #[error("no audit database at {0}; record one with `nono learn` or pass --db")]
    Missing(PathBuf),
    /// Another process holds the write lock for longer than the busy timeout.
    #[error("the audit database {path} is locked by another nono process (busy for {secs} s); try again when it finishes")]
    Busy { path: PathBuf, secs: u64 },
    /// Creating the directory, the file, or changing their owner failed.
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Opening or configuring the connection failed.
    #[error("cannot open the audit database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// A read-only open is impossible as things are; `fix` says what to do.
    #[error("cannot read the audit database {path}: {fix}")]
    ReadOnly { path: PathBuf, fix: String },
    /// The database predates this nono's schema and cannot be upgraded
    /// (upgrading writes).
    #[error(
        "the audit database {path} has schema {found}, older than this nono's {needed}, and cannot be upgraded: it or its \
         directory is read-only to this user; run any `nono audit` command once as a user who can write it, or copy it \
         to a writable directory"
    )]
    TooOld {
        path: PathBuf,
        found: usize,
        needed: usize,
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer nono.
    #[error("the audit database {path} has schema {found}, newer than this nono's {needed}; use a newer nono to read it")]
    TooNew { path: PathBuf, found: usize, needed: usize },
    /// Applying the schema migrations failed.
    #[error("cannot migrate the audit database {path} to the current schema")]
    Migrate {
        path: PathBuf,
        #[source]
        source: rusqlite_migration::Error,
    },
    /// Any other `SQLite` failure.
    #[error("audit database error while {what}")]
    Sql {
        what: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    /// No session has this id (or the database has no sessions at all).
    #[error("no session {0} in the audit database; list them with `nono audit sessions`")]
    UnknownSession(String),
    /// A path glob that does not parse.
    #[error("bad path glob {glob:?}: {reason}")]
    BadGlob { glob: String, reason: String },
    /// A stored row that does not decode (written by a newer or broken nono).
    #[error("corrupt audit record: {0}")]
    Corrupt(String),
    /// The writer thread failed; `stored` events made it, `unstored` did not.
    #[error("the audit writer stopped after storing {stored} events; {unstored} events were not stored")]
    Writer {
        stored: u64,
        unstored: u64,
        #[source]
        source: Box<StoreError>,
    },
    /// The writer thread panicked (a bug).
    #[error("the audit writer thread panicked")]
    WriterPanicked,
    /// The callback given to [`Store::events`] failed.
    #[error("{0}")]
    Callback(String),
}

impl StoreError {
    fn sql(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        move |source| StoreError::Sql { what, source }
    }
}

/// Maps `SQLITE_BUSY`/`SQLITE_LOCKED` to [`StoreError::Busy`], anything else to `other`.
fn busy_or(path: &Path, e: rusqlite::Error, other: impl FnOnce(rusqlite::Error) -> StoreError) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    {
        return StoreError::Busy { path: path.to_path_buf(), secs: BUSY_TIMEOUT.as_secs() };
    }
    other(e)
}

/// Lifecycle state of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    /// The recorder is (or was, if it died) still writing.
    Running,
    /// Finished with nothing lost.
    Complete,
    /// Finished with lost events, or the recorder died.
    Incomplete,
}

impl SessionState {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            SessionState::Running => "running",
            SessionState::Complete => "complete",
            SessionState::Incomplete => "incomplete",
        }
    }

    fn parse(s: &str) -> Result<SessionState, StoreError> {
        match s {
            "running" => Ok(SessionState::Running),
            "complete" => Ok(SessionState::Complete),
            "incomplete" => Ok(SessionState::Incomplete),
            other => Err(StoreError::Corrupt(format!("session state {other:?}"))),
        }
    }
}

/// Why a session was recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    /// `nono learn`: recorded to learn a profile.
    #[default]
    Learn,
    /// `nono run --audit`: recorded under an enforced profile.
    Run,
}

impl SessionKind {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            SessionKind::Learn => "learn",
            SessionKind::Run => "run",
        }
    }

    fn parse(s: &str) -> Result<SessionKind, StoreError> {
        match s {
            "learn" => Ok(SessionKind::Learn),
            "run" => Ok(SessionKind::Run),
            other => Err(StoreError::Corrupt(format!("session kind {other:?}"))),
        }
    }
}

/// What is known when a recording starts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NewSession {
    pub command: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub user: String,
    pub backend: String,
    pub kernel: String,
    pub nono_version: String,
    pub kind: SessionKind,
    /// JSON text of the learning context: the values behind the profile
    /// variables where the session ran ($HOME, $CWD, $TMPDIR, $XDG_*).
    pub context: Option<String>,
    /// The profile a `run` session enforced (its path, or built-in name).
    pub profile: Option<String>,
}

/// Loss and degradation counters of a session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LossCounters {
    pub ringbuf_drops: u64,
    pub path_failures: u64,
    pub path_truncations: u64,
    pub pending_full: u64,
    pub traced_full: u64,
    pub scratch_busy: u64,
    pub decode_errors: u64,
    pub unstored: u64,
}

impl LossCounters {
    /// Events that never reached the database (incomplete paths are not
    /// lost: their records are stored with `incomplete` set).
    #[must_use]
    pub fn lost(&self) -> u64 {
        self.ringbuf_drops + self.pending_full + self.traced_full + self.scratch_busy + self.decode_errors + self.unstored
    }
}

/// What is known when a recording ends.
#[derive(Clone, Debug)]
pub struct SessionEnd {
    pub state: SessionState,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// Events stored.
    pub events: u64,
    pub counters: LossCounters,
    pub note: Option<String>,
}

impl SessionEnd {
    /// A recording that failed before the command's end was seen.
    #[must_use]
    pub fn failed(note: &str) -> SessionEnd {
        SessionEnd {
            state: SessionState::Incomplete,
            exit_code: None,
            signal: None,
            events: 0,
            counters: LossCounters::default(),
            note: Some(note.to_owned()),
        }
    }
}

/// One stored session.
#[derive(Clone, Debug, Serialize)]
pub struct Session {
    pub id: i64,
    /// What was known at the start.
    #[serde(flatten)]
    pub info: NewSession,
    pub recorder_pid: u32,
    /// The recorder's start time (clock ticks since boot), which tells it
    /// from a later process with the same pid.
    #[serde(skip)]
    pub recorder_start: Option<i64>,
    pub started_ns: i64,
    pub ended_ns: Option<i64>,
    pub state: SessionState,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub events: u64,
    pub counters: LossCounters,
    pub profile_path: Option<String>,
    pub note: Option<String>,
}

impl Session {
    /// Events lost (see [`LossCounters::lost`]).
    #[must_use]
    pub fn lost(&self) -> u64 {
        self.counters.lost()
    }

    /// A session still marked running whose recorder is gone (killed, or
    /// its pid now belongs to another process). Only a writer's open marks
    /// it incomplete in the database ([`Store::reap_stale`]).
    #[must_use]
    pub fn recorder_gone(&self) -> bool {
        self.state == SessionState::Running && !recorder_alive(self.recorder_pid, self.recorder_start)
    }
}

const SESSION_COLUMNS: &str = "id, command, cwd, uid, user, backend, kernel, nono_version, recorder_pid, started_ns, \
     ended_ns, state, exit_code, signal, events, ringbuf_drops, path_failures, path_truncations, pending_full, \
     traced_full, scratch_busy, decode_errors, unstored, profile_path, note, kind, context, profile, recorder_start";

fn session_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Session, StoreError>> {
    let command: String = r.get(1)?;
    let state: String = r.get(11)?;
    let kind: String = r.get(25)?;
    let count = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
    let counters = LossCounters {
        ringbuf_drops: count(15)?,
        path_failures: count(16)?,
        path_truncations: count(17)?,
        pending_full: count(18)?,
        traced_full: count(19)?,
        scratch_busy: count(20)?,
        decode_errors: count(21)?,
        unstored: count(22)?,
    };
    let id: i64 = r.get(0)?;
    let session = (|| -> Result<Session, StoreError> {
        Ok(Session {
            id,
            info: NewSession {
                command: serde_json::from_str(&command)
                    .map_err(|e| StoreError::Corrupt(format!("session {id} command {command:?}: {e}")))?,
                cwd: r.get(2)?,
                uid: r.get(3)?,
                user: r.get(4)?,
                backend: r.get(5)?,
                kernel: r.get(6)?,
                nono_version: r.get(7)?,
                kind: SessionKind::parse(&kind)?,
                context: r.get(26)?,
                profile: r.get(27)?,
            },
            recorder_pid: r.get(8)?,
            recorder_start: r.get(28)?,
            started_ns: r.get(9)?,
            ended_ns: r.get(10)?,
            state: SessionState::parse(&state)?,
            exit_code: r.get(12)?,
            signal: r.get(13)?,
            events: count(14)?,
            counters,
            profile_path: r.get(23)?,
            note: r.get(24)?,
        })
    })();
    Ok(session)
}

impl From<rusqlite::Error> for StoreError {
    fn from(source: rusqlite::Error) -> Self {
        StoreError::Sql { what: "reading a row", source }
    }
}

/// An open audit database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// Opens a connection and sets the per-connection PRAGMAs.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    let open = |source| StoreError::Open { path: path.to_path_buf(), source };
    let conn = Connection::open(path).map_err(open)?;
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

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    migrations().to_latest(conn).map_err(|e| match e {
        rusqlite_migration::Error::RusqliteError { err, .. } => {
            busy_or(path, err, |source| StoreError::Open { path: path.to_path_buf(), source })
        }
        source => StoreError::Migrate { path: path.to_path_buf(), source },
    })
}

fn now_ns() -> i64 {
    jiff::Timestamp::now().as_nanosecond() as i64
}

/// Start time of a process in clock ticks since boot (field 22 of
/// `/proc/PID/stat`), which tells a live recorder from a reused pid.
fn process_start(pid: u32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may hold spaces and parentheses: fields restart after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the recorder that wrote a 'running' session is still alive.
fn recorder_alive(pid: u32, start: Option<i64>) -> bool {
    let Ok(raw) = i32::try_from(pid) else { return false };
    if raw <= 0 {
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Err(nix::errno::Errno::ESRCH) => false,
        // EPERM: alive but not ours to signal; check identity below.
        Ok(()) | Err(_) => match (start, process_start(pid)) {
            (Some(recorded), Some(now)) => recorded == now,
            // No start time recorded: fall back to the name.
            (None, _) => std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == "nono"),
            (Some(_), None) => false,
        },
    }
}

/// Creates the missing ancestors of `dir` with mode 0700 and returns them.
fn create_private_dirs(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.as_os_str().is_empty() || d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    missing.reverse();
    for d in &missing {
        match std::fs::DirBuilder::new().mode(0o700).create(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(StoreError::Io { what: "cannot create the directory", path: d.clone(), source }),
        }
    }
    Ok(missing)
}

fn chown(path: &Path, (uid, gid): (u32, u32)) -> Result<(), StoreError> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|source| StoreError::Io {
        what: "cannot change the owner of",
        path: path.to_path_buf(),
        source,
    })
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it.
    ///
    /// Missing parent directories are created 0700 and a new database file
    /// 0600. With `owner`, the directories created here, the database and
    /// its `-wal`/`-shm` files are given to that uid/gid (`SQLite` itself
    /// gives later `-wal`/`-shm` files the database's owner when run as root).
    pub fn open(path: &Path, owner: Option<(u32, u32)>) -> Result<Store, StoreError> {
        let created_dirs = match path.parent() {
            Some(dir) => create_private_dirs(dir)?,
            None => Vec::new(),
        };
        // Create the file ourselves so its mode never depends on the umask.
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|source| StoreError::Io { what: "cannot create the audit database", path: path.to_path_buf(), source })?;
        let mut conn = connect(path)?;
        migrate(&mut conn, path)?;
        readonly::tune_reader(&conn).map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?;
        if let Some(owner) = owner {
            for d in &created_dirs {
                chown(d, owner)?;
            }
            chown(path, owner)?;
            for suffix in ["-wal", "-shm"] {
                let mut side = path.as_os_str().to_owned();
                side.push(suffix);
                let side = PathBuf::from(side);
                if side.exists() {
                    chown(&side, owner)?;
                }
            }
        }
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

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn busy(&self, what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        move |e| busy_or(&self.path, e, StoreError::sql(what))
    }

    /// Records the start of a recording by this process; returns its id.
    pub fn begin_session(&self, s: &NewSession) -> Result<i64, StoreError> {
        let command = serde_json::to_string(&s.command).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let pid = std::process::id();
        self.conn
            .execute(
                "INSERT INTO sessions (command, cwd, uid, user, backend, kernel, nono_version, recorder_pid, \
                 recorder_start, started_ns, state, kind, context, profile) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'running', ?11, ?12, ?13)",
                params![
                    command,
                    s.cwd,
                    s.uid,
                    s.user,
                    s.backend,
                    s.kernel,
                    s.nono_version,
                    pid,
                    process_start(pid),
                    now_ns(),
                    s.kind.as_str(),
                    s.context,
                    s.profile
                ],
            )
            .map_err(self.busy("starting a session"))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records the end of a recording.
    pub fn finish_session(&self, id: i64, end: &SessionEnd) -> Result<(), StoreError> {
        let c = &end.counters;
        let n = self
            .conn
            .execute(
                "UPDATE sessions SET ended_ns = ?2, state = ?3, exit_code = ?4, signal = ?5, events = ?6, \
                 ringbuf_drops = ?7, path_failures = ?8, path_truncations = ?9, pending_full = ?10, traced_full = ?11, \
                 scratch_busy = ?12, decode_errors = ?13, unstored = ?14, note = ?15 WHERE id = ?1",
                params![
                    id,
                    now_ns(),
                    end.state.as_str(),
                    end.exit_code,
                    end.signal,
                    end.events as i64,
                    c.ringbuf_drops as i64,
                    c.path_failures as i64,
                    c.path_truncations as i64,
                    c.pending_full as i64,
                    c.traced_full as i64,
                    c.scratch_busy as i64,
                    c.decode_errors as i64,
                    c.unstored as i64,
                    end.note,
                ],
            )
            .map_err(self.busy("finishing a session"))?;
        if n == 0 {
            return Err(StoreError::UnknownSession(id.to_string()));
        }
        Ok(())
    }

    /// Records where the session's learned profile was written.
    pub fn set_profile_path(&self, id: i64, path: &str) -> Result<(), StoreError> {
        let n = self
            .conn
            .execute("UPDATE sessions SET profile_path = ?2 WHERE id = ?1", params![id, path])
            .map_err(self.busy("recording the profile path"))?;
        if n == 0 {
            return Err(StoreError::UnknownSession(id.to_string()));
        }
        Ok(())
    }

    /// Marks 'running' sessions whose recorder is gone (killed, or its pid
    /// now belongs to another process) as incomplete with note "recorder
    /// died". Returns how many were marked.
    pub fn reap_stale(&self) -> Result<usize, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, recorder_pid, recorder_start FROM sessions WHERE state = 'running'")
            .map_err(StoreError::sql("listing running sessions"))?;
        let running: Vec<(i64, u32, Option<i64>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(Iterator::collect)
            .map_err(StoreError::sql("listing running sessions"))?;
        let mut reaped = 0;
        for (id, pid, start) in running {
            if recorder_alive(pid, start) {
                continue;
            }
            // Count what the dead writer left uncounted; the event count
            // is then what actually made it to the file.
            tally::settle(&self.conn, id).map_err(|e| match e {
                StoreError::Sql { source, .. } => {
                    busy_or(&self.path, source, StoreError::sql("settling a dead recorder's session"))
                }
                other => other,
            })?;
            reaped += self
                .conn
                .execute(
                    "UPDATE sessions SET state = 'incomplete', note = 'recorder died', \
                     events = (SELECT coalesce(sum(n), 0) FROM session_counts WHERE session_id = ?1), \
                     ended_ns = coalesce(ended_ns, (SELECT time_ns FROM events WHERE id = last_event)) \
                     WHERE id = ?1 AND state = 'running'",
                    params![id],
                )
                .map_err(self.busy("marking a dead recorder's session"))?;
        }
        Ok(reaped)
    }

    /// All sessions, oldest first.
    pub fn sessions(&self) -> Result<Vec<Session>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {SESSION_COLUMNS} FROM sessions ORDER BY id"))
            .map_err(StoreError::sql("listing sessions"))?;
        let rows = stmt.query_map([], session_from_row).map_err(StoreError::sql("listing sessions"))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r.map_err(StoreError::sql("listing sessions"))??);
        }
        Ok(out)
    }

    /// One session by id, or `last` for the newest.
    pub fn session(&self, which: &str) -> Result<Session, StoreError> {
        let id: i64 = if matches!(which, "last" | "latest") {
            self.conn
                .query_row("SELECT max(id) FROM sessions", [], |r| r.get::<_, Option<i64>>(0))
                .map_err(StoreError::sql("finding the last session"))?
                .ok_or_else(|| StoreError::UnknownSession(which.to_owned()))?
        } else {
            which.trim().parse().map_err(|_| StoreError::UnknownSession(which.to_owned()))?
        };
        self.session_by_id(id)
    }

    /// One session by id.
    pub fn session_by_id(&self, id: i64) -> Result<Session, StoreError> {
        self.conn
            .query_row(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1"), [id], session_from_row)
            .optional()
            .map_err(StoreError::sql("reading a session"))?
            .ok_or_else(|| StoreError::UnknownSession(id.to_string()))?
    }

    /// Streams a session's events, in recording order, to `f`. Memory stays
    /// flat whatever the session size. An error from `f` stops the stream
    /// and is returned.
    pub fn events<F>(&self, session: i64, mut f: F) -> Result<u64, StoreError>
    where
        F: FnMut(Event) -> Result<(), StoreError>,
    {
        self.session_by_id(session)?;
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "{EVENT_SELECT} WHERE e.session_id = ?1 AND e.id BETWEEN \
                 (SELECT first_event FROM sessions WHERE id = ?1) AND (SELECT last_event FROM sessions WHERE id = ?1) \
                 ORDER BY e.id"
            ))
            .map_err(StoreError::sql("reading events"))?;
        let mut strings = StringCache::new(&self.conn)?;
        let mut rows = stmt.query([session]).map_err(StoreError::sql("reading events"))?;
        let mut n = 0;
        while let Some(r) = rows.next().map_err(StoreError::sql("reading events"))? {
            f(event_from_row(r, 2, &mut strings)?)?;
            n += 1;
        }
        Ok(n)
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

/// Selects (event id, session id, then the event columns read by
/// [`event_from_row`]). Strings come back as ids, resolved by a
/// [`StringCache`]: a query's rows share few distinct strings, and one
/// lookup each beats four joins per row.
pub(crate) const EVENT_SELECT: &str = "SELECT e.id, e.session_id, e.time_ns, e.pid, e.tid, e.ppid, e.uid, e.comm_id, e.exe_id, e.op, \
     e.path_id, e.path2_id, e.access, e.arg, e.file_type, e.result, e.errno, e.net_family, e.net_addr, e.net_port, e.incomplete, \
     e.denied_by, e.sock_type, e.sock_proto FROM events e";

/// Interned strings already read, by id, for decoding event rows.
pub(crate) struct StringCache<'c> {
    lookup: rusqlite::CachedStatement<'c>,
    values: HashMap<i64, String, std::hash::BuildHasherDefault<encode::FxHasher>>,
}

/// Strings a cache holds before it starts over (bounds its memory).
const MAX_CACHED_VALUES: usize = 1 << 18;

impl<'c> StringCache<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Result<StringCache<'c>, StoreError> {
        let lookup =
            conn.prepare_cached("SELECT value FROM strings WHERE id = ?1").map_err(StoreError::sql("reading strings"))?;
        Ok(StringCache { lookup, values: HashMap::default() })
    }

    fn get(&mut self, id: i64) -> Result<String, StoreError> {
        if let Some(v) = self.values.get(&id) {
            return Ok(v.clone());
        }
        let value: String = self
            .lookup
            .query_row([id], |r| r.get(0))
            .optional()
            .map_err(StoreError::sql("reading strings"))?
            .ok_or_else(|| StoreError::Corrupt(format!("string id {id} is missing")))?;
        if self.values.len() >= MAX_CACHED_VALUES {
            self.values.clear();
        }
        self.values.insert(id, value.clone());
        Ok(value)
    }

    fn get_opt(&mut self, id: Option<i64>) -> Result<Option<String>, StoreError> {
        id.map(|id| self.get(id)).transpose()
    }
}

/// An [`Access`] as stored: bits r=1 w=2 x=4 c=8 t=16 d=32.
#[must_use]
pub fn access_bits(a: Access) -> i64 {
    i64::from(a.read)
        | i64::from(a.write) << 1
        | i64::from(a.exec) << 2
        | i64::from(a.create) << 3
        | i64::from(a.truncate) << 4
        | i64::from(a.directory) << 5
}

/// The [`Access`] of stored bits (see [`access_bits`]).
#[must_use]
pub fn access_from_bits(b: i64) -> Access {
    Access {
        read: b & 1 != 0,
        write: b & 2 != 0,
        exec: b & 4 != 0,
        create: b & 8 != 0,
        truncate: b & 16 != 0,
        directory: b & 32 != 0,
    }
}

/// `(result class, errno, denied_by)` as stored.
#[must_use]
pub fn outcome_columns(o: Outcome) -> (i64, i64, Option<i64>) {
    match o {
        Outcome::Ok => (0, 0, None),
        Outcome::Denied { errno, by } => (1, i64::from(errno), Some(i64::from(by.code()))),
        Outcome::Error(e) => (2, i64::from(e), None),
    }
}

/// The outcome of stored `(result class, errno, denied_by)`.
pub fn outcome_of(class: i64, errno: i32, denied_by: Option<i64>) -> Result<Outcome, StoreError> {
    Ok(match class {
        0 => Outcome::Ok,
        1 => {
            let by = match denied_by {
                // Rows from before schema 4 were "denied" for any EACCES/EPERM.
                None => DenyBy::Unattributed,
                Some(code) => u8::try_from(code)
                    .ok()
                    .and_then(DenyBy::from_code)
                    .ok_or_else(|| StoreError::Corrupt(format!("denial attribution {code}")))?,
            };
            Outcome::Denied { errno, by }
        }
        2 => Outcome::Error(errno),
        other => return Err(StoreError::Corrupt(format!("result class {other}"))),
    })
}

/// Decodes a stored operation code; an unknown one means a corrupt database.
pub(crate) fn op_column(r: &rusqlite::Row<'_>, idx: usize) -> Result<Op, StoreError> {
    let code: i64 = r.get(idx)?;
    u16::try_from(code).ok().and_then(Op::from_code).ok_or_else(|| StoreError::Corrupt(format!("operation code {code}")))
}

/// Decodes the event columns of [`EVENT_SELECT`] starting at column `at`.
pub(crate) fn event_from_row(r: &rusqlite::Row<'_>, at: usize, strings: &mut StringCache<'_>) -> Result<Event, StoreError> {
    let op = op_column(r, at + 7)?;
    let outcome = outcome_of(r.get(at + 13)?, r.get(at + 14)?, r.get(at + 19)?)?;
    let family: Option<u16> = r.get(at + 15)?;
    let net = match family {
        None => None,
        Some(family) => {
            let addr: Option<String> = r.get(at + 16)?;
            let addr = match addr {
                None => None,
                Some(a) => Some(a.parse().map_err(|_| StoreError::Corrupt(format!("network address {a:?}")))?),
            };
            Some(NetAddr {
                family,
                addr,
                port: r.get::<_, Option<u16>>(at + 17)?.unwrap_or(0),
                sock_type: r.get::<_, Option<u16>>(at + 20)?.unwrap_or(0),
                protocol: r.get::<_, Option<u16>>(at + 21)?.unwrap_or(0),
            })
        }
    };
    Ok(Event {
        time_ns: r.get(at)?,
        pid: r.get(at + 1)?,
        tid: r.get(at + 2)?,
        ppid: r.get(at + 3)?,
        uid: r.get(at + 4)?,
        comm: strings.get(r.get(at + 5)?)?,
        exe: strings.get_opt(r.get(at + 6)?)?,
        op,
        path: strings.get_opt(r.get(at + 8)?)?,
        path2: strings.get_opt(r.get(at + 9)?)?,
        access: access_from_bits(r.get(at + 10)?),
        arg: r.get::<_, i64>(at + 11)? as u64,
        file_type: r.get(at + 12)?,
        outcome,
        net,
        incomplete: r.get(at + 18)?,
    })
}

#[cfg(test)]
mod tests;
