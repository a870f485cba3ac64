//! The encoder stage of the writer: turns decoded events into rows of
//! integers before they reach the `SQLite` thread.
//!
//! Interning every comm, exe and path (hashing and comparing strings) and
//! freeing the events' strings cost as much as the inserts themselves; on
//! their own thread they overlap with the inserts instead of adding to them.
//! The encoder cannot know `strings.id` values (only the `SQLite` thread can
//! look them up, inside its transaction), so it numbers the strings it sees
//! itself (0, 1, 2, ... in first-seen order) and ships each new string once,
//! with the first batch that uses it; the writer maps those local numbers to
//! database ids with a plain vector.
//!
//! The encoder also extends the session's hash chain (see [`super::chain`]):
//! it sees every event, in order, before its strings are interned, and
//! hashing here overlaps with the inserts like the interning does.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use super::chain::{Chain, Hash};
use super::{access_bits, outcome_columns};
use crate::event::Event;

/// Strings numbered before the numbering restarts (bounds both the
/// encoder's map and the writer's id vector).
const MAX_LOCAL_STRINGS: usize = 1 << 20;

/// One event as the columns of an `events` row; strings are local numbers.
#[derive(Debug)]
pub(super) struct Row {
    pub time_ns: i64,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub comm: u32,
    pub exe: Option<u32>,
    pub op: u16,
    pub path: Option<u32>,
    pub path2: Option<u32>,
    pub access: i64,
    pub arg: i64,
    pub file_type: u32,
    pub result: i64,
    pub errno: i64,
    pub denied_by: Option<i64>,
    pub net: Option<NetColumns>,
    pub incomplete: bool,
    /// The event's chain link (`None`: the session is not chained).
    pub chain: Option<i32>,
}

impl Row {
    /// Whether the row fits the short insert: no second path, no socket
    /// address, no denial attribution, complete (the columns it leaves out
    /// take their defaults).
    pub fn is_common(&self) -> bool {
        self.path2.is_none() && self.net.is_none() && !self.incomplete && self.denied_by.is_none()
    }
}

/// The socket columns of a row.
#[derive(Debug)]
pub(super) struct NetColumns {
    pub family: u16,
    pub addr: Option<String>,
    pub port: u16,
    pub sock_type: u16,
    pub sock_proto: u16,
}

/// One input batch, encoded.
#[derive(Debug, Default)]
pub(super) struct Encoded {
    /// The numbering restarted: forget every local number seen before.
    pub reset: bool,
    /// Strings numbered for the first time in this batch, in number order.
    pub strings: Vec<String>,
    pub rows: Vec<Row>,
    /// Where the session's chain stands after this batch.
    pub chain: Option<ChainMark>,
}

/// The chain before and after a batch: the writer stores the state in the
/// same transaction as the rows, and checks that nobody else moved it.
#[derive(Clone, Copy, Debug)]
pub(super) struct ChainMark {
    /// Events chained before the batch.
    pub before: u64,
    /// Events chained after it, and the state then.
    pub count: u64,
    pub state: Hash,
}

/// Numbers strings and turns events into [`Row`]s.
#[derive(Default)]
pub(super) struct Encoder {
    ids: HashMap<String, u32, BuildHasherDefault<FxHasher>>,
    /// The previous event's comm and exe: consecutive events mostly share
    /// them, and a compare is cheaper than a hash lookup.
    recent: [Option<(String, u32)>; 2],
    /// The session's chain, when it has one.
    chain: Option<Chain>,
}

impl Encoder {
    /// An encoder that extends `chain` with every event.
    pub fn new(chain: Option<Chain>) -> Encoder {
        Encoder { chain, ..Encoder::default() }
    }

    /// Encodes one batch; the events' strings are freed here, on this thread.
    pub fn encode(&mut self, events: Vec<Event>) -> Encoded {
        let mut out = Encoded { rows: Vec::with_capacity(events.len()), ..Encoded::default() };
        if self.ids.len() >= MAX_LOCAL_STRINGS {
            self.ids.clear();
            self.recent = [None, None];
            out.reset = true;
        }
        let before = self.chain.as_ref().map(Chain::count);
        for e in events {
            let chain = self.chain.as_mut().map(|c| c.push(&e));
            let comm = self.recent_id(0, e.comm, &mut out.strings);
            let exe = e.exe.map(|x| self.recent_id(1, x, &mut out.strings));
            let path = e.path.map(|p| self.id(p, &mut out.strings));
            let path2 = e.path2.map(|p| self.id(p, &mut out.strings));
            let (result, errno, denied_by) = outcome_columns(e.outcome);
            out.rows.push(Row {
                time_ns: e.time_ns,
                pid: e.pid,
                tid: e.tid,
                ppid: e.ppid,
                uid: e.uid,
                comm,
                exe,
                op: e.op.code(),
                path,
                path2,
                access: access_bits(e.access),
                // The u64 bit pattern, stored as SQLite's signed integer.
                arg: e.arg as i64,
                file_type: e.file_type,
                result,
                errno,
                denied_by,
                net: e.net.map(|n| NetColumns {
                    family: n.family,
                    addr: n.addr.map(|a| a.to_string()),
                    port: n.port,
                    sock_type: n.sock_type,
                    sock_proto: n.protocol,
                }),
                incomplete: e.incomplete,
                chain,
            });
        }
        if let (Some(c), Some(before)) = (&self.chain, before) {
            out.chain = Some(ChainMark { before, count: c.count(), state: c.state() });
        }
        out
    }

    /// [`Self::id`] with a one-entry memo per `slot`.
    fn recent_id(&mut self, slot: usize, s: String, new: &mut Vec<String>) -> u32 {
        if let Some((last, id)) = &self.recent[slot]
            && *last == s
        {
            return *id;
        }
        let id = self.id_of(&s, new);
        self.recent[slot] = Some((s, id));
        id
    }

    /// The number of `s` (an owned string: no copy for the map's key).
    fn id(&mut self, s: String, new: &mut Vec<String>) -> u32 {
        match self.ids.get(&s) {
            Some(&id) => id,
            None => self.number(s, new),
        }
    }

    /// [`Self::id`] for a borrowed string, copied only when new.
    fn id_of(&mut self, s: &str, new: &mut Vec<String>) -> u32 {
        match self.ids.get(s) {
            Some(&id) => id,
            None => self.number(s.to_owned(), new),
        }
    }

    /// Numbers a string not seen before and ships it with the batch.
    fn number(&mut self, s: String, new: &mut Vec<String>) -> u32 {
        // At most MAX_LOCAL_STRINGS plus one batch's strings: fits a u32.
        let id = u32::try_from(self.ids.len()).expect("local string numbers fit a u32");
        new.push(s.clone());
        self.ids.insert(s, id);
        id
    }
}

/// A fast non-cryptographic hasher (the Fx multiply-rotate scheme, eight
/// bytes at a time). The keys are recorded paths; collisions only cost time,
/// and `SipHash`'s flood resistance buys nothing for a per-session cache.
#[derive(Default)]
pub(super) struct FxHasher {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::synthetic_event;

    #[test]
    fn strings_are_numbered_once_in_first_seen_order() {
        let mut enc = Encoder::default();
        let mut a = synthetic_event(0);
        a.path = Some("/a".into());
        let mut b = synthetic_event(1);
        b.path = Some("/b".into());
        b.path2 = Some("/a".into());
        let out = enc.encode(vec![a.clone(), b]);
        assert!(!out.reset);
        let n = |s: &str| out.strings.iter().position(|x| x == s).map(|i| u32::try_from(i).expect("small"));
        assert_eq!(out.rows[0].path, n("/a"));
        assert_eq!(out.rows[1].path, n("/b"));
        assert_eq!(out.rows[1].path2, n("/a"));
        assert_eq!(Some(out.rows[0].comm), n(&a.comm));
        // Known strings are not shipped again.
        let again = enc.encode(vec![a]);
        assert!(again.strings.is_empty());
        assert_eq!(again.rows[0].path, out.rows[0].path);
    }
}
