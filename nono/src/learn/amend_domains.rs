//! `nono profile amend` for names (issue 23): the `network.allow_domains`
//! entries that would have let through what nono's proxy refused in a
//! sandboxed run. Pure: domain rows, the session's connects and the
//! profile's entries in, proposals out.
//!
//! The refused names are learned as if they had been let through, by
//! `learn::domains`'s own rule ([`allow_domains`]): a name stays a name,
//! its port is kept when it is not 80 or 443, and `*.parent` is proposed
//! only when [`super::domains::WILDCARD_MIN`] or more distinct names below
//! one parent were refused, exactly as `nono learn` would have written
//! it. What the profile's rules let through now is not proposed again
//! (the row says why it was refused then). Never proposed, only listed:
//! IP literals and `localhost` (the proxy refuses those so a name-based
//! allow list cannot be sidestepped; a user who means one adds it by
//! hand), and refusals no entry can lift (a bad request, a wrong phantom
//! token, the connection limit).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::event::{Event, Op, Outcome};
use crate::profile::network::DomainEntry;
use crate::proxy::policy::{DomainPolicy, Host, Refusal, Rule, parse_host};
use crate::store::{DomainEvent, DomainSource};

use super::amend::{Change, Proposal};
use super::domains::allow_domains;

/// How far back (ns) a connect may be from the refusal it is named for.
const ATTRIBUTION_NS: i64 = 10_000_000_000;

/// What the refused names would add, and what they will not.
#[derive(Clone, Debug, Default)]
pub struct DomainAmendment {
    pub proposals: Vec<Proposal>,
    /// Refusals no `allow_domains` entry would lift, or that are not
    /// proposed (IP literals, `localhost`), each with why.
    pub unexplained: Vec<String>,
    /// Refused rows considered.
    pub refusals: u64,
}

/// Proposals for the proxy's refusals among `rows` (one session's domain
/// rows) against the profile's `allow` list. `connects` are the session's
/// recorded events: the process that last connected (successfully or in
/// progress, to loopback: in a proxy-only run, to the proxy) before a
/// refusal is named as the one that asked. `None` for `allow`: the run had no proxy,
/// nothing to propose.
#[must_use]
pub fn propose_domains(rows: &[DomainEvent], connects: &[Event], allow: Option<&[DomainEntry]>) -> DomainAmendment {
    let mut out = DomainAmendment::default();
    let Some(allow) = allow else { return out };
    let policy = DomainPolicy::new(allow.iter().filter_map(|d| d.rule().ok()).collect());
    let askers = Askers::new(connects);
    let mut missing: Vec<(&DomainEvent, Host)> = Vec::new();
    let mut listed: BTreeMap<String, u64> = BTreeMap::new();
    let mut note = |line: String| *listed.entry(line).or_default() += 1;
    for r in rows.iter().filter(|r| r.result == 1) {
        out.refusals += 1;
        let why = r.reason.as_deref().unwrap_or("refused");
        let dest = format!("{}:{}", if r.domain.is_empty() { "(no host)" } else { &r.domain }, r.port);
        if r.source == DomainSource::Credential {
            note(format!("{dest}: {why} (the credential endpoint: no allow_domains entry changes that)"));
            continue;
        }
        let Ok(host) = parse_host(&r.domain) else {
            note(format!("{dest}: {why} (not a host name an entry could allow)"));
            continue;
        };
        match policy.check(&host, r.port) {
            Ok(_) => note(format!("{dest}: {why} (allow_domains lets the name through now: no entry is missing)")),
            Err(Refusal::IpLiteral) => note(format!(
                "{dest}: an IP address, not a name: not proposed (the proxy refuses addresses so the allow list names hosts; add it to network.allow_domains by hand if it is meant)"
            )),
            Err(Refusal::Localhost) => note(format!(
                "{dest}: localhost: not proposed (add it to network.allow_domains by hand if the command must reach a local service)"
            )),
            Err(_) => missing.push((r, host)),
        }
    }
    out.unexplained = listed.into_iter().map(|(l, n)| if n > 1 { format!("{l} x{n}") } else { l }).collect();
    // The refused rows as if let through: `nono learn`'s rule names them
    // (and makes the wildcards).
    let as_reached: Vec<DomainEvent> = missing
        .iter()
        .map(|(r, _)| DomainEvent { result: 0, addr: None, reason: None, credential: None, ..(*r).clone() })
        .collect();
    for entry in allow_domains(&as_reached) {
        let Ok(rule) = entry.rule() else { continue };
        let covered: Vec<&DomainEvent> =
            missing.iter().filter(|(r, h)| rule.pattern.matches(h) && rule.allows_port(r.port)).map(|(r, _)| *r).collect();
        if covered.is_empty() {
            continue;
        }
        out.proposals.push(proposal(entry.domain(), &rule, &covered, &askers));
    }
    out
}

fn proposal(domain: &str, rule: &Rule, covered: &[&DomainEvent], askers: &Askers<'_>) -> Proposal {
    let names: BTreeSet<&str> = covered.iter().map(|r| r.domain.as_str()).collect();
    let mut why: BTreeSet<&str> = covered.iter().filter_map(|r| r.reason.as_deref()).collect();
    if why.is_empty() {
        why.insert("refused");
    }
    let mut who: BTreeMap<String, u64> = BTreeMap::new();
    for r in covered {
        if let Some(a) = askers.of(r) {
            *who.entry(a).or_default() += 1;
        }
    }
    let mut reason = format!(
        "nono's proxy refused {} {} time(s) ({})",
        if names.len() == 1 { names.iter().copied().collect::<String>() } else { format!("{} names", names.len()) },
        covered.len(),
        why.into_iter().collect::<Vec<_>>().join("; ")
    );
    if !who.is_empty() {
        let list: Vec<String> = who.into_iter().map(|(a, n)| if n > 1 { format!("{a} x{n}") } else { a }).collect();
        let _ = write!(reason, ", asked for by {}", list.join(", "));
    }
    if matches!(rule.pattern, crate::proxy::policy::Pattern::Subdomains(_)) {
        let _ = write!(
            reason,
            "; {} distinct names below one parent ({}): {} or more make a wildcard, as `nono learn` does",
            names.len(),
            names.iter().copied().collect::<Vec<_>>().join(", "),
            super::domains::WILDCARD_MIN
        );
    }
    Proposal {
        title: format!("network.allow_domains += {domain}"),
        change: Change::Domain { domain: domain.to_owned() },
        reason: Some(reason),
    }
}

/// Connects to loopback that were not refused, by time: who asked the proxy.
struct Askers<'a> {
    connects: Vec<&'a Event>,
}

impl<'a> Askers<'a> {
    fn new(events: &'a [Event]) -> Askers<'a> {
        let mut connects: Vec<&Event> = events
            .iter()
            .filter(|e| {
                // A non-blocking connect (curl's) is recorded as EINPROGRESS.
                e.op == Op::Connect
                    && matches!(e.outcome, Outcome::Ok | Outcome::Error(libc::EINPROGRESS))
                    && e.net.as_ref().is_some_and(|n| n.addr.is_some_and(|a| a.is_loopback()) && n.port != 0)
            })
            .collect();
        connects.sort_by_key(|e| e.time_ns);
        Askers { connects }
    }

    /// `comm (pid N)` of the last connect before `r`, within a few seconds.
    fn of(&self, r: &DomainEvent) -> Option<String> {
        let i = self.connects.partition_point(|e| e.time_ns <= r.time_ns);
        let e = self.connects.get(i.checked_sub(1)?)?;
        (r.time_ns - e.time_ns <= ATTRIBUTION_NS).then(|| format!("{} (pid {})", e.comm, e.pid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::NetAddr;

    fn refused(domain: &str, port: u16, t: i64) -> DomainEvent {
        DomainEvent {
            session_id: 1,
            time_ns: t,
            source: DomainSource::Connect,
            domain: domain.into(),
            port,
            result: 1,
            reason: Some("not in network.allow_domains".into()),
            addr: None,
            credential: None,
            pid: None,
        }
    }

    fn connect(comm: &str, pid: u32, t: i64) -> Event {
        Event {
            time_ns: t,
            pid,
            tid: pid,
            ppid: 1,
            uid: 1000,
            comm: comm.into(),
            exe: None,
            op: Op::Connect,
            path: None,
            path2: None,
            access: crate::event::Access::default(),
            arg: 0,
            file_type: 0,
            outcome: Outcome::Ok,
            net: Some(NetAddr { family: 2, addr: Some("127.0.0.1".parse().expect("ip")), port: 4000, sock_type: 1, protocol: 0 }),
            incomplete: false,
        }
    }

    fn allow(json: &str) -> Vec<DomainEntry> {
        serde_json::from_str(json).expect("entries")
    }

    fn titles(a: &DomainAmendment) -> Vec<&str> {
        a.proposals.iter().map(|p| p.title.as_str()).collect()
    }

    #[test]
    fn a_refused_name_is_proposed_with_its_count_and_process() {
        let rows = [
            refused("new.example.com", 443, 100),
            refused("new.example.com", 443, 300),
            DomainEvent { result: 0, ..refused("api.example.com", 443, 50) },
        ];
        // curl's non-blocking connect is recorded as EINPROGRESS.
        let events =
            [Event { outcome: Outcome::Error(libc::EINPROGRESS), ..connect("curl", 41, 90) }, connect("python3", 42, 290)];
        let a = propose_domains(&rows, &events, Some(&allow(r#"["api.example.com"]"#)));
        assert_eq!(titles(&a), ["network.allow_domains += new.example.com"]);
        assert_eq!(a.refusals, 2);
        let reason = a.proposals[0].reason.as_deref().expect("reason");
        assert!(reason.contains("new.example.com 2 time(s)") && reason.contains("not in network.allow_domains"), "{reason}");
        assert!(reason.contains("curl (pid 41)") && reason.contains("python3 (pid 42)"), "{reason}");
        assert_eq!(a.proposals[0].change, Change::Domain { domain: "new.example.com".into() });
        // No proxy in the run: nothing.
        assert!(propose_domains(&rows, &events, None).proposals.is_empty());
    }

    #[test]
    fn wildcards_follow_the_learners_rule() {
        let two = [refused("a.cdn.example.com", 443, 1), refused("b.cdn.example.com", 443, 2)];
        let a = propose_domains(&two, &[], Some(&allow("[]")));
        assert_eq!(titles(&a), ["network.allow_domains += a.cdn.example.com", "network.allow_domains += b.cdn.example.com"]);
        let mut three = two.to_vec();
        three.push(refused("c.cdn.example.com", 443, 3));
        let a = propose_domains(&three, &[], Some(&allow("[]")));
        assert_eq!(titles(&a), ["network.allow_domains += *.cdn.example.com"]);
        assert!(a.proposals[0].reason.as_deref().is_some_and(|r| r.contains("3 distinct names")), "{:?}", a.proposals);
    }

    #[test]
    fn ports_addresses_and_what_is_allowed_now() {
        let rows = [
            refused("git.example.com", 8443, 1),
            DomainEvent { reason: Some("an IP address, not a name".into()), ..refused("10.0.0.5", 443, 2) },
            refused("localhost", 443, 3),
            refused("api.example.com", 443, 4),
            DomainEvent {
                source: DomainSource::Credential,
                reason: Some("no credential's phantom token".into()),
                ..refused("api.example.com", 443, 5)
            },
        ];
        let a = propose_domains(&rows, &[], Some(&allow(r#"["api.example.com"]"#)));
        assert_eq!(titles(&a), ["network.allow_domains += git.example.com:8443"]);
        assert_eq!(a.unexplained.len(), 4, "{:#?}", a.unexplained);
        assert!(a.unexplained.iter().any(|u| u.starts_with("10.0.0.5:443: an IP address")), "{:#?}", a.unexplained);
        assert!(a.unexplained.iter().any(|u| u.starts_with("localhost:443: localhost")), "{:#?}", a.unexplained);
        assert!(a.unexplained.iter().any(|u| u.contains("lets the name through now")), "{:#?}", a.unexplained);
        // A wrong port for an allowed name: the name with that port.
        let a = propose_domains(&[refused("api.example.com", 8443, 1)], &[], Some(&allow(r#"["api.example.com"]"#)));
        assert_eq!(titles(&a), ["network.allow_domains += api.example.com:8443"]);
    }
}
