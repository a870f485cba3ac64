//! The batched writer: one thread with its own connection turns batches of
//! events into one transaction each (several queued batches are coalesced
//! into one transaction when the writer falls behind).
//!
//! The channel is bounded, so memory stays bounded: a slow disk makes the
//! recorder wait or count drops; it never grows a queue without limit. A
//! database error stops the writer without a panic; [`WriterHandle::join`]
//! returns it with the number of events stored and not stored.

use std::collections::HashMap;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Instant;

use rusqlite::{Connection, Transaction, params};
use tokio::sync::mpsc;

use super::{StoreError, access_bits, busy_or, connect, outcome_columns};
use crate::event::Event;

/// Batches the channel holds before the sender waits (about 64 x 4096 events).
pub const CHANNEL_BATCHES: usize = 64;
/// Most events coalesced into one transaction.
const MAX_EVENTS_PER_TXN: usize = 64 * 1024;
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
    ids: HashMap<String, i64>,
}

impl Interner {
    fn clear(&mut self) {
        self.ids.clear();
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
        let id = match found {
            Some(id) => id,
            None => {
                tx.prepare_cached("INSERT INTO strings (value) VALUES (?1)")?.execute([s])?;
                tx.last_insert_rowid()
            }
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

fn insert_batches(conn: &mut Connection, session: i64, batches: &[Vec<Event>], interner: &mut Interner) -> rusqlite::Result<()> {
    // IMMEDIATE: take the write lock now (waiting up to the busy timeout)
    // rather than failing to upgrade a read lock halfway through.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO events (session_id, time_ns, pid, tid, ppid, uid, comm_id, exe_id, op, path_id, path2_id, \
             access, arg, file_type, result, errno, net_family, net_addr, net_port, incomplete) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
        )?;
        for e in batches.iter().flatten() {
            let comm = interner.id(&tx, &e.comm)?;
            let exe = interner.opt(&tx, e.exe.as_deref())?;
            let path = interner.opt(&tx, e.path.as_deref())?;
            let path2 = interner.opt(&tx, e.path2.as_deref())?;
            let (class, errno) = outcome_columns(e.outcome);
            let (family, addr, port) = match &e.net {
                Some(n) => (Some(n.family), n.addr.map(|a| a.to_string()), Some(n.port)),
                None => (None, None, None),
            };
            stmt.execute(params![
                session,
                e.time_ns,
                e.pid,
                e.tid,
                e.ppid,
                e.uid,
                comm,
                exe,
                e.op.code(),
                path,
                path2,
                access_bits(e.access),
                e.arg as i64,
                e.file_type,
                class,
                errno,
                family,
                addr,
                port,
                e.incomplete,
            ])?;
        }
    }
    tx.commit()
}

/// Ingest benchmark: creates a session in the database at `path` (created
/// if needed), streams `n_events` synthetic events of a realistic shape
/// (a few thousand distinct paths, a few processes) through
/// [`spawn_writer`] in batches of 4096, and returns events per second.
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
        access: Access { read: true, write: i % 5 == 0, ..Access::default() },
        arg: i,
        file_type: 0o100_000,
        outcome: if i % 11 == 0 { Outcome::Error(2) } else { Outcome::Ok },
        net: None,
        incomplete: false,
    }
}
