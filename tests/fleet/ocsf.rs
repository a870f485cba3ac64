//! The OCSF export against the OCSF 1.1 schema itself (issue 26: records
//! lacked `file.type_id`, `device.type_id` and `actor.process.file.name`,
//! netlink and Unix Network Activity had an empty `dst_endpoint`, and
//! denials were Informational). The schema comes from the
//! `ocsf-json-schema` package (its copy of the OCSF server's 1.1.0 export,
//! turned into JSON Schema per class and profile set), validated with
//! `jsonschema`; `cargo xtask setup` installs both, pinned, into a venv in
//! the target directory. Run by an ordinary user exporting their own
//! database, then from the fleet.

use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;

use nono::event::{Access, DenyBy, Event, NetAddr, Op, Outcome};
use nono::store::{DomainEvent, DomainSource, Store};

use super::pg::PgServer;
use super::support::{self, Sandbox, TestUser, event, output_text};
use super::{migrate, session};

/// The venv's Python, or `None` after saying why the test skips.
fn validator(test: &str) -> Option<PathBuf> {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("the target directory");
    let python = target.join("tools/ocsf-venv/bin/python");
    if python.exists() {
        return Some(python);
    }
    support::skip(test, "the OCSF schema validator is not installed (cargo xtask setup installs it)");
    None
}

/// Validates the JSON lines in `file`; returns the validator's report.
fn validate(python: &Path, file: &Path) -> (bool, serde_json::Value) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/support/ocsf_validate.py");
    let out = Command::new(python).arg(script).arg("1.1.0").arg(file).output().expect("run the validator");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("validator output ({e}): {}", output_text(&out)));
    (out.status.success(), report)
}

/// One event of every operation, with the details each class maps: a
/// denial on a secret and one elsewhere, an error, IPv4 and IPv6, a bound
/// port, Unix sockets with and without a path, netlink, a socket never
/// connected, renames and links with their second path.
fn every_kind(home: &Path) -> Vec<Event> {
    let net = |family: i32, addr: Option<IpAddr>, port: u16, sock_type: i32, protocol: u16| NetAddr {
        family: family as u16,
        addr,
        port,
        sock_type: sock_type as u16,
        protocol,
    };
    let on =
        |i: i64, op: Op, path: Option<&str>, n: Option<NetAddr>| Event { path: path.map(Into::into), net: n, ..event(i, op, "") };
    let key = format!("{}/.ssh/id_ed25519", home.display());
    let mut v = vec![
        event(0, Op::Exec, "/usr/bin/agent"),
        Event { arg: 4243, path: None, ..event(1, Op::Fork, "") },
        event(2, Op::Open, "/home/u/project/Makefile"),
        Event {
            access: Access { write: true, create: true, ..Access::default() },
            ..event(3, Op::Open, "/home/u/project/out.o")
        },
        Event {
            access: Access { write: true, truncate: true, ..Access::default() },
            ..event(4, Op::Open, "/home/u/project/log")
        },
        Event { outcome: Outcome::Denied { errno: 13, by: DenyBy::Computed }, ..event(5, Op::Open, &key) },
        Event { outcome: Outcome::Denied { errno: 13, by: DenyBy::Seccomp }, ..event(6, Op::Open, "/etc/hostname") },
        Event { outcome: Outcome::Error(2), ..event(7, Op::Open, "/home/u/project/missing.h") },
        Event { file_type: 0, ..event(8, Op::Mkdir, "/home/u/project/build") },
        Event { file_type: 0, ..event(9, Op::Rmdir, "/home/u/project/old") },
        Event { path2: Some("/home/u/project/b".into()), ..event(10, Op::Rename, "/home/u/project/a") },
        Event { path2: Some("target".into()), file_type: 0, ..event(11, Op::Symlink, "/home/u/project/link") },
        Event { path2: Some("/home/u/project/hard".into()), ..event(12, Op::Link, "/home/u/project/a") },
        event(13, Op::Unlink, "/home/u/project/tmp"),
        event(14, Op::Truncate, "/home/u/project/log"),
        Event { file_type: 0o020_000, ..event(15, Op::Ioctl, "/dev/pts/0") },
        event(16, Op::Metadata, "/home/u/project/a"),
        Event { file_type: 0o010_000, ..event(17, Op::Mknod, "/home/u/project/fifo") },
        event(18, Op::Create, "/home/u/project/new"),
        on(
            19,
            Op::Connect,
            None,
            Some(net(libc::AF_INET, Some("93.184.216.34".parse().expect("ip")), 443, libc::SOCK_STREAM, 0)),
        ),
        on(20, Op::Send, None, Some(net(libc::AF_INET6, Some(IpAddr::V6(Ipv6Addr::LOCALHOST)), 53, libc::SOCK_DGRAM, 0))),
        on(21, Op::Bind, None, Some(net(libc::AF_INET, Some("0.0.0.0".parse().expect("ip")), 8080, libc::SOCK_STREAM, 0))),
        on(22, Op::Connect, Some("/run/dbus/system_bus_socket"), Some(net(libc::AF_UNIX, None, 0, libc::SOCK_STREAM, 0))),
        on(23, Op::Connect, Some("@/tmp/.X11-unix/X0"), Some(net(libc::AF_UNIX, None, 0, libc::SOCK_STREAM, 0))),
        on(24, Op::Socket, None, Some(net(libc::AF_UNIX, None, 0, libc::SOCK_DGRAM, 0))),
        on(25, Op::Socket, None, Some(net(libc::AF_NETLINK, None, 0, libc::SOCK_RAW, 0))),
        on(26, Op::Send, None, Some(net(libc::AF_NETLINK, None, 0, libc::SOCK_RAW, 9))),
        on(27, Op::Socket, None, Some(net(libc::AF_INET, None, 0, libc::SOCK_STREAM, 0))),
        Event {
            outcome: Outcome::Denied { errno: 13, by: DenyBy::Broker },
            ..on(28, Op::Connect, None, Some(net(libc::AF_INET, Some("10.1.2.3".parse().expect("ip")), 22, libc::SOCK_STREAM, 0)))
        },
        Event { arg: (4243 << 32) | 15, path: None, ..event(29, Op::Signal, "") },
        Event { arg: 321, path: None, ..event(30, Op::Syscall, "") },
        Event { arg: 0, path: None, ..event(31, Op::Exit, "") },
        Event { exe: None, ..event(32, Op::Open, "/etc/ld.so.cache") },
    ];
    for e in &mut v {
        if e.path.as_deref() == Some("") {
            e.path = None;
        }
    }
    v
}

#[test]
fn every_exported_class_validates_against_the_ocsf_1_1_schema() {
    let test = "every_exported_class_validates_against_the_ocsf_1_1_schema";
    let Some(python) = validator(test) else { return };
    let sb = Sandbox::new();
    sb.lived_in_home();
    let events = every_kind(&sb.home());
    let id = session(&sb.db(), &["agent"], &events);
    // The proxy's decisions by name (issue 23): one let through with a
    // phantom credential swapped in, one refused by policy, one upstream
    // that could not be reached.
    let row = |i: i64, domain: &str, result: u8| DomainEvent {
        session_id: id,
        time_ns: 1_000_000_000 + i,
        source: DomainSource::Http,
        domain: domain.into(),
        port: 443,
        result,
        reason: (result == 1).then(|| "not in network.allow_domains".into()),
        addr: (result == 0).then(|| "160.79.104.10:443".into()),
        credential: (result == 0).then(|| "anthropic".into()),
        pid: Some(4242),
    };
    let domains = [row(0, "api.anthropic.com", 0), row(1, "evil.example", 1), row(2, "down.example", 2)];
    Store::open(&sb.db()).expect("open").append_domains(&domains).expect("domain rows");
    let Some(user) = TestUser::create(test, &sb) else { return };
    let export = |args: &[&str]| {
        let out = user
            .nono(&sb)
            .args(["audit", "export", "--format", "ocsf"])
            .args(args)
            .env("NONO_HOST_ID", "h1")
            .env("NONO_HOSTNAME", "h")
            .output()
            .expect("export");
        assert!(out.status.success(), "{}", output_text(&out));
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let local = export(&[]);
    let file = sb.root().join("export.jsonl");
    std::fs::write(&file, &local).expect("write the export");
    let (valid, report) = validate(&python, &file);
    assert!(valid, "the export is not valid OCSF 1.1: {report:#}");
    assert_eq!(report["records"], events.len() + domains.len(), "{report}");
    for class in ["1001", "1007", "4001"] {
        assert!(report["classes"][class].as_u64().unwrap_or(0) > 0, "no record of class {class}: {report}");
    }

    // The fields the issue named, and what nono chose for them.
    let lines: Vec<serde_json::Value> = local.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    let by_time = |i: usize| &lines[i];
    assert_eq!(by_time(2)["file"]["type_id"], 1);
    assert_eq!(by_time(8)["file"]["type_id"], 2, "a directory: {}", by_time(8));
    assert_eq!(by_time(11)["file"]["type_id"], 7, "a symlink: {}", by_time(11));
    assert_eq!(by_time(2)["device"]["type_id"], 0);
    assert_eq!(by_time(2)["device"]["uid"], "h1");
    assert_eq!(by_time(2)["actor"]["process"]["file"]["name"], "agent");
    assert_eq!(by_time(2)["severity_id"], 1, "an allowed read");
    assert_eq!(by_time(7)["severity_id"], 1, "an ENOENT is no alarm");
    assert_eq!(by_time(5)["severity_id"], 4, "a denied read of an SSH key: {}", by_time(5));
    assert_eq!(by_time(6)["severity_id"], 3, "a denial elsewhere: {}", by_time(6));
    assert_eq!(by_time(6)["action_id"], 2);
    assert_eq!(by_time(6)["disposition_id"], 2);
    assert_eq!(by_time(22)["dst_endpoint"], serde_json::json!({"name": "/run/dbus/system_bus_socket"}));
    assert_eq!(by_time(25)["dst_endpoint"], serde_json::json!({"name": "kernel", "svc_name": "netlink-route"}));
    assert_eq!(by_time(26)["dst_endpoint"]["svc_name"], "netlink-audit");
    assert_eq!(by_time(19)["connection_info"]["boundary_id"], 3);
    assert_eq!(by_time(19)["connection_info"]["direction_id"], 2);
    assert_eq!(by_time(21)["connection_info"]["direction_id"], 1, "bind is inbound");
    assert!(by_time(32)["actor"]["process"].get("file").is_none(), "no executable known, no file object");
    let named = &lines[events.len()..];
    assert_eq!(named[0]["dst_endpoint"]["hostname"], "api.anthropic.com");
    assert_eq!(named[0]["activity_id"], 1);
    assert_eq!(named[1]["activity_id"], 5, "a refused name: {}", named[1]);
    assert_eq!(named[1]["disposition_id"], 2);
    assert_eq!(named[2]["activity_id"], 4);

    // The validator can fail: a record without the file type it requires.
    let mut broken = lines[2].clone();
    broken["file"].as_object_mut().expect("file").remove("type_id");
    std::fs::write(&file, format!("{broken}\n")).expect("write");
    let (valid, report) = validate(&python, &file);
    assert!(!valid && report["errors"].to_string().contains("type_id"), "{report:#}");

    // The fleet exports the same lines.
    let Some(pg) = PgServer::start(test, false) else { return };
    migrate(&pg);
    let url = pg.url("nono", "disable");
    let out = user
        .nono(&sb)
        .args(["audit", "push", "--to", &url])
        .env("NONO_HOST_ID", "h1")
        .env("NONO_HOSTNAME", "h")
        .output()
        .expect("push");
    assert!(out.status.success(), "{}", output_text(&out));
    // The proxy's rows included (fleet schema 4).
    assert_eq!(export(&["--db", &url]), local, "the same records from the fleet, domain rows included");
}
