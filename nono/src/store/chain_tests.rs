//! The hash chain as written and verified: every kind of edit to the
//! `SQLite` file, made directly with SQL, is found and located.

use rusqlite::params;

use crate::event::Event;
use crate::store::chain::{self, Hash};
use crate::store::{LossCounters, NewSession, Problem, SessionEnd, SessionState, Store, spawn_writer, synthetic_event};

fn fresh() -> (tempfile::TempDir, std::path::PathBuf, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.db");
    let store = Store::open(&db).expect("open");
    (dir, db, store)
}

fn new_session() -> NewSession {
    NewSession {
        command: vec!["make".into(), "-j2".into()],
        cwd: "/home/u/p".into(),
        uid: 1000,
        user: "u".into(),
        backend: "tracepoint".into(),
        kernel: "6.18".into(),
        nono_version: "0.1.0".into(),
        ..NewSession::default()
    }
}

fn end(events: u64) -> SessionEnd {
    SessionEnd {
        state: SessionState::Complete,
        exit_code: Some(2),
        signal: None,
        events,
        counters: LossCounters::default(),
        note: None,
    }
}

fn write(db: &std::path::Path, session: i64, events: &[Event]) {
    let (tx, w) = spawn_writer(db, session).expect("writer");
    for chunk in events.chunks(7) {
        tx.blocking_send(chunk.to_vec()).expect("send");
    }
    drop(tx);
    w.join().expect("join");
}

/// A finished session of `n` synthetic events; returns its id and event ids.
fn recorded(db: &std::path::Path, store: &Store, n: u64) -> (i64, Vec<i64>) {
    let id = store.begin_session(&new_session()).expect("begin");
    write(db, id, &(0..n).map(synthetic_event).collect::<Vec<_>>());
    store.finish_session(id, &end(n)).expect("finish");
    let ids = store
        .conn()
        .prepare("SELECT id FROM events WHERE session_id = ?1 ORDER BY id")
        .and_then(|mut s| s.query_map([id], |r| r.get(0))?.collect())
        .expect("ids");
    (id, ids)
}

fn problems(store: &Store, id: i64) -> Vec<Problem> {
    store.verify_chain(id).expect("verify").problems
}

fn sql(store: &Store, sql: &str) {
    store.conn().execute_batch(sql).expect(sql);
}

#[test]
fn a_recorded_session_verifies_and_its_root_is_recomputed() {
    let (_dir, db, store) = fresh();
    let (id, ids) = recorded(&db, &store, 100);
    let check = store.verify_chain(id).expect("verify");
    assert!(check.verified(), "{:?}", check.problems);
    assert_eq!(check.events, 100);
    assert_eq!(check.chained, Some(100));
    let meta = store.chain_meta(id).expect("meta");
    assert_eq!(check.root_hash(), meta.root);
    // Every event has a link, and the head is the header's hash.
    let links: i64 =
        store.conn().query_row("SELECT count(chain) FROM events WHERE session_id = ?1", [id], |r| r.get(0)).expect("links");
    assert_eq!(links, ids.len() as i64);
    assert_eq!(meta.head, Some(chain::head(&store.session_by_id(id).expect("session"))));
    // Reading it again through a fresh connection gives the same answer.
    drop(store);
    let again = Store::open_read_only(&db).expect("reopen");
    assert!(again.verify_chain(id).expect("verify").verified());
}

#[test]
fn an_edited_event_is_named() {
    let (_dir, db, store) = fresh();
    let (id, ids) = recorded(&db, &store, 50);
    sql(&store, &format!("UPDATE events SET pid = pid + 1 WHERE id = {}", ids[20]));
    let p = problems(&store, id);
    assert_eq!(p.first(), Some(&Problem::Event { id: ids[20], position: 21, missing_link: false }), "{p:?}");
}

#[test]
fn an_edited_string_is_found_at_the_first_event_that_uses_it() {
    let (_dir, db, store) = fresh();
    let (id, ids) = recorded(&db, &store, 50);
    let first = synthetic_event(0).path.expect("path");
    sql(&store, &format!("UPDATE strings SET value = '/etc/shadow' WHERE value = '{first}'"));
    assert_eq!(problems(&store, id).first(), Some(&Problem::Event { id: ids[0], position: 1, missing_link: false }));
}

#[test]
fn a_deleted_event_is_found_at_the_next_one_and_the_count_says_one_is_missing() {
    let (_dir, db, store) = fresh();
    let (id, ids) = recorded(&db, &store, 50);
    sql(&store, &format!("DELETE FROM events WHERE id = {}", ids[10]));
    let p = problems(&store, id);
    assert_eq!(p[0], Problem::Event { id: ids[11], position: 11, missing_link: false }, "{p:?}");
    assert!(p.contains(&Problem::Truncated { recorded: 50, found: 49, last: Some(ids[9]) }), "{p:?}");
}

#[test]
fn an_inserted_event_is_named() {
    let (_dir, db, store) = fresh();
    let (id, ids) = recorded(&db, &store, 30);
    // Make room between ids (the order is kept), then insert into the gap:
    // once without a link, once with a link copied from its neighbour.
    sql(
        &store,
        &format!(
            "UPDATE events SET id = id * 2 + 1000000 WHERE session_id = {id}; \
             UPDATE events SET id = id - 1000000 WHERE session_id = {id}; \
             UPDATE sessions SET first_event = first_event * 2, last_event = last_event * 2 WHERE id = {id};"
        ),
    );
    assert!(store.verify_chain(id).expect("verify").verified(), "renumbering alone keeps the order");
    let at = ids[5] * 2 + 1;
    sql(
        &store,
        &format!(
            "INSERT INTO events (id, session_id, time_ns, pid, tid, ppid, uid, comm_id, op, access, arg, file_type) \
             SELECT {at}, session_id, time_ns, pid, tid, ppid, uid, comm_id, op, access, arg, file_type FROM events WHERE id = {}",
            ids[5] * 2
        ),
    );
    assert_eq!(problems(&store, id)[0], Problem::Event { id: at, position: 7, missing_link: true });
    sql(&store, &format!("UPDATE events SET chain = (SELECT chain FROM events WHERE id = {}) WHERE id = {at}", ids[6] * 2));
    let p = problems(&store, id);
    assert_eq!(p[0], Problem::Event { id: at, position: 7, missing_link: false }, "{p:?}");
    assert!(matches!(p.last(), Some(Problem::Extra { recorded: 30, found: 31, .. })), "{p:?}");
}

#[test]
fn reordered_events_are_found_at_the_first_moved_one() {
    let (_dir, db, store) = fresh();
    let (id, ids) = recorded(&db, &store, 40);
    let (a, b) = (ids[12], ids[30]);
    // Swap two rows whole (links travel with them).
    sql(
        &store,
        &format!(
            "UPDATE events SET id = -1 WHERE id = {a}; UPDATE events SET id = {a} WHERE id = {b}; UPDATE events SET id = {b} WHERE id = -1;"
        ),
    );
    assert_eq!(problems(&store, id)[0], Problem::Event { id: a, position: 13, missing_link: false });
}

#[test]
fn a_rewritten_header_is_reported_as_such_and_the_events_still_check() {
    let (_dir, db, store) = fresh();
    let (id, _) = recorded(&db, &store, 20);
    sql(&store, &format!("UPDATE sessions SET command = '[\"innocent\"]' WHERE id = {id}"));
    assert_eq!(problems(&store, id), vec![Problem::Header]);
    sql(&store, &format!("UPDATE sessions SET command = '[\"make\",\"-j2\"]', started_ns = started_ns + 1 WHERE id = {id}"));
    assert_eq!(problems(&store, id), vec![Problem::Header]);
}

#[test]
fn a_truncated_session_names_its_last_event() {
    let (_dir, db, store) = fresh();
    let (id, ids) = recorded(&db, &store, 20);
    sql(&store, &format!("DELETE FROM events WHERE id > {}", ids[16]));
    assert_eq!(problems(&store, id), vec![Problem::Truncated { recorded: 20, found: 17, last: Some(ids[16]) }]);
    // Also when the session's recorded range is narrowed to hide them.
    let (id2, ids2) = recorded(&db, &store, 20);
    sql(&store, &format!("UPDATE sessions SET last_event = {} WHERE id = {id2}", ids2[9]));
    assert_eq!(problems(&store, id2), vec![Problem::Truncated { recorded: 20, found: 10, last: Some(ids2[9]) }]);
}

#[test]
fn a_rewritten_end_record_or_state_is_reported() {
    let (_dir, db, store) = fresh();
    let (id, _) = recorded(&db, &store, 20);
    sql(&store, &format!("UPDATE sessions SET exit_code = 0 WHERE id = {id}"));
    assert_eq!(problems(&store, id), vec![Problem::End]);
    let (id2, _) = recorded(&db, &store, 20);
    sql(&store, &format!("UPDATE sessions SET ringbuf_drops = 0, state = 'complete', note = NULL, events = 19 WHERE id = {id2}"));
    assert_eq!(problems(&store, id2), vec![Problem::End]);
    let (id3, _) = recorded(&db, &store, 20);
    sql(&store, &format!("UPDATE sessions SET chain_state = zeroblob(32) WHERE id = {id3}"));
    assert_eq!(problems(&store, id3), vec![Problem::State]);
    let (id4, _) = recorded(&db, &store, 20);
    sql(&store, &format!("UPDATE sessions SET chain_root = NULL WHERE id = {id4}"));
    assert_eq!(problems(&store, id4), vec![Problem::NoRoot]);
}

#[test]
fn a_cleared_chain_with_linked_events_is_not_taken_for_an_old_session() {
    let (_dir, db, store) = fresh();
    let (id, _) = recorded(&db, &store, 5);
    sql(
        &store,
        &format!(
            "UPDATE sessions SET chain_head = NULL, chain_state = NULL, chain_count = NULL, chain_root = NULL WHERE id = {id}"
        ),
    );
    assert_eq!(problems(&store, id), vec![Problem::Header]);
    sql(&store, &format!("UPDATE events SET chain = NULL WHERE session_id = {id}"));
    assert_eq!(problems(&store, id), vec![Problem::NotChained]);
}

#[test]
fn a_dead_recorders_session_gets_its_root_from_the_next_writer() {
    let (_dir, db, store) = fresh();
    let id = store.begin_session(&new_session()).expect("begin");
    write(&db, id, &(0..33).map(synthetic_event).collect::<Vec<_>>());
    let mut child = std::process::Command::new("true").spawn().expect("spawn true");
    let dead = child.id();
    child.wait().expect("wait");
    store.conn().execute("UPDATE sessions SET recorder_pid = ?1 WHERE id = ?2", params![dead, id]).expect("pid");
    // Running: checked as far as written, no root yet.
    let check = store.verify_chain(id).expect("verify");
    assert!(check.verified() && check.root.is_none(), "{check:?}");
    drop(store);
    let store = Store::open(&db).expect("the next writer's open reaps");
    let s = store.session_by_id(id).expect("session");
    assert_eq!(s.state, SessionState::Incomplete);
    let check = store.verify_chain(id).expect("verify");
    assert!(check.verified(), "{:?}", check.problems);
    assert!(check.root.is_some());
}

#[test]
fn a_second_writer_continues_the_chain_and_an_ended_session_takes_no_more() {
    let (_dir, db, store) = fresh();
    let id = store.begin_session(&new_session()).expect("begin");
    write(&db, id, &(0..10).map(synthetic_event).collect::<Vec<_>>());
    write(&db, id, &(10..25).map(synthetic_event).collect::<Vec<_>>());
    store.finish_session(id, &end(25)).expect("finish");
    assert!(store.verify_chain(id).expect("verify").verified());
    assert!(spawn_writer(&db, id).is_err(), "a sealed session refuses a writer");
    // A session that never had a writer still gets a head and a root.
    let empty = store.begin_session(&new_session()).expect("begin");
    store.finish_session(empty, &SessionEnd::failed("no recorder")).expect("finish");
    let check = store.verify_chain(empty).expect("verify");
    assert!(check.verified() && check.root.is_some(), "{check:?}");
}

#[test]
fn the_chain_is_what_the_documentation_says() {
    // An independent computation of head, states and root from the
    // documented encoding, for one small session.
    use sha2::{Digest as _, Sha256};
    let (_dir, db, store) = fresh();
    let id = store.begin_session(&new_session()).expect("begin");
    let e = synthetic_event(7);
    write(&db, id, std::slice::from_ref(&e));
    store.finish_session(id, &end(1)).expect("finish");
    let s = store.session_by_id(id).expect("session");
    let mut head = b"nono audit chain v1 head\0".to_vec();
    let text = |b: &mut Vec<u8>, s: &str| {
        b.push(2);
        b.extend_from_slice(&(s.len() as u64).to_be_bytes());
        b.extend_from_slice(s.as_bytes());
    };
    let int = |b: &mut Vec<u8>, v: i64| {
        b.push(1);
        b.extend_from_slice(&v.to_be_bytes());
    };
    text(&mut head, "[\"make\",\"-j2\"]");
    text(&mut head, "/home/u/p");
    int(&mut head, 1000);
    text(&mut head, "u");
    text(&mut head, "tracepoint");
    text(&mut head, "6.18");
    text(&mut head, "0.1.0");
    text(&mut head, "learn");
    head.push(0); // context
    head.push(0); // profile
    int(&mut head, s.started_ns);
    let h0: Hash = Sha256::digest(&head).into();
    let mut ev = Vec::new();
    chain::event_bytes(&e, &mut ev);
    let h1 = sha256_from(&h0, &ev);
    let meta = store.chain_meta(id).expect("meta");
    assert_eq!(meta.head, Some(h0));
    assert_eq!(meta.state, Some(h1));
    let link: i32 = store.conn().query_row("SELECT chain FROM events WHERE session_id = ?1", [id], |r| r.get(0)).expect("link");
    assert_eq!(link, i32::from_be_bytes([h1[0], h1[1], h1[2], h1[3]]));
    let mut root = b"nono audit chain v1 root\0".to_vec();
    root.extend_from_slice(&h1);
    int(&mut root, 1);
    int(&mut root, s.ended_ns.expect("ended"));
    text(&mut root, "complete");
    int(&mut root, 2);
    root.push(0); // signal
    int(&mut root, 1);
    for _ in 0..8 {
        int(&mut root, 0);
    }
    root.push(0); // note
    assert_eq!(meta.root, Some(Sha256::digest(&root).into()));
}

/// SHA-256 of `message` started from `iv`: a plain implementation of the
/// compression function (FIPS 180-4), independent of the one nono uses.
fn sha256_from(iv: &Hash, message: &[u8]) -> Hash {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
        0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
        0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
        0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
        0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
        0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ];
    let mut m = message.to_vec();
    let bits = (message.len() as u64) * 8;
    m.push(0x80);
    while m.len() % 64 != 56 {
        m.push(0);
    }
    m.extend_from_slice(&bits.to_be_bytes());
    let mut h: Vec<u32> = iv.chunks(4).map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes"))).collect();
    for block in m.chunks(64) {
        let mut w = [0u32; 64];
        for t in 0..16 {
            w[t] = u32::from_be_bytes(block[4 * t..4 * t + 4].try_into().expect("4 bytes"));
        }
        for t in 16..64 {
            let s0 = w[t - 15].rotate_right(7) ^ w[t - 15].rotate_right(18) ^ (w[t - 15] >> 3);
            let s1 = w[t - 2].rotate_right(17) ^ w[t - 2].rotate_right(19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16].wrapping_add(s0).wrapping_add(w[t - 7]).wrapping_add(s1);
        }
        let mut v = [h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]];
        for t in 0..64 {
            let s1 = v[4].rotate_right(6) ^ v[4].rotate_right(11) ^ v[4].rotate_right(25);
            let ch = (v[4] & v[5]) ^ (!v[4] & v[6]);
            let t1 = v[7].wrapping_add(s1).wrapping_add(ch).wrapping_add(K[t]).wrapping_add(w[t]);
            let s0 = v[0].rotate_right(2) ^ v[0].rotate_right(13) ^ v[0].rotate_right(22);
            let maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
            let t2 = s0.wrapping_add(maj);
            v = [t1.wrapping_add(t2), v[0], v[1], v[2], v[3].wrapping_add(t1), v[4], v[5], v[6]];
        }
        for (x, y) in h.iter_mut().zip(v) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (o, x) in out.chunks_mut(4).zip(h) {
        o.copy_from_slice(&x.to_be_bytes());
    }
    out
}

#[test]
fn the_independent_sha256_is_sha256() {
    use sha2::{Digest as _, Sha256};
    const IV: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    let mut iv = [0u8; 32];
    for (o, x) in iv.chunks_mut(4).zip(IV) {
        o.copy_from_slice(&x.to_be_bytes());
    }
    for msg in [&b""[..], b"abc", &[7u8; 200][..]] {
        assert_eq!(sha256_from(&iv, msg), <[u8; 32]>::from(Sha256::digest(msg)));
    }
}
