//! The report's aggregation caps, rule matching and script escaping.

use super::*;
use crate::event::{Access, Outcome};

fn ev(t: i64, pid: u32, op: Op, path: &str, outcome: Outcome) -> Event {
    Event {
        time_ns: t,
        pid,
        tid: pid,
        ppid: 1,
        uid: 0,
        comm: "sh".to_owned(),
        exe: Some("/bin/sh".to_owned()),
        op,
        path: Some(path.to_owned()),
        path2: None,
        access: Access::default(),
        arg: 0,
        file_type: 0,
        outcome,
        net: None,
        incomplete: false,
    }
}

#[test]
fn script_json_cannot_close_the_script_element() {
    let hostile = vec!["</script><script>alert(1)</script>", "a&b", "\u{2028}\u{2029}", "quote\"d\nline"];
    let json = html::script_json(&hostile).expect("json");
    for bad in ["<", ">", "&", "\u{2028}", "\u{2029}"] {
        assert!(!json.contains(bad), "{bad:?} left in {json}");
    }
    let back: Vec<String> = serde_json::from_str(&json).expect("still JSON");
    assert_eq!(back, hostile);
    let page = html::render(&hostile).expect("page");
    assert_eq!(page.matches("</script>").count(), 2, "only the page's own two script elements close");
    assert!(page.contains("default-src 'none'"));
}

#[test]
fn tree_aggregates_paths_processes_and_denials() {
    let mut agg = Aggregator::new(0, 3_000_000_000);
    agg.add(&ev(0, 10, Op::Open, "/w/a.txt", Outcome::Ok));
    agg.add(&ev(1_500_000_000, 11, Op::Open, "/w/a.txt", Outcome::Ok));
    agg.add(&ev(2_000_000_000, 11, Op::Open, "/w/secret", Outcome::Denied { errno: 13, by: crate::event::DenyBy::Computed }));
    let r = agg.finish(Header::default(), Rules::default(), &Sensitive::default(), &["sh".to_owned()]);
    assert_eq!(r.events, 3);
    let names: Vec<&str> = r.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["/", "w", "a.txt", "secret"]);
    assert_eq!(r.nodes[2].ops.get("open"), Some(&2));
    assert_eq!(r.nodes[2].procs, vec![(0, 1), (1, 1)]);
    assert_eq!(r.nodes[3].denied, 1);
    assert_eq!(r.processes.len(), 2);
    assert_eq!(r.processes[0].argv.as_deref(), Some(&["sh".to_owned()][..]));
    assert_eq!(r.timeline.bucket_ms, 20);
    assert_eq!(r.timeline.denied[100], 1);
}

#[test]
fn tree_is_capped_and_says_how_much_it_folded() {
    let mut paths = HashMap::new();
    for i in 0..50 {
        let mut a = PathAgg::default();
        a.ops.insert("open", 1);
        paths.insert(format!("/d/sub{i}/f"), a);
    }
    let (nodes, dropped) = tree::build(paths, 10, &HashMap::new(), &|_| None, &|_| None);
    assert_eq!(nodes.len(), 10);
    assert_eq!(dropped, 101 - 10 + 1);
    let total: u64 = nodes.iter().map(|n| n.ops.values().sum::<u64>()).sum();
    assert_eq!(total, 50, "folding keeps every event");
}

#[test]
fn timeline_buckets_widen_for_long_sessions() {
    let agg = Aggregator::new(0, 3_600 * 1_000_000_000);
    let r = agg.finish(Header::default(), Rules::default(), &Sensitive::default(), &[]);
    assert!(r.timeline.counts.len() as u64 <= MAX_BUCKETS);
    assert_eq!(r.timeline.bucket_ms, 7000);
}

#[test]
fn the_most_specific_rule_covers_a_path() {
    let view = |path: &str, file: bool| RuleView {
        spelled: path.to_owned(),
        path: path.to_owned(),
        rights: vec![],
        file,
        reason: None,
        anticipated: vec![],
        seen_in: None,
        used: 0,
    };
    let rules = Rules { views: vec![view("/w", false), view("/w/src", false), view("/w/src/main.rs", true)] };
    assert_eq!(rules.covering("/w/src/main.rs"), Some(2));
    assert_eq!(rules.covering("/w/src/lib.rs"), Some(1));
    assert_eq!(rules.covering("/w/srcx"), Some(0));
    assert_eq!(rules.covering("/etc/passwd"), None);
}

/// A 1M-event session over 300k distinct paths and 2,000 processes stays
/// bounded: the tree is capped, the page under 10 MB. (Set
/// `NONO_REPORT_BIG=FILE` to keep the page, to time it in a browser.)
#[test]
fn a_million_events_make_a_page_under_ten_megabytes() {
    let r = synthetic::session(1_000_000, 900, Header::default());
    assert_eq!(r.nodes.len(), MAX_NODES);
    assert!(r.capped_nodes > 0 && r.folded_paths > 0);
    assert!(r.timeline.bucket_ms > 1000, "a 15-minute session is sampled");
    let total: u64 = r.nodes.iter().map(|n| n.ops.values().sum::<u64>()).sum();
    assert_eq!(total, 1_000_000, "capping folds, never drops");
    let page = html::render(&r).expect("page");
    assert!(page.len() < 10 << 20, "{} bytes", page.len());
    if let Ok(path) = std::env::var("NONO_REPORT_BIG") {
        std::fs::write(path, page).expect("write the big page");
    }
}

/// role, protocol, address, port, events, denials.
type NetRow<'a> = (&'a str, &'a str, Option<&'a str>, Option<u16>, u64, u64);

#[test]
fn network_destinations_are_listed_with_their_denials_first() {
    use crate::event::{DenyBy, NetAddr};
    let net = |family: i32, addr: Option<&str>, port: u16, sock_type: i32, protocol: u16| NetAddr {
        family: family as u16,
        addr: addr.map(|a| a.parse().expect("ip")),
        port,
        sock_type: sock_type as u16,
        protocol,
    };
    let on = |t: i64, op: Op, path: Option<&str>, n: NetAddr, outcome: Outcome| Event {
        path: path.map(ToOwned::to_owned),
        net: Some(n),
        ..ev(t, 10, op, "", outcome)
    };
    let denied = Outcome::Denied { errno: 13, by: DenyBy::Computed };
    let mut agg = Aggregator::new(0, 1_000_000_000);
    let https = net(libc::AF_INET, Some("93.184.216.34"), 443, libc::SOCK_STREAM, 0);
    agg.add(&on(1, Op::Connect, None, https.clone(), Outcome::Ok));
    agg.add(&on(2, Op::Connect, None, https, Outcome::Ok));
    agg.add(&on(3, Op::Connect, None, net(libc::AF_INET, Some("10.0.0.9"), 22, libc::SOCK_STREAM, 0), denied));
    agg.add(&on(
        4,
        Op::Connect,
        Some("/run/dbus/system_bus_socket"),
        net(libc::AF_UNIX, None, 0, libc::SOCK_STREAM, 0),
        Outcome::Ok,
    ));
    agg.add(&on(5, Op::Socket, None, net(libc::AF_NETLINK, None, 0, libc::SOCK_RAW, 0), Outcome::Ok));
    agg.add(&on(6, Op::Bind, None, net(libc::AF_INET6, Some("::"), 8080, libc::SOCK_STREAM, 0), Outcome::Ok));
    agg.add(&ev(7, 10, Op::Exit, "", Outcome::Ok));
    let r = agg.finish(Header::default(), Rules::default(), &Sensitive::default(), &[]);
    let rows: Vec<NetRow<'_>> =
        r.network.iter().map(|d| (d.role, d.proto.as_str(), d.addr.as_deref(), d.port, d.events, d.denied)).collect();
    assert_eq!(
        rows,
        [
            ("connect", "tcp", Some("10.0.0.9"), Some(22), 1, 1),
            ("connect", "tcp", Some("93.184.216.34"), Some(443), 2, 0),
            ("connect", "unix-stream", Some("/run/dbus/system_bus_socket"), None, 1, 0),
            ("listen", "tcp", Some("::"), Some(8080), 1, 0),
            ("socket", "netlink-route", None, None, 1, 0),
        ]
    );
    assert!(r.network.iter().all(|d| d.domain.is_none()), "sockets carry no domain");
    assert_eq!(r.header.denied, 1, "the header counts the session's denials");
    assert_eq!(r.no_path.keys().collect::<Vec<_>>(), ["exit"], "sockets are in the network section, not 'without a path'");
    assert_eq!(r.timeline.colors.len(), r.timeline.ops.len());
    assert!(r.timeline.ops.iter().zip(&r.timeline.colors).all(|(op, c)| palette::op_color_by_name(op) == c));
}

/// role, domain, address, events, denials.
type NamedRow<'a> = (&'a str, Option<&'a str>, Option<&'a str>, u64, u64);

#[test]
fn names_reached_through_the_proxy_are_destinations_with_their_domain() {
    let mut agg = Aggregator::new(0, 1_000_000_000);
    agg.add_named("api.example.com", 443, Some("93.184.216.34:443"), false, false);
    agg.add_named("api.example.com", 443, Some("93.184.216.34:443"), false, false);
    agg.add_named("evil.example", 443, None, true, false);
    let r = agg.finish(Header::default(), Rules::default(), &Sensitive::default(), &[]);
    let rows: Vec<NamedRow<'_>> =
        r.network.iter().map(|d| (d.role, d.domain.as_deref(), d.addr.as_deref(), d.events, d.denied)).collect();
    assert_eq!(
        rows,
        [("proxy", Some("evil.example"), None, 1, 1), ("proxy", Some("api.example.com"), Some("93.184.216.34"), 2, 0)]
    );
    assert_eq!(r.header.denied, 1, "a refused name is a denial");
}
