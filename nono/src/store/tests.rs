//! Store specification tests: every test uses a real `SQLite` file in a
//! fresh temporary directory.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

use rusqlite::params;

use crate::invoker::tests::as_other;

use super::*;
use crate::event::{Access, Event, NetAddr, Op, Outcome};

fn new_session() -> NewSession {
    NewSession {
        command: vec!["make".into(), "-j2".into(), "it's \"quoted\"".into()],
        cwd: "/home/u/p".into(),
        uid: 1000,
        user: "u".into(),
        backend: "tracepoint".into(),
        kernel: "6.18.0".into(),
        nono_version: "0.1.0".into(),
        ..NewSession::default()
    }
}

/// A new database in its own temporary directory (kept alive by the caller).
fn fresh() -> (tempfile::TempDir, std::path::PathBuf, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.db");
    let store = Store::open(&db).expect("open");
    (dir, db, store)
}

/// `SQLite`'s plan for `sql` (one `?1` parameter), one step a line.
fn query_plan(store: &Store, sql: &str, param: i64) -> String {
    plan_of(store, sql, &[Box::new(param)])
}

fn event(i: i64, op: Op, path: Option<&str>) -> Event {
    Event {
        time_ns: 1_000 + i,
        pid: 100,
        tid: 101,
        ppid: 1,
        uid: 1000,
        comm: "sh".into(),
        exe: Some("/bin/sh".into()),
        op,
        path: path.map(str::to_owned),
        path2: None,
        access: Access { read: true, ..Access::default() },
        arg: 0,
        file_type: 0,
        outcome: Outcome::Ok,
        net: None,
        incomplete: false,
    }
}

fn write(path: &Path, session: i64, events: Vec<Event>) -> WriterStats {
    let (tx, handle) = spawn_writer(path, session).expect("writer");
    tx.blocking_send(events).expect("send");
    drop(tx);
    handle.join().expect("join")
}

fn load(store: &Store, session: i64) -> Vec<Event> {
    let mut out = Vec::new();
    store
        .events(session, |e| {
            out.push(e);
            Ok(())
        })
        .expect("events");
    out
}

#[test]
fn migrations_are_valid() {
    migrations().validate().expect("migrations validate");
}

#[test]
fn open_creates_private_directories_and_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("a/b/audit.db");
    let store = Store::open(&db).expect("open");
    drop(store);
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("a")), 0o700);
    assert_eq!(mode(&dir.path().join("a/b")), 0o700);
    assert_eq!(mode(&db), 0o600);
    // Reopening an existing database migrates nothing and keeps it.
    Store::open(&db).expect("reopen");
    Store::open_existing(&db).expect("open existing");
}

#[test]
fn open_as_the_user_gives_them_the_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let db = dir.path().join("state/nono/audit.db");
    let (d, top) = (db.clone(), dir.path().to_path_buf());
    let Some(owners) = as_other(move || {
        let store = Store::open(&d).expect("open as the user");
        let id = store.begin_session(&new_session()).expect("begin");
        write(&d, id, vec![event(0, Op::Open, Some("/x"))]);
        // While the store is open, so its -wal and -shm files exist.
        [top.join("state"), top.join("state/nono"), d.clone(), d.with_extension("db-wal"), d.with_extension("db-shm")]
            .map(|p| (std::fs::metadata(&p).map(|m| (m.uid(), m.gid())).map_err(|e| e.to_string()), p))
    }) else {
        return;
    };
    for (owner, p) in owners {
        assert_eq!(owner, Ok((4321, 4322)), "{}", p.display());
    }
    // The pre-existing temp dir is not the user's, and nothing chowned it.
    assert_eq!(std::fs::metadata(dir.path()).expect("stat").uid(), 0);
}

/// Regression (issue 21 item 1): under sudo, a database path the user
/// pointed at a root-only file was created, migrated and chowned by root.
#[test]
fn a_planted_link_to_a_root_only_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let secret_dir = dir.path().join("root-only");
    std::fs::create_dir(&secret_dir).expect("mkdir");
    std::fs::set_permissions(&secret_dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let victim = secret_dir.join("victim.db");
    // A real SQLite database that only root may read.
    drop(Store::open(&victim).expect("root's database"));
    let before = std::fs::read(&victim).expect("read");
    let home = dir.path().join("home");
    std::fs::create_dir(&home).expect("home");
    std::os::unix::fs::chown(&home, Some(4321), Some(4322)).expect("chown home");
    std::os::unix::fs::symlink(&victim, home.join("audit.db")).expect("link to an existing file");
    std::os::unix::fs::symlink(secret_dir.join("new.db"), home.join("dangling.db")).expect("dangling link");
    let h = home.clone();
    let Some((existing, dangling)) =
        as_other(move || (Store::open(&h.join("audit.db")).map(drop), Store::open(&h.join("dangling.db")).map(drop)))
    else {
        return;
    };
    let existing = existing.expect_err("a link to root's database").to_string();
    assert!(existing.contains("symbolic link"), "{existing}");
    let dangling = dangling.expect_err("a dangling link into a root-only dir").to_string();
    assert!(dangling.contains("symbolic link"), "{dangling}");
    assert_eq!(std::fs::read(&victim).expect("read"), before, "root's file is byte-identical");
    assert_eq!(std::fs::metadata(&victim).expect("stat").uid(), 0);
    assert!(!secret_dir.join("new.db").exists());
}

#[test]
fn open_existing_names_a_missing_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("none.db");
    let err = Store::open_existing(&db).expect_err("missing");
    assert!(matches!(err, StoreError::Missing(_)));
    let msg = err.to_string();
    assert!(msg.contains("no audit database at") && msg.contains("none.db") && msg.contains("--db"), "{msg}");
    assert!(!db.exists(), "a reader must not create the database");
}

#[test]
fn session_lifecycle() {
    let (_dir, _db, store) = fresh();
    let id = store.begin_session(&new_session()).expect("begin");
    let s = store.session_by_id(id).expect("session");
    assert_eq!(s.state, SessionState::Running);
    assert_eq!(s.recorder_pid, std::process::id());
    assert_eq!(s.info.command, new_session().command);
    assert!(s.ended_ns.is_none());

    let counters = LossCounters { ringbuf_drops: 3, unstored: 2, path_failures: 5, ..LossCounters::default() };
    store
        .finish_session(
            id,
            &SessionEnd { state: SessionState::Incomplete, exit_code: Some(2), signal: None, events: 7, counters, note: None },
        )
        .expect("finish");
    store.set_profile_path(id, "/p/learned.json").expect("profile");
    let s = store.session(&id.to_string()).expect("session");
    assert_eq!(s.state, SessionState::Incomplete);
    assert_eq!(s.exit_code, Some(2));
    assert_eq!(s.events, 7);
    assert_eq!(s.counters, counters);
    assert_eq!(s.lost(), 5);
    assert_eq!(s.profile_path.as_deref(), Some("/p/learned.json"));
    assert!(s.ended_ns.is_some_and(|e| e >= s.started_ns));
    assert_eq!(store.session("last").expect("last").id, id);
    assert!(matches!(store.session("999"), Err(StoreError::UnknownSession(_))));
    assert!(matches!(store.session("abc"), Err(StoreError::UnknownSession(_))));
    assert!(matches!(store.finish_session(999, &SessionEnd::failed("x")), Err(StoreError::UnknownSession(_))));
}

#[test]
fn every_event_field_round_trips() {
    let (_dir, db, store) = fresh();
    let id = store.begin_session(&new_session()).expect("begin");
    let all = Access { read: true, write: true, exec: true, create: true, truncate: true, directory: true };
    let events = vec![
        Event {
            time_ns: i64::MAX - 1,
            pid: u32::MAX,
            tid: 7,
            ppid: 6,
            uid: 1000,
            comm: "weird comm ü".into(),
            exe: None,
            op: Op::Rename,
            path: Some(r"/tmp/bad\xff\xfename".into()),
            path2: Some("/tmp/dest with space".into()),
            access: all,
            arg: u64::MAX,
            file_type: 0o040_000,
            outcome: Outcome::Denied { errno: libc::EACCES, by: crate::event::DenyBy::Computed },
            net: None,
            incomplete: true,
        },
        Event {
            op: Op::Connect,
            path: None,
            net: Some(NetAddr {
                family: libc::AF_INET as u16,
                addr: Some(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))),
                port: 443,
                sock_type: 1,
                protocol: 0,
            }),
            outcome: Outcome::Error(libc::ECONNREFUSED),
            ..event(1, Op::Connect, None)
        },
        Event {
            op: Op::Bind,
            net: Some(NetAddr {
                family: libc::AF_INET6 as u16,
                addr: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
                port: 8080,
                sock_type: 1,
                protocol: 0,
            }),
            ..event(2, Op::Bind, None)
        },
        Event {
            net: Some(NetAddr { family: libc::AF_UNIX as u16, addr: None, port: 0, sock_type: 1, protocol: 0 }),
            ..event(3, Op::Connect, Some("/run/socket"))
        },
    ];
    // Every op, too.
    let mut all_ops = events.clone();
    for (i, op) in Op::ALL.into_iter().enumerate() {
        all_ops.push(event(10 + i as i64, op, Some("/same")));
    }
    let stats = write(&db, id, all_ops.clone());
    assert_eq!(stats.events, all_ops.len() as u64);
    assert_eq!(load(&store, id), all_ops);
}

#[test]
fn benchmark_events_match_synthetic_events() {
    let synth = super::writer::SyntheticEvents::new();
    for i in [0, 1, 12, 13, 650, 4098, 4099, 204_949, 204_950, 9_999_999] {
        assert_eq!(synth.event(i), synthetic_event(i), "event {i}");
    }
}

#[test]
fn writer_stores_many_batches_in_order() {
    let (_dir, db, store) = fresh();
    let id = store.begin_session(&new_session()).expect("begin");
    let (tx, handle) = spawn_writer(&db, id).expect("writer");
    let mut expected = Vec::new();
    for b in 0..50u64 {
        let batch: Vec<Event> = (b * 100..b * 100 + 100).map(synthetic_event).collect();
        expected.extend(batch.iter().cloned());
        tx.blocking_send(batch).expect("send");
    }
    drop(tx);
    let stats = handle.join().expect("join");
    assert_eq!(stats.events, 5000);
    assert_eq!(stats.batches, 50);
    assert!(stats.transactions >= 1 && stats.transactions <= 50);
    assert_eq!(load(&store, id), expected);
}

#[test]
fn empty_batches_store_nothing() {
    let (_dir, db, store) = fresh();
    let id = store.begin_session(&new_session()).expect("begin");
    let (tx, handle) = spawn_writer(&db, id).expect("writer");
    tx.blocking_send(Vec::new()).expect("send");
    tx.blocking_send(vec![synthetic_event(0)]).expect("send");
    tx.blocking_send(Vec::new()).expect("send");
    drop(tx);
    assert_eq!(handle.join().expect("join").events, 1);
    assert_eq!(load(&store, id), [synthetic_event(0)]);
    let empty = store.begin_session(&new_session()).expect("begin");
    write(&db, empty, Vec::new());
    assert!(load(&store, empty).is_empty());
    assert_eq!(store.summary(empty, 5).expect("summary").events, 0);
}

#[test]
fn writer_error_is_returned_not_panicked() {
    let (_dir, db, store) = fresh();
    assert!(matches!(spawn_writer(&db, 42), Err(StoreError::UnknownSession(_))));
    let id = store.begin_session(&new_session()).expect("begin");
    // A real SQLite failure on every insert.
    store
        .conn()
        .execute_batch("CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
        .expect("trigger");
    let (tx, handle) = spawn_writer(&db, id).expect("writer");
    tx.blocking_send(vec![synthetic_event(0), synthetic_event(1)]).expect("send");
    // Later sends either queue (and are counted) or fail because the writer stopped.
    let mut refused = 0;
    for i in 2..5 {
        if tx.blocking_send(vec![synthetic_event(i)]).is_err() {
            refused += 1;
        }
    }
    drop(tx);
    match handle.join() {
        Err(e @ StoreError::Writer { .. }) => {
            let StoreError::Writer { stored, unstored, ref source } = e else { unreachable!() };
            assert!(format!("{source:?}").contains("disk says no"), "{source:?}");
            assert_eq!(stored, 0);
            assert_eq!(unstored + refused, 5);
        }
        other => panic!("expected a writer error, got {other:?}"),
    }
}

#[test]
fn events_of_an_unknown_session_is_an_error() {
    let (_dir, _db, store) = fresh();
    assert!(matches!(store.events(5, |_| Ok(())), Err(StoreError::UnknownSession(_))));
}

#[test]
fn callback_error_stops_the_stream() {
    let (_dir, db, store) = fresh();
    let id = store.begin_session(&new_session()).expect("begin");
    write(&db, id, (0..10).map(synthetic_event).collect());
    let mut seen = 0;
    let r = store.events(id, |_| {
        seen += 1;
        if seen == 3 { Err(StoreError::Callback("enough".into())) } else { Ok(()) }
    });
    assert!(matches!(r, Err(StoreError::Callback(_))));
    assert_eq!(seen, 3);
}

#[test]
fn reap_stale_marks_dead_recorders_incomplete() {
    let (_dir, db, store) = fresh();
    let dead = store.begin_session(&new_session()).expect("begin");
    let alive = store.begin_session(&new_session()).expect("begin");
    let reused = store.begin_session(&new_session()).expect("begin");
    write(&db, dead, (0..4).map(synthetic_event).collect());
    // A child that has exited and been reaped: its pid is free.
    let mut child = std::process::Command::new("true").spawn().expect("spawn true");
    let dead_pid = child.id();
    child.wait().expect("wait");
    // pid 1 is alive but is not this recorder (its start time differs).
    store.conn().execute("UPDATE sessions SET recorder_pid = ?1 WHERE id = ?2", params![dead_pid, dead]).expect("set pid");
    store.conn().execute("UPDATE sessions SET recorder_pid = 1 WHERE id = ?1", params![reused]).expect("set pid");
    assert_eq!(store.reap_stale().expect("reap"), 2);
    let s = store.session_by_id(dead).expect("dead");
    assert_eq!(s.state, SessionState::Incomplete);
    assert_eq!(s.note.as_deref(), Some("recorder died"));
    assert_eq!(s.events, 4, "the events that reached the file are counted");
    assert_eq!(store.session_by_id(reused).expect("reused").state, SessionState::Incomplete);
    assert_eq!(store.session_by_id(alive).expect("alive").state, SessionState::Running);
    assert_eq!(store.reap_stale().expect("reap again"), 0);
}

fn query_fixture() -> (tempfile::TempDir, Store, i64, i64) {
    let (dir, db, store) = fresh();
    let a = store.begin_session(&new_session()).expect("begin");
    let b = store.begin_session(&new_session()).expect("begin");
    let paths = [
        "/home/u/.ssh/id_rsa",
        "/home/u/.ssh/config",
        "/home/u/p/src/main.rs",
        "/home/u/p/src/deep/mod.rs",
        "/home/u/p/README",
        "/home/u/p/src[x]/f",
        "/etc/passwd",
    ];
    let mut events: Vec<Event> = paths.iter().enumerate().map(|(i, p)| event(i as i64, Op::Open, Some(p))).collect();
    events.push(Event {
        outcome: Outcome::Denied { errno: libc::EACCES, by: crate::event::DenyBy::Computed },
        ..event(20, Op::Unlink, Some("/etc/passwd"))
    });
    events.push(Event { pid: 200, comm: "cargo".into(), ..event(21, Op::Exec, Some("/usr/bin/cargo")) });
    events.push(Event { outcome: Outcome::Error(libc::ENOENT), ..event(22, Op::Open, Some("/home/u/p/missing")) });
    write(&db, a, events);
    write(&db, b, vec![event(100, Op::Open, Some("/home/u/.ssh/id_rsa"))]);
    (dir, store, a, b)
}

fn paths(rows: &[EventRow]) -> Vec<&str> {
    rows.iter().map(|r| r.event.path.as_deref().unwrap_or("")).collect()
}

#[test]
fn glob_semantics() {
    let (_dir, store, a, _b) = query_fixture();
    let q = |glob: &str| {
        let rows = store.query(&Query { session: Some(a), path_glob: Some(glob.into()), ..Query::default() }).expect(glob);
        paths(&rows).into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    assert_eq!(q("/home/u/.ssh/*"), ["/home/u/.ssh/id_rsa", "/home/u/.ssh/config"]);
    // `*` stays within a component, `**` crosses them.
    assert_eq!(q("/home/u/p/*.rs"), Vec::<String>::new());
    assert_eq!(q("/home/u/p/src/*.rs"), ["/home/u/p/src/main.rs"]);
    assert_eq!(q("/home/u/p/**/*.rs"), ["/home/u/p/src/main.rs", "/home/u/p/src/deep/mod.rs"]);
    assert_eq!(q("**/passwd"), ["/etc/passwd", "/etc/passwd"]);
    assert_eq!(q("/home/u/p/READM?"), ["/home/u/p/README"]);
    assert_eq!(q("/home/u/.ssh/[ic]*"), ["/home/u/.ssh/id_rsa", "/home/u/.ssh/config"]);
    assert_eq!(q("/home/u/.ssh/[!i]*"), ["/home/u/.ssh/config"]);
    // A literal path and an escaped metacharacter.
    assert_eq!(q("/etc/passwd"), ["/etc/passwd", "/etc/passwd"]);
    assert_eq!(q(r"/home/u/p/src\[x\]/f"), ["/home/u/p/src[x]/f"]);
    assert_eq!(q("/nowhere/**"), Vec::<String>::new());
    for bad in ["/home/[", "/a/{b", ""] {
        let err = store.query(&Query { path_glob: Some(bad.into()), ..Query::default() }).expect_err(bad);
        assert!(matches!(err, StoreError::BadGlob { .. }), "{bad}: {err}");
        assert!(err.to_string().contains("bad path glob"), "{err}");
    }
}

#[test]
fn query_filters_combine() {
    let (_dir, store, a, b) = query_fixture();
    let all = store.query(&Query::default()).expect("all");
    assert_eq!(all.len(), 11);
    let ssh = store.query(&Query { path_glob: Some("/home/u/.ssh/id_rsa".into()), ..Query::default() }).expect("q");
    assert_eq!(ssh.iter().map(|r| r.session).collect::<Vec<_>>(), [a, b]);
    let q = |q: Query| store.query(&Query { session: Some(a), ..q }).expect("query");
    assert_eq!(paths(&q(Query { op: Some(Op::Unlink), ..Query::default() })), ["/etc/passwd"]);
    assert_eq!(paths(&q(Query { result: Some(ResultClass::Denied), ..Query::default() })), ["/etc/passwd"]);
    assert_eq!(paths(&q(Query { result: Some(ResultClass::Error), ..Query::default() })), ["/home/u/p/missing"]);
    assert_eq!(q(Query { result: Some(ResultClass::Ok), ..Query::default() }).len(), 8);
    assert_eq!(paths(&q(Query { pid: Some(200), ..Query::default() })), ["/usr/bin/cargo"]);
    assert_eq!(paths(&q(Query { comm: Some("cargo".into()), ..Query::default() })), ["/usr/bin/cargo"]);
    assert!(q(Query { comm: Some("nobody".into()), ..Query::default() }).is_empty());
    assert_eq!(q(Query { since_ns: Some(1_020), until_ns: Some(1_022), ..Query::default() }).len(), 2);
    assert_eq!(q(Query { limit: Some(3), ..Query::default() }).len(), 3);
    assert_eq!(paths(&q(Query { path_glob: Some("/etc/*".into()), op: Some(Op::Open), ..Query::default() })), ["/etc/passwd"]);
    assert!(matches!(store.query(&Query { session: Some(77), ..Query::default() }), Err(StoreError::UnknownSession(_))));
}

#[test]
fn summary_counts() {
    let (_dir, store, a, _b) = query_fixture();
    let s = store.summary(a, 3).expect("summary");
    assert_eq!((s.events, s.ok, s.denied, s.errors), (10, 8, 1, 1));
    assert_eq!(s.ops[0], OpCount { op: Op::Open, count: 8 });
    assert_eq!(s.top_paths[0], PathCount { path: "/etc/passwd".into(), count: 2 });
    assert_eq!(s.top_paths.len(), 3);
    assert_eq!(s.processes.len(), 2);
    assert_eq!(s.top_errors.len(), 2);
    assert!(s.top_errors.iter().any(|e| e.errno_name == "EACCES" && e.result == ResultClass::Denied));
    assert!(s.top_errors.iter().any(|e| e.errno_name == "ENOENT" && e.path.as_deref() == Some("/home/u/p/missing")));
}

/// `SQLite`'s plan for `sql` with `args`, one step a line.
fn plan_of(store: &Store, sql: &str, args: &[Box<dyn rusqlite::ToSql>]) -> String {
    let plan: Vec<String> = store
        .conn()
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .expect("plan")
        .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
        .expect("plan rows")
        .collect::<Result<_, _>>()
        .expect("plan rows");
    plan.join("\n")
}

#[test]
fn glob_query_reads_matches_by_id() {
    let (_dir, store, a, _b) = query_fixture();
    let q = Query { session: Some(a), path_glob: Some("/home/u/**".into()), op: Some(Op::Open), ..Query::default() };
    // The matching ids come from the postings; the rows are read by id, in
    // id order, with no scan of the events table and no sort.
    let (sql, args) = store.query_sql(&q, query::PathLookup::Postings).expect("sql").expect("matches");
    let text = plan_of(&store, &sql, &args);
    assert!(text.contains("SEARCH e USING INTEGER PRIMARY KEY (rowid=?)"), "{text}\n{sql}");
    assert!(!text.contains("SCAN e"), "{text}");
    assert!(!text.contains("TEMP B-TREE"), "{text}");
    // The postings are sought once per (chunk, path).
    let postings = "SELECT c.first_event, p.events FROM path_chunks c CROSS JOIN path_postings p ON p.chunk_id = c.id \
                    WHERE c.session_id = ?1 AND p.path_id IN (1, 2, 3)";
    let text = query_plan(&store, postings, a);
    assert!(text.contains("SEARCH c USING INDEX path_chunks_session (session_id=?)"), "{text}");
    assert!(text.contains("SEARCH p USING PRIMARY KEY (chunk_id=? AND path_id=?)"), "{text}");
}

#[test]
fn postings_and_scans_find_the_same_events() {
    let (_dir, db, store) = fresh();
    let first = store.begin_session(&new_session()).expect("begin");
    let second = store.begin_session(&new_session()).expect("begin");
    // Many postings chunks (4096 events under test), the sessions interleaved.
    let n = 30_000;
    write(&db, first, (0..n / 2).map(synthetic_event).collect());
    write(&db, second, (0..1000).map(synthetic_event).collect());
    write(&db, first, (n / 2..n).map(synthetic_event).collect());
    // A session still being written: events its postings do not cover yet.
    store.conn().execute("UPDATE sessions SET covered_through = covered_through - 500 WHERE id = ?1", [second]).expect("uncover");
    for (session, glob, op) in [
        (Some(first), "/home/user/project/src/dir7/file1*.c", Some(Op::Open)),
        (Some(second), "/home/user/project/src/dir0/*", None),
        (None, "/home/user/project/src/dir3/file4?.c", None),
        (Some(first), "/nothing/*", None),
    ] {
        let q = Query { session, path_glob: Some(glob.into()), op, ..Query::default() };
        let run = |lookup| match store.query_sql(&q, lookup).expect("sql") {
            Some((sql, args)) => store.run_query(&sql, args).expect("run"),
            None => Vec::new(),
        };
        let postings = run(query::PathLookup::Postings);
        assert_eq!(postings, run(query::PathLookup::Scan), "{glob}");
        assert_eq!(postings, store.query(&q).expect("query"), "{glob}");
        let m = globset::GlobBuilder::new(glob).literal_separator(true).build().expect("glob").compile_matcher();
        assert!(postings.iter().all(|r| m.is_match(r.event.path.as_deref().unwrap_or(""))), "{glob}");
        assert!(postings.iter().all(|r| op.is_none_or(|o| r.event.op == o)), "{glob}");
        assert!(postings.iter().all(|r| session.is_none_or(|s| r.session == s)), "{glob}");
        assert!(postings.windows(2).all(|w| w[0].id < w[1].id), "{glob}: recording order");
        if glob != "/nothing/*" {
            assert!(!postings.is_empty(), "{glob}");
        }
    }
}

#[test]
fn a_held_write_lock_is_reported_as_busy() {
    let (_dir, db, store) = fresh();
    let other = Connection::open(&db).expect("second connection");
    other.execute_batch("BEGIN IMMEDIATE").expect("hold the write lock");
    // Readers are not blocked in WAL mode.
    assert!(store.sessions().expect("read while locked").is_empty());
    let err = store.begin_session(&new_session()).expect_err("busy");
    assert!(matches!(err, StoreError::Busy { .. }), "{err:?}");
    assert!(err.to_string().contains("locked by another nono process"), "{err}");
    other.execute_batch("ROLLBACK").expect("release");
    store.begin_session(&new_session()).expect("free again");
}

#[test]
fn session_queries_walk_the_rowid_range_in_order() {
    let (_dir, store, a, _b) = query_fixture();
    let sql = format!(
        "{EVENT_SELECT} WHERE e.session_id = ?1 AND e.id BETWEEN \
         (SELECT first_event FROM sessions WHERE id = ?1) AND (SELECT last_event FROM sessions WHERE id = ?1) \
         AND e.pid = 5 ORDER BY e.id LIMIT 10"
    );
    let text = query_plan(&store, &sql, a);
    assert!(text.contains("SEARCH e USING INTEGER PRIMARY KEY"), "{text}");
    assert!(!text.contains("TEMP B-TREE"), "{text}");
    // Interleaved writers: each session sees only its own events.
    let db = store.path().to_path_buf();
    let c = store.begin_session(&new_session()).expect("begin");
    let d = store.begin_session(&new_session()).expect("begin");
    for i in 0..3 {
        write(&db, c, vec![event(i, Op::Open, Some("/c"))]);
        write(&db, d, vec![event(i, Op::Open, Some("/d"))]);
    }
    assert_eq!(load(&store, c).len(), 3);
    assert!(load(&store, d).iter().all(|e| e.path.as_deref() == Some("/d")));
    assert_eq!(store.query(&Query { session: Some(c), ..Query::default() }).expect("q").len(), 3);
    assert_eq!(store.summary(d, 5).expect("summary").events, 3);
}

#[test]
fn schema_1_databases_migrate_with_their_session_ranges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.db");
    {
        let mut conn = Connection::open(&db).expect("open");
        migrations().to_version(&mut conn, 1).expect("schema 1");
        conn.execute_batch(
            "INSERT INTO sessions (id, command, cwd, uid, user, backend, kernel, nono_version, recorder_pid, started_ns, state) \
             VALUES (1, '[\"a\"]', '/', 0, 'root', 'tp', 'k', 'v', 1, 0, 'complete'); \
             INSERT INTO strings (id, value) VALUES (1, 'sh'), (2, '/p'); \
             INSERT INTO events (session_id, time_ns, pid, tid, ppid, uid, comm_id, op, path_id, access, arg, file_type, result, errno, incomplete) \
             VALUES (1, 5, 1, 1, 0, 0, 1, 1, 2, 1, 0, 0, 0, 0, 0), (1, 6, 1, 1, 0, 0, 1, 1, 2, 1, 0, 0, 0, 0, 0);",
        )
        .expect("schema 1 rows");
    }
    let store = Store::open_existing(&db).expect("migrate to the latest schema");
    assert_eq!(load(&store, 1).len(), 2);
    assert_eq!(store.query(&Query { session: Some(1), path_glob: Some("/p".into()), ..Query::default() }).expect("q").len(), 2);
}

#[test]
fn schema_version_matches_the_migrations() {
    let conn = Connection::open_in_memory().expect("memory");
    assert_eq!(migrations().pending_migrations(&conn).expect("pending"), SCHEMA_VERSION as i32);
}

/// Every figure of a summary, for comparing two.
fn summary_text(store: &Store, session: i64) -> String {
    format!("{:?}", store.summary(session, 1000).expect("summary"))
}

/// Forgets a session's aggregates and postings, so that every read groups
/// or scans its events (what a reader does for events not yet covered).
fn uncover(store: &Store, session: i64) {
    store
        .conn()
        .execute_batch(&format!(
            "DELETE FROM session_counts WHERE session_id = {session}; DELETE FROM session_paths WHERE session_id = {session}; \
             DELETE FROM session_procs WHERE session_id = {session}; DELETE FROM session_errors WHERE session_id = {session}; \
             DELETE FROM path_postings WHERE chunk_id IN (SELECT id FROM path_chunks WHERE session_id = {session}); \
             DELETE FROM path_chunks WHERE session_id = {session}; \
             UPDATE sessions SET covered_through = NULL, detailed_through = NULL WHERE id = {session};"
        ))
        .expect("uncover");
}

#[test]
fn summaries_from_aggregates_equal_summaries_from_events() {
    let (_dir, db, store) = fresh();
    let id = store.begin_session(&new_session()).expect("begin");
    // Several chunks (4096 events under test), errors, processes.
    write(&db, id, (0..20_000).map(synthetic_event).collect());
    let kept = summary_text(&store, id);
    assert!(kept.contains("events: 20000"), "{kept}");
    uncover(&store, id);
    assert_eq!(summary_text(&store, id), kept, "grouping the events gives the same summary");
    // A writer that died: its chunk part reached event 9000, its details
    // part 5000, and nothing after. The summary adds what the aggregates
    // lack from the events.
    let mut tally = super::tally::Tally::default();
    let mut stmt = store
        .conn()
        .prepare(
            "SELECT id, op, result, errno, coalesce(denied_by, 0), coalesce(path_id, 0), pid, ppid, comm_id, \
             coalesce(exe_id, 0) FROM events WHERE session_id = ?1 AND id <= 9000 ORDER BY id",
        )
        .expect("prepare");
    let rows: Vec<super::tally::Counted> =
        stmt.query_map([id], |r| super::tally::Counted::from_row(r)).expect("rows").collect::<Result<_, _>>().expect("rows");
    drop(stmt);
    for e in &rows {
        tally.add(e).expect("add");
        if e.id == 5000 {
            tally.flush(store.conn(), id).expect("flush both parts");
        }
    }
    tally.flush_chunk(store.conn(), id).expect("flush the chunk part only");
    drop(tally);
    let marks: (i64, i64) = store
        .conn()
        .query_row("SELECT covered_through, detailed_through FROM sessions WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("marks");
    assert_eq!(marks, (9000, 5000));
    assert_eq!(summary_text(&store, id), kept, "aggregates plus the uncovered rest");
    let glob = Query { session: Some(id), path_glob: Some("/home/user/project/src/dir1/*".into()), ..Query::default() };
    let (sql, args) = store.query_sql(&glob, query::PathLookup::Scan).expect("sql").expect("some");
    assert_eq!(store.query(&glob).expect("postings and the rest"), store.run_query(&sql, args).expect("scan"));
    // A writer's open settles the rest for good.
    super::tally::settle(store.conn(), id).expect("settle");
    assert_eq!(summary_text(&store, id), kept);
    let marks: (i64, i64) = store
        .conn()
        .query_row("SELECT covered_through, detailed_through FROM sessions WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("marks");
    assert_eq!(marks, (20_000, 20_000));
}

#[test]
fn attributed_denials_move_between_the_aggregates() {
    let (_dir, db, store) = fresh();
    let id = store.begin_session(&new_session()).expect("begin");
    let mut events: Vec<Event> = (0..50).map(|i| event(i, Op::Open, Some("/home/u/p/a"))).collect();
    for (i, errno) in [(50, libc::EACCES), (51, libc::EACCES), (52, libc::EPERM), (53, libc::ENOENT)] {
        events.push(Event { outcome: Outcome::Error(errno), ..event(i, Op::Open, Some("/home/u/.ssh/id_rsa")) });
    }
    events.push(Event { outcome: Outcome::Error(libc::EXDEV), ..event(54, Op::Rename, Some("/home/u/p/a")) });
    write(&db, id, events);
    let n = store
        .attribute_denials(id, |e| match e.outcome.errno() {
            libc::EACCES => Some(crate::event::DenyBy::Computed),
            libc::EXDEV => Some(crate::event::DenyBy::LandlockAudit),
            _ => None,
        })
        .expect("attribute");
    assert_eq!(n, 3);
    let kept = store.summary(id, 100).expect("summary");
    assert_eq!((kept.ok, kept.denied, kept.errors), (50, 3, 2));
    assert_eq!(kept.denied_by.len(), 2);
    let text = summary_text(&store, id);
    uncover(&store, id);
    assert_eq!(summary_text(&store, id), text, "the aggregates were moved exactly as the rows");
    // Attributing again finds nothing left to attribute.
    assert_eq!(
        store.attribute_denials(id, |_| Some(crate::event::DenyBy::Computed)).expect("again"),
        1,
        "only the EPERM is left"
    );
    assert!(store.attribute_denials(99, |_| None).is_err());
}

#[test]
fn schema_3_databases_migrate_with_aggregates_and_unattributed_denials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.db");
    {
        let mut conn = Connection::open(&db).expect("open");
        migrations().to_version(&mut conn, 3).expect("schema 3");
        conn.execute_batch(
            "INSERT INTO sessions (id, command, cwd, uid, user, backend, kernel, nono_version, recorder_pid, started_ns, state, \
             first_event, last_event) VALUES (1, '[\"a\"]', '/', 0, 'root', 'tp', 'k', 'v', 1, 0, 'complete', 1, 4); \
             INSERT INTO strings (id, value) VALUES (1, 'sh'), (2, '/p/a'), (3, '/p/b'); \
             INSERT INTO events (session_id, time_ns, pid, tid, ppid, uid, comm_id, op, path_id, access, arg, file_type, result, errno, incomplete) \
             VALUES (1, 5, 1, 1, 0, 0, 1, 1, 2, 1, 0, 0, 0, 0, 0), (1, 6, 1, 1, 0, 0, 1, 1, 2, 1, 0, 0, 0, 0, 0), \
                    (1, 7, 1, 1, 0, 0, 1, 1, 3, 1, 0, 0, 1, 13, 0), (1, 8, 1, 1, 0, 0, 1, 3, 3, 1, 0, 0, 2, 2, 0);",
        )
        .expect("schema 3 rows");
    }
    let store = Store::open_existing(&db).expect("migrate to the latest schema");
    let s = store.summary(1, 10).expect("summary");
    assert_eq!((s.events, s.ok, s.denied, s.errors), (4, 2, 1, 1));
    assert_eq!(s.denied_by, [query::MethodCount { method: crate::event::DenyBy::Unattributed, count: 1 }]);
    assert_eq!(s.top_paths[0], PathCount { path: "/p/a".into(), count: 2 });
    let denied = load(&store, 1).into_iter().find(|e| e.outcome.class() == "denied").expect("the denied row");
    assert_eq!(denied.outcome, Outcome::Denied { errno: 13, by: crate::event::DenyBy::Unattributed });
    let q = |q: Query| store.query(&Query { session: Some(1), ..q }).expect("query");
    assert_eq!(q(Query { denied_by: Some(crate::event::DenyBy::Unattributed), ..Query::default() }).len(), 1);
    assert!(q(Query { denied_by: Some(crate::event::DenyBy::Computed), ..Query::default() }).is_empty());
    // The backfill indexed the paths: the glob is answered from the postings.
    let chunks: i64 = store.conn().query_row("SELECT count(*) FROM path_chunks", [], |r| r.get(0)).expect("chunks");
    assert_eq!(chunks, 1);
    assert_eq!(q(Query { path_glob: Some("/p/*".into()), op: Some(Op::Open), ..Query::default() }).len(), 3);
    let covered: Option<i64> = store.conn().query_row("SELECT covered_through FROM sessions", [], |r| r.get(0)).expect("mark");
    assert_eq!(covered, Some(4));
}

#[test]
fn globs_are_written_in_the_escaped_form_of_stored_paths() {
    let (_dir, db, store) = fresh();
    let id = store.begin_session(&new_session()).expect("begin");
    // A name with a real backslash, and one with an invalid byte.
    let backslash = crate::event::escape_bytes(b"/w/a\\xffb");
    let invalid = crate::event::escape_bytes(b"/w/a\xffb");
    let star = crate::event::escape_bytes(b"/w/s*t");
    write(
        &db,
        id,
        vec![event(0, Op::Open, Some(&backslash)), event(1, Op::Open, Some(&invalid)), event(2, Op::Open, Some(&star))],
    );
    let q = |glob: &str| -> Vec<String> {
        store
            .query(&Query { path_glob: Some(glob.into()), ..Query::default() })
            .expect(glob)
            .into_iter()
            .map(|r| r.event.path.unwrap_or_default())
            .collect()
    };
    assert_eq!(q(r"/w/a\\xffb"), vec![backslash.clone()]);
    assert_eq!(q(r"/w/a\xffb"), vec![invalid.clone()]);
    assert_eq!(q(r"/w/a\xFFb"), vec![invalid.clone()], "hex digits in either case");
    assert_eq!(q(r"/w/a\\x*"), vec![backslash.clone()]);
    assert_eq!(q("/w/a*b"), [backslash, invalid]);
    assert_eq!(q(r"/w/s\*t"), vec![star.clone()], "a backslash before a metacharacter makes it literal");
    assert_eq!(q(r"/w/[rs]\*?"), [star]);
    for bad in [r"/w/a\", r"/w/a\xZZ", r"/w/a\x*", "/w/[abc"] {
        let err = store.query(&Query { path_glob: Some(bad.into()), ..Query::default() }).expect_err(bad);
        assert!(matches!(err, StoreError::BadGlob { .. }), "{bad}: {err}");
    }
}
