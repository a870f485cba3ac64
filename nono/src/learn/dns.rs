//! Domain rows from a recording's DNS messages (issue 23, "learning
//! without the proxy's help"): a tool that ignores `HTTPS_PROXY` resolves
//! names itself, and the recorder captured its questions and answers
//! (`Op::Dns`). Pure: recorded events in, `domain_events` rows out.
//!
//! The join rule: an answer (A/AAAA) received by any process of the traced
//! tree labels each of its addresses with the question's name; a later
//! TCP connect by any process of the same tree to one of those addresses
//! (the stored events are in time order, so "later" is "after the answer")
//! becomes a row for that name with the connect's port and address. When
//! several names answered with one address, the most recent answer wins,
//! as it is the one the resolver just handed to the program. A connect to
//! port 53 is a DNS query over TCP, never joined.
//!
//! Every question also gets a row, port 0, so the audit trail shows each
//! name asked; the learner turns a name that has only such rows into a
//! "seen only as a DNS question" rule, unless every answer to it was an
//! error (NXDOMAIN, SERVFAIL...): such a row is stored with result 2 and
//! never becomes a rule (a resolver's search-list guesses end that way).
//! Only address questions count (A, AAAA, and HTTPS/SVCB, which browsers
//! and curl send before connecting); reverse lookups and others do not.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use crate::event::{DnsArg, Event, Op, Outcome};
use crate::store::{DomainEvent, DomainSource};

/// Query types whose names become rows: A, AAAA, SVCB, HTTPS.
const ADDRESS_QTYPES: [u16; 4] = [1, 28, 64, 65];
/// `EINPROGRESS`: a non-blocking connect under way counts as made.
const EINPROGRESS: i32 = libc::EINPROGRESS;

/// One name asked about.
#[derive(Default)]
struct Asked {
    questions: Vec<(i64, u32)>,
    answered_ok: bool,
    error_rcode: Option<u8>,
}

/// Folds a session's events, in time order, into DNS domain rows.
#[derive(Default)]
pub struct DnsJoin {
    session: i64,
    asked: BTreeMap<String, Asked>,
    by_addr: HashMap<IpAddr, String>,
    connects: Vec<DomainEvent>,
}

impl DnsJoin {
    #[must_use]
    pub fn new(session: i64) -> DnsJoin {
        DnsJoin { session, ..DnsJoin::default() }
    }

    /// Folds one event in (events must come in time order).
    pub fn add(&mut self, e: &Event) {
        match e.op {
            Op::Dns => self.message(e),
            Op::Connect => self.connect(e),
            _ => {}
        }
    }

    fn message(&mut self, e: &Event) {
        let Some(name) = e.path.as_deref() else { return };
        let arg = DnsArg::unpack(e.arg);
        if !ADDRESS_QTYPES.contains(&arg.qtype) {
            return;
        }
        let asked = self.asked.entry(name.to_owned()).or_default();
        if !arg.answer {
            asked.questions.push((e.time_ns, e.pid));
            return;
        }
        if arg.rcode != 0 {
            asked.error_rcode = Some(arg.rcode);
            return;
        }
        asked.answered_ok = true;
        for a in e.path2.as_deref().unwrap_or("").split(',').filter_map(|a| a.parse::<IpAddr>().ok()) {
            self.by_addr.insert(a.to_canonical(), name.to_owned());
        }
    }

    fn connect(&mut self, e: &Event) {
        let Some(net) = &e.net else { return };
        let (Some(addr), true) = (net.addr, i32::from(net.sock_type) == libc::SOCK_STREAM) else { return };
        if net.port == nono_common::dns::PORT {
            // A DNS-over-TCP connection to a server, not a use of the name
            // whose answer happened to carry the server's address.
            return;
        }
        let Some(name) = self.by_addr.get(&addr.to_canonical()) else { return };
        let result = match e.outcome {
            Outcome::Ok => 0,
            Outcome::Error(errno) if errno == EINPROGRESS => 0,
            Outcome::Denied { .. } => 1,
            Outcome::Error(_) => 2,
        };
        self.connects.push(DomainEvent {
            session_id: self.session,
            time_ns: e.time_ns,
            source: DomainSource::Dns,
            domain: name.clone(),
            port: net.port,
            result,
            reason: Some(format!("a DNS answer for {name}, then a direct connect")),
            addr: Some(SocketAddr::new(addr, net.port).to_string()),
            credential: None,
            pid: Some(e.pid),
        });
    }

    /// The rows: one per question (port 0, no address), one per connect
    /// joined to an answer; in time order.
    #[must_use]
    pub fn finish(self) -> Vec<DomainEvent> {
        let mut rows = self.connects;
        for (name, asked) in self.asked {
            let (result, reason) = match (asked.answered_ok, asked.error_rcode) {
                (false, Some(rcode)) => (2, format!("DNS question answered with an error ({})", rcode_name(rcode))),
                (true, _) => (0, "DNS question".to_owned()),
                (false, None) => (0, "DNS question (no answer seen)".to_owned()),
            };
            for (time_ns, pid) in asked.questions {
                rows.push(DomainEvent {
                    session_id: self.session,
                    time_ns,
                    source: DomainSource::Dns,
                    domain: name.clone(),
                    port: 0,
                    result,
                    reason: Some(reason.clone()),
                    addr: None,
                    credential: None,
                    pid: Some(pid),
                });
            }
        }
        rows.sort_by_key(|r| r.time_ns);
        rows
    }
}

fn rcode_name(rcode: u8) -> String {
    match rcode {
        1 => "FORMERR".to_owned(),
        2 => "SERVFAIL".to_owned(),
        3 => "NXDOMAIN".to_owned(),
        4 => "NOTIMP".to_owned(),
        5 => "REFUSED".to_owned(),
        n => format!("rcode {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Access, NetAddr};

    fn ev(time_ns: i64, op: Op, path: Option<&str>, path2: Option<&str>, arg: u64, net: Option<(&str, u16)>) -> Event {
        Event {
            time_ns,
            pid: 7,
            tid: 7,
            ppid: 1,
            uid: 1000,
            comm: "tool".into(),
            exe: None,
            op,
            path: path.map(Into::into),
            path2: path2.map(Into::into),
            access: Access::default(),
            arg,
            file_type: 0,
            outcome: Outcome::Ok,
            net: net.map(|(a, port)| NetAddr {
                family: libc::AF_INET as u16,
                addr: a.parse().ok(),
                port,
                sock_type: libc::SOCK_STREAM as u16,
                protocol: 6,
            }),
            incomplete: false,
        }
    }

    fn q(t: i64, name: &str) -> Event {
        ev(t, Op::Dns, Some(name), None, DnsArg { answer: false, qtype: 1, rcode: 0 }.pack(), None)
    }

    fn a(t: i64, name: &str, addrs: &str, rcode: u8) -> Event {
        ev(t, Op::Dns, Some(name), Some(addrs), DnsArg { answer: true, qtype: 1, rcode }.pack(), None)
    }

    #[test]
    fn a_connect_after_an_answer_is_labelled_with_the_name() {
        let mut j = DnsJoin::new(3);
        for e in [
            // Connecting before the answer is not joined.
            ev(1, Op::Connect, None, None, 0, Some(("192.0.2.1", 443))),
            q(2, "api.example.com"),
            a(3, "api.example.com", "192.0.2.1,2001:db8::1", 0),
            ev(4, Op::Connect, None, None, 0, Some(("192.0.2.1", 8443))),
            ev(5, Op::Connect, None, None, 0, Some(("198.51.100.9", 443))),
            // A DNS-over-TCP connection to that address is not a use of the name.
            ev(6, Op::Connect, None, None, 0, Some(("192.0.2.1", 53))),
        ] {
            j.add(&e);
        }
        let rows = j.finish();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!((rows[0].domain.as_str(), rows[0].port, rows[0].addr.as_deref()), ("api.example.com", 0, None));
        assert_eq!((rows[1].domain.as_str(), rows[1].port), ("api.example.com", 8443));
        assert_eq!(rows[1].addr.as_deref(), Some("192.0.2.1:8443"));
        assert!(rows.iter().all(|r| r.source == DomainSource::Dns && r.session_id == 3 && r.result == 0));
    }

    #[test]
    fn failed_and_unanswered_questions_and_other_types() {
        let mut j = DnsJoin::new(1);
        let ptr =
            ev(1, Op::Dns, Some("1.0.0.127.in-addr.arpa"), None, DnsArg { answer: false, qtype: 12, rcode: 0 }.pack(), None);
        for e in [ptr, q(2, "gone.example"), a(3, "gone.example", "", 3), q(4, "silent.example"), q(5, "silent.example")] {
            j.add(&e);
        }
        let rows = j.finish();
        let gone: Vec<_> = rows.iter().filter(|r| r.domain == "gone.example").collect();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].result, 2);
        assert!(gone[0].reason.as_deref().is_some_and(|r| r.contains("NXDOMAIN")));
        assert_eq!(rows.iter().filter(|r| r.domain == "silent.example" && r.result == 0).count(), 2);
        assert!(!rows.iter().any(|r| r.domain.contains("in-addr")));
    }
}
