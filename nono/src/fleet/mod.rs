//! The fleet store: audit sessions of many hosts in one `PostgreSQL`
//! database. It owns the connection (URL, credentials, TLS, and which
//! server was reached), the numbered `PostgreSQL` migrations, the host
//! identity (a host is its id; people see `NAME#ID-PREFIX`, see
//! [`host`]), pushing finished local sessions there ([`push`]) and
//! reading them back in the local store's types ([`read`]; the network
//! proxy's domain rows in `domains`), so every
//! `nono audit` reader and `nono learn --from` print and learn the same
//! way from either. It must not print or parse arguments; it reads the
//! local store only through [`crate::store::Store`].
//!
//! Threat model: the audit trail leaves the machine. Passwords never come
//! from the command line (where `ps` shows them): a URL holding one is
//! refused, and the password comes from `PGPASSWORD` or `~/.pgpass`. With
//! `sslmode=require` the traffic is encrypted but the server is not
//! authenticated (as with libpq's `require`); recorded paths are data,
//! always bound parameters or COPY values, never SQL text.

mod chain;
mod conn;
mod copy;
mod domains;
pub mod host;
pub mod push;
pub mod read;

pub use conn::{Connected, FleetUrl, SCHEMA_VERSION, connect, is_fleet_url, migrate};
pub use host::{FleetHost, Host, MIN_ID_CHARS, label, session_uuid};
pub use push::{PushOptions, PushReport, push};
pub use read::Fleet;

/// Everything that can go wrong talking to the fleet database.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The URL holds a password, which would show in `ps` and shell history.
    #[error(
        "the database URL contains a password; remove it and put the password in PGPASSWORD or ~/.pgpass (never on the command line)"
    )]
    PasswordInUrl,
    /// The URL does not parse.
    #[error("bad PostgreSQL URL: {0}")]
    BadUrl(String),
    /// TLS could not be set up on this side.
    #[error("cannot set up TLS")]
    Tls(#[source] openssl::error::ErrorStack),
    /// Connecting or authenticating failed.
    #[error("cannot connect to the PostgreSQL server {target}")]
    Connect {
        target: String,
        #[source]
        source: postgres::Error,
    },
    /// The server went away (restart, network) in the middle of the work.
    #[error(
        "the PostgreSQL server closed the connection while {what}; everything committed before is kept, run the same command again to resume"
    )]
    ConnectionLost {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The fleet schema is missing or older than this nono.
    #[error(
        "the fleet database has schema {found}, this nono needs {needed}: run `nono audit push --migrate` once as a role that may create tables in schema `nono`"
    )]
    NotMigrated { found: i32, needed: i32 },
    /// `--migrate` ran as a role that may not create what is missing.
    #[error("role {role} may not create {what} in database {database}: {fix}")]
    MigrateRefused {
        role: String,
        database: String,
        /// "schema nono" or "tables in schema nono".
        what: &'static str,
        /// What a DBA runs once.
        fix: String,
        #[source]
        source: postgres::Error,
    },
    /// The fleet schema was written by a newer nono.
    #[error("the fleet database has schema {found}, newer than this nono's {needed}; use a newer nono")]
    TooNew { found: i32, needed: i32 },
    /// Any other `PostgreSQL` failure.
    #[error("PostgreSQL error while {what}")]
    Sql {
        what: String,
        #[source]
        source: postgres::Error,
    },
    /// The local audit store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// No session has this id (or the fleet database has none).
    #[error("no session {0} in the fleet database; list them with `nono audit sessions --db postgres://...`")]
    UnknownSession(String),
    /// `--host` names no host of the fleet.
    #[error("no host {spec:?} in the fleet database; its hosts: {known}")]
    UnknownHost { spec: String, known: String },
    /// `--host` names several hosts (a name they share).
    #[error("--host {spec:?} matches several hosts: {candidates}; name one by its label (NAME#ID-PREFIX) or its id")]
    AmbiguousHost { spec: String, candidates: String },
    /// A stored row that does not decode.
    #[error("corrupt fleet record: {0}")]
    Corrupt(String),
    /// Reading the host identity failed.
    #[error("cannot read the host identity from {path}; set NONO_HOST_ID")]
    HostId {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl FleetError {
    /// Wraps a `PostgreSQL` error, telling a lost connection from the rest.
    pub(crate) fn pg(what: impl Into<String>) -> impl FnOnce(postgres::Error) -> FleetError {
        move |source| {
            let what = what.into();
            let lost = source.is_closed()
                || source.code().is_some_and(|c| {
                    c.code().starts_with("57P") // admin_shutdown, crash_shutdown, cannot_connect_now
                        || c.code().starts_with("08") // connection exceptions
                })
                || std::error::Error::source(&source).and_then(|s| s.downcast_ref::<std::io::Error>()).is_some();
            if lost { FleetError::ConnectionLost { what, source: Box::new(source) } } else { FleetError::Sql { what, source } }
        }
    }
}
