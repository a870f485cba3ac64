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
