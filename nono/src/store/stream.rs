//! Reading a session's events in bounded slices, each with its stored id,
//! for copying them elsewhere (`nono audit push`, `nono audit export`).
//!
//! Owns nothing but the read: no writes, no knowledge of where the events go.

use super::{EVENT_SELECT, Store, StoreError, StringCache, event_from_row};
use crate::event::Event;

impl Store {
    /// Streams at most `limit` events of `session` whose id is above
    /// `after`, in id order, to `f(id, event)`; returns how many were read
    /// and the last id. Each call is one short query: a caller that copies
    /// a session slice by slice (resuming after the last id it committed)
    /// never holds more than a slice.
    pub fn events_after<F>(&self, session: i64, after: i64, limit: usize, mut f: F) -> Result<(u64, Option<i64>), StoreError>
    where
        F: FnMut(i64, Event) -> Result<(), StoreError>,
    {
        let what = "reading events";
        let mut stmt = self
            .conn()
            .prepare_cached(&format!(
                "{EVENT_SELECT} WHERE e.session_id = ?1 AND e.id > max(?2, coalesce((SELECT first_event FROM sessions \
                 WHERE id = ?1), 0) - 1) AND e.id <= coalesce((SELECT last_event FROM sessions WHERE id = ?1), -1) \
                 ORDER BY e.id LIMIT ?3"
            ))
            .map_err(StoreError::sql(what))?;
        let mut strings = StringCache::new(self.conn())?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = stmt.query(rusqlite::params![session, after, limit]).map_err(StoreError::sql(what))?;
        let (mut n, mut last) = (0, None);
        while let Some(r) = rows.next().map_err(StoreError::sql(what))? {
            let id: i64 = r.get(0)?;
            f(id, event_from_row(r, 2, &mut strings)?)?;
            n += 1;
            last = Some(id);
        }
        Ok((n, last))
    }
}
