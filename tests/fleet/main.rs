//! End-to-end tests for the fleet: `nono audit push` to a real, throwaway
//! `PostgreSQL` server (started per test by `support/pg.rs`), then `nono
//! audit` and `nono learn --from` reading it back. Local databases are
//! filled through the library (or recorded, in `readers`); the real `nono`
//! binary does the rest. This file holds the push mechanics (resume,
//! restart, concurrency, TLS, credentials); `recipe` runs the README's
//! setup as written, `hosts` host identity and session ids, `readers`
//! every audit command on a fleet session, `ocsf` the export against the
//! OCSF schema, `domains` the network proxy's rows.

use std::borrow::BorrowMut;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nono::event::{Event, NetAddr, Op, Outcome};
use nono::store::{LossCounters, NewSession, SessionEnd, SessionState, Store, spawn_writer, synthetic_event};

#[path = "../support/pg.rs"]
mod pg;
#[path = "../support/mod.rs"]
mod support;

// Chapters beyond the push mechanics below.
mod domains;
mod hosts;
mod ocsf;
mod readers;
mod recipe;
use pg::PgServer;
use support::{event, output_text};

/// `nono ARGS` with a clean environment and this host identity.
pub(crate) fn nono(host: &str, args: &[&str]) -> Command {
    let mut c = Command::new(support::NONO);
    c.args(args);
    for var in ["SUDO_UID", "SUDO_GID", "SUDO_USER", "NONO_DB", "NONO_PG_URL", "XDG_STATE_HOME", "PGPASSWORD", "PGPASSFILE"] {
        c.env_remove(var);
    }
    c.env("TZ", "UTC").env("NONO_HOST_ID", format!("id-{host}")).env("NONO_HOSTNAME", host);
    c
}

/// A simulated host's ordinary user, in a lived-in home, whose audit
/// databases live in their state directory: pushes and reads run as them,
/// the way hosts push (cron, a terminal), never as root.
pub(crate) struct HostUser {
    pub(crate) sb: support::Sandbox,
    pub(crate) user: support::TestUser,
}

impl HostUser {
    pub(crate) fn new(test: &str) -> Option<HostUser> {
        let sb = support::Sandbox::new();
        sb.lived_in_home();
        let user = support::TestUser::create(test, &sb)?;
        Some(HostUser { sb, user })
    }

    /// A database in the user's state directory.
    pub(crate) fn db(&self, name: &str) -> PathBuf {
        self.sb.root().join("state").join(name)
    }

    /// Gives the state directory back to the user after the test filled
    /// databases there through the library (as root).
    pub(crate) fn own(&self) {
        self.user.chown_tree(&self.sb.root().join("state"));
    }

    /// `nono ARGS` as the user, as host `host` (id `id-HOST`).
    pub(crate) fn nono(&self, host: &str, args: &[&str]) -> Command {
        let mut c = self.user.nono(&self.sb);
        c.args(args).env("TZ", "UTC").env("NONO_HOST_ID", format!("id-{host}")).env("NONO_HOSTNAME", host);
        c
    }

    pub(crate) fn push(&self, host: &str, db: &Path, url: &str, extra: &[&str]) -> Output {
        self.nono(host, &["audit", "push", "--to", url]).arg("--db").arg(db).args(extra).output().expect("run nono audit push")
    }
}

pub(crate) fn run_ok(mut c: impl BorrowMut<Command>) -> String {
    let o = c.borrow_mut().output().expect("run nono");
    assert!(o.status.success(), "{}", output_text(&o));
    String::from_utf8(o.stdout).expect("utf-8")
}

pub(crate) fn run_fail(mut c: impl BorrowMut<Command>) -> String {
    let o = c.borrow_mut().output().expect("run nono");
    assert_eq!(o.status.code(), Some(125), "expected nono's error exit code: {}", output_text(&o));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub(crate) fn push(host: &str, db: &Path, url: &str, extra: &[&str]) -> Output {
    nono(host, &["audit", "push", "--to", url]).arg("--db").arg(db).args(extra).output().expect("run nono audit push")
}

/// A finished session of `events` in the database at `db`.
pub(crate) fn session(db: &Path, command: &[&str], events: &[Event]) -> i64 {
    let store = Store::open(db).expect("open");
    let id = store
        .begin_session(&NewSession {
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            cwd: "/home/u/project".into(),
            uid: 1000,
            user: "u".into(),
            backend: "tracepoint".into(),
            kernel: "6.18.0".into(),
            nono_version: "0.1.0".into(),
            ..NewSession::default()
        })
        .expect("begin");
    let n = events.len() as u64;
    let (tx, w) = spawn_writer(db, id).expect("writer");
    for chunk in events.chunks(4096) {
        tx.blocking_send(chunk.to_vec()).expect("send");
    }
    drop(tx);
    assert_eq!(w.join().expect("join").events, n);
    store
        .finish_session(
            id,
            &SessionEnd {
                state: SessionState::Complete,
                exit_code: Some(0),
                signal: None,
                events: n,
                counters: LossCounters::default(),
                note: None,
            },
        )
        .expect("finish");
    id
}

/// A small session of every kind of event the outputs show.
pub(crate) fn small_events() -> Vec<Event> {
    vec![
        event(0, Op::Exec, "/usr/bin/make"),
        event(1, Op::Open, "/home/u/project/Makefile"),
        Event {
            outcome: Outcome::Denied { errno: 13, by: nono::event::DenyBy::Computed },
            ..event(2, Op::Open, "/home/u/.ssh/id_rsa")
        },
        Event { outcome: Outcome::Error(2), ..event(3, Op::Open, "/home/u/project/missing, \"odd\".h") },
        Event {
            path: None,
            net: Some(NetAddr {
                family: 2,
                addr: Some(IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34))),
                port: 443,
                sock_type: 1,
                protocol: 0,
            }),
            ..event(4, Op::Connect, "")
        },
    ]
}

/// `n` synthetic events (a few thousand paths, a few processes).
fn big_session(db: &Path, n: u64) -> i64 {
    session(db, &["big"], &(0..n).map(synthetic_event).collect::<Vec<_>>())
}

/// What the fleet holds for a session, and the same computed locally:
/// count, sum of ids, sum of times and a path checksum.
fn fleet_digest(pg: &PgServer, host: &str) -> String {
    pg.psql(&format!(
        "SELECT count(*), count(DISTINCT e.local_id), sum(e.local_id), sum(e.time_ns), \
         sum(coalesce(octet_length(e.path), 0)::numeric * e.local_id) FROM nono.events e \
         JOIN nono.sessions s ON s.id = e.session_id WHERE s.hostname = '{host}'"
    ))
}

fn local_digest(db: &Path, session: i64) -> String {
    let store = Store::open_read_only(db).expect("open");
    let (mut n, mut ids, mut times, mut paths) = (0u64, 0i128, 0i128, 0i128);
    store
        .events_after(session, 0, usize::MAX, |id, e| {
            n += 1;
            ids += i128::from(id);
            times += i128::from(e.time_ns);
            paths += e.path.as_ref().map_or(0, |p| p.len() as i128) * i128::from(id);
            Ok(())
        })
        .expect("read local events");
    format!("{n}|{n}|{ids}|{times}|{paths}")
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn migrate(pg: &PgServer) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("empty.db");
    Store::open(&db).expect("create");
    let o = push("admin", &db, &pg.url("nono", "disable"), &["--migrate"]);
    assert!(o.status.success(), "{}", output_text(&o));
}

#[test]
fn a_url_with_a_password_is_refused_before_connecting() {
    let err = run_fail(nono("a", &["audit", "push", "--to", "postgres://u:hunter2@127.0.0.1:1/db", "--db", "/nonexistent"]));
    assert!(err.contains("contains a password") && err.contains("PGPASSWORD"), "{err}");
}

#[test]
fn push_without_migrate_says_how_to_create_the_schema() {
    let Some(pg) = PgServer::start("push_without_migrate_says_how_to_create_the_schema", false) else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("a.db");
    session(&db, &["make"], &small_events());
    let err = run_fail(nono("a", &["audit", "push", "--to", &pg.url("nono", "disable")]).arg("--db").arg(&db));
    assert!(err.contains("--migrate"), "{err}");
}

#[test]
fn push_is_idempotent_and_the_audit_commands_read_the_fleet_like_the_local_file() {
    let Some(pg) = PgServer::start("push_is_idempotent_and_the_audit_commands_read_the_fleet_like_the_local_file", false) else {
        return;
    };
    let Some(h) = HostUser::new("push_is_idempotent_and_the_audit_commands_read_the_fleet_like_the_local_file") else { return };
    let db = h.db("a.db");
    session(&db, &["make", "-j2"], &small_events());
    session(&db, &["sh", "-c", "echo hi"], &[event(10, Op::Open, "/etc/passwd")]);
    h.own();
    let url = pg.url("nono", "disable");
    let o = h.push("a", &db, &url, &["--migrate"]);
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("pushed 2 session(s), 6 events"), "{}", output_text(&o));
    let o = h.push("a", &db, &url, &[]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("pushed 0 session(s), 0 events"), "{}", output_text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("2 already there"), "{}", output_text(&o));
    assert_eq!(pg.psql("SELECT count(*) FROM nono.events"), "6");
    assert_eq!(pg.psql("SELECT count(*) FROM nono.sessions"), "2");

    let db_arg = db.to_str().expect("utf-8 path");
    for args in [
        vec!["sessions"],
        vec!["sessions", "--format", "json"],
        vec!["sessions", "--format", "csv"],
        vec!["show", "1"],
        vec!["show", "last", "--format", "json"],
        vec!["query", "--path", "/home/u/**"],
        vec!["query", "--result", "denied", "--format", "json"],
        vec!["query", "--session", "1", "--op", "connect", "--format", "csv"],
        vec!["summary", "1"],
        vec!["summary", "1", "--format", "json"],
    ] {
        let mut local = h.nono("a", &["audit"]);
        local.args(&args).args(["--db", db_arg]);
        let mut fleet = h.nono("a", &["audit"]);
        fleet.args(&args).args(["--db", &url]);
        assert_eq!(run_ok(&mut fleet), run_ok(&mut local), "nono audit {args:?}");
    }
}

#[test]
fn a_push_killed_midway_resumes_to_exactly_the_local_events() {
    let Some(pg) = PgServer::start("a_push_killed_midway_resumes_to_exactly_the_local_events", false) else { return };
    migrate(&pg);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("big.db");
    let id = big_session(&db, 600_000);
    let url = pg.url("nono", "disable");
    let mut child = nono("big", &["audit", "push", "--to", &url, "--slice", "10000"])
        .arg("--db")
        .arg(&db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn push");
    wait_until("two committed slices", Duration::from_mins(1), || {
        pg.psql("SELECT count(*) FROM nono.push_chunks").parse::<u32>().expect("count") >= 2
    });
    child.kill().expect("SIGKILL the push");
    child.wait().expect("reap");
    let partial: u64 = pg.psql("SELECT count(*) FROM nono.events").parse().expect("count");
    assert!(partial < 600_000, "the push finished before it was killed: the test proves nothing");
    assert_eq!(pg.psql("SELECT count(*) FROM nono.push_done"), "0");
    assert_eq!(
        pg.psql("SELECT coalesce(sum(events), 0) FROM nono.push_chunks").parse::<u64>().expect("sum"),
        partial,
        "only whole slices are committed"
    );

    let o = push("big", &db, &url, &["--slice", "10000"]);
    assert!(o.status.success(), "{}", output_text(&o));
    assert_eq!(fleet_digest(&pg, "big"), local_digest(&db, id));
    assert_eq!(pg.psql("SELECT count(*) FROM nono.push_done"), "1");
}

#[test]
fn two_pushes_of_the_same_database_at_once_land_every_event_once() {
    let Some(pg) = PgServer::start("two_pushes_of_the_same_database_at_once_land_every_event_once", false) else { return };
    migrate(&pg);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("big.db");
    let id = big_session(&db, 200_000);
    let url = pg.url("nono", "disable");
    // Different slice sizes: the slices' high-water marks never coincide.
    let pushes: Vec<_> = ["7000", "10000"]
        .iter()
        .map(|slice| {
            nono("big", &["audit", "push", "--to", &url, "--slice", slice])
                .arg("--db")
                .arg(&db)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn push")
        })
        .collect();
    for p in pushes {
        let o = p.wait_with_output().expect("wait");
        assert!(o.status.success(), "{}", output_text(&o));
    }
    assert_eq!(fleet_digest(&pg, "big"), local_digest(&db, id));
    assert_eq!(pg.psql("SELECT count(*) FROM nono.sessions"), "1");
}

#[test]
fn a_server_restart_during_a_push_is_a_clear_error_and_the_next_push_completes() {
    let Some(pg) = PgServer::start("a_server_restart_during_a_push_is_a_clear_error_and_the_next_push_completes", false) else {
        return;
    };
    migrate(&pg);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("big.db");
    let id = big_session(&db, 600_000);
    let url = pg.url("nono", "disable");
    let child = nono("big", &["audit", "push", "--to", &url, "--slice", "5000"])
        .arg("--db")
        .arg(&db)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn push");
    wait_until("a committed slice", Duration::from_mins(1), || {
        pg.psql("SELECT count(*) FROM nono.push_chunks").parse::<u32>().expect("count") >= 1
    });
    pg.restart();
    let o = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(125), "the push should fail when the server restarts: {err}");
    assert!(err.contains("closed the connection") && err.contains("run the same command again"), "{err}");

    let o = push("big", &db, &url, &["--slice", "5000"]);
    assert!(o.status.success(), "{}", output_text(&o));
    assert_eq!(fleet_digest(&pg, "big"), local_digest(&db, id));
}

#[test]
fn tls_require_works_against_a_self_signed_certificate() {
    let Some(pg) = PgServer::start("tls_require_works_against_a_self_signed_certificate", true) else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("a.db");
    session(&db, &["make"], &small_events());
    // The server refuses plain TCP: success below means TLS was used.
    let err = run_fail(nono("a", &["audit", "push", "--migrate", "--to", &pg.url("nono", "disable")]).arg("--db").arg(&db));
    assert!(err.contains("cannot connect"), "{err}");
    let o = push("a", &db, &pg.url("nono", "require"), &["--migrate"]);
    assert!(o.status.success(), "{}", output_text(&o));
    assert_eq!(pg.psql("SELECT count(*) FROM nono.events"), "5");
}

#[test]
fn a_role_with_only_insert_and_select_can_push_with_a_password_from_the_environment_or_pgpass() {
    let Some(pg) =
        PgServer::start("a_role_with_only_insert_and_select_can_push_with_a_password_from_the_environment_or_pgpass", false)
    else {
        return;
    };
    migrate(&pg);
    pg.psql(
        "CREATE ROLE pusher LOGIN PASSWORD 's3cret'; GRANT USAGE ON SCHEMA nono TO pusher; \
         GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA nono TO pusher",
    );
    // Password authentication for pusher over TCP (trust for the rest).
    let hba = pg.psql("SHOW hba_file");
    let rest = std::fs::read_to_string(&hba).expect("read pg_hba");
    std::fs::write(&hba, format!("host all pusher 127.0.0.1/32 scram-sha-256\n{rest}")).expect("write pg_hba");
    pg.psql("SELECT pg_reload_conf()");

    let test = "a_role_with_only_insert_and_select_can_push_with_a_password_from_the_environment_or_pgpass";
    let Some(h) = HostUser::new(test) else { return };
    let db = h.db("a.db");
    session(&db, &["make"], &small_events());
    h.own();
    let url = pg.url("pusher", "disable");
    // The user's lived-in home has no ~/.pgpass yet.
    let err = run_fail(h.nono("a", &["audit", "push", "--to", &url]).arg("--db").arg(&db));
    assert!(err.contains("cannot connect"), "{err}");
    let out =
        h.nono("a", &["audit", "push", "--to", &url]).arg("--db").arg(&db).env("PGPASSWORD", "s3cret").output().expect("run");
    assert!(out.status.success(), "{}", output_text(&out));

    let pgpass = h.sb.home().join(".pgpass");
    std::fs::write(&pgpass, format!("127.0.0.1:{}:postgres:pusher:s3cret\n", pg.port)).expect("pgpass");
    std::fs::set_permissions(&pgpass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    h.user.chown_tree(&pgpass);
    session(&db, &["make", "again"], &small_events());
    h.own();
    let out = h.nono("a", &["audit", "push", "--to", &url]).arg("--db").arg(&db).output().expect("run");
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(pg.psql("SELECT count(*) FROM nono.push_done"), "2");
}

/// `(session, learned profile)` for host `name`: reads of a file every
/// host uses, and of one only this host uses.
fn host_db(dir: &Path, name: &str, own: &str) -> PathBuf {
    let db = dir.join(format!("{name}.db"));
    session(
        &db,
        &["agent"],
        &[
            event(0, Op::Open, "/srv/fleet/shared/config.toml"),
            event(1, Op::Open, &format!("/srv/fleet/{own}/data.bin")),
            event(2, Op::Open, &format!("/data/{own}/x.bin")),
            event(3, Op::Open, "/data/shared/x.bin"),
        ],
    );
    db
}

fn rule<'a>(profile: &'a serde_json::Value, needle: &str) -> Option<&'a serde_json::Value> {
    profile["filesystem"]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["path"].as_str().is_some_and(|p| p.contains(needle)))
}

#[test]
fn two_hosts_land_and_a_fleet_learn_marks_rules_by_host_count() {
    let Some(pg) = PgServer::start("two_hosts_land_and_a_fleet_learn_marks_rules_by_host_count", false) else { return };
    migrate(&pg);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = pg.url("nono", "disable");
    for (host, own) in [("alpha", "only-alpha"), ("beta", "only-beta")] {
        let db = host_db(dir.path(), host, own);
        let o = push(host, &db, &url, &[]);
        assert!(o.status.success(), "{}", output_text(&o));
    }
    // The same local session id 1 on both hosts: two fleet sessions.
    assert_eq!(pg.psql("SELECT string_agg(hostname || ':' || local_id, ',' ORDER BY id) FROM nono.sessions"), "alpha:1,beta:1");
    let only_beta: serde_json::Value =
        serde_json::from_str(&run_ok(nono("x", &["audit", "sessions", "--format", "json", "--db", &url, "--host", "beta"])))
            .expect("json");
    assert_eq!(only_beta.as_array().map(Vec::len), Some(1));
    assert_eq!(only_beta[0]["id"], 2);

    let learn = |min_hosts: Option<&str>| -> serde_json::Value {
        let out = dir.path().join(format!("fleet-{}.json", min_hosts.unwrap_or("1")));
        let mut c = nono("x", &["learn", "--from", "all", "--db", &url, "-o"]);
        c.arg(&out);
        if let Some(k) = min_hosts {
            c.args(["--min-hosts", k]);
        }
        run_ok(&mut c);
        serde_json::from_str(&std::fs::read_to_string(&out).expect("profile")).expect("profile json")
    };
    let all = learn(None);
    let shared = rule(&all, "shared").unwrap_or_else(|| panic!("no shared rule: {all:#}"));
    assert_eq!(shared["seen_in"], serde_json::json!({"runs": 2, "of": 2, "hosts": 2, "of_hosts": 2}), "{all:#}");
    let odd = rule(&all, "only-alpha").expect("alpha's own rule");
    assert_eq!(odd["seen_in"], serde_json::json!({"runs": 1, "of": 2, "hosts": 1, "of_hosts": 2}), "{all:#}");

    let two = learn(Some("2"));
    assert!(rule(&two, "shared").is_some(), "{two:#}");
    assert!(rule(&two, "only-alpha").is_none() && rule(&two, "only-beta").is_none(), "{two:#}");
}

#[test]
fn ocsf_export_maps_files_processes_and_network_from_either_store() {
    let Some(pg) = PgServer::start("ocsf_export_maps_files_processes_and_network_from_either_store", false) else { return };
    migrate(&pg);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("a.db");
    session(&db, &["make"], &small_events());
    let url = pg.url("nono", "disable");
    assert!(push("a", &db, &url, &[]).status.success());
    let local = run_ok(nono("a", &["audit", "export", "--format", "ocsf"]).arg("--db").arg(&db));
    let fleet = run_ok(&mut nono("a", &["audit", "export", "--format", "ocsf", "--db", &url]));
    assert_eq!(local, fleet, "the same events, host and session ids from either store");
    let lines: Vec<serde_json::Value> = local.lines().map(|l| serde_json::from_str(l).expect("one JSON object a line")).collect();
    assert_eq!(lines.len(), 5);
    let classes: Vec<u64> = lines.iter().map(|l| l["class_uid"].as_u64().expect("class")).collect();
    assert_eq!(classes, [1007, 1001, 1001, 1001, 4001]);
    assert_eq!(lines[0]["activity_id"], 1);
    assert_eq!(lines[0]["type_uid"], 100_701);
    assert_eq!(lines[1]["file"]["path"], "/home/u/project/Makefile");
    assert_eq!(lines[2]["status_id"], 2);
    assert_eq!(lines[2]["status_code"], "EACCES");
    assert_eq!(lines[4]["dst_endpoint"], serde_json::json!({"ip": "93.184.216.34", "port": 443}));
    assert_eq!(lines[4]["device"]["hostname"], "a");
}
