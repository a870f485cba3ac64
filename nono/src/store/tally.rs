//! What the writer keeps about a session besides its rows: the aggregates
//! a summary reads (counts per operation and result, per path, per process,
//! per error) and the path postings a path glob reads (see migration 0005).
//!
//! Both accumulate in memory while events are stored and are added to the
//! database in the same transaction as the events they cover, so a reader
//! sees either all of a batch or none of it. `sessions.covered_through`
//! says how far they reach; events after that are grouped or scanned at
//! read time, and [`settle`] catches a session up (after a recorder died,
//! and for every session of a database migrated from schema 4).
//!
//! The per-event work is kept away from large tables: postings are
//! appended to one flat vector and sorted when the chunk is written, and
//! the per-path counts are read off the sorted postings, once per path per
//! chunk instead of once per event.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

use super::StoreError;
use super::encode::FxHasher;

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;
/// `(op, path, result, errno, denied_by)` of a failed event.
type ErrorKey = (i64, i64, i64, i64, i64);

/// Events per postings chunk: a glob seeks once per matching path per
/// chunk, and the writer holds one chunk's postings in memory (8 bytes per
/// event with a path). Tests use small chunks to cross many boundaries.
#[cfg(not(test))]
const CHUNK_EVENTS: u64 = 1 << 22;
#[cfg(test)]
const CHUNK_EVENTS: u64 = 1 << 12;
/// Distinct keys the per-path, per-process and per-error counts hold before
/// they are written out (bounds their memory).
const MAX_KEYS: usize = 1 << 20;
/// How often a long recording's chunk and counts are written out even when
/// small, so that a running session leaves little uncovered. The per-path,
/// per-process and per-error counts are written less often: each write
/// costs a row per distinct key, much like storing that many events.
const CHUNK_INTERVAL: Duration = Duration::from_secs(30);
const DETAILS_INTERVAL: Duration = Duration::from_mins(2);
/// Operation codes are below this (`crate::event::Op`); results are 0..=2
/// and attribution methods 0..=5.
const OPS: usize = 32;
const RESULTS: usize = 3;
const METHODS: usize = 8;
/// A posting packs `path id << 32 | offset in chunk << OP_BITS | op`.
const OP_BITS: u32 = 5;

/// The columns of one stored event that the aggregates and postings need,
/// as database ids; 0 stands for "none" (see migration 0005).
#[derive(Clone, Copy, Debug)]
pub(super) struct Counted {
    pub id: i64,
    pub op: i64,
    pub result: i64,
    pub errno: i64,
    pub denied_by: i64,
    pub path: i64,
    pub pid: i64,
    pub ppid: i64,
    pub comm: i64,
    pub exe: i64,
}

impl Counted {
    /// The columns `id, op, result, errno, denied_by, path_id, pid, ppid,
    /// comm_id, exe_id` of a row, in that order (nulls as 0).
    pub(super) fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            op: r.get(1)?,
            result: r.get(2)?,
            errno: r.get(3)?,
            denied_by: r.get(4)?,
            path: r.get(5)?,
            pid: r.get(6)?,
            ppid: r.get(7)?,
            comm: r.get(8)?,
            exe: r.get(9)?,
        })
    }
}

/// Counts and postings not yet written out, for one session.
///
/// Two parts, each with its own mark in `sessions`: the chunk (postings and
/// the counts per operation and result, `covered_through`), written every
/// few million events; and the details (counts per path, per process and
/// per error, `detailed_through`), written at the end of a recording or
/// when large. Per-path counts are read off each chunk's sorted postings,
/// so the details are only ever written right after a chunk.
pub(super) struct Tally {
    /// Indexed by `(op * RESULTS + result) * METHODS + denied_by`.
    counts: Vec<i64>,
    chunk_first: Option<i64>,
    chunk_through: Option<i64>,
    chunk_events: u64,
    chunk_since: Option<Instant>,
    postings: Vec<u64>,
    paths: FxMap<i64, i64>,
    /// `(pid, comm, exe)` -> (largest ppid, events)
    procs: FxMap<(i64, i64, i64), (i64, i64)>,
    /// `(op, path, result, errno, denied_by)` -> events
    errors: FxMap<ErrorKey, i64>,
    details_through: Option<i64>,
    details_since: Option<Instant>,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            counts: vec![0; OPS * RESULTS * METHODS],
            chunk_first: None,
            chunk_through: None,
            chunk_events: 0,
            chunk_since: None,
            postings: Vec::new(),
            paths: FxMap::default(),
            procs: FxMap::default(),
            errors: FxMap::default(),
            details_through: None,
            details_since: None,
        }
    }
}

impl Tally {
    /// Adds a stored event to both parts (what a writer does).
    pub fn add(&mut self, e: &Counted) -> Result<(), StoreError> {
        self.add_to_chunk(e)?;
        self.add_to_details(e, false);
        Ok(())
    }

    /// Adds `e` to the chunk: its postings and counts per operation.
    fn add_to_chunk(&mut self, e: &Counted) -> Result<(), StoreError> {
        let slot = |v: i64, n: usize| usize::try_from(v).ok().filter(|v| *v < n);
        let (Some(op), Some(result), Some(by)) = (slot(e.op, OPS), slot(e.result, RESULTS), slot(e.denied_by, METHODS)) else {
            return Err(StoreError::Corrupt(format!(
                "event {}: operation {}, result {}, attribution {}",
                e.id, e.op, e.result, e.denied_by
            )));
        };
        self.counts[(op * RESULTS + result) * METHODS + by] += 1;
        let first = *self.chunk_first.get_or_insert(e.id);
        if e.path != 0 {
            let path = u32::try_from(e.path).map_err(|_| StoreError::Corrupt(format!("string id {} beyond 2^32", e.path)))?;
            // A chunk is written long before 2^27 events.
            let offset = u64::try_from(e.id - first).unwrap_or(0) & ((1 << (32 - OP_BITS)) - 1);
            self.postings.push(u64::from(path) << 32 | offset << OP_BITS | op as u64);
        }
        self.chunk_events += 1;
        self.chunk_through = Some(e.id);
        self.chunk_since.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// Adds `e` to the details; its path is counted here only when it is
    /// not in the chunk (whose postings count it when written).
    fn add_to_details(&mut self, e: &Counted, count_path: bool) {
        if count_path && e.path != 0 {
            *self.paths.entry(e.path).or_default() += 1;
        }
        let p = self.procs.entry((e.pid, e.comm, e.exe)).or_default();
        p.0 = p.0.max(e.ppid);
        p.1 += 1;
        if e.result != 0 {
            *self.errors.entry((e.op, e.path, e.result, e.errno, e.denied_by)).or_default() += 1;
        }
        self.details_through = Some(e.id);
        self.details_since.get_or_insert_with(Instant::now);
    }

    /// Writes out what is due: the chunk when full or old, the details
    /// when large or old. Call inside the transaction that stored the events.
    pub fn flush_due(&mut self, conn: &Connection, session: i64) -> rusqlite::Result<()> {
        let details = self.procs.len() + self.errors.len() + self.paths.len() >= MAX_KEYS
            || self.details_since.is_some_and(|t| t.elapsed() >= DETAILS_INTERVAL);
        if details {
            return self.flush(conn, session);
        }
        if self.chunk_events >= CHUNK_EVENTS || self.chunk_since.is_some_and(|t| t.elapsed() >= CHUNK_INTERVAL) {
            self.flush_chunk(conn, session)?;
        }
        Ok(())
    }

    /// Writes out everything. Call inside the transaction that stored the events.
    pub fn flush(&mut self, conn: &Connection, session: i64) -> rusqlite::Result<()> {
        self.flush_chunk(conn, session)?;
        self.flush_details(conn, session)
    }

    /// Appends the chunk to `path_chunks`/`path_postings`, adds its counts
    /// per operation to `session_counts`, and its counts per path to the
    /// details.
    pub(super) fn flush_chunk(&mut self, conn: &Connection, session: i64) -> rusqlite::Result<()> {
        let (Some(first), Some(through)) = (self.chunk_first, self.chunk_through) else { return Ok(()) };
        if !self.postings.is_empty() {
            conn.prepare_cached("INSERT INTO path_chunks (session_id, first_event, last_event) VALUES (?1, ?2, ?3)")?
                .execute(params![session, first, through])?;
            let chunk = conn.last_insert_rowid();
            // By path, then in recording order. The new chunk id is the
            // largest: every row is appended at the end of the b-tree.
            self.postings.sort_unstable();
            let mut insert = conn.prepare_cached("INSERT INTO path_postings (chunk_id, path_id, events) VALUES (?1, ?2, ?3)")?;
            let mut bytes = Vec::new();
            for group in self.postings.chunk_by(|a, b| a >> 32 == b >> 32) {
                let path = (group[0] >> 32) as i64;
                bytes.clear();
                let mut last = 0u64;
                for &packed in group {
                    let offset = (packed & 0xffff_ffff) >> OP_BITS;
                    push_varint(&mut bytes, offset - last);
                    push_varint(&mut bytes, packed & ((1 << OP_BITS) - 1));
                    last = offset;
                }
                insert.execute(params![chunk, path, bytes])?;
                *self.paths.entry(path).or_default() += group.len() as i64;
            }
        }
        let mut counts = conn.prepare_cached(
            "INSERT INTO session_counts (session_id, op, result, denied_by, n) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT DO UPDATE SET n = n + excluded.n",
        )?;
        for (i, n) in self.counts.iter_mut().enumerate() {
            if *n > 0 {
                let (op, result, by) = (i / (RESULTS * METHODS), (i / METHODS) % RESULTS, i % METHODS);
                counts.execute(params![session, op as i64, result as i64, by as i64, *n])?;
                *n = 0;
            }
        }
        conn.prepare_cached("UPDATE sessions SET covered_through = ?2 WHERE id = ?1")?.execute(params![session, through])?;
        self.postings.clear();
        self.chunk_first = None;
        self.chunk_through = None;
        self.chunk_events = 0;
        self.chunk_since = None;
        Ok(())
    }

    /// Adds the counts per path, process and error to their tables. Only
    /// right after [`Self::flush_chunk`]: the paths come from its postings.
    fn flush_details(&mut self, conn: &Connection, session: i64) -> rusqlite::Result<()> {
        let Some(through) = self.details_through else { return Ok(()) };
        let mut paths = conn.prepare_cached(
            "INSERT INTO session_paths (session_id, path_id, n) VALUES (?1, ?2, ?3) ON CONFLICT DO UPDATE SET n = n + excluded.n",
        )?;
        // In key order: the inserts then walk the b-tree forwards.
        let mut sorted: Vec<(i64, i64)> = self.paths.drain().collect();
        sorted.sort_unstable();
        for (path, n) in sorted {
            paths.execute(params![session, path, n])?;
        }
        let mut procs = conn.prepare_cached(
            "INSERT INTO session_procs (session_id, pid, comm_id, exe_id, ppid, n) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT DO UPDATE SET ppid = max(ppid, excluded.ppid), n = n + excluded.n",
        )?;
        for ((pid, comm, exe), (ppid, n)) in self.procs.drain() {
            procs.execute(params![session, pid, comm, exe, ppid, n])?;
        }
        let mut errors = conn.prepare_cached(
            "INSERT INTO session_errors (session_id, op, path_id, result, errno, denied_by, n) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO UPDATE SET n = n + excluded.n",
        )?;
        let mut sorted: Vec<(ErrorKey, i64)> = self.errors.drain().collect();
        sorted.sort_unstable();
        for ((op, path, result, errno, by), n) in sorted {
            errors.execute(params![session, op, path, result, errno, by, n])?;
        }
        conn.prepare_cached("UPDATE sessions SET detailed_through = ?2 WHERE id = ?1")?.execute(params![session, through])?;
        self.details_through = None;
        self.details_since = None;
        Ok(())
    }
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Appends the event ids of one `path_postings.events` list (of a chunk
/// starting at `first`) to `out`, only those of operation `op` if given.
pub(super) fn decode_postings(first: i64, bytes: &[u8], op: Option<i64>, out: &mut Vec<i64>) -> Result<(), StoreError> {
    let corrupt = || StoreError::Corrupt(format!("path postings of the chunk starting at event {first}"));
    let mut at = 0;
    let mut id = first;
    while at < bytes.len() {
        let delta = read_varint(bytes, &mut at).ok_or_else(corrupt)?;
        let event_op = read_varint(bytes, &mut at).ok_or_else(corrupt)?;
        id = id.checked_add(i64::try_from(delta).map_err(|_| corrupt())?).ok_or_else(corrupt)?;
        if op.is_none_or(|o| o as u64 == event_op) {
            out.push(id);
        }
    }
    Ok(())
}

/// Counts and indexes the events of `session` that its aggregates and
/// postings do not cover yet (nothing, for a session whose writer finished).
/// Runs in the caller's transaction if there is one, else in its own.
pub(super) fn settle(conn: &Connection, session: i64) -> Result<(), StoreError> {
    let own = conn.is_autocommit();
    if own {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(StoreError::sql("settling a session"))?;
    }
    let done = settle_in_transaction(conn, session);
    if own {
        let end = if done.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = conn.execute_batch(end).map_err(StoreError::sql("settling a session"));
        done?;
        ended?;
        return Ok(());
    }
    done
}

fn settle_in_transaction(conn: &Connection, session: i64) -> Result<(), StoreError> {
    let what = "settling a session";
    let (first, last, covered, detailed): (Option<i64>, Option<i64>, Option<i64>, Option<i64>) = conn
        .query_row(
            "SELECT first_event, last_event, covered_through, detailed_through FROM sessions WHERE id = ?1",
            [session],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .map_err(StoreError::sql(what))?;
    let Some((first, last)) = first.zip(last) else { return Ok(()) };
    let covered = covered.unwrap_or(first - 1);
    // The details are written after the chunk, never ahead of it.
    let detailed = detailed.unwrap_or(first - 1).min(covered);
    if detailed >= last {
        return Ok(());
    }
    let mut tally = Tally::default();
    let mut stmt = conn
        .prepare(
            "SELECT id, op, result, errno, coalesce(denied_by, 0), coalesce(path_id, 0), pid, ppid, comm_id, coalesce(exe_id, 0) \
             FROM events WHERE session_id = ?1 AND id BETWEEN ?2 AND ?3 ORDER BY id",
        )
        .map_err(StoreError::sql(what))?;
    let mut rows = stmt.query(params![session, detailed + 1, last]).map_err(StoreError::sql(what))?;
    while let Some(r) = rows.next().map_err(StoreError::sql(what))? {
        let e = Counted::from_row(r)?;
        if e.id > covered {
            tally.add(&e)?;
        } else {
            tally.add_to_details(&e, true);
        }
        tally.flush_due(conn, session).map_err(StoreError::sql(what))?;
    }
    tally.flush(conn, session).map_err(StoreError::sql(what))?;
    Ok(())
}

/// Settles every session (the backfill of migration 0005).
pub(super) fn settle_all(conn: &Connection) -> Result<(), StoreError> {
    let ids: Vec<i64> = conn
        .prepare("SELECT id FROM sessions ORDER BY id")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(StoreError::sql("listing sessions to settle"))?;
    for id in ids {
        settle(conn, id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postings_round_trip_with_op_filter() {
        let mut bytes = Vec::new();
        let mut last = 100;
        for (id, op) in [(100, 1), (101, 2), (300, 1), (70_000, 1), (5_000_000, 3)] {
            push_varint(&mut bytes, (id - last) as u64);
            push_varint(&mut bytes, op);
            last = id;
        }
        let mut all = Vec::new();
        decode_postings(100, &bytes, None, &mut all).expect("decode");
        assert_eq!(all, [100, 101, 300, 70_000, 5_000_000]);
        let mut opens = Vec::new();
        decode_postings(100, &bytes, Some(1), &mut opens).expect("decode");
        assert_eq!(opens, [100, 300, 70_000]);
        // A list cut in the middle of a varint is corrupt, not misread.
        let err = decode_postings(100, &bytes[..bytes.len() - 2], None, &mut Vec::new()).expect_err("cut");
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    }
}
