//! The README's fleet setup, run as written (issue 26: `nono audit push
//! --migrate` as the recipe's admin role failed with "permission denied
//! for database audit"). The lines come from README.md itself, so the
//! recipe and this test cannot drift apart; only the server's address
//! (`db.example`) is this test's. The server requires TLS and passwords;
//! the DBA's lines run as the server's superuser on its Unix socket, the
//! migration and the pushes as ordinary users, each with their own audit
//! database, the pushing host's password in the `~/.pgpass` of a lived-in
//! home.

use std::io::Write as _;
use std::process::{Output, Stdio};

use nono::event::Op;
use nono::store::{DomainEvent, DomainSource, Store};

use super::pg::PgServer;
use super::support::{self, Sandbox, TestUser, event, output_text};
use super::{session, small_events};

/// The fenced `sh` block of README's Fleet section, cut at its comment
/// lines: `(comment, commands)`.
fn readme_recipe() -> Vec<(String, String)> {
    let readme = include_str!("../../README.md");
    let fleet = &readme[readme.find("\n## Fleet").expect("a Fleet section")..];
    let block = &fleet[fleet.find("```sh\n").expect("a shell block") + 6..];
    let block = &block[..block.find("```").expect("the block ends")];
    let mut sections: Vec<(String, String)> = Vec::new();
    for line in block.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            sections.push((comment.to_owned(), String::new()));
        } else if let Some((_, text)) = sections.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    sections
}

/// The section whose comment starts with `prefix`, with the test server
/// in place of `db.example`.
fn section(recipe: &[(String, String)], prefix: &str, server: &str) -> String {
    let (_, text) = recipe
        .iter()
        .find(|(c, _)| c.starts_with(prefix))
        .unwrap_or_else(|| panic!("the README's recipe has no section {prefix:?}: {recipe:?}"));
    format!("set -e\n{}", text.replace("db.example", server))
}

/// Runs `c` (a `script` command: a pty), typing `answers` one at a time,
/// each after the next password prompt appears.
fn at_a_terminal(mut c: std::process::Command, answers: &[&str]) -> Output {
    use std::io::Read as _;
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run at a terminal");
    let mut stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&all);
            let _ = tx.send(text.matches("Enter password for new role:").count() + text.matches("Enter it again:").count());
        }
        all
    });
    let mut stdin = child.stdin.take().expect("stdin");
    for (i, answer) in answers.iter().enumerate() {
        loop {
            let prompts = rx.recv_timeout(std::time::Duration::from_mins(1)).expect("a password prompt");
            if prompts > i {
                break;
            }
        }
        stdin.write_all(format!("{answer}\n").as_bytes()).expect("type a password");
    }
    drop(stdin);
    let stdout = reader.join().expect("reader");
    let mut out = child.wait_with_output().expect("wait");
    out.stdout = stdout;
    out
}

/// A directory holding `nono`, for a user's PATH.
fn nono_on_path(sb: &Sandbox) -> String {
    let bin = sb.root().join("bin");
    if !bin.exists() {
        std::fs::create_dir(&bin).expect("bin dir");
        std::os::unix::fs::symlink(support::NONO, bin.join("nono")).expect("link nono");
    }
    format!("{}:{}", bin.display(), support::USER_PATH)
}

/// Runs `script` with `sh` as `user`, `nono` on their PATH.
fn as_user(user: &TestUser, sb: &Sandbox, script: &str, env: &[(&str, &str)]) -> Output {
    let mut c = user.run(sb, "/bin/sh");
    c.args(["-c", script]).env("PATH", nono_on_path(sb));
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run a recipe line")
}

/// A host's user: a lived-in home with a `~/.pgpass` for the push role,
/// and two finished sessions in their audit database.
fn host_user(test: &str, port: u16, name: &str) -> Option<(Sandbox, TestUser)> {
    let sb = Sandbox::new();
    sb.lived_in_home();
    let pgpass = sb.home().join(".pgpass");
    std::fs::write(&pgpass, format!("127.0.0.1:{port}:audit:nono_push:push-pw\n")).expect("pgpass");
    std::fs::set_permissions(&pgpass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod pgpass");
    session(&sb.db(), &["make", "-j2"], &small_events());
    let agent = session(&sb.db(), &["agent", name], &[event(10, Op::Open, "/etc/hosts")]);
    // A name nono's proxy refused: fleet schema 4 needs no grant beyond the recipe's.
    let refused = DomainEvent {
        session_id: agent,
        time_ns: 1,
        source: DomainSource::Connect,
        domain: "evil.example.net".into(),
        port: 443,
        result: 1,
        reason: Some("not in network.allow_domains".into()),
        addr: None,
        credential: None,
        pid: None,
    };
    Store::open(&sb.db()).expect("open").append_domains(&[refused]).expect("a domain row");
    let user = TestUser::create(test, &sb)?;
    Some((sb, user))
}

#[test]
fn the_readme_fleet_recipe_works_as_written_with_its_roles() {
    let test = "the_readme_fleet_recipe_works_as_written_with_its_roles";
    let Some(pg) = PgServer::start(test, true) else { return };
    pg.require_passwords();
    let server = format!("127.0.0.1:{}", pg.port);
    let recipe = readme_recipe();

    // The DBA's lines, at a terminal (`script` gives them a pty), typing
    // each password when `createuser --pwprompt` asks for it (it flushes
    // what was typed before its prompt).
    let dba_script = tempfile::NamedTempFile::new().expect("script file");
    std::fs::write(dba_script.path(), section(&recipe, "once, as a DBA", &server)).expect("write the DBA's lines");
    let mut dba = pg.dba("script");
    dba.arg("-qfec").arg(format!("sh {}", dba_script.path().display())).arg("/dev/null");
    let out = at_a_terminal(dba, &["admin-pw", "admin-pw", "push-pw", "push-pw"]);
    assert!(out.status.success(), "the DBA's lines: {}", output_text(&out));
    // What made the old `--migrate` fail: the admin role owns its schema
    // and nothing more.
    assert_eq!(pg.psql_in("audit", "SELECT has_database_privilege('nono_admin', 'audit', 'CREATE')"), "f");

    // The migration, from a workstation with no recordings of its own.
    let dba_sb = Sandbox::new();
    let Some(dba_user) = TestUser::create(test, &dba_sb) else { return };
    let out = as_user(&dba_user, &dba_sb, &section(&recipe, "once, from anywhere", &server), &[("PGPASSWORD", "admin-pw")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "--migrate as nono_admin: {}", output_text(&out));
    assert!(
        err.contains("fleet schema at version 4") && err.contains(&format!("database audit at {server} as role nono_admin")),
        "{err}"
    );
    assert_eq!(pg.psql_in("audit", "SELECT tableowner FROM pg_tables WHERE tablename = 'events'"), "nono_admin");

    // Two hosts: ci-8 pushes, then ci-7 runs the README's lines, whose
    // `--host ci-7` must list its own sessions only.
    let Some((sb8, ci8)) = host_user(test, pg.port, "ci-8") else { return };
    let url = format!("postgres://nono_push@{server}/audit?sslmode=require");
    let host_env = |name: &'static str, id: &'static str| [("NONO_HOSTNAME", name), ("NONO_HOST_ID", id)];
    let out = as_user(
        &ci8,
        &sb8,
        "nono audit push",
        &[&host_env("ci-8", "c18c18c18c18")[..], &[("NONO_PG_URL", url.as_str())]].concat(),
    );
    assert!(out.status.success(), "ci-8's push: {}", output_text(&out));
    let Some((sb7, ci7)) = host_user(test, pg.port, "ci-7") else { return };
    let out = as_user(&ci7, &sb7, &section(&recipe, "on each host", &server), &host_env("ci-7", "c17c17c17c17"));
    assert!(out.status.success(), "ci-7's lines: {}", output_text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pushed 2 session(s)") && err.contains(", 1 domain row(s)"), "{err}");
    assert!(
        err.contains(&format!("to database audit at {server} as role nono_push, from host ci-7#c17c17c1 (id c17c17c17c17)")),
        "{err}"
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = listing.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "ci-7's two sessions, not ci-8's: {listing}");
    assert!(listing.lines().next().is_some_and(|h| h.contains("HOST")), "{listing}");
    assert!(rows.iter().all(|r| r.contains("ci-7#c17c17c1")), "{listing}");

    // The push role inserts and reads; it never updates, deletes or creates.
    for sql in [
        "DELETE FROM nono.events",
        "DELETE FROM nono.domain_events",
        "UPDATE nono.sessions SET note = 'x'",
        "CREATE TABLE nono.x (i int)",
    ] {
        let o = pg
            .dba("psql")
            .env("PGHOST", "127.0.0.1")
            .env("PGUSER", "nono_push")
            .env("PGPASSWORD", "push-pw")
            .env("PGSSLMODE", "require")
            .args(["-d", "audit", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("psql as nono_push");
        assert!(!o.status.success(), "nono_push could run {sql:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("permission denied"), "{sql}: {}", output_text(&o));
    }

    // Pushing again (cron) changes nothing, and session ids stay dense.
    for (user, sb, host) in [(&ci8, &sb8, host_env("ci-8", "c18c18c18c18")), (&ci7, &sb7, host_env("ci-7", "c17c17c17c17"))] {
        let out = as_user(user, sb, "nono audit push", &[&host[..], &[("NONO_PG_URL", url.as_str())]].concat());
        assert!(String::from_utf8_lossy(&out.stderr).contains("pushed 0 session(s)"), "{}", output_text(&out));
    }
    assert_eq!(pg.psql_in("audit", "SELECT string_agg(id::text, ',' ORDER BY id) FROM nono.sessions"), "1,2,3,4");
    assert_eq!(pg.psql_in("audit", "SELECT count(*) FROM nono.domain_events"), "2", "one per host, pushed once");
}
