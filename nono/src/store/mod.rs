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
pub mod chain;
mod domains;
mod encode;
mod open;
mod query;
mod readonly;
mod rows;
mod session;
mod stream;
mod tally;
mod verify;
mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

pub use chain::{ChainMeta, Seal};
pub use domains::{DomainEvent, DomainQuery, DomainSource, domain_matches};
pub use query::{
    ErrorCount, EventRow, MethodCount, OpCount, OutcomeTally, PathCount, PathGlob, ProcessRow, Query, ResultClass, Summary,
    UnknownResultClass, errno_name,
};
pub(crate) use rows::{EVENT_SELECT, StringCache, event_from_row, op_column};
pub use rows::{access_bits, access_from_bits, outcome_columns, outcome_of};
pub use session::{EnforcedProfile, LossCounters, NewSession, Session, SessionEnd, SessionKind, SessionState};
pub use verify::{ChainCheck, Problem, Verifier};
pub use writer::{
    CHANNEL_BATCHES, WriterHandle, WriterStats, bench_ingest, bench_ingest_chained, spawn_writer, spawn_writer_unchained,
    synthetic_event,
};

/// How long a connection waits for another writer before reporting "busy".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema version [`migrations`] lead to (`PRAGMA user_version`).
const SCHEMA_VERSION: usize = 8;

/// The schema, one numbered file per step. Append only: never edit a
/// migration that has shipped.
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("migrations/0001_init.sql")),
        M::up(include_str!("migrations/0002_session_ranges.sql")),
        M::up(include_str!("migrations/0003_bucketed_path_index.sql")),
        M::up(include_str!("migrations/0004_attribution_and_sockets.sql")),
        M::up_with_hook(include_str!("migrations/0005_session_aggregates_and_postings.sql"), backfill_aggregates),
        M::up(include_str!("migrations/0006_session_profile.sql")),
        M::up(include_str!("migrations/0007_domains.sql")),
        M::up(include_str!("migrations/0008_audit_chain.sql")),
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
    /// Creating the directory or the file failed (as the user nono acts
    /// as), or a symbolic link sits where the database goes.
    #[error(transparent)]
    File(Box<crate::invoker::fs::FsError>),
    /// A thread or other resource of the store could not be set up.
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

impl From<crate::invoker::fs::FsError> for StoreError {
    fn from(e: crate::invoker::fs::FsError) -> Self {
        StoreError::File(Box::new(e))
    }
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

impl Store {
    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn busy(&self, what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        move |e| busy_or(&self.path, e, StoreError::sql(what))
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

fn now_ns() -> i64 {
    jiff::Timestamp::now().as_nanosecond() as i64
}

#[cfg(test)]
mod tests;
