//! Domain rows in the fleet (issue 23; fleet schema 4): what nono's
//! network proxy decided during a `run --audit` travels with the session.
//! An ordinary user in a lived-in home pushes a database whose session has
//! domain rows (appended with `Store::append_domains`, as the proxy's
//! writer does); `audit query --domain`, the OCSF export and the HTML
//! report's network section then read the same from the fleet as from the
//! file, and pushing again adds nothing. A session pushed before it had
//! domain rows (as by a nono older than schema 4) gets them on the next
//! push.

use nono::store::{DomainEvent, DomainSource, Store};

use super::pg::PgServer;
use super::support::output_text;
use super::{HostUser, migrate, run_ok, session, small_events};

fn row(session_id: i64, i: i64, domain: &str, port: u16, result: u8) -> DomainEvent {
    DomainEvent {
        session_id,
        time_ns: 1_700_000_000_000_000_000 + i,
        source: if i % 2 == 0 { DomainSource::Connect } else { DomainSource::Http },
        domain: domain.into(),
        port,
        result,
        reason: match result {
            0 => None,
            1 => Some("not in network.allow_domains".into()),
            _ => Some("connect: connection refused".into()),
        },
        addr: (result == 0).then(|| "93.184.216.34:443".into()),
        credential: (i == 0).then(|| "anthropic".into()),
        pid: (i == 3).then_some(4242),
    }
}

/// The page's data document.
fn page_data(html: &str) -> serde_json::Value {
    let open = "<script type=\"application/json\" id=\"data\">";
    let start = html.find(open).expect("data element") + open.len();
    let end = start + html[start..].find("</script>").expect("end of the data element");
    serde_json::from_str(&html[start..end]).expect("data is JSON")
}

#[test]
fn domain_rows_push_once_and_read_the_same_from_the_fleet() {
    let test = "domain_rows_push_once_and_read_the_same_from_the_fleet";
    let Some(pg) = PgServer::start(test, false) else { return };
    migrate(&pg);
    let Some(h) = HostUser::new(test) else { return };
    let db = h.db("a.db");
    let first = session(&db, &["agent"], &small_events());
    let rows = vec![
        row(first, 0, "api.example.com", 443, 0),
        row(first, 1, "evil.example.net", 443, 1),
        row(first, 2, "x.cdn.example.com", 8443, 0),
        row(first, 3, "evil.example.net", 443, 1),
        row(first, 4, "down.example.com", 443, 2),
        row(first, 5, "10.0.0.5", 443, 1),
    ];
    Store::open(&db).expect("open").append_domains(&rows).expect("domain rows");
    // A second session, pushed once without rows (as a nono before fleet
    // schema 4 would have), then given one.
    let second = session(&db, &["agent", "two"], &small_events());
    h.own();
    let url = pg.url("nono", "disable");
    let o = h.push("a", &db, &url, &[]);
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains(", 6 domain row(s)"), "{}", output_text(&o));
    assert_eq!(pg.psql("SELECT count(*) FROM nono.domain_events"), "6");
    Store::open(&db).expect("open").append_domains(&[row(second, 9, "late.example.org", 443, 1)]).expect("a late row");
    h.own();

    // Pushing again sends only the row the fleet lacks, then nothing.
    let o = h.push("a", &db, &url, &[]);
    assert!(o.status.success(), "{}", output_text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("pushed 0 session(s), 0 events, 1 domain row(s)") && err.contains("2 already there"), "{err}");
    let o = h.push("a", &db, &url, &[]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("pushed 0 session(s), 0 events in"), "{}", output_text(&o));
    assert_eq!(pg.psql("SELECT count(*), count(DISTINCT (session_id, local_id)) FROM nono.domain_events"), "7|7");
    assert_eq!(
        pg.psql("SELECT string_agg(domain || '/' || result, ',' ORDER BY local_id) FROM nono.domain_events WHERE session_id = 2"),
        "late.example.org/1"
    );

    // Every form of `audit query --domain`, from the file and the fleet.
    let db_arg = db.to_str().expect("utf-8 path");
    for args in [
        vec!["query", "--domain", "*"],
        vec!["query", "--domain", "*", "--format", "json"],
        vec!["query", "--domain", "*", "--format", "csv"],
        vec!["query", "--domain", "*.example.net", "--result", "denied"],
        vec!["query", "--domain", "Evil.Example.NET.", "--format", "json"],
        vec!["query", "--domain", "*.example.com", "--session", "1", "--format", "json"],
        vec!["query", "--domain", "*", "--session", "last", "--format", "json"],
        vec!["query", "--domain", "*", "--limit", "2"],
        vec!["export", "--format", "ocsf"],
    ] {
        let local = run_ok(h.nono("a", &["audit"]).args(&args).args(["--db", db_arg]));
        let fleet = run_ok(h.nono("a", &["audit"]).args(&args).args(["--db", &url]));
        assert_eq!(fleet, local, "nono audit {args:?}");
    }
    let json: Vec<serde_json::Value> = serde_json::from_str(&run_ok(
        h.nono("a", &["audit", "query", "--domain", "evil.example.net", "--result", "denied", "--format", "json", "--db", &url]),
    ))
    .expect("json rows");
    assert_eq!(json.len(), 2, "both refusals: {json:#?}");
    assert!(json.iter().all(|r| r["session_id"] == 1 && r["reason"] == "not in network.allow_domains"), "{json:#?}");
    assert_eq!(json[1]["pid"], 4242);
    // `audit check` replays the names against a profile, from either store.
    let profile = h.sb.work().join("narrow.json");
    std::fs::write(&profile, r#"{"extends": "base", "network": {"allow_domains": ["api.example.com"]}}"#).expect("profile");
    h.user.chown_tree(&profile);
    let check = |db: &str| {
        let out = h
            .nono("a", &["audit", "check", "--session", "1", "--format", "json", "--db", db, "--profile"])
            .arg(&profile)
            .output()
            .expect("audit check");
        assert_eq!(out.status.code(), Some(1), "a name the profile lacks: {}", output_text(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")
    };
    let local = check(db_arg);
    assert_eq!(check(&url), local, "audit check from the fleet");
    assert_eq!(local["domains"][0]["domain"], "x.cdn.example.com", "{local:#}");
    // `--host` narrows the fleet's rows like its sessions.
    let other = run_ok(h.nono("a", &["audit", "query", "--domain", "*", "--format", "json", "--db", &url, "--host", "a"]));
    assert_eq!(serde_json::from_str::<Vec<serde_json::Value>>(&other).expect("json").len(), 7);
    // The export carries the names: a refused one is a Network Activity "Refuse".
    let ocsf = run_ok(h.nono("a", &["audit", "export", "--format", "ocsf", "--session", "1", "--db", &url]));
    let refused: Vec<serde_json::Value> = ocsf
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line"))
        .filter(|v| v["dst_endpoint"]["hostname"] == "evil.example.net")
        .collect();
    assert_eq!(refused.len(), 2, "{ocsf}");
    assert!(refused.iter().all(|v| v["class_uid"] == 4001 && v["activity_name"] == "Refuse"), "{refused:#?}");

    // The report's network section, from either store.
    let report = |name: &str, db: &str| {
        let page = h.sb.work().join(name);
        let out = h
            .nono("a", &["audit", "report", "1", "--db", db, "--html", page.to_str().expect("utf-8")])
            .output()
            .expect("audit report");
        assert!(out.status.success(), "{}", output_text(&out));
        h.user.chown_tree(&page);
        page_data(&std::fs::read_to_string(&page).expect("page"))
    };
    let local = report("local.html", db_arg);
    let fleet = report("fleet.html", &url);
    assert_eq!(fleet["network"], local["network"], "the report's network section from the fleet");
    let named = |domain: &str| {
        local["network"]
            .as_array()
            .expect("network")
            .iter()
            .find(|d| d["domain"] == domain)
            .unwrap_or_else(|| panic!("no {domain} in {:#}", local["network"]))
            .clone()
    };
    assert_eq!(named("evil.example.net")["denied"], 2);
    assert_eq!(named("api.example.com")["denied"], 0);
    assert_eq!(named("x.cdn.example.com")["port"], 8443);
}
