//! Event rows as stored: the column list, interned strings, and the
//! encodings of access bits, outcomes and operations; streaming a
//! session's events back.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension as _};

use super::{Store, StoreError, encode};
use crate::event::{Access, DenyBy, Event, NetAddr, Op, Outcome};

impl Store {
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
