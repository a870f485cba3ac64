//! The batched writer: an encoder thread turns each batch of events into
//! rows of integers (see [`super::encode`]), and one thread with its own
//! connection stores them, one transaction per batch (several queued batches
//! are coalesced into one transaction when the writer falls behind).
//!
//! Both channels are bounded, so memory stays bounded: a slow disk makes the
//! recorder wait or count drops; it never grows a queue without limit. A
//! database error stops the writer without a panic; [`WriterHandle::join`]
//! returns it with the number of events stored and not stored.
//!
//! The encoder extends the session's hash chain ([`super::chain`]); each
//! transaction stores the events' links and the chain's new state together,
//! so a reader (or a writer after a crash) never sees one without the other.

use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Instant;

use rusqlite::{Connection, Statement};
use tokio::sync::mpsc;

use super::chain;
use super::encode::{ChainMark, Encoded, Encoder, Row};
use super::open::connect;
use super::tally::{Counted, Tally, settle};
use super::{StoreError, busy_or};
use crate::event::Event;

/// Batches the channel holds before the sender waits (about 64 x 4096 events).
pub const CHANNEL_BATCHES: usize = 64;
/// Encoded batches queued between the encoder and the `SQLite` thread.
const ENCODED_BATCHES: usize = 8;
/// Most events coalesced into one transaction.
const MAX_EVENTS_PER_TXN: usize = 64 * 1024;
/// Page cache of the writer's connection, KiB.
const WRITER_CACHE_KIB: i64 = 64 * 1024;
/// WAL size (pages) at which the writer checkpoints itself, should the
/// checkpoint thread stop.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 4096;

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

/// The writer's threads; [`join`](WriterHandle::join) them after dropping every sender.
#[derive(Debug)]
pub struct WriterHandle {
    encoder: JoinHandle<Handed>,
    store: JoinHandle<Result<WriterStats, StoreError>>,
    checkpointer: JoinHandle<()>,
}

impl WriterHandle {
    /// Waits until every sender is dropped and every queued batch is stored.
    pub fn join(self) -> Result<WriterStats, StoreError> {
        let handed = self.encoder.join().map_err(|_| StoreError::WriterPanicked)?;
        let stored = self.store.join().map_err(|_| StoreError::WriterPanicked);
        // Ends once the store thread has dropped its signal sender.
        let _ = self.checkpointer.join();
        match stored? {
            // Whatever the encoder passed on and the store thread did not
            // commit was lost with it, whether queued or in the rolled-back
            // transaction; so was whatever the encoder refused.
            Err(StoreError::Writer { stored, source, .. }) => {
                Err(StoreError::Writer { stored, unstored: handed.sent.saturating_sub(stored) + handed.refused, source })
            }
            other => other,
        }
    }
}

/// Starts a writer appending to session `session` of the database at `path`
/// (already created and migrated by [`super::Store::open`]), chaining its
/// events.
pub fn spawn_writer(path: &Path, session: i64) -> Result<(mpsc::Sender<Vec<Event>>, WriterHandle), StoreError> {
    spawn_writer_with(path, session, true)
}

/// [`spawn_writer`] without the hash chain: the session stays unchained
/// (`nono audit verify` says so). Only for measuring what the chain costs.
#[doc(hidden)]
pub fn spawn_writer_unchained(path: &Path, session: i64) -> Result<(mpsc::Sender<Vec<Event>>, WriterHandle), StoreError> {
    spawn_writer_with(path, session, false)
}

fn spawn_writer_with(path: &Path, session: i64, chained: bool) -> Result<(mpsc::Sender<Vec<Event>>, WriterHandle), StoreError> {
    let conn = connect(path)?;
    // The events table has no foreign key (ingest speed): check here.
    let exists: bool = conn
        .query_row("SELECT EXISTS (SELECT 1 FROM sessions WHERE id = ?1)", [session], |r| r.get(0))
        .map_err(|e| busy_or(path, e, StoreError::sql("checking the session")))?;
    if !exists {
        return Err(StoreError::UnknownSession(session.to_string()));
    }
    // What an earlier writer of this session left uncounted (it died)
    // must be counted before this writer's counts claim to cover it.
    settle(&conn, session).map_err(|e| match e {
        StoreError::Sql { source, .. } => busy_or(path, source, StoreError::sql("settling the session")),
        other => other,
    })?;
    let (conn, chain) = if chained { chain::writer_chain(conn, path, session)? } else { (conn, None) };
    // A larger page cache keeps the index pages that path ids land in
    // resident; the default 2 MiB made ingest re-read them from the OS.
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
        .map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?;
    // Checkpoints (copying the WAL back into the database, and the fsyncs
    // that go with them) run on their own thread and connection, alongside
    // the inserts instead of inside a commit.
    let checkpoint_conn = connect(path)?;
    conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?;
    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    let (commit_tx, commit_rx) = std_mpsc::sync_channel(1);
    let (enc_tx, enc_rx) = std_mpsc::sync_channel(ENCODED_BATCHES);
    let spawn_failed =
        |source| StoreError::Io { what: "cannot start the writer thread for", path: Path::new("audit store").into(), source };
    let checkpointer = std::thread::Builder::new()
        .name("nono-checkpoint".into())
        .spawn(move || {
            // As the invoking user (see `invoker`): SQLite may touch the
            // database's side files from this thread. If that identity
            // cannot be taken, the receiver is dropped and the store
            // thread checkpoints by itself.
            let _ = crate::invoker::as_user(|| checkpoint_loop(&checkpoint_conn, &commit_rx));
        })
        .map_err(spawn_failed)?;
    let store_path = path.to_path_buf();
    let store = std::thread::Builder::new()
        .name("nono-store".into())
        .spawn(move || {
            crate::invoker::as_user(|| store_loop(&conn, &store_path, session, &enc_rx, &commit_tx))
                .map_err(|e| StoreError::from(crate::invoker::fs::FsError::from(e)))?
        })
        .map_err(spawn_failed)?;
    let encoder = std::thread::Builder::new().name("nono-encode".into()).spawn(move || encode_loop(rx, &enc_tx, chain));
    match encoder {
        Ok(encoder) => Ok((tx, WriterHandle { encoder, store, checkpointer })),
        Err(e) => {
            // The store thread sees its channel close and ends, and with it
            // the checkpointer.
            let _ = store.join();
            let _ = checkpointer.join();
            Err(spawn_failed(e))
        }
    }
}

/// Checkpoints the WAL after commits until the store thread is done. A
/// PASSIVE checkpoint never blocks the writer; it copies what no reader
/// still needs, and the writer restarts the WAL once all of it is copied.
fn checkpoint_loop(conn: &Connection, commits: &std_mpsc::Receiver<()>) {
    while commits.recv().is_ok() {
        if conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())).is_err() {
            // Dropping the receiver tells the store thread to checkpoint itself.
            return;
        }
    }
    // A last one, so that the next open finds a short WAL.
    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
}

/// Events the encoder passed on to the store thread, and events it took
/// from the recorder but could not pass on (the store thread had stopped).
#[derive(Debug, Default)]
struct Handed {
    sent: u64,
    refused: u64,
}

/// Encodes batches until every sender is gone.
fn encode_loop(
    mut rx: mpsc::Receiver<Vec<Event>>,
    out: &std_mpsc::SyncSender<(usize, Encoded)>,
    chain: Option<chain::Chain>,
) -> Handed {
    let mut encoder = Encoder::new(chain);
    let mut handed = Handed::default();
    while let Some(batch) = rx.blocking_recv() {
        let n = batch.len();
        if out.send((n, encoder.encode(batch))).is_err() {
            // Stop taking batches, and count what was queued.
            handed.refused = n as u64;
            rx.close();
            while let Ok(b) = rx.try_recv() {
                handed.refused += b.len() as u64;
            }
            break;
        }
        handed.sent += n as u64;
    }
    handed
}

fn store_loop(
    conn: &Connection,
    path: &Path,
    session: i64,
    rx: &std_mpsc::Receiver<(usize, Encoded)>,
    commits: &std_mpsc::SyncSender<()>,
) -> Result<WriterStats, StoreError> {
    let mut stats = WriterStats::default();
    let mut self_checkpoint = false;
    let mut ids: Vec<i64> = Vec::new();
    let mut pending: Vec<Encoded> = Vec::new();
    let mut inserter = Inserter::new(conn, session).map_err(|e| writer_error(path, e, &stats))?;
    while let Ok((first_n, first)) = rx.recv() {
        let mut n = first_n;
        pending.push(first);
        while n < MAX_EVENTS_PER_TXN {
            match rx.try_recv() {
                Ok((k, b)) => {
                    n += k;
                    pending.push(b);
                }
                Err(_) => break,
            }
        }
        if let Err(e) = inserter.store(&pending, &mut ids) {
            return Err(writer_error(path, e, &stats));
        }
        stats.events += n as u64;
        stats.batches += pending.len() as u64;
        stats.transactions += 1;
        pending.clear();
        // Full means a checkpoint is already due; it covers this commit too.
        if let Err(std_mpsc::TrySendError::Disconnected(())) = commits.try_send(())
            && !self_checkpoint
        {
            self_checkpoint = true;
            conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
                .map_err(|e| writer_error(path, e, &stats))?;
        }
    }
    // Every sender is gone: add what the aggregates and postings still hold.
    inserter.finish().map_err(|e| writer_error(path, e, &stats))?;
    Ok(stats)
}

/// The error [`WriterHandle::join`] reports (it counts the unstored events:
/// only the encoder knows how many it passed on).
fn writer_error(path: &Path, e: rusqlite::Error, stats: &WriterStats) -> StoreError {
    let source = busy_or(path, e, StoreError::sql("storing events"));
    StoreError::Writer { stored: stats.events, unstored: 0, source: Box::new(source) }
}

/// Rows per multi-row INSERT: one statement step per `ROWS` events cuts the
/// per-statement overhead (bind/step/reset, cursor setup) that dominated a
/// row-at-a-time insert. Shorter runs use the statements for 32, 16, ... 1
/// rows (a run of `k` rows takes at most one of each).
const ROWS: usize = 64;
/// Statements for 64, 32, 16, 8, 4, 2 and 1 rows.
const SIZES: usize = 7;

/// Columns of the common insert (most events: one path, no socket).
const COMMON_COLUMNS: &str =
    "session_id, time_ns, pid, tid, ppid, uid, comm_id, exe_id, op, path_id, access, arg, file_type, result, errno, chain";
const N_COMMON: usize = 16;
/// The columns the full insert (one row at a time, for the rest) adds.
const REST_COLUMNS: &str = "path2_id, net_family, net_addr, net_port, incomplete, denied_by, sock_type, sock_proto";
const N_FULL: usize = N_COMMON + 8;

fn insert_sql(full: bool, rows: usize) -> String {
    let (columns, n) =
        if full { (format!("{COMMON_COLUMNS}, {REST_COLUMNS}"), N_FULL) } else { (COMMON_COLUMNS.to_owned(), N_COMMON) };
    let row = format!("({})", vec!["?"; n].join(","));
    format!("INSERT OR FAIL INTO events ({columns}) VALUES {}", vec![row; rows].join(","))
}

/// The prepared statements of one writer, reused by every transaction.
struct Inserter<'c> {
    conn: &'c Connection,
    session: i64,
    /// `common[i]` inserts `ROWS >> i` rows.
    common: Vec<Statement<'c>>,
    full: Statement<'c>,
    begin: Statement<'c>,
    commit: Statement<'c>,
    next_id: Statement<'c>,
    range: Statement<'c>,
    chain_update: Statement<'c>,
    string_insert: Statement<'c>,
    string_select: Statement<'c>,
    tally: Tally,
}

impl<'c> Inserter<'c> {
    fn new(conn: &'c Connection, session: i64) -> rusqlite::Result<Inserter<'c>> {
        let common = (0..SIZES).map(|i| conn.prepare(&insert_sql(false, ROWS >> i))).collect::<Result<Vec<_>, _>>()?;
        Ok(Inserter {
            conn,
            session,
            common,
            full: conn.prepare(&insert_sql(true, 1))?,
            // IMMEDIATE: take the write lock now (waiting up to the busy
            // timeout) rather than failing to upgrade a read lock halfway.
            begin: conn.prepare("BEGIN IMMEDIATE")?,
            commit: conn.prepare("COMMIT")?,
            next_id: conn.prepare("SELECT coalesce(max(id), 0) + 1 FROM events")?,
            range: conn.prepare(
                "UPDATE sessions SET first_event = coalesce(first_event, ?2), last_event = max(coalesce(last_event, 0), ?3) \
                 WHERE id = ?1",
            )?,
            // Only from where this writer left it: a second writer of the
            // same session would fork the chain.
            chain_update: conn.prepare(
                "UPDATE sessions SET chain_state = ?2, chain_count = ?3 WHERE id = ?1 AND chain_count = ?4 AND chain_root IS NULL",
            )?,
            string_insert: conn.prepare("INSERT OR IGNORE INTO strings (value) VALUES (?1)")?,
            string_select: conn.prepare("SELECT id FROM strings WHERE value = ?1")?,
            tally: Tally::default(),
        })
    }

    /// Stores `batches` in one transaction; rolls back on error.
    fn store(&mut self, batches: &[Encoded], ids: &mut Vec<i64>) -> rusqlite::Result<()> {
        self.begin.execute([])?;
        let done = self.store_in_transaction(batches, ids);
        // The caller stops at the first error, so `ids` (which may now name
        // rolled-back strings) is never used again.
        if done.is_err() && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        done
    }

    fn store_in_transaction(&mut self, batches: &[Encoded], ids: &mut Vec<i64>) -> rusqlite::Result<()> {
        // Under the write lock, new rows get ids from max(id) + 1 upwards,
        // one after another (checked below): the aggregates and postings
        // are fed those ids as the rows are queued.
        let first: i64 = self.next_id.query_row([], |r| r.get(0))?;
        let mut next = first;
        let mut run: Vec<&Row> = Vec::with_capacity(ROWS);
        let mut chain_from: Option<u64> = None;
        let mut chain_to: Option<ChainMark> = None;
        for batch in batches {
            if let Some(mark) = batch.chain {
                chain_from.get_or_insert(mark.before);
                chain_to = Some(mark);
            }
            if batch.reset {
                ids.clear();
            }
            for s in &batch.strings {
                ids.push(self.string_id(s)?);
            }
            for row in &batch.rows {
                self.tally.add(&counted(next, row, ids)).map_err(|e| corrupt(&e.to_string()))?;
                next += 1;
                if row.is_common() {
                    run.push(row);
                    if run.len() == ROWS {
                        self.insert_run(&mut run, ids)?;
                    }
                } else {
                    // Keep recording order: the run before this row goes first.
                    self.insert_run(&mut run, ids)?;
                    bind_full(&mut self.full, self.session, row, ids)?;
                    self.full.raw_execute()?;
                }
            }
            // The next batch may bring a reset: its local numbers differ.
            self.insert_run(&mut run, ids)?;
        }
        if next == first {
            // Empty batches: nothing stored, no range to record.
            self.commit.execute([])?;
            return Ok(());
        }
        let last = self.conn.last_insert_rowid();
        if last != next - 1 {
            // Only a concurrent writer that bypassed the write lock, or
            // a table at the largest rowid, could do this; the postings
            // would name the wrong events.
            return Err(corrupt(&format!("event ids {first}..={last} are not the {} consecutive ids expected", next - first)));
        }
        self.range.execute(rusqlite::params![self.session, first, last])?;
        if let (Some(from), Some(to)) = (chain_from, chain_to) {
            let n =
                self.chain_update.execute(rusqlite::params![self.session, to.state.as_slice(), to.count as i64, from as i64])?;
            if n != 1 {
                return Err(corrupt(&format!(
                    "session {}'s hash chain moved under this writer (another writer, or the session ended)",
                    self.session
                )));
            }
        }
        self.tally.flush_due(self.conn, self.session)?;
        self.commit.execute([])?;
        Ok(())
    }

    /// Adds what the aggregates and postings hold, in one last transaction.
    fn finish(&mut self) -> rusqlite::Result<()> {
        self.begin.execute([])?;
        let done = self.tally.flush(self.conn, self.session);
        match done {
            Ok(()) => self.commit.execute([]).map(drop),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Inserts up to `ROWS` common rows, in order, with the fewest
    /// statements, and empties `run`.
    fn insert_run(&mut self, run: &mut Vec<&Row>, ids: &[i64]) -> rusqlite::Result<()> {
        let mut rest = run.as_slice();
        for (i, stmt) in self.common.iter_mut().enumerate() {
            let size = ROWS >> i;
            if rest.len() >= size {
                let (now, later) = rest.split_at(size);
                for (k, row) in now.iter().enumerate() {
                    bind_common(stmt, k * N_COMMON, self.session, row, ids)?;
                }
                stmt.raw_execute()?;
                rest = later;
            }
        }
        debug_assert!(rest.is_empty());
        run.clear();
        Ok(())
    }

    /// The `strings.id` of `s`, adding it when new.
    fn string_id(&mut self, s: &str) -> rusqlite::Result<i64> {
        if self.string_insert.execute([s])? == 1 {
            return Ok(self.conn.last_insert_rowid());
        }
        self.string_select.query_row([s], |r| r.get(0))
    }
}

/// An `SQLITE_CORRUPT` error saying what is wrong.
fn corrupt(what: &str) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT), Some(what.to_owned()))
}

/// What the aggregates and postings need of `row`, stored as event `id`.
fn counted(id: i64, row: &Row, ids: &[i64]) -> Counted {
    Counted {
        id,
        op: i64::from(row.op),
        result: row.result,
        errno: row.errno,
        denied_by: row.denied_by.unwrap_or(0),
        path: row.path.map_or(0, |p| db_id(ids, p)),
        pid: i64::from(row.pid),
        ppid: i64::from(row.ppid),
        comm: db_id(ids, row.comm),
        exe: row.exe.map_or(0, |x| db_id(ids, x)),
    }
}

/// The database id of local string number `local`.
fn db_id(ids: &[i64], local: u32) -> i64 {
    ids[local as usize]
}

/// Binds the common columns of `row` at parameters `at + 1 ..= at + N_COMMON`.
fn bind_common(stmt: &mut Statement<'_>, at: usize, session: i64, row: &Row, ids: &[i64]) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(at + 1, session)?;
    stmt.raw_bind_parameter(at + 2, row.time_ns)?;
    stmt.raw_bind_parameter(at + 3, row.pid)?;
    stmt.raw_bind_parameter(at + 4, row.tid)?;
    stmt.raw_bind_parameter(at + 5, row.ppid)?;
    stmt.raw_bind_parameter(at + 6, row.uid)?;
    stmt.raw_bind_parameter(at + 7, db_id(ids, row.comm))?;
    stmt.raw_bind_parameter(at + 8, row.exe.map(|x| db_id(ids, x)))?;
    stmt.raw_bind_parameter(at + 9, row.op)?;
    stmt.raw_bind_parameter(at + 10, row.path.map(|x| db_id(ids, x)))?;
    stmt.raw_bind_parameter(at + 11, row.access)?;
    stmt.raw_bind_parameter(at + 12, row.arg)?;
    stmt.raw_bind_parameter(at + 13, row.file_type)?;
    stmt.raw_bind_parameter(at + 14, row.result)?;
    stmt.raw_bind_parameter(at + 15, row.errno)?;
    stmt.raw_bind_parameter(at + 16, row.chain)?;
    Ok(())
}

/// Binds every column of `row` (the full insert, one row).
fn bind_full(stmt: &mut Statement<'_>, session: i64, row: &Row, ids: &[i64]) -> rusqlite::Result<()> {
    bind_common(stmt, 0, session, row, ids)?;
    let net = row.net.as_ref();
    stmt.raw_bind_parameter(N_COMMON + 1, row.path2.map(|x| db_id(ids, x)))?;
    stmt.raw_bind_parameter(N_COMMON + 2, net.map(|n| n.family))?;
    stmt.raw_bind_parameter(N_COMMON + 3, net.and_then(|n| n.addr.as_deref()))?;
    stmt.raw_bind_parameter(N_COMMON + 4, net.map(|n| n.port))?;
    stmt.raw_bind_parameter(N_COMMON + 5, row.incomplete)?;
    stmt.raw_bind_parameter(N_COMMON + 6, row.denied_by)?;
    stmt.raw_bind_parameter(N_COMMON + 7, net.map(|n| n.sock_type))?;
    stmt.raw_bind_parameter(N_COMMON + 8, net.map(|n| n.sock_proto))?;
    Ok(())
}

/// Ingest benchmark: creates a session in the database at `path` (created
/// if needed), streams `n_events` synthetic events of a realistic shape
/// (a few thousand distinct paths, a few processes) through
/// [`spawn_writer`] in batches of 4096, and returns events per second.
pub fn bench_ingest(path: &Path, n_events: u64) -> Result<f64, StoreError> {
    bench_ingest_chained(path, n_events, true)
}

/// [`bench_ingest`] with or without the hash chain (to measure its cost).
#[expect(clippy::cast_precision_loss, reason = "a rate for people to read")]
pub fn bench_ingest_chained(path: &Path, n_events: u64, chained: bool) -> Result<f64, StoreError> {
    let store = super::Store::open(path)?;
    let session = store.begin_session(&super::NewSession {
        command: vec!["bench".into()],
        cwd: "/".into(),
        backend: "bench".into(),
        ..super::NewSession::default()
    })?;
    let (tx, handle) = spawn_writer_with(path, session, chained)?;
    let synth = SyntheticEvents::new();
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < n_events {
        let n = (n_events - sent).min(4096);
        let batch: Vec<Event> = (sent..sent + n).map(|i| synth.event(i)).collect();
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
    synthetic_with(i, synthetic_exe(i), synthetic_path(i))
}

fn synthetic_exe(i: u64) -> String {
    format!("/usr/bin/tool{}", i % 7)
}

/// One of 50 x 4099 distinct paths, cycling.
fn synthetic_path(i: u64) -> String {
    format!("/home/user/project/src/dir{}/file{}.c", (i / 13) % 50, i % 4099)
}

/// [`synthetic_event`] with its strings cloned from tables made once, so a
/// benchmark measures the writer rather than `format!`.
pub(crate) struct SyntheticEvents {
    exes: Vec<String>,
    /// Indexed by `dir * 4099 + file`.
    paths: Vec<String>,
}

impl SyntheticEvents {
    pub(crate) fn new() -> SyntheticEvents {
        SyntheticEvents {
            exes: (0..7).map(synthetic_exe).collect(),
            paths: (0..50u64)
                .flat_map(|dir| (0..4099u64).map(move |file| format!("/home/user/project/src/dir{dir}/file{file}.c")))
                .collect(),
        }
    }

    pub(crate) fn event(&self, i: u64) -> Event {
        let (dir, file) = ((i / 13) % 50, i % 4099);
        synthetic_with(i, self.exes[(i % 7) as usize].clone(), self.paths[(dir * 4099 + file) as usize].clone())
    }
}

fn synthetic_with(i: u64, exe: String, path: String) -> Event {
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
        exe: Some(exe),
        op,
        path: Some(path),
        path2: None,
        access: Access { read: true, write: i.is_multiple_of(5), ..Access::default() },
        arg: i,
        file_type: 0o100_000,
        outcome: if i.is_multiple_of(11) { Outcome::Error(2) } else { Outcome::Ok },
        net: None,
        incomplete: false,
    }
}
