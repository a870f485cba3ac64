//! The report's network section: every socket destination a session used
//! (an IP address and port, a Unix socket path, a netlink family), with
//! its protocol, the operations on it, and its denials.
//!
//! Destinations are aggregated as events stream in, at most
//! [`MAX_DESTINATIONS`] of them (the rest are counted together), so a
//! session that scanned the internet still gives a bounded page. Like
//! every string in the report, a socket path is hostile data: the page
//! shows it as text only.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::event::{Event, Op, Proto, family_name};

/// Destinations listed at most; the rest are summed into one count.
pub const MAX_DESTINATIONS: usize = 5_000;

/// One destination (or listening address, or unconnected socket kind).
#[derive(Clone, Debug, Default, Serialize)]
pub struct NetDest {
    /// `connect` (connect and addressed sends: where traffic went),
    /// `listen` (bind), `socket` (a socket created, no address used) or
    /// `proxy` (a name reached through nono's proxy).
    pub role: &'static str,
    /// `tcp`, `udp`, `icmp`, `unix-stream`, `unix-dgram`, the netlink
    /// protocol (`netlink-route`, ...), or the family's name for other
    /// families (`vsock`, ...).
    pub proto: String,
    /// `inet`, `inet6`, `unix`, `netlink`, ...
    pub family: String,
    /// The IP address, or the Unix socket's path (`@name` for an abstract
    /// one); `None` where there is no address.
    pub addr: Option<String>,
    /// For IP families.
    pub port: Option<u16>,
    /// The domain name the agent asked nono's proxy for (`proxy` rows,
    /// from [`NetAgg::add_named`]).
    pub domain: Option<String>,
    /// Events by operation.
    pub ops: BTreeMap<&'static str, u64>,
    pub events: u64,
    pub denied: u64,
    pub errors: u64,
    /// Process names that used it (at most a few).
    pub comms: Vec<String>,
}

/// Process names kept per destination.
const COMMS: usize = 4;

type Key = (&'static str, String, String, Option<String>, Option<u16>);

/// A netlink socket's protocol as people name it (`netlink-route`,
/// `netlink-audit`, ...; `netlink-N` for the rest).
#[must_use]
pub fn netlink_protocol(n: u16) -> String {
    let name = match n {
        0 => "route",
        4 => "sock_diag",
        5 => "nflog",
        6 => "xfrm",
        7 => "selinux",
        9 => "audit",
        12 => "netfilter",
        15 => "kobject_uevent",
        16 => "generic",
        _ => return format!("netlink-{n}"),
    };
    format!("netlink-{name}")
}

/// Streams network events into [`NetDest`]s.
#[derive(Debug, Default)]
pub struct NetAgg {
    dests: HashMap<Key, NetDest>,
    /// Events on destinations beyond [`MAX_DESTINATIONS`].
    pub other_events: u64,
    /// Denials among them.
    pub other_denied: u64,
}

/// The domain an event's destination was reached by, when the recording
/// knows it. Nothing records it yet: this is where issue 23's domain
/// names come in, one place for the report's network section and the
/// OCSF export's `dst_endpoint.hostname`.
#[must_use]
pub fn domain_of(_e: &Event) -> Option<String> {
    None
}

impl NetAgg {
    /// Counts `e` if it is a socket operation.
    pub fn add(&mut self, e: &Event) {
        if !e.op.is_network() {
            return;
        }
        let role = match e.op {
            Op::Bind => "listen",
            Op::Socket => "socket",
            Op::Dns => "dns",
            _ => "connect",
        };
        let (family, proto, ip, port) = match &e.net {
            Some(n) => {
                let proto = match n.proto() {
                    Proto::Other if i32::from(n.family) == libc::AF_NETLINK => netlink_protocol(n.protocol),
                    Proto::Other => family_name(i32::from(n.family)),
                    p => p.name().to_owned(),
                };
                let port = n.addr.is_some().then_some(n.port);
                (family_name(i32::from(n.family)), proto, n.addr.map(|a| a.to_string()), port)
            }
            None => ("unknown".to_owned(), "unknown".to_owned(), None, None),
        };
        let addr = ip.or_else(|| e.path.clone().filter(|p| !p.is_empty()));
        let denied = e.outcome.class() == "denied";
        let key: Key = (role, family, proto, addr, port);
        if !self.dests.contains_key(&key) && self.dests.len() >= MAX_DESTINATIONS {
            self.other_events += 1;
            self.other_denied += u64::from(denied);
            return;
        }
        let d = self.dests.entry(key.clone()).or_insert_with(|| NetDest {
            role: key.0,
            family: key.1.clone(),
            proto: key.2.clone(),
            addr: key.3.clone(),
            port: key.4,
            ..NetDest::default()
        });
        *d.ops.entry(e.op.name()).or_default() += 1;
        d.events += 1;
        d.denied += u64::from(denied);
        d.errors += u64::from(e.outcome.class() == "error");
        if d.comms.len() < COMMS && !d.comms.contains(&e.comm) {
            d.comms.push(e.comm.clone());
        }
    }

    /// Counts one name the agent reached (or was refused) through nono's
    /// proxy (issue 23's domain rows: the agent's own connect went to the
    /// proxy, so the name is the destination): `addr` is where the proxy
    /// connected (`ip:port`), if it did.
    pub fn add_named(&mut self, domain: &str, port: u16, addr: Option<&str>, refused: bool, error: bool) {
        let ip = addr.and_then(|a| a.parse::<std::net::SocketAddr>().ok()).map(|a| a.ip().to_string());
        let key: Key = ("proxy", "name".to_owned(), "tcp".to_owned(), Some(domain.to_owned()), Some(port));
        if !self.dests.contains_key(&key) && self.dests.len() >= MAX_DESTINATIONS {
            self.other_events += 1;
            self.other_denied += u64::from(refused);
            return;
        }
        let d = self.dests.entry(key).or_insert_with(|| NetDest {
            role: "proxy",
            family: "name".to_owned(),
            proto: "tcp".to_owned(),
            addr: ip.clone(),
            port: Some(port),
            domain: Some(domain.to_owned()),
            ..NetDest::default()
        });
        if d.addr.is_none() {
            d.addr = ip;
        }
        *d.ops.entry("connect").or_default() += 1;
        d.events += 1;
        d.denied += u64::from(refused);
        d.errors += u64::from(error);
    }

    /// The destinations, denied ones first, then by events.
    #[must_use]
    pub fn finish(self) -> Vec<NetDest> {
        let mut v: Vec<NetDest> = self.dests.into_values().collect();
        v.sort_by(|a, b| {
            (b.denied > 0)
                .cmp(&(a.denied > 0))
                .then(b.events.cmp(&a.events))
                .then_with(|| (a.role, &a.proto, &a.addr, a.port).cmp(&(b.role, &b.proto, &b.addr, b.port)))
        });
        v
    }
}
