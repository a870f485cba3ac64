//! `network.allow_domains` from what a learning session's proxy saw
//! (issue 23). Pure: domain rows in, profile entries out.
//!
//! Rules:
//! - every name the command reached (a CONNECT tunnel or a plain-HTTP
//!   request let through), with its port when that is not 80 or 443;
//!   refused and failed rows grant nothing;
//! - a name whose answers were internal addresses (loopback, private,
//!   link-local) is marked `private`, since the proxy refuses those
//!   otherwise;
//! - `*.parent` replaces the names below `parent` only when the session
//!   saw at least [`WILDCARD_MIN`] distinct names directly or indirectly
//!   below it, on the same port, and `parent` has two labels or more
//!   (`*.com` is never written): `a.cdn.example.com`, `b.cdn.example.com`
//!   and `c.cdn.example.com` become `*.cdn.example.com` (the deepest such
//!   parent, never `*.example.com` for them; a shallower parent counts
//!   only the names no deeper wildcard took); two names stay two names.
//!   The parent itself is kept when it was seen itself;
//! - each entry's reason says how it was seen, and `count` how often;
//! - DNS rows (`learn::dns`): a name whose answer's address the tree then
//!   connected to gets that port ("seen through DNS and a direct
//!   connect"); a name only asked about (rows of port 0) becomes a rule
//!   for the default ports whose reason says "seen only as a DNS
//!   question", unless the name was reached some other way; a question
//!   whose answers were all errors grants nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use crate::profile::network::{DomainEntry, DomainRule};
use crate::proxy::policy::{DEFAULT_PORTS, Host, is_internal, parse_host};
use crate::store::{DomainEvent, DomainSource};

/// The source text of a name only asked about in DNS.
const QUESTION_ONLY: &str = "a DNS question only";

/// Distinct names below one parent before they become `*.parent`.
pub const WILDCARD_MIN: usize = 3;

#[derive(Default)]
struct Seen {
    count: u64,
    sources: BTreeSet<&'static str>,
    private: bool,
}

/// The `allow_domains` entries for `rows` (several sessions' rows may be
/// given together).
#[must_use]
pub fn allow_domains(rows: &[DomainEvent]) -> Vec<DomainEntry> {
    let mut seen: BTreeMap<(String, u16), Seen> = BTreeMap::new();
    let mut questions: BTreeMap<String, u64> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.result == 0 && r.source != DomainSource::Credential) {
        let Ok(host) = parse_host(&r.domain) else { continue };
        let name = match &host {
            Host::Name(n) => n.clone(),
            Host::Ip(_) => host.to_string(),
        };
        if r.source == DomainSource::Dns && r.port == 0 {
            // A question: a rule only if nothing else grants the name.
            *questions.entry(name).or_default() += 1;
            continue;
        }
        let s = seen.entry((name, r.port)).or_default();
        s.count += 1;
        s.sources.insert(match r.source {
            DomainSource::Connect => "a CONNECT tunnel",
            DomainSource::Http => "plain HTTP",
            DomainSource::Dns => "DNS and a direct connect",
            DomainSource::Credential => "the credential endpoint",
        });
        let internal = r.addr.as_deref().and_then(|a| a.parse::<SocketAddr>().ok()).is_some_and(|a| is_internal(a.ip()));
        s.private |= internal || matches!(host, Host::Ip(_));
    }
    for (name, count) in questions {
        if !seen.keys().any(|(n, _)| *n == name) {
            let s = seen.entry((name, DEFAULT_PORTS[1])).or_default();
            s.count = count;
            s.sources.insert(QUESTION_ONLY);
        }
    }
    // Wildcards: group names by parent and port.
    let mut below: BTreeMap<(String, u16), BTreeSet<String>> = BTreeMap::new();
    for (name, port) in seen.keys() {
        if parse_host(name).is_ok_and(|h| matches!(h, Host::Ip(_))) {
            continue;
        }
        let mut rest = name.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            if parent.contains('.') {
                below.entry((parent.to_owned(), *port)).or_default().insert(name.clone());
            }
            rest = parent;
        }
    }
    // The deepest parent with enough names wins (least privilege):
    // a.cdn.example.com, b.cdn... and c.cdn... become *.cdn.example.com,
    // not *.example.com.
    let mut covered: BTreeMap<String, (String, u16)> = BTreeMap::new();
    let mut wild: Vec<(String, u16)> = below.iter().filter(|(_, n)| n.len() >= WILDCARD_MIN).map(|(k, _)| k.clone()).collect();
    wild.sort_by_key(|(p, _)| std::cmp::Reverse(p.matches('.').count()));
    // A shallower parent counts only the names no deeper wildcard took:
    // three names under cdn.example.com plus new.example.com make
    // *.cdn.example.com and new.example.com, not also *.example.com.
    let mut wild_count: BTreeMap<(String, u16), usize> = BTreeMap::new();
    for (parent, port) in &wild {
        let free: Vec<&String> =
            below[&(parent.clone(), *port)].iter().filter(|n| !covered.contains_key(&format!("{n}:{port}"))).collect();
        if free.len() < WILDCARD_MIN {
            continue;
        }
        wild_count.insert((parent.clone(), *port), free.len());
        for n in free {
            covered.insert(format!("{n}:{port}"), (parent.clone(), *port));
        }
    }
    let mut out: BTreeMap<String, DomainRule> = BTreeMap::new();
    for ((name, port), s) in &seen {
        let (domain, reason) = match covered.get(&format!("{name}:{port}")) {
            Some((parent, _)) => {
                let n = wild_count[&(parent.clone(), *port)];
                (format!("*.{parent}"), format!("{n} distinct names below {parent} ({WILDCARD_MIN} or more make a wildcard)"))
            }
            None => (name.clone(), String::new()),
        };
        let domain = if DEFAULT_PORTS.contains(port) { domain } else { format!("{domain}:{port}") };
        let entry = out.entry(domain.clone()).or_insert_with(|| DomainRule {
            domain,
            private: false,
            reason: Some(String::new()),
            count: Some(0),
        });
        entry.count = Some(entry.count.unwrap_or(0) + s.count);
        entry.private |= s.private;
        let how = if s.sources.iter().eq([QUESTION_ONLY].iter()) {
            "seen only as a DNS question".to_owned()
        } else {
            format!("seen through {}", s.sources.iter().copied().collect::<Vec<_>>().join(" and "))
        };
        let mut parts: Vec<String> = entry.reason.iter().filter(|r| !r.is_empty()).cloned().collect();
        for p in [how, reason] {
            if !p.is_empty() && !parts.iter().any(|x| x.contains(&p)) {
                parts.push(p);
            }
        }
        if s.private {
            parts.push("answered with an internal address".to_owned());
        }
        parts.dedup();
        entry.reason = Some(parts.join("; "));
    }
    out.into_values().map(DomainEntry::Rule).collect()
}

/// A name a session reached that a profile's `allow_domains` would refuse.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DomainDenial {
    pub domain: String,
    pub port: u16,
    pub count: u64,
    pub why: String,
}

/// The replay check for names: which of the destinations `rows` reached
/// (let through by the proxy) `allow` would refuse. `None` (no
/// `allow_domains`): names are not restricted, nothing is refused here.
/// Internal answers are not re-checked (the addresses may differ on the
/// next run); a rule's port and name are.
#[must_use]
pub fn check(rows: &[DomainEvent], allow: Option<&[DomainEntry]>) -> Vec<DomainDenial> {
    let Some(allow) = allow else { return Vec::new() };
    let policy = crate::proxy::policy::DomainPolicy::new(allow.iter().filter_map(|d| d.rule().ok()).collect());
    let mut out: BTreeMap<(String, u16), DomainDenial> = BTreeMap::new();
    // A DNS question (port 0) is no destination: the run's proxy resolves.
    let question = |r: &DomainEvent| r.source == DomainSource::Dns && r.port == 0;
    for r in rows.iter().filter(|r| r.result == 0 && r.source != DomainSource::Credential && !question(r)) {
        let Ok(host) = parse_host(&r.domain) else { continue };
        if let Err(why) = policy.check(&host, r.port) {
            let d = out.entry((r.domain.clone(), r.port)).or_insert_with(|| DomainDenial {
                domain: r.domain.clone(),
                port: r.port,
                count: 0,
                why: why.to_string(),
            });
            d.count += 1;
        }
    }
    out.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(domain: &str, port: u16, result: u8, addr: &str) -> DomainEvent {
        DomainEvent {
            session_id: 1,
            time_ns: 0,
            source: DomainSource::Connect,
            domain: domain.into(),
            port,
            result,
            reason: None,
            addr: Some(addr.into()),
            credential: None,
            pid: None,
        }
    }

    fn domains(rows: &[DomainEvent]) -> Vec<String> {
        allow_domains(rows).iter().map(|e| e.domain().to_owned()).collect()
    }

    #[test]
    fn names_reached_become_entries_with_counts() {
        let rows = [
            row("api.anthropic.com", 443, 0, "160.79.104.10:443"),
            row("api.anthropic.com", 443, 0, "160.79.104.10:443"),
            row("statsig.anthropic.com", 443, 0, "1.2.3.4:443"),
            row("refused.example.com", 443, 1, ""),
            row("git.corp.example", 8443, 0, "10.0.0.5:8443"),
        ];
        let e = allow_domains(&rows);
        assert_eq!(domains(&rows), ["api.anthropic.com", "git.corp.example:8443", "statsig.anthropic.com"]);
        let DomainEntry::Rule(api) = &e[0] else { panic!("object form") };
        assert_eq!(api.count, Some(2));
        assert!(api.reason.as_deref().is_some_and(|r| r.contains("CONNECT")), "{api:?}");
        let DomainEntry::Rule(corp) = &e[1] else { panic!("object form") };
        assert!(corp.private, "a private answer marks the rule private");
    }

    #[test]
    fn the_check_names_what_a_profile_would_refuse() {
        let rows = [
            row("api.example.com", 443, 0, "1.1.1.1:443"),
            row("x.cdn.example.com", 443, 0, "1.1.1.1:443"),
            row("other.example.net", 443, 0, "1.1.1.1:443"),
            row("other.example.net", 443, 0, "1.1.1.1:443"),
            row("refused.example.net", 443, 1, ""),
        ];
        let allow: Vec<DomainEntry> = serde_json::from_str(r#"["api.example.com", "*.cdn.example.com"]"#).expect("json");
        let d = check(&rows, Some(&allow));
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].domain.as_str(), d[0].count), ("other.example.net", 2));
        assert!(check(&rows, None).is_empty());
        // DNS: a question is no destination; a joined connect is checked.
        let dns_rows = [dns("asked.example.net", 0, 0, None), dns("joined.example.net", 8443, 0, Some("192.0.2.1:8443"))];
        let d = check(&dns_rows, Some(&allow));
        assert_eq!(d.iter().map(|d| (d.domain.as_str(), d.port)).collect::<Vec<_>>(), [("joined.example.net", 8443)]);
    }

    fn dns(domain: &str, port: u16, result: u8, addr: Option<&str>) -> DomainEvent {
        DomainEvent { source: DomainSource::Dns, addr: addr.map(Into::into), ..row(domain, port, result, "") }
    }

    #[test]
    fn names_seen_through_dns_say_so() {
        let rows = [
            dns("asked.example.com", 0, 0, None),
            dns("asked.example.com", 0, 0, None),
            dns("nxdomain.example.com", 0, 2, None),
            dns("joined.example.com", 0, 0, None),
            dns("joined.example.com", 8443, 0, Some("192.0.2.1:8443")),
            // Reached through the proxy as well: the question adds nothing.
            dns("proxied.example.com", 0, 0, None),
            row("proxied.example.com", 443, 0, "192.0.2.2:443"),
        ];
        let e = allow_domains(&rows);
        assert_eq!(domains(&rows), ["asked.example.com", "joined.example.com:8443", "proxied.example.com"]);
        let DomainEntry::Rule(asked) = &e[0] else { panic!("object form") };
        assert_eq!(asked.count, Some(2));
        assert_eq!(asked.reason.as_deref(), Some("seen only as a DNS question"));
        let DomainEntry::Rule(joined) = &e[1] else { panic!("object form") };
        assert!(joined.reason.as_deref().is_some_and(|r| r.contains("DNS and a direct connect")), "{joined:?}");
        let DomainEntry::Rule(proxied) = &e[2] else { panic!("object form") };
        assert!(proxied.reason.as_deref().is_some_and(|r| !r.contains("DNS")), "{proxied:?}");
    }

    #[test]
    fn wildcards_need_several_distinct_names() {
        let two = [row("a.cdn.example.com", 443, 0, "1.1.1.1:443"), row("b.cdn.example.com", 443, 0, "1.1.1.1:443")];
        assert_eq!(domains(&two), ["a.cdn.example.com", "b.cdn.example.com"]);
        let mut three = two.to_vec();
        three.push(row("c.cdn.example.com", 443, 0, "1.1.1.1:443"));
        three.push(row("c.cdn.example.com", 443, 0, "1.1.1.1:443"));
        let e = allow_domains(&three);
        assert_eq!(domains(&three), ["*.cdn.example.com"]);
        let DomainEntry::Rule(w) = &e[0] else { panic!("object form") };
        assert_eq!(w.count, Some(4));
        assert!(w.reason.as_deref().is_some_and(|r| r.contains("3 distinct names")), "{w:?}");
        // Names a deeper wildcard took do not count again for a shallower
        // parent.
        let mut nested = three.clone();
        nested.push(row("new.example.com", 443, 0, "1.1.1.1:443"));
        assert_eq!(domains(&nested), ["*.cdn.example.com", "new.example.com"]);
        // Never a top-level wildcard.
        let tld = [row("a.com", 443, 0, "1.1.1.1:443"), row("b.com", 443, 0, "1.1.1.1:443"), row("c.com", 443, 0, "1.1.1.1:443")];
        assert_eq!(domains(&tld), ["a.com", "b.com", "c.com"]);
    }
}
