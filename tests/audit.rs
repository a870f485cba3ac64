//! End-to-end tests for `nono audit`: each test fills a real audit database
//! in a fresh temporary directory through the library, then runs the real
//! `nono` binary on it.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nono::event::{Access, Event, NetAddr, Op, Outcome};
use nono::store::{LossCounters, NewSession, SessionEnd, SessionState, Store, spawn_writer};

fn nono(db: &Path, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nono"));
    c.arg("audit").args(args).arg("--db").arg(db);
    clean_env(&mut c);
    c.output().expect("run nono")
}

/// No sudo identity or `NONO_DB` from the environment running the tests.
fn clean_env(c: &mut Command) {
    for var in ["SUDO_UID", "SUDO_GID", "SUDO_USER", "NONO_DB", "XDG_STATE_HOME"] {
        c.env_remove(var);
    }
    c.env("TZ", "UTC");
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "nono failed: {}\n{}", o.status, String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).expect("utf-8 output")
}

fn failure(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(125), "expected nono's error exit code; stdout: {}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(&stdout(o)).expect("one JSON document")
}

fn event(i: i64, op: Op, path: &str) -> Event {
    Event {
        time_ns: 1_763_884_800_000_000_000 + i * 1_000_000,
        pid: 4242,
        tid: 4242,
        ppid: 1,
        uid: 1000,
        comm: "agent".into(),
        exe: Some("/usr/bin/agent".into()),
        op,
        path: Some(path.into()),
        path2: None,
        access: Access { read: true, ..Access::default() },
        arg: 0,
        file_type: 0o100_000,
        outcome: Outcome::Ok,
        net: None,
        incomplete: false,
    }
}

/// Two sessions: 1 complete, 2 incomplete (5 ring-buffer drops).
fn fixture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("state/audit.db");
    let store = Store::open(&db, None).expect("open");
    let new = |cmd: &[&str]| NewSession {
        command: cmd.iter().map(|s| (*s).to_owned()).collect(),
        cwd: "/home/u/project".into(),
        uid: 1000,
        user: "u".into(),
        backend: "tracepoint".into(),
        kernel: "6.18.0".into(),
        nono_version: "0.1.0".into(),
        ..NewSession::default()
    };
    let a = store.begin_session(&new(&["make", "-j2"])).expect("begin");
    let events = vec![
        event(0, Op::Exec, "/usr/bin/make"),
        event(1, Op::Open, "/home/u/project/Makefile"),
        event(2, Op::Open, "/home/u/project/src/main.c"),
        Event {
            outcome: Outcome::Denied { errno: 13, by: nono::event::DenyBy::Computed },
            ..event(3, Op::Open, "/home/u/.ssh/id_rsa")
        },
        Event { outcome: Outcome::Error(2), ..event(4, Op::Open, "/home/u/project/missing, \"odd\".h") },
        Event {
            path: None,
            net: Some(NetAddr {
                family: 2,
                addr: Some(IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34))),
                port: 443,
                sock_type: 1,
                protocol: 0,
            }),
            ..event(5, Op::Connect, "")
        },
    ];
    let n = events.len() as u64;
    let (tx, w) = spawn_writer(&db, a).expect("writer");
    tx.blocking_send(events).expect("send");
    drop(tx);
    assert_eq!(w.join().expect("join").events, n);
    let done = |events, counters: LossCounters| SessionEnd {
        state: if counters.lost() == 0 { SessionState::Complete } else { SessionState::Incomplete },
        exit_code: Some(0),
        signal: None,
        events,
        counters,
        note: None,
    };
    store.finish_session(a, &done(n, LossCounters::default())).expect("finish");
    let b = store.begin_session(&new(&["sh", "-c", "echo hi"])).expect("begin");
    let (tx, w) = spawn_writer(&db, b).expect("writer");
    tx.blocking_send(vec![event(10, Op::Open, "/etc/passwd")]).expect("send");
    drop(tx);
    w.join().expect("join");
    store.finish_session(b, &done(1, LossCounters { ringbuf_drops: 5, ..LossCounters::default() })).expect("finish");
    (dir, db)
}

#[test]
fn sessions_lists_every_session_in_each_format() {
    let (_dir, db) = fixture();
    let table = stdout(&nono(&db, &["sessions"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("ID") && lines[0].contains("STATE") && lines[0].contains("COMMAND"), "{table}");
    assert!(lines[1].contains("complete") && lines[1].contains("make -j2"), "{table}");
    assert!(lines[2].contains("incomplete") && lines[2].contains("'echo hi'"), "{table}");

    let j = json(&nono(&db, &["sessions", "--format", "json"]));
    let arr = j.as_array().expect("array");
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[0]["id"], 1);
    assert_eq!(arr[0]["state"], "complete");
    assert_eq!(arr[0]["command"], serde_json::json!(["make", "-j2"]));
    assert_eq!(arr[0]["events"], 6);
    assert_eq!(arr[1]["lost"], 5);
    assert_eq!(arr[1]["counters"]["ringbuf_drops"], 5);

    let csv = stdout(&nono(&db, &["sessions", "--format", "csv"]));
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3);
    assert!(rows[0].starts_with("id,state,started,"), "{csv}");
    assert!(rows[2].starts_with("2,incomplete,"), "{csv}");
}

#[test]
fn show_says_how_many_events_were_lost() {
    let (_dir, db) = fixture();
    let out = stdout(&nono(&db, &["show", "2"]));
    assert!(out.contains("INCOMPLETE: 5 events lost"), "{out}");
    assert!(out.contains("ringbuf_drops:    5"), "{out}");
    let complete = stdout(&nono(&db, &["show", "1"]));
    assert!(!complete.contains("INCOMPLETE"), "{complete}");
    let j = json(&nono(&db, &["show", "last", "--format", "json"]));
    assert_eq!(j["id"], 2);
    assert_eq!(j["complete"], false);
    assert_eq!(j["lost"], 5);
    let csv = stdout(&nono(&db, &["show", "1", "--format", "csv"]));
    assert!(csv.starts_with("field,value\nid,1\nstate,complete\n"), "{csv}");
}

#[test]
fn a_killed_recorder_is_shown_as_incomplete() {
    let (_dir, db) = fixture();
    let store = Store::open_existing(&db).expect("open");
    let id = store.begin_session(&NewSession { command: vec!["agent".into()], ..NewSession::default() }).expect("begin");
    drop(store);
    // The recorder was SIGKILLed: its pid is gone and the row still says running.
    let mut child = Command::new("true").spawn().expect("spawn");
    let dead = child.id();
    child.wait().expect("wait");
    let conn = rusqlite::Connection::open(&db).expect("sqlite");
    conn.execute("UPDATE sessions SET recorder_pid = ?1 WHERE id = ?2", (dead, id)).expect("update");
    drop(conn);
    let j = json(&nono(&db, &["show", &id.to_string(), "--format", "json"]));
    assert_eq!(j["state"], "incomplete");
    assert_eq!(j["note"], "recorder died");
    let out = stdout(&nono(&db, &["show", &id.to_string()]));
    assert!(out.contains("INCOMPLETE: 0 events lost (recorder died)"), "{out}");
}

#[test]
fn query_filters_and_formats() {
    let (_dir, db) = fixture();
    let j = json(&nono(&db, &["query", "--path", "/home/u/**", "--format", "json"]));
    let paths: Vec<&str> = j.as_array().expect("array").iter().map(|e| e["path"].as_str().expect("path")).collect();
    assert_eq!(
        paths,
        ["/home/u/project/Makefile", "/home/u/project/src/main.c", "/home/u/.ssh/id_rsa", "/home/u/project/missing, \"odd\".h"]
    );

    let j = json(&nono(&db, &["query", "--session", "1", "--result", "denied", "--format", "json"]));
    assert_eq!(j.as_array().expect("array").len(), 1);
    let e = &j[0];
    assert_eq!(e["op"], "open");
    assert_eq!(e["result"], "denied");
    assert_eq!(e["errno"], 13);
    assert_eq!(e["errno_name"], "EACCES");
    assert_eq!(e["access"], "r");
    assert_eq!(e["comm"], "agent");
    assert_eq!(e["session"], 1);

    let j = json(&nono(&db, &["query", "--op", "connect", "--format", "json"]));
    assert_eq!(j[0]["net"], serde_json::json!({"family": 2, "addr": "93.184.216.34", "port": 443}));
    let table = stdout(&nono(&db, &["query", "--op", "connect"]));
    assert!(table.contains("93.184.216.34:443"), "{table}");

    let table = stdout(&nono(&db, &["query", "--path", "/home/u/project/*", "--comm", "agent", "--pid", "4242"]));
    assert!(table.lines().next().is_some_and(|h| h.starts_with("SESSION")), "{table}");
    assert!(table.contains("/home/u/project/Makefile") && !table.contains("main.c"), "{table}");

    let csv = stdout(&nono(&db, &["query", "--result", "error", "--format", "csv"]));
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(rows[1].contains("\"/home/u/project/missing, \"\"odd\"\".h\""), "{csv}");
    assert!(rows[1].contains(",error,2,ENOENT,"), "{csv}");

    // Times: the fixture is in 2025; a window around it and one after it.
    let since = json(&nono(
        &db,
        &["query", "--since", "2025-11-23T08:00:00Z", "--until", "2025-11-23T08:00:00.003Z", "--format", "json"],
    ));
    assert_eq!(since.as_array().expect("array").len(), 3);
    let recent = json(&nono(&db, &["query", "--since", "10m", "--format", "json"]));
    assert_eq!(recent.as_array().expect("array").len(), 0);
    let limited = json(&nono(&db, &["query", "--limit", "2", "--format", "json"]));
    assert_eq!(limited.as_array().expect("array").len(), 2);
}

#[test]
fn summary_in_each_format() {
    let (_dir, db) = fixture();
    let out = stdout(&nono(&db, &["summary", "1"]));
    assert!(out.contains("session 1: 6 events (4 ok, 1 denied, 1 errors)"), "{out}");
    for section in ["OPERATIONS", "TOP PATHS", "PROCESSES", "ERRORS"] {
        assert!(out.contains(section), "{section} missing: {out}");
    }
    assert!(out.contains("EACCES") && out.contains("/home/u/.ssh/id_rsa"), "{out}");
    let j = json(&nono(&db, &["summary", "1", "--format", "json"]));
    assert_eq!(j["events"], 6);
    assert_eq!(j["ops"][0], serde_json::json!({"op": "open", "count": 4}));
    assert_eq!(j["processes"][0]["pid"], 4242);
    assert_eq!(j["session"]["id"], 1);
    let csv = stdout(&nono(&db, &["summary", "1", "--format", "csv"]));
    assert!(csv.starts_with("section,name,detail,count\nresult,ok,,4\n"), "{csv}");
    assert!(csv.contains("op,open,,4"), "{csv}");
}

#[test]
fn default_database_is_under_xdg_state_home() {
    let (dir, db) = fixture();
    let state = dir.path().join("xdg");
    std::fs::create_dir_all(state.join("nono")).expect("mkdir");
    std::fs::copy(&db, state.join("nono/audit.db")).expect("copy");
    let mut c = Command::new(env!("CARGO_BIN_EXE_nono"));
    clean_env(&mut c);
    let out = c.args(["audit", "sessions", "--format", "json"]).env("XDG_STATE_HOME", &state).output().expect("run");
    assert_eq!(json(&out).as_array().expect("array").len(), 2);
    // And HOME when XDG_STATE_HOME is unset: an empty home has no database.
    let mut c = Command::new(env!("CARGO_BIN_EXE_nono"));
    clean_env(&mut c);
    let out = c.args(["audit", "sessions"]).env("HOME", dir.path().join("home")).output().expect("run");
    let err = failure(&out);
    assert!(err.contains("no audit database at") && err.contains("home/.local/state/nono/audit.db"), "{err}");
}

#[test]
fn errors_name_the_problem() {
    let (dir, db) = fixture();
    let missing = dir.path().join("nope.db");
    let err = failure(&nono(&missing, &["sessions"]));
    assert!(err.contains("no audit database at") && err.contains("nope.db") && err.contains("nono learn"), "{err}");
    assert!(!missing.exists(), "a reader must not create a database");

    let err = failure(&nono(&db, &["show", "99"]));
    assert!(err.contains("no session 99"), "{err}");
    let err = failure(&nono(&db, &["summary", "x"]));
    assert!(err.contains("no session x"), "{err}");
    let err = failure(&nono(&db, &["query", "--session", "7"]));
    assert!(err.contains("no session 7"), "{err}");

    let err = failure(&nono(&db, &["query", "--path", "/home/[abc"]));
    assert!(err.contains("bad path glob \"/home/[abc\""), "{err}");

    let err = failure(&nono(&db, &["query", "--since", "last tuesday"]));
    assert!(err.contains("bad time \"last tuesday\""), "{err}");

    // Values clap rejects before anything runs (usage error, exit 2).
    let out = nono(&db, &["query", "--op", "frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown operation"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = nono(&db, &["query", "--result", "maybe"]);
    assert_eq!(out.status.code(), Some(2));
}
