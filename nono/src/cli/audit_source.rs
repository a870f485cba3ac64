//! Where `nono audit` reads from: the local `SQLite` store, or the fleet's
//! `PostgreSQL` database when `--db` is a `postgres://` URL. Both give the
//! store's types, so every output format is shared.

use anyhow::bail;

use super::audit::Common;
use crate::fleet::{self, Fleet, FleetUrl};
use crate::record::spawn::Identity;
use crate::store::{EventRow, Query, Session, Store, Summary};

/// An open audit source.
pub enum Source {
    Local(Store),
    Fleet(Fleet),
}

/// The fleet URL `--db` names, if it names one.
pub fn fleet_url(db: Option<&std::path::Path>) -> Option<&str> {
    db.and_then(|p| p.to_str()).filter(|s| fleet::is_fleet_url(s))
}

/// Opens what `--db` names, for reading only.
pub fn open(common: &Common) -> anyhow::Result<Source> {
    if let Some(url) = fleet_url(common.db.as_deref()) {
        return Ok(Source::Fleet(Fleet::open(&FleetUrl::parse(url)?, common.host.clone())?));
    }
    if common.host.is_some() {
        bail!("--host needs a fleet database (--db postgres://...); a local database holds one host");
    }
    let path = crate::cli::common::db_path(common.db.as_deref(), Identity::from_sudo()?.as_ref())?;
    Ok(Source::Local(Store::open_read_only(&path)?))
}

impl Source {
    pub fn sessions(&mut self) -> anyhow::Result<Vec<Session>> {
        Ok(match self {
            Source::Local(s) => s.sessions()?,
            Source::Fleet(f) => f.sessions()?.into_iter().map(|s| s.session).collect(),
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

    /// `(host name, host id)` of a session: this host's for a local
    /// database, the pushing host's for a fleet one.
    pub fn host_of(&mut self, session: i64) -> anyhow::Result<Option<(String, String)>> {
        Ok(match self {
            Source::Local(_) => fleet::Host::this().ok().map(|h| (h.name, h.id)),
            Source::Fleet(f) => {
                let s = f.session(&session.to_string())?;
                Some((s.hostname, s.host_id))
            }
        })
    }

    /// Streams one session's events in recording order.
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
