//! The batched writer: one thread with its own connection turns batches of
//! events into one transaction each (several queued batches are coalesced
//! into one transaction when the writer falls behind).
//!
//! The channel is bounded, so memory stays bounded: a slow disk makes the
//! recorder wait or count drops; it never grows a queue without limit. A
//! database error stops the writer without a panic; [`WriterHandle::join`]
//! returns it with the number of events stored and not stored.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Instant;

use rusqlite::{Connection, Transaction};
use tokio::sync::mpsc;

use super::{StoreError, access_bits, busy_or, connect, outcome_columns};
use crate::event::Event;

/// Batches the channel holds before the sender waits (about 64 x 4096 events).
pub const CHANNEL_BATCHES: usize = 64;
/// Most events coalesced into one transaction.
const MAX_EVENTS_PER_TXN: usize = 64 * 1024;
/// Page cache of the writer's connection, KiB.
const WRITER_CACHE_KIB: i64 = 64 * 1024;
/// WAL size (pages) at which the writer checkpoints.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 8192;
/// Interned strings cached by the writer before the cache is reset.
const MAX_CACHED_STRINGS: usize = 1 << 20;

/// What a writer stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriterStats {
    /// Events committed.
    pub events: u64,
    /// Batches received and committed.
    pub batches: u64,
    /// Transactions committed.
    pub transactions: u64,
}

/// The writer thread; [`join`](WriterHandle::join) it after dropping every sender.
#[derive(Debug)]
pub struct WriterHandle {
    thread: JoinHandle<Result<WriterStats, StoreError>>,
}

impl WriterHandle {
    /// Waits until every sender is dropped and every queued batch is stored.
    pub fn join(self) -> Result<WriterStats, StoreError> {
        self.thread.join().map_err(|_| StoreError::WriterPanicked)?
    }
}

/// Starts a writer appending to session `session` of the database at `path`
/// (already created and migrated by [`super::Store::open`]).
pub fn spawn_writer(path: &Path, session: i64) -> Result<(mpsc::Sender<Vec<Event>>, WriterHandle), StoreError> {
    let conn = connect(path)?;
    // The events table has no foreign key (ingest speed): check here.
    let exists: bool = conn
        .query_row("SELECT EXISTS (SELECT 1 FROM sessions WHERE id = ?1)", [session], |r| r.get(0))
        .map_err(|e| busy_or(path, e, StoreError::sql("checking the session")))?;
    if !exists {
        return Err(StoreError::UnknownSession(session.to_string()));
    }
    // A larger page cache keeps the index pages that random path ids land
    // in resident; the default 2 MiB made ingest re-read them from the OS.
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
        .map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?;
    // Fewer, larger checkpoints: a page rewritten by many transactions is
    // copied back to the database once. Readers are unaffected.
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
        .map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?;
    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    let path = path.to_path_buf();
    let thread = std::thread::Builder::new()
        .name("nono-store".into())
        .spawn(move || write_loop(conn, &path, session, rx))
        .map_err(|source| StoreError::Io { what: "cannot start the writer thread for", path: Path::new("audit store").into(), source })?;
    Ok((tx, WriterHandle { thread }))
}

fn write_loop(
    mut conn: Connection,
    path: &Path,
    session: i64,
    mut rx: mpsc::Receiver<Vec<Event>>,
) -> Result<WriterStats, StoreError> {
    let mut stats = WriterStats::default();
    let mut interner = Interner::default();
    let mut pending: Vec<Vec<Event>> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut n = first.len();
        pending.push(first);
        while n < MAX_EVENTS_PER_TXN {
            match rx.try_recv() {
                Ok(b) => {
                    n += b.len();
                    pending.push(b);
                }
                Err(_) => break,
            }
        }
        if let Err(e) = insert_batches(&mut conn, session, &pending, &mut interner) {
            // Rolled back: the cache may name strings that were never committed.
            interner.clear();
            let mut unstored = n as u64;
            rx.close();
            while let Ok(b) = rx.try_recv() {
                unstored += b.len() as u64;
            }
            let source = busy_or(path, e, super::StoreError::sql("storing events"));
            return Err(StoreError::Writer { stored: stats.events, unstored, source: Box::new(source) });
        }
        stats.events += n as u64;
        stats.batches += pending.len() as u64;
        stats.transactions += 1;
        pending.clear();
    }
    Ok(stats)
}

/// Maps strings to their `strings.id`, caching what this writer has seen.
#[derive(Default)]
struct Interner {
    ids: HashMap<String, i64, BuildHasherDefault<FxHasher>>,
    /// The previous event's comm and exe: consecutive events mostly share
    /// them, and a compare is cheaper than a hash lookup.
    recent: [Option<(String, i64)>; 2],
}

/// A fast non-cryptographic hasher (the Fx multiply-rotate scheme, eight
/// bytes at a time). The keys are recorded paths; collisions only cost time,
/// and `SipHash`'s flood resistance buys nothing for a per-session cache.
#[derive(Default)]
struct FxHasher {
    hash: u64,
}

impl FxHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

impl Interner {
    fn clear(&mut self) {
        self.ids.clear();
        self.recent = [None, None];
    }

    /// [`Self::id`] with a one-entry memo per `slot`.
    fn recent_id(&mut self, tx: &Transaction<'_>, slot: usize, s: &str) -> rusqlite::Result<i64> {
        if let Some((last, id)) = &self.recent[slot]
            && last == s
        {
            return Ok(*id);
        }
        let id = self.id(tx, s)?;
        match &mut self.recent[slot] {
            // Reuse the buffer: no allocation per miss.
            Some((last, last_id)) => {
                last.clear();
                last.push_str(s);
                *last_id = id;
            }
            empty @ None => *empty = Some((s.to_owned(), id)),
        }
        Ok(id)
    }

    fn id(&mut self, tx: &Transaction<'_>, s: &str) -> rusqlite::Result<i64> {
        if let Some(&id) = self.ids.get(s) {
            return Ok(id);
        }
        let found: Option<i64> = {
            let mut q = tx.prepare_cached("SELECT id FROM strings WHERE value = ?1")?;
            let mut rows = q.query([s])?;
            match rows.next()? {
                Some(r) => Some(r.get(0)?),
                None => None,
            }
        };
        let id = if let Some(id) = found {
            id
        } else {
            tx.prepare_cached("INSERT INTO strings (value) VALUES (?1)")?.execute([s])?;
            tx.last_insert_rowid()
        };
        if self.ids.len() >= MAX_CACHED_STRINGS {
            self.ids.clear();
        }
        self.ids.insert(s.to_owned(), id);
        Ok(id)
    }

    fn opt(&mut self, tx: &Transaction<'_>, s: Option<&str>) -> rusqlite::Result<Option<i64>> {
        s.map(|s| self.id(tx, s)).transpose()
    }
}

/// Rows per multi-row INSERT: one statement step per `ROWS` events cuts the
/// per-statement overhead (bind/step/reset, cursor setup) that dominated a
/// row-at-a-time insert. 20 columns x 64 rows stays far below `SQLite`'s
/// 32766 parameter limit.
const ROWS: usize = 64;
const COLUMNS: usize = 20;

fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT OR FAIL INTO events (session_id, time_ns, pid, tid, ppid, uid, comm_id, exe_id, op, path_id, path2_id, \
         access, arg, file_type, result, errno, net_family, net_addr, net_port, incomplete) VALUES ",
    );
    let row = format!("({})", vec!["?"; COLUMNS].join(","));
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&row);
    }
    sql
}

fn insert_batches(conn: &mut Connection, session: i64, batches: &[Vec<Event>], interner: &mut Interner) -> rusqlite::Result<()> {
    // IMMEDIATE: take the write lock now (waiting up to the busy timeout)
    // rather than failing to upgrade a read lock halfway through.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Under the write lock, new rows get ids from max(id) + 1 upwards.
    let first: i64 = tx.prepare_cached("SELECT coalesce(max(id), 0) + 1 FROM events")?.query_row([], |r| r.get(0))?;
    {
        let many = insert_sql(ROWS);
        let one = insert_sql(1);
        let mut chunk: Vec<&Event> = Vec::with_capacity(ROWS);
        let mut events = batches.iter().flatten().peekable();
        while events.peek().is_some() {
            chunk.clear();
            chunk.extend(events.by_ref().take(ROWS));
            if chunk.len() == ROWS {
                let mut stmt = tx.prepare_cached(&many)?;
                for (i, e) in chunk.iter().enumerate() {
                    bind_event(&tx, &mut stmt, i * COLUMNS, session, e, interner)?;
                }
                stmt.raw_execute()?;
            } else {
                let mut stmt = tx.prepare_cached(&one)?;
                for e in &chunk {
                    bind_event(&tx, &mut stmt, 0, session, e, interner)?;
                    stmt.raw_execute()?;
                }
            }
        }
    }
    let last = tx.last_insert_rowid();
    tx.prepare_cached(
        "UPDATE sessions SET first_event = coalesce(first_event, ?2), last_event = max(coalesce(last_event, 0), ?3) WHERE id = ?1",
    )?
    .execute(rusqlite::params![session, first, last])?;
    tx.commit()
}

/// Binds one event's columns at parameters `at + 1 ..= at + COLUMNS`.
fn bind_event(
    tx: &Transaction<'_>,
    stmt: &mut rusqlite::Statement<'_>,
    at: usize,
    session: i64,
    e: &Event,
    interner: &mut Interner,
) -> rusqlite::Result<()> {
    let comm = interner.recent_id(tx, 0, &e.comm)?;
    let exe = e.exe.as_deref().map(|x| interner.recent_id(tx, 1, x)).transpose()?;
    let path = interner.opt(tx, e.path.as_deref())?;
    let path2 = interner.opt(tx, e.path2.as_deref())?;
    let (class, errno) = outcome_columns(e.outcome);
    let (family, addr, port) = match &e.net {
        Some(n) => (Some(n.family), n.addr.map(|a| a.to_string()), Some(n.port)),
        None => (None, None, None),
    };
    stmt.raw_bind_parameter(at + 1, session)?;
    stmt.raw_bind_parameter(at + 2, e.time_ns)?;
    stmt.raw_bind_parameter(at + 3, e.pid)?;
    stmt.raw_bind_parameter(at + 4, e.tid)?;
    stmt.raw_bind_parameter(at + 5, e.ppid)?;
    stmt.raw_bind_parameter(at + 6, e.uid)?;
    stmt.raw_bind_parameter(at + 7, comm)?;
    stmt.raw_bind_parameter(at + 8, exe)?;
    stmt.raw_bind_parameter(at + 9, e.op.code())?;
    stmt.raw_bind_parameter(at + 10, path)?;
    stmt.raw_bind_parameter(at + 11, path2)?;
    stmt.raw_bind_parameter(at + 12, access_bits(e.access))?;
    stmt.raw_bind_parameter(at + 13, e.arg as i64)?;
    stmt.raw_bind_parameter(at + 14, e.file_type)?;
    stmt.raw_bind_parameter(at + 15, class)?;
    stmt.raw_bind_parameter(at + 16, errno)?;
    stmt.raw_bind_parameter(at + 17, family)?;
    stmt.raw_bind_parameter(at + 18, addr)?;
    stmt.raw_bind_parameter(at + 19, port)?;
    stmt.raw_bind_parameter(at + 20, e.incomplete)?;
    Ok(())
}

/// Ingest benchmark: creates a session in the database at `path` (created
/// if needed), streams `n_events` synthetic events of a realistic shape
/// (a few thousand distinct paths, a few processes) through
/// [`spawn_writer`] in batches of 4096, and returns events per second.
#[expect(clippy::cast_precision_loss, reason = "a rate for people to read")]
pub fn bench_ingest(path: &Path, n_events: u64) -> Result<f64, StoreError> {
    let store = super::Store::open(path, None)?;
    let session = store.begin_session(&super::NewSession {
        command: vec!["bench".into()],
        cwd: "/".into(),
        backend: "bench".into(),
        ..super::NewSession::default()
    })?;
    let (tx, handle) = spawn_writer(path, session)?;
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < n_events {
        let n = (n_events - sent).min(4096);
        let batch: Vec<Event> = (sent..sent + n).map(synthetic_event).collect();
        sent += n;
        if tx.blocking_send(batch).is_err() {
            break;
        }
    }
    drop(tx);
    let stats = handle.join()?;
    let secs = start.elapsed().as_secs_f64();
    store.finish_session(
        session,
        &super::SessionEnd {
            events: stats.events,
            ..super::SessionEnd {
                state: super::SessionState::Complete,
                exit_code: Some(0),
                signal: None,
                events: 0,
                counters: super::LossCounters::default(),
                note: None,
            }
        },
    )?;
    Ok(stats.events as f64 / secs.max(1e-9))
}

/// A deterministic synthetic event number `i` (used by benchmarks and tests).
#[must_use]
pub fn synthetic_event(i: u64) -> Event {
    use crate::event::{Access, Op, Outcome};
    let pid = 1000 + (i % 7) as u32;
    let op = match i % 10 {
        0 => Op::Exec,
        1 => Op::Mkdir,
        2 => Op::Unlink,
        _ => Op::Open,
    };
    Event {
        time_ns: 1_700_000_000_000_000_000 + i as i64 * 1000,
        pid,
        tid: pid,
        ppid: 999,
        uid: 1000,
        comm: ["cc1", "make", "sh", "ld", "as", "git", "python3"][(i % 7) as usize].to_owned(),
        exe: Some(format!("/usr/bin/tool{}", i % 7)),
        op,
        path: Some(format!("/home/user/project/src/dir{}/file{}.c", (i / 13) % 50, i % 4099)),
        path2: None,
        access: Access { read: true, write: i.is_multiple_of(5), ..Access::default() },
        arg: i,
        file_type: 0o100_000,
        outcome: if i.is_multiple_of(11) { Outcome::Error(2) } else { Outcome::Ok },
        net: None,
        incomplete: false,
    }
}
