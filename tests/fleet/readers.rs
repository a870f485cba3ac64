//! Every reader of a session works on the fleet as on the local file
//! (issue 26: `audit report SESSION --db postgres://...` said "no audit
//! database at postgres://..."). A real session: an ordinary user in a
//! lived-in home records a workload with `sudo nono learn`, replays it
//! with `sudo nono run --audit` (denied the SSH key and a TCP port the
//! profile lacks), pushes their database, and then reads the run back
//! from both stores: `show`, `check`, `summary`, `query`, `export`,
//! `audit report` and `profile report --against` must agree exactly.

use std::process::Output;

use super::migrate;
use super::pg::PgServer;
use super::support::{Sandbox, TestUser, output_text, require_recorder};

/// The page's data document.
fn page_data(html: &str) -> serde_json::Value {
    let open = "<script type=\"application/json\" id=\"data\">";
    let start = html.find(open).expect("data element") + open.len();
    let end = start + html[start..].find("</script>").expect("end of the data element");
    serde_json::from_str(&html[start..end]).expect("data is JSON")
}

#[test]
fn every_reader_shows_a_fleet_session_as_it_shows_the_local_file() {
    let test = "every_reader_shows_a_fleet_session_as_it_shows_the_local_file";
    if require_recorder(test).is_none() {
        return;
    }
    let Some(pg) = PgServer::start(test, false) else { return };
    migrate(&pg);
    let sb = Sandbox::new();
    sb.lived_in_home();
    let Some(user) = TestUser::create(test, &sb) else { return };
    // Two listeners: the learning run connects to the first, the replay
    // also tries the second, which the profile does not grant.
    let (l1, l2) =
        (std::net::TcpListener::bind("127.0.0.1:0").expect("bind"), std::net::TcpListener::bind("127.0.0.1:0").expect("bind"));
    let (p1, p2) = (l1.local_addr().expect("addr").port(), l2.local_addr().expect("addr").port());
    let workload = |port: u16, extra: &str| {
        format!(
            "cat \"$HOME/notes/todo.txt\" > /dev/null; echo x > out.txt; (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; {extra} exit 0"
        )
    };
    let profile = sb.root().join("state/agent.json");
    let run = |args: &[&str], script: &str| -> Output {
        let out = user.sudo_nono(&sb).args(args).args(["--", "bash", "-c", script]).output().expect("nono");
        assert!(out.status.success(), "{args:?}: {}", output_text(&out));
        out
    };
    run(&["learn", "--no-progress", "--force", "--output", profile.to_str().expect("utf-8")], &workload(p1, ""));
    run(
        &["run", "--audit", "--profile", profile.to_str().expect("utf-8")],
        &workload(p2, &format!("(exec 3<>/dev/tcp/127.0.0.1/{p1}) 2>/dev/null; cat \"$HOME/.ssh/id_ed25519\" 2>/dev/null;")),
    );
    let url = pg.url("nono", "disable");
    let nono = |args: &[&str]| {
        let mut c = user.nono(&sb);
        c.args(args).env("NONO_HOST_ID", "c0ffee00c0ffee00").env("NONO_HOSTNAME", "laptop").env("TZ", "UTC");
        c.output().expect("nono")
    };
    let out = nono(&["audit", "push", "--to", &url]);
    assert!(out.status.success(), "{}", output_text(&out));

    let profile = profile.to_str().expect("utf-8");
    for args in [
        vec!["audit", "show", "2"],
        vec!["audit", "show", "2", "--format", "json"],
        vec!["audit", "check", "--profile", profile, "--session", "2"],
        vec!["audit", "check", "--profile", profile, "--session", "2", "--format", "json"],
        // Every path: among equal counts the local store picks its top N by
        // when it first saw a path, the fleet by name (README, Limitations).
        vec!["audit", "summary", "2", "--top", "1000"],
        vec!["audit", "query", "--session", "2", "--result", "denied", "--format", "json"],
        vec!["audit", "export", "--format", "ocsf", "--session", "2"],
    ] {
        let local = nono(&args);
        let fleet = nono(&[&args[..], &["--db", &url]].concat());
        assert_eq!(fleet.status.code(), local.status.code(), "{args:?}: {}\n{}", output_text(&local), output_text(&fleet));
        assert_eq!(String::from_utf8_lossy(&fleet.stdout), String::from_utf8_lossy(&local.stdout), "{args:?}");
        assert!(!local.stdout.is_empty(), "{args:?} printed nothing: {}", output_text(&local));
    }
    let show = String::from_utf8_lossy(&nono(&["audit", "show", "2", "--db", &url]).stdout).into_owned();
    assert!(show.contains("ENFORCED PROFILE"), "the fleet has the profile the run enforced:\n{show}");
    assert!(show.lines().any(|l| l.starts_with("host:") && l.ends_with("laptop#c0ffee00")), "{show}");

    // The HTML reports, from either store: the same data.
    let report = |name: &str, args: &[&str]| {
        let page = sb.work().join(name);
        let out = nono(&[args, &["--html", page.to_str().expect("utf-8")]].concat());
        assert!(out.status.success(), "{args:?}: {}", output_text(&out));
        page_data(&std::fs::read_to_string(&page).expect("page"))
    };
    let local = report("local.html", &["audit", "report", "2"]);
    let fleet = report("fleet.html", &["audit", "report", "2", "--db", &url]);
    assert_eq!(fleet, local, "audit report from the fleet");
    assert_eq!(local["header"]["host"], "laptop#c0ffee00");
    assert!(local["header"]["denied"].as_u64().unwrap_or(0) >= 2, "the key and the port: {}", local["header"]);
    let denied_port = local["network"]
        .as_array()
        .expect("network")
        .iter()
        .find(|d| d["port"] == p2 && d["addr"] == "127.0.0.1")
        .unwrap_or_else(|| panic!("no destination 127.0.0.1:{p2}: {:#}", local["network"]));
    assert!(denied_port["denied"].as_u64().unwrap_or(0) > 0 && denied_port["proto"] == "tcp", "{denied_port}");
    let learned_port = local["network"].as_array().expect("network").iter().find(|d| d["port"] == p1);
    assert!(learned_port.is_some_and(|d| d["denied"] == 0), "the granted port is there, not denied: {:#}", local["network"]);

    let local = report("plocal.html", &["profile", "report", profile, "--against", "2"]);
    let fleet = report("pfleet.html", &["profile", "report", profile, "--against", "2", "--db", &url]);
    assert_eq!(fleet, local, "profile report --against a fleet session");
    drop((l1, l2));
}
