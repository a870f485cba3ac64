//! `nono audit push`: copy finished local sessions to the fleet database.
//!
//! Each session is copied in slices. A slice is one transaction: a binary
//! `COPY` of its events and a `push_chunks` row holding the last local
//! event id it copied. A push killed or cut off at any point has therefore
//! committed whole slices only, and the next push resumes after the last
//! committed id: no duplicate, no gap. Each slice reads that id under a
//! per-session advisory lock, so concurrent pushes of one session take
//! turns instead of copying a slice twice. A `push_done` row closes the
//! session. Memory is one 256 KiB buffer: events stream from `SQLite`
//! into COPY. A session's domain rows go in one transaction of their
//! own before its events (`domains`), keyed by their local ids.

use std::io::Write as _;

use postgres::Client;
use postgres::types::ToSql;

use super::copy::CopyBuf;
use super::{FleetError, Host, session_uuid};
use crate::store::{Session, SessionState, Store, StoreError};

/// First key of the per-session advisory locks ("push" in ASCII).
const PUSH_LOCK: i32 = 0x7075_7368;

/// Bytes of encoded rows handed to the connection at a time.
const WRITE_BYTES: usize = 256 << 10;

/// Events per committed slice by default.
pub const DEFAULT_SLICE: usize = 100_000;

/// How to push.
#[derive(Clone, Debug)]
pub struct PushOptions {
    /// Events per committed slice.
    pub slice: usize,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions { slice: DEFAULT_SLICE }
    }
}

/// What one push did.
#[derive(Clone, Debug, Default)]
pub struct PushReport {
    /// Sessions that were complete in the fleet already.
    pub already: u64,
    /// Sessions copied (or finished) by this push.
    pub pushed: u64,
    /// Sessions still being recorded: left for a later push.
    pub running: u64,
    /// Events copied by this push.
    pub events: u64,
    /// Domain rows (the network proxy's decisions) copied by this push.
    pub domains: u64,
    /// Time spent, seconds.
    pub secs: f64,
}

const EVENT_COLUMNS: &str = "session_id, local_id, time_ns, pid, tid, ppid, uid, comm, exe, op, path, path2, access, arg, \
     file_type, result, errno, denied_by, net_family, net_addr, net_port, sock_type, sock_proto, incomplete, chain";

/// Copies every finished session of `store` that the fleet does not have
/// complete yet. `progress` is told the events committed so far.
pub fn push(
    client: &mut Client,
    store: &Store,
    host: &Host,
    opts: &PushOptions,
    mut progress: impl FnMut(u64),
) -> Result<PushReport, FleetError> {
    super::conn::check_schema(client)?;
    let start = std::time::Instant::now();
    let mut report = PushReport::default();
    for s in store.sessions()? {
        if s.state == SessionState::Running {
            report.running += 1;
            continue;
        }
        if push_session(client, store, host, &s, opts, &mut report, &mut progress)? {
            report.pushed += 1;
        } else {
            report.already += 1;
        }
    }
    report.secs = start.elapsed().as_secs_f64();
    Ok(report)
}

/// Pushes one session; false if the fleet had it complete already.
fn push_session(
    client: &mut Client,
    store: &Store,
    host: &Host,
    s: &Session,
    opts: &PushOptions,
    report: &mut PushReport,
    progress: &mut impl FnMut(u64),
) -> Result<bool, FleetError> {
    let what = format!("pushing session {}", s.id);
    let fleet_id = insert_session(client, host, store, s)?;
    // Seals may be made after a session was pushed: every push adds new ones.
    push_seals(client, store, s.id, fleet_id)?;
    // Domain rows too (fleet schema 4): a session pushed before that
    // schema gets them now; one already complete gets nothing twice.
    report.domains += super::domains::push_domains(client, store, s.id, fleet_id)?;
    loop {
        let mut tx = client.transaction().map_err(FleetError::pg(what.clone()))?;
        // One pusher per session at a time, and the high-water mark read
        // under that lock: a concurrent push of the same session (another
        // terminal, a cron job) waits, then continues after this one's
        // slices instead of copying them again.
        // Ids past 2^31 share locks with smaller ones: harmless.
        tx.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&PUSH_LOCK, &(fleet_id as i32)])
            .map_err(FleetError::pg(what.clone()))?;
        // A statement of its own: under READ COMMITTED its snapshot is
        // taken after the lock is held, so it sees the previous holder's
        // commit (in one statement with the lock it would not).
        let row = tx
            .query_one(
                "SELECT (SELECT max(through) FROM nono.push_chunks WHERE session_id = $1), \
                 EXISTS (SELECT 1 FROM nono.push_done WHERE session_id = $1)",
                &[&fleet_id],
            )
            .map_err(FleetError::pg(what.clone()))?;
        let (after, done): (Option<i64>, bool) = (row.get(0), row.get(1));
        if done {
            return Ok(false);
        }
        let mut sink = tx
            .copy_in(&format!("COPY nono.events ({EVENT_COLUMNS}) FROM STDIN (FORMAT binary)"))
            .map_err(FleetError::pg(what.clone()))?;
        let mut rows = CopyBuf::new();
        let mut copy_error = None;
        let streamed = store.chained_events(s.id, after.unwrap_or(0), opts.slice, |id, link, e| {
            rows.row(fleet_id, id, link, &e);
            if rows.buf.len() >= WRITE_BYTES {
                if let Err(err) = sink.write_all(&rows.buf) {
                    let msg = err.to_string();
                    copy_error = Some(err);
                    return Err(StoreError::Callback(msg));
                }
                rows.buf.clear();
            }
            Ok(())
        });
        if let Some(err) = copy_error {
            return Err(copy_failed(what, err));
        }
        let (n, last) = streamed?;
        rows.trailer();
        sink.write_all(&rows.buf).map_err(|err| copy_failed(what.clone(), err))?;
        // Dropping an unfinished writer aborts the COPY (and the transaction).
        let copied = sink.finish().map_err(FleetError::pg(what.clone()))?;
        let Some(last) = last else {
            tx.rollback().map_err(FleetError::pg(what.clone()))?;
            break;
        };
        if copied != n {
            return Err(FleetError::Corrupt(format!("session {}: {n} events sent, the server stored {copied}", s.id)));
        }
        tx.execute(
            "INSERT INTO nono.push_chunks (session_id, through, events) VALUES ($1, $2, $3)",
            &[&fleet_id, &last, &(n as i64)],
        )
        .map_err(FleetError::pg(what.clone()))?;
        tx.commit().map_err(FleetError::pg(what.clone()))?;
        report.events += n;
        progress(report.events);
        if (n as usize) < opts.slice {
            break;
        }
    }
    // Before push_done: a session readers see has its profile.
    push_enforced_profile(client, store, s, fleet_id)?;
    client
        .execute(
            "INSERT INTO nono.push_done (session_id, events) \
             SELECT $1, coalesce(sum(events), 0) FROM nono.push_chunks WHERE session_id = $1 ON CONFLICT DO NOTHING",
            &[&fleet_id],
        )
        .map_err(FleetError::pg(what))?;
    Ok(true)
}

/// Adds the local seals of session `local` that the fleet lacks.
fn push_seals(client: &mut Client, store: &Store, local: i64, fleet_id: i64) -> Result<(), FleetError> {
    for seal in store.seals(local)? {
        client
            .execute(
                "INSERT INTO nono.session_seals (session_id, sealed_ns, message, signature) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING",
                &[&fleet_id, &seal.sealed_ns, &seal.message, &seal.signature],
            )
            .map_err(FleetError::pg(format!("pushing the seals of session {local}")))?;
    }
    Ok(())
}

/// Inserts the session row unless the fleet has it; returns the fleet id.
fn insert_session(client: &mut Client, host: &Host, store: &Store, s: &Session) -> Result<i64, FleetError> {
    let what = format!("recording session {} in the fleet", s.id);
    let chain = store.chain_meta(s.id)?;
    let bytes = |h: Option<crate::store::chain::Hash>| h.map(|h| h.to_vec());
    let (head, state, root) = (bytes(chain.head), bytes(chain.state), bytes(chain.root));
    let count = chain.count.map(|c| c as i64);
    let uuid = session_uuid(host, s);
    let command = serde_json::to_string(&s.info.command).map_err(|e| FleetError::Corrupt(e.to_string()))?;
    let c = &s.counters;
    let n = |v: u64| v as i64;
    let i = |v: u32| i64::from(v);
    let params: &[&(dyn ToSql + Sync)] = &[
        &uuid,
        &host.id,
        &host.name,
        &s.id,
        &command,
        &s.info.cwd,
        &i(s.info.uid),
        &s.info.user,
        &s.info.backend,
        &s.info.kernel,
        &s.info.nono_version,
        &s.info.kind.as_str(),
        &s.info.context,
        &s.info.profile,
        &i(s.recorder_pid),
        &s.started_ns,
        &s.ended_ns,
        &s.state.as_str(),
        &s.exit_code,
        &s.signal,
        &n(s.events),
        &n(c.ringbuf_drops),
        &n(c.path_failures),
        &n(c.path_truncations),
        &n(c.pending_full),
        &n(c.traced_full),
        &n(c.scratch_busy),
        &n(c.decode_errors),
        &n(c.unstored),
        &s.profile_path,
        &s.note,
        &head,
        &state,
        &count,
        &root,
    ];
    client
        .execute(
            "INSERT INTO nono.sessions (uuid, host_id, hostname, local_id, command, cwd, uid, \"user\", backend, kernel, \
             nono_version, kind, context, profile, recorder_pid, started_ns, ended_ns, state, exit_code, signal, events, \
             ringbuf_drops, path_failures, path_truncations, pending_full, traced_full, scratch_busy, decode_errors, \
             unstored, profile_path, note, chain_head, chain_state, chain_count, chain_root) VALUES ($1, $2, $3, $4, $5, \
             $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, \
             $29, $30, $31, $32, $33, $34, $35) ON CONFLICT (uuid) DO NOTHING",
            params,
        )
        .map_err(FleetError::pg(what.clone()))?;
    let row = client.query_one("SELECT id FROM nono.sessions WHERE uuid = $1", &[&uuid]).map_err(FleetError::pg(what))?;
    Ok(row.get(0))
}

/// A write to the COPY stream failed: the driver wraps its error in `io::Error`.
fn copy_failed(what: String, err: std::io::Error) -> FleetError {
    match err.into_inner() {
        Some(inner) => match inner.downcast::<postgres::Error>() {
            Ok(pg) => FleetError::pg(what)(*pg),
            Err(other) => FleetError::ConnectionLost { what, source: other },
        },
        None => FleetError::ConnectionLost { what, source: "the COPY stream failed".into() },
    }
}

/// Copies the profile a `run` session enforced (fleet schema 3), so
/// `audit show`, `check` and `report` read it from the fleet as from the
/// host's file. Insert-only, like the rest of a push.
fn push_enforced_profile(client: &mut Client, store: &Store, s: &Session, fleet_id: i64) -> Result<(), FleetError> {
    let Some(p) = store.enforced_profile(s.id)? else { return Ok(()) };
    client
        .execute(
            "INSERT INTO nono.session_profiles (session_id, profile_json, profile_hash) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
            &[&fleet_id, &p.json, &p.hash],
        )
        .map_err(FleetError::pg(format!("pushing the enforced profile of session {}", s.id)))?;
    Ok(())
}
