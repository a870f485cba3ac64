//! The audit hash chain (schema 8): what is hashed, how, and where the
//! writer keeps it. Verification is in [`super::verify`]; signing a root
//! (`nono audit seal`) is `crate::trust`'s job, above the store.
//!
//! Every session's events are chained as the writer stores them:
//!
//! ```text
//! head    = SHA-256("nono audit chain v1 head\0" || header)
//! state_i = SHA-256 of event_i, started from state_{i-1}   state_0 = head
//!           instead of SHA-256's initial value (see [`step`])
//! root    = SHA-256("nono audit chain v1 root\0" || state_n || n || end)
//! ```
//!
//! `header` is what is known when the session begins (command, cwd, user,
//! backend, kernel, version, kind, context, profile, start time), `end`
//! what is known when it ends (end time, state, exit code, signal, event
//! count, loss counters, note), `event_i` the i-th event's fields. All
//! three are encoded canonically from *values*, never from the store's
//! interned string ids, so a copy in the fleet's `PostgreSQL` (which
//! stores text) hashes to the same root, and so does an independent
//! implementation: an event's fields at fixed widths ([`event_bytes`]);
//! header and end as tagged values, each `0x00` (NULL), `0x01` + 8-byte
//! big-endian two's complement integer, or `0x02` + 8-byte big-endian
//! length + UTF-8 bytes, in the order of [`header_bytes`] and [`end_bytes`].
//!
//! Per event the store keeps only [`link`]: the first 4 bytes of `state_i`.
//! The chain's strength is in the 32-byte states; the link only lets a
//! verifier name the first event whose recomputed state differs from the
//! one the writer saw (a random edit goes unnoticed *at that event* with
//! probability 2^-32, and is then caught at the next one, since the full
//! state has diverged).
//!
//! Threat model: the chain is keyless. Whoever can write the database can
//! recompute every link, state and root after an edit; the chain then
//! proves only that the file is self-consistent. It proves what was
//! recorded once its root has left the attacker's reach: signed
//! (`nono audit seal`), pushed to the fleet, or written into a learned
//! profile's provenance that was signed.

use rusqlite::{Connection, OptionalExtension as _, params};
use sha2::{Digest as _, Sha256};

use super::{Session, Store, StoreError};
use crate::event::Event;

/// A SHA-256 digest: a chain head, state or root.
pub type Hash = [u8; 32];

const HEAD_DOMAIN: &[u8] = b"nono audit chain v1 head\0";
const ROOT_DOMAIN: &[u8] = b"nono audit chain v1 root\0";

/// Appends one canonical value: NULL.
fn null(out: &mut Vec<u8>) {
    out.push(0);
}

/// Appends one canonical value: an integer.
fn int(out: &mut Vec<u8>, v: i64) {
    out.push(1);
    out.extend_from_slice(&v.to_be_bytes());
}

fn opt_int(out: &mut Vec<u8>, v: Option<i64>) {
    match v {
        Some(v) => int(out, v),
        None => null(out),
    }
}

/// Appends one canonical value: text.
fn text(out: &mut Vec<u8>, s: &str) {
    out.push(2);
    out.extend_from_slice(&(s.len() as u64).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn opt_text(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => text(out, s),
        None => null(out),
    }
}

/// A string in an event: 4-byte big-endian length, then its bytes.
fn event_text(out: &mut Vec<u8>, s: &str) {
    // Recorded paths are bounded far below 4 GiB (PATH_MAX, comm 16).
    out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// An optional string in an event: `0`, or `1` and the string.
fn event_opt_text(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            event_text(out, s);
        }
    }
}

/// The canonical bytes of one event: its fields at their own widths,
/// big-endian, in this order: `time_ns` (8 bytes), `pid`, `tid`, `ppid`,
/// `uid` (4 each), `comm` (4-byte length + UTF-8), `exe` (optional: a
/// `0` byte, or `1` and a string), `op` (2), `path`, `path2` (optional
/// strings), `access` (1: r=1 w=2 x=4 c=8 t=16 d=32), `arg` (8),
/// `file_type` (4), `result` (1: 0 ok, 1 denied, 2 error), `errno` (4,
/// signed), `denied_by` (`0`, or `1` and 1 byte), the socket (`0`, or `1`,
/// `family` (2), `addr` (optional string), `port`, `sock_type`,
/// `sock_proto` (2 each)), `incomplete` (1). Fixed widths keep an event
/// to about three SHA-256 blocks: hashing is most of the chain's cost.
pub fn event_bytes(e: &Event, out: &mut Vec<u8>) {
    let (result, errno, denied_by) = super::outcome_columns(e.outcome);
    out.extend_from_slice(&e.time_ns.to_be_bytes());
    for v in [e.pid, e.tid, e.ppid, e.uid] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    event_text(out, &e.comm);
    event_opt_text(out, e.exe.as_deref());
    out.extend_from_slice(&e.op.code().to_be_bytes());
    event_opt_text(out, e.path.as_deref());
    event_opt_text(out, e.path2.as_deref());
    out.push(super::access_bits(e.access) as u8);
    out.extend_from_slice(&e.arg.to_be_bytes());
    out.extend_from_slice(&e.file_type.to_be_bytes());
    out.push(result as u8);
    out.extend_from_slice(&(errno as i32).to_be_bytes());
    match denied_by {
        None => out.push(0),
        Some(d) => out.extend_from_slice(&[1, d as u8]),
    }
    match &e.net {
        None => out.push(0),
        Some(n) => {
            out.push(1);
            out.extend_from_slice(&n.family.to_be_bytes());
            event_opt_text(out, n.addr.map(|a| a.to_string()).as_deref());
            for v in [n.port, n.sock_type, n.protocol] {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
    }
    out.push(u8::from(e.incomplete));
}

/// The canonical bytes of what a session knew when it began: `command`
/// (its JSON array), `cwd, uid, user, backend, kernel, nono_version, kind,
/// context, profile, started_ns`. (Not the recorder's pid: it only tells
/// a live recorder from a dead one.)
pub fn header_bytes(s: &Session, out: &mut Vec<u8>) {
    // serde_json writes an array of strings one way only.
    let command = serde_json::to_string(&s.info.command).unwrap_or_default();
    text(out, &command);
    text(out, &s.info.cwd);
    int(out, i64::from(s.info.uid));
    text(out, &s.info.user);
    text(out, &s.info.backend);
    text(out, &s.info.kernel);
    text(out, &s.info.nono_version);
    text(out, s.info.kind.as_str());
    opt_text(out, s.info.context.as_deref());
    opt_text(out, s.info.profile.as_deref());
    int(out, s.started_ns);
}

/// The canonical bytes of how a session ended: `ended_ns, state,
/// exit_code, signal, events, ringbuf_drops, path_failures,
/// path_truncations, pending_full, traced_full, scratch_busy,
/// decode_errors, unstored, note`.
pub fn end_bytes(s: &Session, out: &mut Vec<u8>) {
    let c = &s.counters;
    opt_int(out, s.ended_ns);
    text(out, s.state.as_str());
    opt_int(out, s.exit_code.map(i64::from));
    opt_int(out, s.signal.map(i64::from));
    for n in [
        s.events,
        c.ringbuf_drops,
        c.path_failures,
        c.path_truncations,
        c.pending_full,
        c.traced_full,
        c.scratch_busy,
        c.decode_errors,
        c.unstored,
    ] {
        int(out, n as i64);
    }
    opt_text(out, s.note.as_deref());
}

/// The chain's head for session `s` (its state before any event).
#[must_use]
pub fn head(s: &Session) -> Hash {
    let mut buf = Vec::with_capacity(512);
    buf.extend_from_slice(HEAD_DOMAIN);
    header_bytes(s, &mut buf);
    Sha256::digest(&buf).into()
}

/// The root of a finished session: the state after its `count` events,
/// bound to its end record.
#[must_use]
pub fn root(state: &Hash, count: u64, s: &Session) -> Hash {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(ROOT_DOMAIN);
    buf.extend_from_slice(state);
    int(&mut buf, count as i64);
    end_bytes(s, &mut buf);
    Sha256::digest(&buf).into()
}

/// What the store keeps of a state for each event: its first 4 bytes, as
/// the signed 32-bit integer `SQLite` stores in 4 bytes.
#[must_use]
pub fn link(state: &Hash) -> i32 {
    i32::from_be_bytes([state[0], state[1], state[2], state[3]])
}

/// Lower-case hex of a digest.
#[must_use]
pub fn hex(h: &Hash) -> String {
    use std::fmt::Write as _;
    h.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A digest from 64 hex digits.
#[must_use]
pub fn from_hex(s: &str) -> Option<Hash> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// One link of the chain: SHA-256 of `message` with `state` as its initial
/// value (in place of SHA-256's constants): the message padded exactly as
/// SHA-256 pads one (a `0x80` byte, zeros, its length in bits as 8 bytes
/// big-endian, to a multiple of 64 bytes), then SHA-256's compression
/// function over each 64-byte block, starting from `state` read as eight
/// big-endian words; the result is the eight words, big-endian.
///
/// This is how SHA-256 chains its own blocks, so it is as strong; hashing
/// `state || message` instead would cost one more block per event (a
/// typical event then needs three blocks, not two), which was most of the
/// chain's cost at ingest. `message` is padded in place.
pub fn step(state: &Hash, message: &mut Vec<u8>) -> Hash {
    let bits = (message.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bits.to_be_bytes());
    let mut words = [0u32; 8];
    for (w, b) in words.iter_mut().zip(state.chunks_exact(4)) {
        *w = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    }
    for block in message.chunks_exact(64) {
        sha2::compress256(&mut words, std::slice::from_ref(sha2::digest::generic_array::GenericArray::from_slice(block)));
    }
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(4).zip(words) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

/// A running chain: the state after `count` events.
#[derive(Clone, Debug)]
pub struct Chain {
    state: Hash,
    count: u64,
    buf: Vec<u8>,
}

impl Chain {
    /// A chain at `state` after `count` events (`head`, 0 for a new one).
    #[must_use]
    pub fn resume(state: Hash, count: u64) -> Chain {
        Chain { state, count, buf: Vec::with_capacity(256) }
    }

    /// Adds `e`; returns its link.
    pub fn push(&mut self, e: &Event) -> i32 {
        self.buf.clear();
        event_bytes(e, &mut self.buf);
        self.state = step(&self.state, &mut self.buf);
        self.count += 1;
        link(&self.state)
    }

    #[must_use]
    pub fn state(&self) -> Hash {
        self.state
    }

    #[must_use]
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// The chain columns of a session as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainMeta {
    pub head: Option<Hash>,
    pub state: Option<Hash>,
    pub count: Option<u64>,
    pub root: Option<Hash>,
}

/// A stored digest column: NULL, or exactly 32 bytes.
fn hash_column(r: &rusqlite::Row<'_>, i: usize, what: &str) -> rusqlite::Result<Result<Option<Hash>, String>> {
    let v: Option<Vec<u8>> = r.get(i)?;
    Ok(match v {
        None => Ok(None),
        Some(b) => Hash::try_from(b.as_slice()).map(Some).map_err(|_| format!("{what} is {} bytes, not 32", b.len())),
    })
}

/// Reads the chain columns of session `id` (`None`: no such session).
pub(super) fn read_meta(conn: &Connection, id: i64) -> Result<Option<ChainMeta>, StoreError> {
    let row = conn
        .query_row("SELECT chain_head, chain_state, chain_count, chain_root FROM sessions WHERE id = ?1", [id], |r| {
            Ok((
                hash_column(r, 0, "chain_head")?,
                hash_column(r, 1, "chain_state")?,
                r.get::<_, Option<i64>>(2)?,
                hash_column(r, 3, "chain_root")?,
            ))
        })
        .optional()
        .map_err(StoreError::sql("reading a session's chain"))?;
    let Some((head, state, count, root)) = row else { return Ok(None) };
    let bad = |e: String| StoreError::Corrupt(format!("session {id}: {e}"));
    Ok(Some(ChainMeta {
        head: head.map_err(bad)?,
        state: state.map_err(bad)?,
        count: count.map(|c| u64::try_from(c).map_err(|_| bad(format!("chain_count {c}")))).transpose()?,
        root: root.map_err(bad)?,
    }))
}

/// The chain a new writer of session `session` continues: the stored state,
/// or a fresh head (stored now) for a session that has none. `None` for a
/// session recorded before schema 8 (events but no chain), which stays
/// unchained.
pub(super) fn writer_chain(
    conn: Connection,
    path: &std::path::Path,
    session: i64,
) -> Result<(Connection, Option<Chain>), StoreError> {
    let meta = read_meta(&conn, session)?.ok_or_else(|| StoreError::UnknownSession(session.to_string()))?;
    if meta.root.is_some() {
        return Err(StoreError::Corrupt(format!(
            "session {session} has ended (its chain root is recorded); it takes no more events"
        )));
    }
    if let (Some(state), Some(count)) = (meta.state, meta.count) {
        return Ok((conn, Some(Chain::resume(state, count))));
    }
    // The header as stored, read back the way a verifier reads it.
    let store = Store { conn, path: path.to_path_buf() };
    let s = store.session_by_id(session)?;
    let has_events: bool = store
        .conn
        .query_row("SELECT first_event IS NOT NULL FROM sessions WHERE id = ?1", [session], |r| r.get(0))
        .map_err(StoreError::sql("reading a session's chain"))?;
    let Store { conn, .. } = store;
    if has_events {
        return Ok((conn, None));
    }
    let h = head(&s);
    conn.execute(
        "UPDATE sessions SET chain_head = ?2, chain_state = ?2, chain_count = 0 WHERE id = ?1 AND chain_head IS NULL",
        params![session, h.as_slice()],
    )
    .map_err(|e| super::busy_or(path, e, StoreError::sql("starting a session's chain")))?;
    Ok((conn, Some(Chain::resume(h, 0))))
}

impl Store {
    /// The chain columns of a session.
    pub fn chain_meta(&self, id: i64) -> Result<ChainMeta, StoreError> {
        read_meta(self.conn(), id)?.ok_or_else(|| StoreError::UnknownSession(id.to_string()))
    }

    /// `(session, root as hex)` of each of `ids` that has a root (an
    /// unchained or unfinished session has none).
    pub fn chain_roots(&self, ids: &[i64]) -> Result<Vec<(i64, String)>, StoreError> {
        let mut out = Vec::new();
        for &id in ids {
            if let Some(root) = self.chain_meta(id)?.root {
                out.push((id, hex(&root)));
            }
        }
        Ok(out)
    }

    /// Records the root of a session that has ended, from its stored state
    /// and end record. A session without a chain state gets its head first
    /// when it has no events (it never had a writer); one with events but
    /// no chain (recorded before schema 8) stays unchained. Called when a
    /// session is finished and when a dead recorder's session is reaped.
    pub(super) fn seal_chain(&self, id: i64) -> Result<(), StoreError> {
        let meta = self.chain_meta(id)?;
        if meta.root.is_some() {
            return Ok(());
        }
        let s = self.session_by_id(id)?;
        if s.state == super::SessionState::Running {
            return Ok(());
        }
        let (state, count) = match (meta.state, meta.count) {
            (Some(state), Some(count)) => (state, count),
            _ if meta.head.is_none() => {
                let events: bool = self
                    .conn()
                    .query_row("SELECT first_event IS NOT NULL FROM sessions WHERE id = ?1", [id], |r| r.get(0))
                    .map_err(StoreError::sql("reading a session's chain"))?;
                if events {
                    return Ok(());
                }
                let h = head(&s);
                self.conn()
                    .execute(
                        "UPDATE sessions SET chain_head = ?2, chain_state = ?2, chain_count = 0 WHERE id = ?1",
                        params![id, h.as_slice()],
                    )
                    .map_err(self.busy("starting a session's chain"))?;
                (h, 0)
            }
            _ => return Ok(()),
        };
        let r = root(&state, count, &s);
        self.conn()
            .execute("UPDATE sessions SET chain_root = ?2 WHERE id = ?1 AND chain_root IS NULL", params![id, r.as_slice()])
            .map_err(self.busy("recording a session's chain root"))?;
        Ok(())
    }

    /// Seals every ended session that has a chain but no root (its
    /// recorder died after marking it, or between finishing and sealing).
    pub(super) fn seal_unsealed(&self) -> Result<usize, StoreError> {
        let ids: Vec<i64> = self
            .conn()
            .prepare("SELECT id FROM sessions WHERE state <> 'running' AND chain_root IS NULL AND chain_state IS NOT NULL")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(StoreError::sql("listing unsealed sessions"))?;
        for &id in &ids {
            self.seal_chain(id)?;
        }
        Ok(ids.len())
    }
}

/// A signature over a session's root (`nono audit seal`), as stored. The
/// store keeps it; `crate::trust` makes and checks it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Seal {
    pub sealed_ns: i64,
    /// The signed text, exactly.
    pub message: String,
    /// The armored SSH signature.
    pub signature: String,
}

impl Store {
    /// Stores a seal of session `id` (a second copy of the same signature
    /// is ignored).
    pub fn add_seal(&self, id: i64, seal: &Seal) -> Result<(), StoreError> {
        self.session_by_id(id)?;
        self.conn()
            .execute(
                "INSERT OR IGNORE INTO session_seals (session_id, sealed_ns, message, signature) VALUES (?1, ?2, ?3, ?4)",
                params![id, seal.sealed_ns, seal.message, seal.signature],
            )
            .map_err(self.busy("storing a seal"))?;
        Ok(())
    }

    /// The seals of session `id`, oldest first.
    pub fn seals(&self, id: i64) -> Result<Vec<Seal>, StoreError> {
        self.conn()
            .prepare_cached("SELECT sealed_ns, message, signature FROM session_seals WHERE session_id = ?1 ORDER BY id")
            .and_then(|mut s| {
                s.query_map([id], |r| Ok(Seal { sealed_ns: r.get(0)?, message: r.get(1)?, signature: r.get(2)? }))?.collect()
            })
            .map_err(StoreError::sql("reading seals"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_bad_input() {
        let h: Hash = Sha256::digest(b"x").into();
        assert_eq!(from_hex(&hex(&h)), Some(h));
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn every_column_changes_the_event_bytes() {
        use crate::event::{NetAddr, Outcome};
        let base = crate::store::synthetic_event(3);
        let bytes = |e: &Event| {
            let mut v = Vec::new();
            event_bytes(e, &mut v);
            v
        };
        let b0 = bytes(&base);
        let variants = [
            Event { time_ns: base.time_ns + 1, ..base.clone() },
            Event { pid: base.pid + 1, ..base.clone() },
            Event { comm: "x".into(), ..base.clone() },
            Event { exe: None, ..base.clone() },
            Event { path: Some("/other".into()), ..base.clone() },
            Event { path2: Some(String::new()), ..base.clone() },
            Event { arg: base.arg + 1, ..base.clone() },
            Event { outcome: Outcome::Error(1), ..base.clone() },
            Event { incomplete: !base.incomplete, ..base.clone() },
            Event { net: Some(NetAddr { family: 2, addr: None, port: 0, sock_type: 0, protocol: 0 }), ..base.clone() },
        ];
        for v in &variants {
            assert_ne!(bytes(v), b0, "{v:?}");
        }
        // NULL and an empty string differ, and text cannot run into the next field.
        let a = Event { exe: Some(String::new()), path: Some("ab".into()), ..base.clone() };
        let b = Event { exe: Some("a".into()), path: Some("b".into()), ..base };
        assert_ne!(bytes(&a), bytes(&b));
    }
}
