//! End-to-end tests for `nono audit`: each test fills a real audit database
//! in a fresh temporary directory through the library, then runs the real
//! `nono` binary on it.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nono::event::{DenyBy, Event, NetAddr, Op, Outcome};
use nono::store::{LossCounters, NewSession, SessionEnd, SessionKind, SessionState, Store, spawn_writer};

mod support;
use support::{Sandbox, TestUser, event, require_recorder};

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

/// Two sessions: 1 complete, 2 incomplete (5 ring-buffer drops).
fn fixture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("state/audit.db");
    let store = Store::open(&db).expect("open");
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
    assert!(rows[0].starts_with("id,kind,state,started,"), "{csv}");
    assert!(rows[0].contains(",backend,host,events,denials,"), "{csv}");
    assert!(rows[2].starts_with("2,learn,incomplete,"), "{csv}");
    assert!(rows[1].contains(",tracepoint,") && rows[1].contains(",6,1,0,"), "events 6, denials 1, lost 0: {csv}");
    assert!(lines[0].contains("BACKEND") && lines[0].contains("HOST") && lines[0].contains("DENIED"), "{table}");
    assert_eq!(arr[0]["denials"], 1);
    assert!(arr[0]["host"].as_str().is_some_and(|h| !h.is_empty()), "{j}");
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
fn a_killed_recorder_is_reported_by_readers_and_settled_by_writers() {
    let (_dir, db) = fixture();
    let store = Store::open_existing(&db).expect("open");
    let id = store.begin_session(&NewSession { command: vec!["agent".into()], ..NewSession::default() }).expect("begin");
    let (tx, w) = spawn_writer(&db, id).expect("writer");
    tx.blocking_send((0..3).map(|i| event(20 + i, Op::Open, "/tmp/x")).collect()).expect("send");
    drop(tx);
    w.join().expect("join");
    drop(store);
    // The recorder was SIGKILLed: its pid is gone and the row still says running.
    let mut child = Command::new("true").spawn().expect("spawn");
    let dead = child.id();
    child.wait().expect("wait");
    let conn = rusqlite::Connection::open(&db).expect("sqlite");
    conn.execute("UPDATE sessions SET recorder_pid = ?1 WHERE id = ?2", (dead, id)).expect("update");
    drop(conn);
    // Readers change nothing: they report the session as it is stored,
    // and say that its recorder is gone.
    let j = json(&nono(&db, &["show", &id.to_string(), "--format", "json"]));
    assert_eq!(j["state"], "running");
    assert_eq!(j["recorder_gone"], true);
    let out = stdout(&nono(&db, &["show", &id.to_string()]));
    assert!(out.contains("THE RECORDER") && out.contains("IS GONE"), "{out}");
    let table = stdout(&nono(&db, &["sessions"]));
    assert!(table.contains("running (recorder gone)"), "{table}");
    // The next writer marks it incomplete, with what reached the file.
    drop(Store::open(&db).expect("a writer opens"));
    let j = json(&nono(&db, &["show", &id.to_string(), "--format", "json"]));
    assert_eq!(j["state"], "incomplete");
    assert_eq!(j["note"], "recorder died");
    assert_eq!(j["events"], 3);
    let out = stdout(&nono(&db, &["show", &id.to_string()]));
    assert!(out.contains("INCOMPLETE: 0 events lost (recorder died)"), "{out}");
    let s = json(&nono(&db, &["summary", &id.to_string(), "--format", "json"]));
    assert_eq!(s["events"], 3);
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

    // Values clap rejects before anything runs: a usage error is one of
    // nono's own, exit 125 (never a code a command could return).
    let out = nono(&db, &["query", "--op", "frobnicate"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown operation"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = nono(&db, &["query", "--result", "maybe"]);
    assert_eq!(out.status.code(), Some(125));
    let out = nono(&db, &["sessions", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(125));
    // Help is not an error.
    assert_eq!(nono(&db, &["sessions", "--help"]).status.code(), Some(0));
}

/// Stores `events` as a new finished session; returns its id.
fn record(db: &Path, info: &NewSession, events: Vec<Event>) -> i64 {
    let store = Store::open(db).expect("open");
    let id = store.begin_session(info).expect("begin");
    let n = events.len() as u64;
    let (tx, w) = spawn_writer(db, id).expect("writer");
    tx.blocking_send(events).expect("send");
    drop(tx);
    assert_eq!(w.join().expect("join").events, n);
    let end = SessionEnd {
        state: SessionState::Complete,
        exit_code: Some(0),
        signal: None,
        events: n,
        counters: LossCounters::default(),
        note: None,
    };
    store.finish_session(id, &end).expect("finish");
    id
}

#[test]
fn show_prints_the_kind_context_and_enforced_profile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.db");
    let info = NewSession {
        command: vec!["agent".into()],
        kind: SessionKind::Run,
        context: Some(r#"{"HOME": "/home/u", "CWD": "/home/u/p"}"#.into()),
        profile: Some("/home/u/.config/nono/profiles/agent.json".into()),
        ..NewSession::default()
    };
    let id = record(&db, &info, vec![event(0, Op::Open, "/etc/hosts")]);
    let j = json(&nono(&db, &["show", &id.to_string(), "--format", "json"]));
    assert_eq!(j["kind"], "run");
    assert_eq!(j["context"]["HOME"], "/home/u");
    assert_eq!(j["enforced_profile"], "/home/u/.config/nono/profiles/agent.json");
    let out = stdout(&nono(&db, &["show", &id.to_string()]));
    assert!(out.contains("kind:") && out.contains("run"), "{out}");
    assert!(out.contains("enforced_profile: /home/u/.config/nono/profiles/agent.json"), "{out}");
    // A learning session by default.
    let learned = record(&db, &NewSession { command: vec!["x".into()], ..NewSession::default() }, vec![]);
    assert_eq!(json(&nono(&db, &["show", &learned.to_string(), "--format", "json"]))["kind"], "learn");
}

#[test]
fn denials_attributed_after_recording_are_queried_and_summarised_by_method() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.db");
    let err = |i, op, path: &str, errno| Event { outcome: Outcome::Error(errno), ..event(i, op, path) };
    let id = record(
        &db,
        &NewSession { command: vec!["agent".into()], kind: SessionKind::Run, ..NewSession::default() },
        vec![
            err(0, Op::Open, "/home/u/.ssh/id_rsa", libc::EACCES),
            err(1, Op::Open, "/proc/1/environ", libc::EACCES),
            err(2, Op::Unlink, "/home/u/p/locked", libc::EPERM),
            err(3, Op::Rename, "/home/u/p/a", libc::EXDEV),
            err(4, Op::Open, "/home/u/p/b", libc::EXDEV),
            err(5, Op::Open, "/home/u/p/missing", libc::ENOENT),
            event(6, Op::Open, "/home/u/p/ok"),
        ],
    );
    let store = Store::open_existing(&db).expect("open");
    let mut seen = Vec::new();
    let n = store
        .attribute_denials(id, |e| {
            seen.push(e.path.clone().unwrap_or_default());
            match e.path.as_deref() {
                Some("/home/u/.ssh/id_rsa") => Some(DenyBy::Computed),
                Some("/home/u/p/locked") => Some(DenyBy::Seccomp),
                Some("/home/u/p/a") => Some(DenyBy::LandlockAudit),
                // DAC refused it: not the sandbox.
                _ => None,
            }
        })
        .expect("attribute");
    assert_eq!(n, 3);
    // Only permission errors are offered: EXDEV only from a rename or link.
    assert_eq!(seen, ["/home/u/.ssh/id_rsa", "/proc/1/environ", "/home/u/p/locked", "/home/u/p/a"]);
    drop(store);

    let q = |args: &[&str]| json(&nono(&db, &[&["query", "--session", &id.to_string(), "--format", "json"], args].concat()));
    let computed = q(&["--denied-by", "computed"]);
    assert_eq!(computed.as_array().expect("array").len(), 1);
    assert_eq!(computed[0]["path"], "/home/u/.ssh/id_rsa");
    assert_eq!(computed[0]["result"], "denied");
    assert_eq!(computed[0]["denied_by"], "computed");
    assert_eq!(q(&["--result", "denied"]).as_array().expect("array").len(), 3);
    let errors = q(&["--result", "error"]);
    assert_eq!(errors.as_array().expect("array").len(), 3, "the DAC refusal stays an error: {errors}");
    assert!(errors.as_array().expect("array").iter().all(|e| e["denied_by"].is_null()));
    let table = stdout(&nono(&db, &["query", "--session", &id.to_string(), "--denied-by", "seccomp"]));
    assert!(table.contains("denied EPERM (seccomp)") && table.contains("/home/u/p/locked"), "{table}");
    let csv = stdout(&nono(&db, &["query", "--session", &id.to_string(), "--denied-by", "landlock-audit", "--format", "csv"]));
    assert!(csv.lines().next().is_some_and(|h| h.ends_with(",denied_by")), "{csv}");
    assert!(csv.lines().nth(1).is_some_and(|r| r.ends_with(",landlock-audit")), "{csv}");
    let out = nono(&db, &["query", "--denied-by", "landlock"]);
    assert_eq!(out.status.code(), Some(125), "an unknown method is a usage error");

    let s = json(&nono(&db, &["summary", &id.to_string(), "--format", "json"]));
    assert_eq!((s["ok"].as_u64(), s["denied"].as_u64(), s["errors"].as_u64()), (Some(1), Some(3), Some(3)));
    let methods: Vec<(String, u64)> = s["denied_by"]
        .as_array()
        .expect("methods")
        .iter()
        .map(|m| (m["method"].as_str().expect("name").to_owned(), m["count"].as_u64().expect("count")))
        .collect();
    assert_eq!(methods.len(), 3, "{methods:?}");
    assert!(methods.contains(&("computed".to_owned(), 1)) && methods.contains(&("seccomp".to_owned(), 1)), "{methods:?}");
    let table = stdout(&nono(&db, &["summary", &id.to_string()]));
    let denials = table.find("DENIALS").expect("a DENIALS section");
    let errors = table.find("\nERRORS").expect("an ERRORS section");
    assert!(denials < errors, "{table}");
    assert!(table[denials..errors].contains("/home/u/.ssh/id_rsa") && !table[denials..errors].contains("environ"), "{table}");
    assert!(table[errors..].contains("/proc/1/environ") && table[errors..].contains("ENOENT"), "{table}");
}

#[test]
fn tables_show_control_characters_and_bidi_overrides_escaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.db");
    let fake = "/home/u/p/x\n1  2025-11-23 08:00:00  1  agent  open  r  ok  /home/u/FAKE";
    let rtl = "/home/u/p/invoice\u{202e}fdp.exe";
    let id = record(
        &db,
        &NewSession { command: vec!["sh".into(), "-c".into(), "echo\nfake".into()], ..NewSession::default() },
        vec![event(0, Op::Open, fake), Event { comm: "ag\u{1b}[31mnt".into(), ..event(1, Op::Open, rtl) }],
    );
    let table = stdout(&nono(&db, &["query", "--session", &id.to_string()]));
    assert_eq!(table.lines().count(), 3, "a header and two rows, no faked ones:\n{table}");
    assert!(table.contains("/home/u/p/x\\n1  2025"), "{table}");
    assert!(table.contains("invoice\\u{202e}fdp.exe") && table.contains("ag\\u{1b}[31mnt"), "{table}");
    assert!(!table.contains('\u{202e}') && !table.contains('\u{1b}'), "{table}");
    for args in [vec!["summary", "1"], vec!["sessions"], vec!["show", "1"]] {
        let out = stdout(&nono(&db, &args));
        assert!(!out.contains('\u{202e}') && !out.contains('\u{1b}') && !out.contains("x\n1"), "{args:?}:\n{out}");
    }
    // JSON carries the exact text, as escapes; CSV shows it escaped.
    let out = stdout(&nono(&db, &["query", "--session", "1", "--format", "json"]));
    assert!(!out.contains('\u{202e}') && !out.contains('\u{1b}'), "{out}");
    let j: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(j[0]["path"], fake);
    assert_eq!(j[1]["path"], rtl);
    let csv = stdout(&nono(&db, &["query", "--session", "1", "--format", "csv"]));
    assert!(csv.contains("/home/u/p/x\\n1  2025") && csv.contains("invoice\\u{202e}fdp.exe"), "{csv}");
    assert_eq!(csv.lines().count(), 3, "a header and two rows: {csv}");
    assert!(!csv.contains('\u{202e}') && !csv.contains('\u{1b}'), "{csv}");
}

#[test]
fn a_database_in_a_read_only_directory_is_readable_by_an_ordinary_user() {
    let sb = Sandbox::new();
    let Some(user) = TestUser::create("a_database_in_a_read_only_directory_is_readable_by_an_ordinary_user", &sb) else {
        return;
    };
    let ro = sb.root().join("ro");
    std::fs::create_dir(&ro).expect("mkdir");
    let db = ro.join("audit.db");
    let id = record(
        &db,
        &NewSession { command: vec!["make".into()], ..NewSession::default() },
        vec![event(0, Op::Open, "/home/u/p/a.c"), event(1, Op::Open, "/home/u/p/b.c")],
    );
    for suffix in ["-wal", "-shm"] {
        assert!(!ro.join(format!("audit.db{suffix}")).exists(), "the last connection removed {suffix}");
    }
    let chmod = |p: &Path, mode| std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).expect("chmod");
    chmod(&db, 0o644);
    chmod(&ro, 0o555);
    let before = std::fs::read(&db).expect("read");
    let run = |args: &[&str]| {
        let mut c = user.nono(&sb);
        c.arg("audit").args(args).arg("--db").arg(&db);
        c.output().expect("run nono as the user")
    };
    let sessions = json(&run(&["sessions", "--format", "json"]));
    assert_eq!(sessions[0]["id"], id);
    assert_eq!(json(&run(&["summary", "1", "--format", "json"]))["events"], 2);
    let rows = json(&run(&["query", "--path", "/home/u/p/*.c", "--format", "json"]));
    assert_eq!(rows.as_array().expect("array").len(), 2);
    stdout(&run(&["show", "last"]));
    assert_eq!(std::fs::read(&db).expect("read"), before, "a reader changed the database");
    assert!(!ro.join("audit.db-wal").exists() && !ro.join("audit.db-shm").exists());

    // Changes waiting in a -wal that cannot be indexed here: say what to do.
    let held = ro.join("held.db");
    chmod(&ro, 0o755);
    record(&held, &NewSession::default(), vec![event(0, Op::Open, "/x")]);
    let writer = rusqlite::Connection::open(&held).expect("open");
    writer.execute_batch("PRAGMA wal_autocheckpoint = 0; UPDATE sessions SET note = 'late'").expect("write to the WAL");
    let copy = sb.root().join("copy");
    std::fs::create_dir(&copy).expect("mkdir");
    std::fs::copy(&held, copy.join("audit.db")).expect("copy");
    std::fs::copy(ro.join("held.db-wal"), copy.join("audit.db-wal")).expect("copy the wal");
    drop(writer);
    chmod(&copy.join("audit.db"), 0o644);
    chmod(&copy.join("audit.db-wal"), 0o644);
    chmod(&copy, 0o555);
    let mut c = user.nono(&sb);
    let out = c.args(["audit", "sessions", "--db"]).arg(copy.join("audit.db")).output().expect("run");
    let err = failure(&out);
    assert!(err.contains("holds changes not yet copied") && err.contains("together with its -wal file"), "{err}");
    assert!(!err.contains("SQLITE_") && !err.contains("readonly database"), "{err}");

    // An older schema cannot be upgraded where nothing can be written.
    chmod(&ro, 0o755);
    rusqlite::Connection::open(&db).expect("open").execute_batch("PRAGMA user_version = 4").expect("downgrade the mark");
    chmod(&ro, 0o555);
    let err = failure(&run(&["sessions"]));
    assert!(err.contains("has schema 4, older than this nono's") && err.contains("cannot be upgraded"), "{err}");
    chmod(&ro, 0o755);
}

#[test]
fn non_utf8_and_backslash_names_are_recorded_and_queried_apart() {
    let Some(backend) = require_recorder("non_utf8_and_backslash_names_are_recorded_and_queried_apart") else { return };
    let sb = Sandbox::new();
    // `a\xffb` with a real backslash, and `a<0xff>b` with an invalid byte.
    let learned = sb.learn(&backend, &["sh", "-c", r#"touch 'a\xffb' && touch "$(printf 'a\377b')" && echo x > 'c\d'"#]);
    assert_eq!(learned.code, Some(0), "{}", learned.stderr);
    let work = sb.work().display().to_string();
    let paths = |glob: &str| -> Vec<String> {
        let j: serde_json::Value =
            serde_json::from_str(&sb.nono(&["audit", "query", "--path", glob, "--format", "json"])).expect("json");
        let mut p: Vec<String> =
            j.as_array().expect("array").iter().map(|e| e["path"].as_str().expect("path").to_owned()).collect();
        p.dedup();
        p
    };
    // The stored text of each: a backslash doubled, the byte as \xNN.
    let backslash = format!(r"{work}/a\\xffb");
    let invalid = format!(r"{work}/a\xffb");
    assert_eq!(paths(&backslash), vec![backslash.clone()], "the escaped form of a real backslash finds only that file");
    assert_eq!(paths(&invalid), vec![invalid.clone()], "\\xNN finds only the file with that byte");
    assert_eq!(paths(&format!(r"{work}/a\\x*")), vec![backslash.clone()]);
    assert_eq!(paths(&format!(r"{work}/c\\d")), [format!(r"{work}/c\\d")]);
    let mut both = paths(&format!("{work}/a*b"));
    both.sort();
    let mut expected = vec![backslash, invalid];
    expected.sort();
    assert_eq!(both, expected);
    let out = sb.cmd().args(["audit", "query", "--path", &format!(r"{work}/a\x")]).output().expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("two hex digits"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn summary_lists_denials_that_many_errors_outnumber() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.db");
    // 30 missing paths probed 5 times each (locale and library searches),
    // and 3 denials seen once: the top 20 failures are all ENOENT.
    let mut events = Vec::new();
    for i in 0..30 {
        for j in 0..5 {
            events.push(Event {
                outcome: Outcome::Error(libc::ENOENT),
                ..event(i * 5 + j, Op::Open, &format!("/usr/share/locale/l{i}/LC_MESSAGES/x.mo"))
            });
        }
    }
    for (i, p) in ["/home/u/.ssh/id_rsa", "/home/u/.aws/credentials", "/etc/shadow"].iter().enumerate() {
        events.push(Event {
            outcome: Outcome::Denied { errno: libc::EACCES, by: DenyBy::Computed },
            ..event(1000 + i as i64, Op::Open, p)
        });
    }
    let id = record(&db, &NewSession { command: vec!["agent".into()], kind: SessionKind::Run, ..NewSession::default() }, events);
    let out = stdout(&nono(&db, &["summary", &id.to_string()]));
    assert!(out.contains("3 denied"), "{out}");
    let denials = out.split("\nDENIALS\n").nth(1).and_then(|r| r.split("\nERRORS\n").next()).unwrap_or_default();
    assert!(!denials.contains("(none)"), "the header says 3 denied, the section must list them:\n{out}");
    for p in ["/home/u/.ssh/id_rsa", "/home/u/.aws/credentials", "/etc/shadow"] {
        assert!(denials.contains(p), "{p} missing from DENIALS:\n{out}");
    }
    let j = json(&nono(&db, &["summary", &id.to_string(), "--format", "json"]));
    let listed = j["top_errors"].as_array().expect("top_errors");
    assert_eq!(listed.iter().filter(|e| e["result"] == "denied").count(), 3, "{j}");
    assert_eq!(listed.iter().filter(|e| e["result"] == "error").count(), 20, "{j}");
    // `last` and `latest` name the same session everywhere.
    for cmd in ["summary", "show"] {
        assert_eq!(stdout(&nono(&db, &[cmd, "last"])), stdout(&nono(&db, &[cmd, "latest"])), "{cmd}");
    }
}

#[test]
fn sessions_filter_by_command_time_and_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.db");
    for argv in
        [vec!["timeout", "30", "claude", "-p", "hi"], vec!["sh", "-c", "codex exec x"], vec!["/usr/bin/claude"], vec!["make"]]
    {
        record(&db, &NewSession { command: argv.iter().map(|s| (*s).to_owned()).collect(), ..NewSession::default() }, vec![]);
    }
    let ids = |args: &[&str]| -> Vec<i64> {
        let mut a = vec!["sessions", "--format", "json"];
        a.extend_from_slice(args);
        json(&nono(&db, &a)).as_array().expect("array").iter().filter_map(|s| s["id"].as_i64()).collect()
    };
    assert_eq!(ids(&["--command", "claude"]), [1, 3], "past wrappers such as timeout");
    assert_eq!(ids(&["--command", "codex"]), [2], "into sh -c");
    assert_eq!(ids(&["--limit", "2"]), [3, 4], "the newest, oldest first");
    assert_eq!(ids(&["--command", "claude", "--limit", "1"]), [3]);
    assert_eq!(ids(&["--since", "1h"]).len(), 4);
    assert!(ids(&["--since", "2000-01-01T00:00:00Z"]).len() == 4);
    let future = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)).to_string();
    assert!(ids(&["--since", &future]).is_empty());
    let err = failure(&nono(&db, &["sessions", "--since", "yesterday"]));
    assert!(err.contains("bad time"), "{err}");
}

#[test]
fn a_run_session_keeps_the_profile_it_enforced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.db");
    let id = record(
        &db,
        &NewSession {
            command: vec!["agent".into()],
            kind: SessionKind::Run,
            profile: Some("agent".into()),
            ..NewSession::default()
        },
        vec![],
    );
    let stored =
        nono::store::EnforcedProfile { json: "{\"filesystem\": {\"read\": [\"/usr\"]}}\n".into(), hash: "ab".repeat(32) };
    Store::open(&db).expect("open").set_enforced_profile(id, &stored).expect("store it");
    let j = json(&nono(&db, &["show", &id.to_string(), "--format", "json"]));
    assert_eq!(j["enforced_sha256"], "ab".repeat(32));
    assert_eq!(j["enforced_resolved"]["filesystem"]["read"][0], "/usr");
    let out = stdout(&nono(&db, &["show", &id.to_string()]));
    assert!(out.contains(&format!("enforced_sha256:  {}", "ab".repeat(32))), "{out}");
    // A session from before schema 6, or a learning one, has none.
    let learned = record(&db, &NewSession { command: vec!["x".into()], ..NewSession::default() }, vec![]);
    assert!(json(&nono(&db, &["show", &learned.to_string(), "--format", "json"]))["enforced_sha256"].is_null());
}

/// Runs `nono ARGS` with stdout a pipe nobody reads any more.
fn with_closed_stdout(args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nono"));
    c.args(args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    clean_env(&mut c);
    let mut child = c.spawn().expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_closed_pipe_ends_every_command_quietly() {
    use std::os::unix::process::ExitStatusExt as _;
    let (dir, db) = fixture();
    // Enough rows that the writes outlast the reader.
    let many: Vec<Event> = (0..5000).map(|i| event(i, Op::Open, &format!("/home/u/project/f{i}"))).collect();
    record(&db, &NewSession { command: vec!["x".into()], ..NewSession::default() }, many);
    let d = db.to_str().expect("utf-8");
    let profile = dir.path().join("p.json");
    std::fs::write(&profile, r#"{"extends": "base"}"#).expect("profile");
    let p = profile.to_str().expect("utf-8");
    for args in [
        vec!["audit", "query", "--db", d],
        vec!["audit", "query", "--db", d, "--format", "json"],
        vec!["audit", "query", "--db", d, "--format", "csv"],
        vec!["audit", "sessions", "--db", d],
        vec!["audit", "summary", "last", "--db", d, "--top", "5000"],
        vec!["audit", "show", "1", "--db", d],
        vec!["audit", "export", "--format", "ocsf", "--db", d],
        vec!["profile", "show", p],
        vec!["profile", "list"],
        vec!["--help"],
    ] {
        let (status, err) = with_closed_stdout(&args);
        assert!(
            status.success() || status.signal() == Some(libc::SIGPIPE),
            "{args:?}: ended by {status} (101 is a panic), stderr:\n{err}"
        );
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
    }
}

#[test]
fn reports_use_the_stored_profile_and_say_which_version_they_compare() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.db");
    let file = dir.path().join("agent.json");
    // What the session enforced, and the file as a later amend left it.
    std::fs::write(&file, r#"{"filesystem": {"rules": [{"path": "/usr", "access": ["read_file"], "reason": "amended-later"}]}}"#)
        .expect("profile");
    let info = NewSession {
        command: vec!["agent".into()],
        kind: SessionKind::Run,
        profile: Some(file.display().to_string()),
        ..NewSession::default()
    };
    let id = record(&db, &info, vec![event(0, Op::Open, "/usr/lib/x")]);
    let json = r#"{"filesystem": {"rules": [{"path": "/usr", "access": ["read_file", "read_dir"], "reason": "as-it-ran"}]}}"#;
    let stored = nono::store::EnforcedProfile { json: json.into(), hash: "cd".repeat(32) };
    Store::open(&db).expect("open").set_enforced_profile(id, &stored).expect("store it");
    let html = dir.path().join("r.html");
    let out = nono(&db, &["report", &id.to_string(), "--html", html.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = std::fs::read_to_string(&html).expect("page");
    assert!(page.contains("as-it-ran") && !page.contains("amended-later"), "the report shows the stored profile");
    assert!(page.contains("as enforced, sha256 cdcdcdcdcdcd"), "and says so");
    // `profile report --against`: the file now is another version.
    let mut c = Command::new(env!("CARGO_BIN_EXE_nono"));
    c.args(["profile", "report"]).arg(&file).args(["--against", &id.to_string(), "--html"]).arg(dir.path().join("p.html"));
    c.arg("--db").arg(&db);
    clean_env(&mut c);
    let out = c.output().expect("profile report");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("as it is now (sha256 ") && err.contains("the profile changed since"), "{err}");
    assert!(std::fs::read_to_string(dir.path().join("p.html")).expect("page").contains("the profile changed since"));
}
