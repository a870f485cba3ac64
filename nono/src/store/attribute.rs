//! Turning a session's permission errors into sandbox denials once the
//! cause is known (issue 13): the recorder stores every EACCES/EPERM as an
//! error, and whoever knows what the sandbox enforced decides which of them
//! it caused. This module only applies those decisions, rows and
//! aggregates together.

use rusqlite::{Transaction, TransactionBehavior, params};

use super::{EVENT_SELECT, Store, StoreError, StringCache, event_from_row};
use crate::event::{DenyBy, Event, Op};

/// `result = 2 AND errno IN (...)`: the candidates, cheap to test on every
/// row of a session's id range (no index: one would cost every insert).
const CANDIDATES: &str = "e.result = 2 AND e.errno IN (1, 13, 18)"; // EPERM, EACCES, EXDEV

/// Whether a stored error may be a sandbox denial: EACCES or EPERM, or
/// EXDEV from a rename or link (Landlock refuses a cross-directory move it
/// cannot allow with EXDEV).
fn is_candidate(e: &Event) -> bool {
    match e.outcome {
        crate::event::Outcome::Error(errno) => {
            matches!(errno, libc::EACCES | libc::EPERM) || (errno == libc::EXDEV && matches!(e.op, Op::Rename | Op::Link))
        }
        _ => false,
    }
}

impl Store {
    /// Calls `classify` on each permission error of `session` (see
    /// [`is_candidate`]) and stores every one it attributes as a denial by
    /// that method. One transaction; returns how many rows changed.
    pub fn attribute_denials(&self, session: i64, mut classify: impl FnMut(&Event) -> Option<DenyBy>) -> Result<u64, StoreError> {
        self.session_by_id(session)?;
        let what = "attributing denials";
        let tx = Transaction::new_unchecked(self.conn(), TransactionBehavior::Immediate).map_err(self.busy(what))?;
        let (first, last, counted, detailed): (Option<i64>, Option<i64>, Option<i64>, Option<i64>) = tx
            .query_row(
                "SELECT first_event, last_event, covered_through, detailed_through FROM sessions WHERE id = ?1",
                [session],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .map_err(StoreError::sql(what))?;
        let Some((first, last)) = first.zip(last) else { return Ok(0) };
        // (id, path id, denial) of each row to change.
        let mut changes: Vec<(i64, Option<i64>, Event, DenyBy)> = Vec::new();
        {
            let mut stmt = tx
                .prepare(&format!(
                    "{EVENT_SELECT} WHERE e.session_id = ?1 AND e.id BETWEEN ?2 AND ?3 AND {CANDIDATES} ORDER BY e.id"
                ))
                .map_err(StoreError::sql(what))?;
            let mut strings = StringCache::new(&tx)?;
            let mut rows = stmt.query(params![session, first, last]).map_err(StoreError::sql(what))?;
            while let Some(r) = rows.next().map_err(StoreError::sql(what))? {
                let event = event_from_row(r, 2, &mut strings)?;
                if !is_candidate(&event) {
                    continue;
                }
                if let Some(by) = classify(&event) {
                    // Column 10 is the raw path id (see EVENT_SELECT).
                    changes.push((r.get(0)?, r.get(10)?, event, by));
                }
            }
        }
        let mut update =
            tx.prepare("UPDATE events SET result = 1, denied_by = ?2 WHERE id = ?1").map_err(StoreError::sql(what))?;
        // Rows the aggregates already count move from "error" to "denied"
        // there too; later rows are counted as they now are.
        let mut uncount = tx
            .prepare("UPDATE session_counts SET n = n - 1 WHERE session_id = ?1 AND op = ?2 AND result = 2 AND denied_by = 0")
            .map_err(StoreError::sql(what))?;
        let mut count = tx
            .prepare(
                "INSERT INTO session_counts (session_id, op, result, denied_by, n) VALUES (?1, ?2, 1, ?3, 1) \
                 ON CONFLICT DO UPDATE SET n = n + 1",
            )
            .map_err(StoreError::sql(what))?;
        let mut unerror = tx
            .prepare(
                "UPDATE session_errors SET n = n - 1 WHERE session_id = ?1 AND op = ?2 AND path_id = ?3 AND result = 2 \
                 AND errno = ?4 AND denied_by = 0",
            )
            .map_err(StoreError::sql(what))?;
        let mut error = tx
            .prepare(
                "INSERT INTO session_errors (session_id, op, path_id, result, errno, denied_by, n) \
                 VALUES (?1, ?2, ?3, 1, ?4, ?5, 1) ON CONFLICT DO UPDATE SET n = n + 1",
            )
            .map_err(StoreError::sql(what))?;
        for (id, path, event, by) in &changes {
            let by = i64::from(by.code());
            update.execute(params![id, by]).map_err(StoreError::sql(what))?;
            let op = i64::from(event.op.code());
            if counted.is_some_and(|c| *id <= c) {
                uncount.execute(params![session, op]).map_err(StoreError::sql(what))?;
                count.execute(params![session, op, by]).map_err(StoreError::sql(what))?;
            }
            if detailed.is_some_and(|d| *id <= d) {
                let (path, errno) = (path.unwrap_or(0), i64::from(event.outcome.errno()));
                unerror.execute(params![session, op, path, errno]).map_err(StoreError::sql(what))?;
                error.execute(params![session, op, path, errno, by]).map_err(StoreError::sql(what))?;
            }
        }
        drop((update, uncount, count, unerror, error));
        tx.execute("DELETE FROM session_counts WHERE session_id = ?1 AND n = 0", [session]).map_err(StoreError::sql(what))?;
        tx.execute("DELETE FROM session_errors WHERE session_id = ?1 AND n = 0", [session]).map_err(StoreError::sql(what))?;
        tx.commit().map_err(self.busy(what))?;
        Ok(changes.len() as u64)
    }
}
