//! Verifying a session's hash chain (see [`super::chain`]): recompute the
//! head from the header, every state from the events in recording order,
//! and the root from the end record, and say what does not match: the
//! first bad event by id and position, a truncated or extended session, a
//! rewritten header or end record.
//!
//! [`Verifier`] is fed one event at a time, so the local store and the
//! fleet database (`crate::fleet`) share it and memory stays flat.
//!
//! What a clean result proves depends on where the compared values came
//! from (see the chain's threat model): against the file's own head and
//! root it proves consistency only; against a root someone signed or a
//! copy held elsewhere, it proves the events are those that were recorded.

use std::fmt;

use super::chain::{self, Chain, ChainMeta, Hash};
use super::rows::{EVENT_SELECT, StringCache, event_from_row};
use super::{Session, SessionState, Store, StoreError};
use crate::event::Event;

/// What does not match in a session's chain.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// The session has no chain: recorded before schema 8 (or its chain
    /// columns were cleared: then its events still carry links, and this
    /// is [`Problem::Header`] instead).
    NotChained,
    /// The header (command, cwd, user, start time, ...) no longer hashes
    /// to the recorded head, or the head is missing while events carry links.
    Header,
    /// The first event whose recomputed state differs from the one the
    /// writer stored (or that has no link at all). Everything after it
    /// is unverifiable.
    Event { id: i64, position: u64, missing_link: bool },
    /// Fewer events than the chain covers.
    Truncated { recorded: u64, found: u64, last: Option<i64> },
    /// More events than the chain covers, from event `first` on.
    Extra { recorded: u64, found: u64, first: i64 },
    /// Every event matched but the recorded chain state does not: the
    /// state was rewritten.
    State,
    /// The end record (end time, state, exit, counters, note) no longer
    /// hashes to the recorded root, or the root was rewritten.
    End,
    /// The session has ended but no root was recorded.
    NoRoot,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NotChained => write!(f, "not chained (recorded before schema 8): nothing to verify"),
            Problem::Header => write!(
                f,
                "the session header (command, cwd, user, backend, kernel, version, kind, context, profile, start) was \
                 rewritten: it no longer hashes to the chain's head"
            ),
            Problem::Event { id, position, missing_link: true } => {
                write!(f, "first bad event: id {id} (event {position} of the session) has no chain link: it was inserted")
            }
            Problem::Event { id, position, missing_link: false } => write!(
                f,
                "first bad event: id {id} (event {position} of the session) does not follow from the events before it: it \
                 was edited, inserted or moved, or an event before it was deleted"
            ),
            Problem::Truncated { recorded, found, last: Some(last) } => {
                write!(f, "truncated: the chain covers {recorded} events, {found} are left; the last one is id {last}")
            }
            Problem::Truncated { recorded, found, last: None } => {
                write!(f, "truncated: the chain covers {recorded} events, {found} are left")
            }
            Problem::Extra { recorded, found, first } => {
                write!(f, "extended: the chain covers {recorded} events, {found} are there; id {first} and after were added")
            }
            Problem::State => write!(f, "the recorded chain state was rewritten (it does not match the events)"),
            Problem::End => write!(
                f,
                "the session's end record (end time, state, exit, event count, loss counters, note) or its root was rewritten"
            ),
            Problem::NoRoot => write!(f, "the session ended but its chain root was never recorded"),
        }
    }
}

/// The outcome of verifying one session.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ChainCheck {
    pub session: i64,
    pub state: SessionState,
    /// Events read.
    pub events: u64,
    /// Events the chain covers, as recorded.
    pub chained: Option<u64>,
    /// The root recomputed from the events and the end record (hex), when
    /// the session has ended and every event matched.
    pub root: Option<String>,
    /// The root as recorded (hex).
    pub recorded_root: Option<String>,
    pub problems: Vec<Problem>,
}

impl ChainCheck {
    /// Nothing wrong was found (an unchained session is not verified).
    #[must_use]
    pub fn verified(&self) -> bool {
        self.problems.is_empty()
    }

    /// The recomputed root, when verified and ended.
    #[must_use]
    pub fn root_hash(&self) -> Option<Hash> {
        self.root.as_deref().and_then(chain::from_hex)
    }
}

/// Recomputes a session's chain from its events, fed in recording order.
pub struct Verifier {
    session: Session,
    meta: ChainMeta,
    head: Hash,
    chain: Chain,
    found: u64,
    links_seen: bool,
    first_bad: Option<(i64, u64, bool)>,
    last_good: Option<i64>,
    first_extra: Option<i64>,
    at_recorded: Option<Hash>,
}

impl Verifier {
    /// Starts from the recorded head (so a rewritten header is reported
    /// once, not as a bad first event), or the recomputed one without it.
    #[must_use]
    pub fn new(session: Session, meta: ChainMeta) -> Verifier {
        let head = chain::head(&session);
        let start = meta.head.unwrap_or(head);
        let at_recorded = (meta.count == Some(0)).then_some(start);
        Verifier {
            session,
            meta,
            head,
            chain: Chain::resume(start, 0),
            found: 0,
            links_seen: false,
            first_bad: None,
            last_good: None,
            first_extra: None,
            at_recorded,
        }
    }

    /// The next event (`id` as stored, `link` its stored chain link).
    pub fn event(&mut self, id: i64, link: Option<i32>, e: &Event) {
        self.found += 1;
        self.links_seen |= link.is_some();
        let recorded = self.meta.count.unwrap_or(0);
        if self.found > recorded && self.first_extra.is_none() {
            self.first_extra = Some(id);
        }
        if self.first_bad.is_some() {
            return;
        }
        let l = self.chain.push(e);
        match link {
            None => self.first_bad = Some((id, self.found, true)),
            Some(x) if x != l => self.first_bad = Some((id, self.found, false)),
            Some(_) => self.last_good = Some(id),
        }
        if self.found == recorded {
            self.at_recorded = Some(self.chain.state());
        }
    }

    /// What did not match.
    #[must_use]
    pub fn finish(self) -> ChainCheck {
        let mut check = ChainCheck {
            session: self.session.id,
            state: self.session.state,
            events: self.found,
            chained: self.meta.count,
            root: None,
            recorded_root: self.meta.root.as_ref().map(chain::hex),
            problems: Vec::new(),
        };
        let p = &mut check.problems;
        if self.meta.head.is_none() && self.meta.state.is_none() && self.meta.count.is_none() && self.meta.root.is_none() {
            p.push(if self.links_seen { Problem::Header } else { Problem::NotChained });
            return check;
        }
        if self.meta.head != Some(self.head) {
            p.push(Problem::Header);
        }
        if let Some((id, position, missing_link)) = self.first_bad {
            p.push(Problem::Event { id, position, missing_link });
        }
        let recorded = self.meta.count.unwrap_or(0);
        if self.found < recorded {
            p.push(Problem::Truncated { recorded, found: self.found, last: self.last_good });
        }
        if let Some(first) = self.first_extra {
            p.push(Problem::Extra { recorded, found: self.found, first });
        }
        let events_good = self.first_bad.is_none() && self.found == recorded;
        if events_good && self.at_recorded != self.meta.state {
            p.push(Problem::State);
        }
        if self.session.state != SessionState::Running {
            match self.meta.root {
                None => p.push(Problem::NoRoot),
                Some(recorded_root) if events_good => {
                    let r = chain::root(&self.chain.state(), self.found, &self.session);
                    if r == recorded_root {
                        check.root = Some(chain::hex(&r));
                    } else {
                        p.push(Problem::End);
                    }
                }
                Some(_) => {}
            }
        }
        check
    }
}

/// The event columns of [`EVENT_SELECT`] followed by the chain link.
fn chained_select() -> Result<String, StoreError> {
    let columns = EVENT_SELECT
        .strip_suffix(" FROM events e")
        .ok_or_else(|| StoreError::Corrupt("internal: the event column list changed shape".into()))?;
    Ok(format!("{columns}, e.chain FROM events e"))
}

/// Where the link sits in a row of [`chained_select`].
const LINK_COLUMN: usize = 24;

impl Store {
    /// Verifies session `id`'s chain against what the file itself records.
    pub fn verify_chain(&self, id: i64) -> Result<ChainCheck, StoreError> {
        let session = self.session_by_id(id)?;
        let meta = self.chain_meta(id)?;
        let mut v = Verifier::new(session, meta);
        self.chained_events(id, 0, usize::MAX, |eid, link, e| {
            v.event(eid, link, &e);
            Ok(())
        })?;
        Ok(v.finish())
    }

    /// Streams up to `limit` events of `session` with ids above `after`,
    /// in recording order, with their chain links; returns how many and
    /// the last id.
    pub fn chained_events<F>(&self, session: i64, after: i64, limit: usize, mut f: F) -> Result<(u64, Option<i64>), StoreError>
    where
        F: FnMut(i64, Option<i32>, Event) -> Result<(), StoreError>,
    {
        let what = "reading events";
        let sql = format!(
            "{} WHERE e.session_id = ?1 AND e.id > max(?2, coalesce((SELECT first_event FROM sessions WHERE id = ?1), 0) - 1) \
             AND e.id <= coalesce((SELECT last_event FROM sessions WHERE id = ?1), -1) ORDER BY e.id LIMIT ?3",
            chained_select()?
        );
        let mut stmt = self.conn().prepare_cached(&sql).map_err(StoreError::sql(what))?;
        let mut strings = StringCache::new(self.conn())?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = stmt.query(rusqlite::params![session, after, limit]).map_err(StoreError::sql(what))?;
        let (mut n, mut last) = (0, None);
        while let Some(r) = rows.next().map_err(StoreError::sql(what))? {
            let id: i64 = r.get(0)?;
            let link: Option<i32> = r.get(LINK_COLUMN)?;
            f(id, link, event_from_row(r, 2, &mut strings)?)?;
            n += 1;
            last = Some(id);
        }
        Ok((n, last))
    }

    /// Every session's id, for `verify all`.
    pub fn session_ids(&self) -> Result<Vec<i64>, StoreError> {
        self.conn()
            .prepare("SELECT id FROM sessions ORDER BY id")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(StoreError::sql("listing sessions"))
    }
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
