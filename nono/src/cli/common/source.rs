//! Where `nono audit` reads from: the local `SQLite` store, or the fleet's
//! `PostgreSQL` database when `--db` is a `postgres://` URL. Both give the
//! store's types, so every output format is shared, and every reader
//! (`sessions`, `show`, `query`, `summary`, `check`, `report`, `export`,
//! `profile report --against`) works on either. A session's host is
//! named the same way from both: `NAME#ID-PREFIX` (see `fleet::host`).

use std::path::PathBuf;

use anyhow::bail;

use crate::fleet::{self, Fleet, FleetUrl};
use crate::record::spawn::Identity;
use crate::store::{EventRow, Query, Session, Store, Summary};

/// The help of an audit command's `--db`.
pub const DB_HELP: &str =
    "Audit database (default: $XDG_STATE_HOME/nono/audit.db, else ~/.local/state/nono/audit.db; under sudo, the invoking user's)";

/// Options every audit subcommand takes.
#[derive(Debug, Clone, clap::Args)]
pub struct SourceArgs {
    #[arg(
        long,
        env = "NONO_DB",
        value_name = "PATH",
        help = DB_HELP
    )]
    pub db: Option<PathBuf>,
    /// Only this host's sessions: its id, its label (NAME#ID-PREFIX), or a
    /// name only one host carries; fleet databases only.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Output format.
    #[arg(long, default_value = "table")]
    pub format: crate::cli::common::Format,
}

/// A session as `nono audit sessions` lists it.
pub struct Listed {
    pub session: Session,
    /// The host that recorded it.
    pub host: HostView,
    pub denials: u64,
}

/// The host of a session, as every output names it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostView {
    /// `NAME#ID-PREFIX`, unique among the database's hosts.
    pub label: String,
    pub name: String,
    pub id: String,
}

impl HostView {
    fn this() -> HostView {
        fleet::Host::this().map_or_else(
            |_| HostView { label: "unknown".to_owned(), name: "unknown".to_owned(), id: String::new() },
            |h| HostView { label: h.label(), name: h.name, id: h.id },
        )
    }

    fn of(f: &Fleet, s: &fleet::read::FleetSession) -> HostView {
        HostView { label: f.host_label(s), name: s.hostname.clone(), id: s.host_id.clone() }
    }
}

/// An open audit source.
pub enum Source {
    Local(Store),
    Fleet(Box<Fleet>),
}

/// The fleet URL `--db` names, if it names one.
#[must_use]
pub fn fleet_url(db: Option<&std::path::Path>) -> Option<&str> {
    db.and_then(|p| p.to_str()).filter(|s| fleet::is_fleet_url(s))
}

/// Opens what `--db` names, for reading only: nothing is written, not
/// even the state of a local session whose recorder died (shown as such;
/// the next `learn` or `run --audit` marks it incomplete).
pub fn open(common: &SourceArgs) -> anyhow::Result<Source> {
    open_db(common.db.as_deref(), common.host.as_deref())
}

/// [`open`] from a `--db` and a `--host`.
pub fn open_db(db: Option<&std::path::Path>, host: Option<&str>) -> anyhow::Result<Source> {
    if let Some(url) = fleet_url(db) {
        return Ok(Source::Fleet(Box::new(Fleet::open(&FleetUrl::parse(url)?, host.map(ToOwned::to_owned))?)));
    }
    if host.is_some() {
        bail!("--host needs a fleet database (--db postgres://...); a local database holds one host");
    }
    let path = super::db_path(db, Identity::from_sudo()?.as_ref())?;
    Ok(Source::Local(Store::open_read_only(&path)?))
}

impl Source {
    pub fn sessions(&mut self) -> anyhow::Result<Vec<Session>> {
        Ok(match self {
            Source::Local(s) => s.sessions()?,
            Source::Fleet(f) => f.sessions()?.into_iter().map(|s| s.session).collect(),
        })
    }

    /// Every session with its host name and its sandbox denials.
    pub fn listed(&mut self) -> anyhow::Result<Vec<Listed>> {
        Ok(match self {
            Source::Local(s) => {
                let host = HostView::this();
                let denials = s.denial_counts()?;
                s.sessions()?
                    .into_iter()
                    .map(|session| Listed {
                        denials: denials.get(&session.id).copied().unwrap_or(0),
                        host: host.clone(),
                        session,
                    })
                    .collect()
            }
            Source::Fleet(f) => {
                let denials = f.denial_counts()?;
                let sessions = f.sessions()?;
                sessions
                    .into_iter()
                    .map(|s| Listed {
                        denials: denials.get(&s.session.id).copied().unwrap_or(0),
                        host: HostView::of(f, &s),
                        session: s.session,
                    })
                    .collect()
            }
        })
    }

    /// The profile a `run` session enforced, as stored with it (a fleet
    /// holds it for sessions pushed since fleet schema 3).
    pub fn enforced_profile(&mut self, session: i64) -> anyhow::Result<Option<crate::store::EnforcedProfile>> {
        Ok(match self {
            Source::Local(s) => s.enforced_profile(session)?,
            Source::Fleet(f) => f.enforced_profile(session)?,
        })
    }

    pub fn session(&mut self, which: &str) -> anyhow::Result<Session> {
        Ok(match self {
            Source::Local(s) => s.session(which)?,
            Source::Fleet(f) => f.session(which)?.session,
        })
    }

    pub fn query(&mut self, q: &Query) -> anyhow::Result<Vec<EventRow>> {
        Ok(match self {
            Source::Local(s) => s.query(q)?,
            Source::Fleet(f) => f.query(q)?,
        })
    }

    pub fn summary(&mut self, session: i64, top: usize) -> anyhow::Result<Summary> {
        Ok(match self {
            Source::Local(s) => s.summary(session, top)?,
            Source::Fleet(f) => f.summary(session, top)?,
        })
    }

    /// The network proxy's decisions of a session, by name (issue 23),
    /// and its DNS questions; the fleet holds them since fleet schema 4.
    pub fn domains(&mut self, session: i64) -> anyhow::Result<Vec<crate::store::DomainEvent>> {
        self.domain_query(&crate::store::DomainQuery { session: Some(session), ..Default::default() })
    }

    /// Domain rows matching `q` (`audit query --domain`), in session then
    /// time order.
    pub fn domain_query(&mut self, q: &crate::store::DomainQuery) -> anyhow::Result<Vec<crate::store::DomainEvent>> {
        Ok(match self {
            Source::Local(s) => s.domains(q)?,
            Source::Fleet(f) => f.domains(q)?,
        })
    }

    /// The host of a session: this host for a local database, the
    /// pushing host for a fleet one.
    pub fn host_of(&mut self, session: i64) -> anyhow::Result<HostView> {
        Ok(match self {
            Source::Local(_) => HostView::this(),
            Source::Fleet(f) => {
                let s = f.session(&session.to_string())?;
                HostView::of(f, &s)
            }
        })
    }

    /// Where the data comes from, for messages.
    pub fn describe(&self) -> String {
        match self {
            Source::Local(s) => s.path().display().to_string(),
            Source::Fleet(f) => f.target().to_owned(),
        }
    }

    /// Streams one session's events in recording order (bounded memory
    /// from either store).
    pub fn events(&mut self, session: i64, mut f: impl FnMut(crate::event::Event)) -> anyhow::Result<u64> {
        Ok(match self {
            Source::Local(s) => s.events(session, |e| {
                f(e);
                Ok(())
            })?,
            Source::Fleet(fl) => fl.events(session, |e| {
                f(e);
                Ok(())
            })?,
        })
    }
}
