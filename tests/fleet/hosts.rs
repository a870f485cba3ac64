//! Host identity and session ids in the fleet (issue 26): a push names the
//! host by its label (`NAME#ID-PREFIX`) and the server it reached; two
//! machines with one name are two hosts everywhere, and `--host NAME`
//! refuses to pick one of them; fleet session ids are dense however often
//! hosts push. Pushes and reads run as an ordinary user, one local
//! database per simulated host (`NONO_HOST_ID`, `NONO_HOSTNAME`).

use std::process::Command;

use nono::event::Op;

use super::pg::PgServer;
use super::support::{Sandbox, TestUser, event, output_text};
use super::{migrate, session, small_events};

/// `nono ARGS` as `user`, as host `name` with id `id`.
fn as_host(user: &TestUser, sb: &Sandbox, name: &str, id: &str, args: &[&str]) -> Command {
    let mut c = user.nono(sb);
    c.args(args).env("NONO_HOSTNAME", name).env("NONO_HOST_ID", id).env("TZ", "UTC");
    c
}

fn ok(c: &mut Command) -> (String, String) {
    let o = c.output().expect("run nono");
    assert!(o.status.success(), "{}", output_text(&o));
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn two_hosts_with_one_name_are_two_hosts_everywhere_and_ids_stay_dense() {
    let test = "two_hosts_with_one_name_are_two_hosts_everywhere_and_ids_stay_dense";
    let Some(pg) = PgServer::start(test, false) else { return };
    migrate(&pg);
    let sb = Sandbox::new();
    let state = sb.db().parent().expect("state dir").to_path_buf();
    let (db_a, db_b) = (state.join("a.db"), state.join("b.db"));
    session(&db_a, &["make"], &small_events());
    session(&db_a, &["make", "test"], &[event(7, Op::Open, "/etc/hosts")]);
    session(&db_b, &["cargo", "build"], &small_events());
    let Some(user) = TestUser::create(test, &sb) else { return };
    let url = pg.url("nono", "disable");
    let (a, b) = ("3f2a9c1e5b7d4e00", "hostb");
    let push = |db: &std::path::Path, id: &str| {
        let (_, err) = ok(as_host(&user, &sb, "vm", id, &["audit", "push", "--to", &url]).arg("--db").arg(db));
        err
    };

    // The push says which host it is, by name and id (it said "as host
    // vm" with NONO_HOST_ID=hostb).
    let err = push(&db_a, a);
    assert!(err.contains("from host vm#3f2a9c1e (id 3f2a9c1e5b7d4e00)"), "{err}");
    // Cron pushes again and again: no session id is used up.
    push(&db_a, a);
    push(&db_a, a);
    let err = push(&db_b, b);
    assert!(err.contains("pushed 1 session(s)") && err.contains("from host vm#hostb (id hostb)"), "{err}");
    assert_eq!(
        pg.psql("SELECT string_agg(id::text || ':' || host_id, ',' ORDER BY id) FROM nono.sessions"),
        format!("1:{a},2:{a},3:{b}")
    );

    // Every listing shows the host, told apart by its id.
    let (table, _) = ok(&mut as_host(&user, &sb, "reader", "r", &["audit", "sessions", "--db", &url]));
    let hosts: Vec<&str> = table.lines().skip(1).filter_map(|l| l.split_whitespace().nth(7)).collect();
    assert_eq!(hosts, ["vm#3f2a9c1e", "vm#3f2a9c1e", "vm#hostb"], "the HOST column:\n{table}");
    let (json, _) = ok(&mut as_host(&user, &sb, "reader", "r", &["audit", "sessions", "--db", &url, "--format", "json"]));
    let json: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(json[2]["host"], "vm#hostb");
    assert_eq!(json[2]["host_id"], "hostb");
    assert_eq!(json[2]["host_name"], "vm");
    let (show, _) = ok(&mut as_host(&user, &sb, "reader", "r", &["audit", "show", "3", "--db", &url]));
    assert!(show.contains("host:             vm#hostb") && show.contains("host_id:          hostb"), "{show}");

    // `--host vm` matches two hosts: refused, with both named.
    let o = as_host(&user, &sb, "reader", "r", &["audit", "sessions", "--db", &url, "--host", "vm"]).output().expect("run");
    assert_eq!(o.status.code(), Some(125), "{}", output_text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("matches several hosts") && err.contains("vm#3f2a9c1e (id 3f2a9c1e5b7d4e00, 2 session(s))"), "{err}");
    assert!(err.contains("vm#hostb (id hostb, 1 session(s))"), "{err}");
    // A label, an id or an id prefix names one.
    for spec in ["vm#hostb", "hostb", "vm#3f2a", "3f2a9c1e5b7d4e00"] {
        let (json, _) =
            ok(&mut as_host(&user, &sb, "reader", "r", &["audit", "sessions", "--db", &url, "--host", spec, "--format", "json"]));
        let json: serde_json::Value = serde_json::from_str(&json).expect("json");
        let want = if spec.contains("hostb") { 1 } else { 2 };
        assert_eq!(json.as_array().map(Vec::len), Some(want), "--host {spec}: {json:#}");
    }
    let o = as_host(&user, &sb, "reader", "r", &["audit", "sessions", "--db", &url, "--host", "nope"]).output().expect("run");
    assert!(String::from_utf8_lossy(&o.stderr).contains("no host \"nope\""), "{}", output_text(&o));

    // A new session after all that gets the next id.
    session(&db_a, &["make", "again"], &[event(9, Op::Open, "/etc/passwd")]);
    user.chown_tree(&state);
    push(&db_a, a);
    assert_eq!(pg.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM nono.sessions"), "1,2,3,4");
}

#[test]
fn the_push_names_the_server_it_reached() {
    let test = "the_push_names_the_server_it_reached";
    let Some(pg) = PgServer::start(test, false) else { return };
    migrate(&pg);
    let sb = Sandbox::new();
    session(&sb.db(), &["make"], &small_events());
    let Some(user) = TestUser::create(test, &sb) else { return };
    let sock = pg.socket_dir();
    let socket = format!("{}/.s.PGSQL.{}", sock.display(), pg.port);
    let push = |url: &str, env: &[(&str, String)]| {
        let mut c = as_host(&user, &sb, "h", "h1", &["audit", "push", "--to", url]);
        for (k, v) in env {
            c.env(k, v);
        }
        ok(&mut c).1
    };
    // The query string's socket directory and port replace the authority's
    // (libpq's rule): nothing listens on localhost:5432 here.
    let err = push(&format!("postgres://nono@localhost/postgres?host={}&port={}&sslmode=disable", sock.display(), pg.port), &[]);
    assert!(err.contains(&format!("to database postgres at {socket} as role nono")), "{err}");
    assert!(!err.contains("5432"), "{err}");
    // Nothing in the URL but the database: PGHOST and PGPORT, as libpq.
    let err = push(
        "postgres:///postgres?sslmode=disable",
        &[("PGHOST", sock.display().to_string()), ("PGPORT", pg.port.to_string()), ("PGUSER", "nono".to_owned())],
    );
    assert!(err.contains(&format!("to database postgres at {socket} as role nono")), "{err}");
    // Two servers listed: the one that answered is named.
    let err = push(&format!("postgres://nono@127.0.0.1:1,127.0.0.1:{}/postgres?sslmode=disable", pg.port), &[]);
    assert!(err.contains(&format!("to database postgres at 127.0.0.1:{} as role nono", pg.port)), "{err}");
}
