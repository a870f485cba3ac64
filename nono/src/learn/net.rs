//! Learning what crosses the process boundary other than files: sockets
//! (TCP ports, UDP and ICMP destinations, Unix socket paths, extra
//! families), signals and kernel facilities. Fed by `synth` one event at a
//! time; pure like the rest of `learn`.
//!
//! Each relaxation of a sandbox default (`signal_outside`,
//! `abstract_unix_outside`, a facility, a socket family) comes with a note
//! naming what needed it, so the user sees why the profile is wider.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, SocketAddr};

use crate::event::{Event, Facility, NetAddr, Op, Outcome, Proto, SOCKET_FAMILIES, family_name};
use crate::profile::{SandboxPolicy, Udp};

use super::SensitiveHit;
use super::layout::Layout;

/// Ignore reasons of network events, as counted in `LearnStats::ignored`.
pub(crate) mod reason {
    pub const NO_ADDRESS: &str = "socket event without address";
    pub const NET_FAILED: &str = "connect, bind or send failed";
    pub const REFUSED: &str = "network access refused while learning (EACCES/EPERM)";
    pub const NO_POLICY: &str = "network event that needs no rule (TCP socket, Unix socket creation, ...)";
    pub const OTHER_FAMILY: &str = "socket family nono cannot name";
    pub const SIGNAL_INSIDE: &str = "signal within the traced tree";
    pub const SIGNAL_FAILED: &str = "signal that failed";
    pub const SYSCALL_FAILED: &str = "kernel facility call that failed";
    pub const OWN_EPHEMERAL: &str = "TCP connect to a loopback ephemeral port after a bind to port 0 (own server)";
}

/// Linux's default `net.ipv4.ip_local_port_range`: where port-0 binds land.
const EPHEMERAL: std::ops::RangeInclusive<u16> = 32768..=60999;

/// Most notes of one kind kept.
const MAX_NOTES: usize = 20;

/// What the network side of a session needed.
#[derive(Debug, Default)]
pub(crate) struct NetLearner {
    pub connect_ports: BTreeSet<u16>,
    pub bind_ports: BTreeSet<u16>,
    pub udp: Option<Udp>,
    pub icmp: Option<BTreeSet<IpAddr>>,
    /// Absolute (escaped) paths of pathname Unix sockets connected or sent to.
    pub unix_connect: BTreeSet<String>,
    pub families: BTreeSet<String>,
    pub sandbox: SandboxPolicy,
    /// Abstract names bound inside the traced tree.
    abstract_bound: HashSet<String>,
    /// A process of the tree bound a TCP socket to port 0 (the kernel
    /// picks an ephemeral port).
    ephemeral_bound: bool,
    /// Keyed by what they are about, so each is said once.
    notes: BTreeMap<String, String>,
    warnings: BTreeMap<String, String>,
    pub hits: BTreeMap<String, SensitiveHit>,
}

/// What happened to one event.
pub(crate) enum Verdict {
    Used,
    Ignored(&'static str),
    /// A permission error while learning (not a sandbox: file modes, another LSM).
    Refused(i32),
}

impl NetLearner {
    pub(crate) fn add(&mut self, e: &Event, layout: &Layout, nameservers: &[IpAddr], pids: &HashSet<u32>) -> Verdict {
        match e.op {
            Op::Signal => return self.signal(e, pids),
            Op::Syscall => return self.facility(e),
            _ => {}
        }
        let Some(net) = &e.net else { return Verdict::Ignored(reason::NO_ADDRESS) };
        if let Outcome::Denied { errno, .. } | Outcome::Error(errno @ (libc::EACCES | libc::EPERM)) = e.outcome {
            return Verdict::Refused(errno);
        }
        if e.op == Op::Socket {
            return self.socket(e, net);
        }
        if !passed(e) {
            return Verdict::Ignored(reason::NET_FAILED);
        }
        match i32::from(net.family) {
            libc::AF_UNIX => self.unix(e, layout),
            libc::AF_INET | libc::AF_INET6 => self.ip(e, net, nameservers),
            _ => Verdict::Ignored(reason::NO_POLICY),
        }
    }

    fn socket(&mut self, e: &Event, net: &NetAddr) -> Verdict {
        if e.outcome != Outcome::Ok {
            return Verdict::Ignored(reason::NET_FAILED);
        }
        let family = i32::from(net.family);
        match net.proto() {
            Proto::Udp => {
                self.udp.get_or_insert_with(Udp::default);
                Verdict::Used
            }
            Proto::Icmp => {
                self.icmp.get_or_insert_with(BTreeSet::new);
                Verdict::Used
            }
            Proto::OtherIp => {
                self.warn(
                    format!("proto {}", net.protocol),
                    format!(
                        "{} created an IP socket of type {} protocol {}: while TCP ports are restricted, nono's sandbox \
refuses IP protocols other than TCP, UDP and ICMP (MPTCP and SCTP slip past Landlock's port rules)",
                        e.comm, net.sock_type, net.protocol
                    ),
                );
                Verdict::Ignored(reason::NO_POLICY)
            }
            Proto::Other => {
                let name = family_name(family);
                if SOCKET_FAMILIES.iter().any(|(n, _)| *n == name) {
                    self.note(
                        format!("family {name}"),
                        format!("network.families += {name}: {} created a socket of family {name}", e.comm),
                    );
                    self.families.insert(name);
                    Verdict::Used
                } else {
                    self.warn(
                        format!("family {family}"),
                        format!(
                            "{} created a socket of family {family}, which profiles cannot allow: it will be refused",
                            e.comm
                        ),
                    );
                    Verdict::Ignored(reason::OTHER_FAMILY)
                }
            }
            Proto::Tcp | Proto::UnixStream | Proto::UnixDgram | Proto::Unknown => Verdict::Ignored(reason::NO_POLICY),
        }
    }

    fn ip(&mut self, e: &Event, net: &NetAddr, nameservers: &[IpAddr]) -> Verdict {
        let addr = net.addr;
        let need_addr = matches!(net.proto(), Proto::Udp | Proto::Icmp) && e.op != Op::Bind;
        let Some(addr) = addr.or((!need_addr).then_some(IpAddr::from([0, 0, 0, 0]))) else {
            return Verdict::Ignored(reason::NO_ADDRESS);
        };
        match (e.op, net.proto()) {
            // Records from before the recorder knew the socket type were TCP
            // as far as the old learner was concerned; keep that reading.
            (Op::Connect, Proto::Tcp | Proto::Unknown) => {
                // A connect to 0.0.0.0 or :: reaches this host's loopback.
                if self.ephemeral_bound && (addr.is_loopback() || addr.is_unspecified()) && EPHEMERAL.contains(&net.port) {
                    // Its own server, most likely: a port granted now would
                    // be another one next run, and open to any host.
                    self.note(
                        format!("own ephemeral {}", e.comm),
                        format!(
                            "{} connected to {}, its own server on a port the kernel picked (the tree bound port 0): \
not granted as a port; under `nono run` the broker lets the sandbox connect to ports its own processes listen on \
(not with `nono wrap`, or where the broker is unavailable)",
                            e.comm,
                            SocketAddr::new(addr, net.port)
                        ),
                    );
                    return Verdict::Ignored(reason::OWN_EPHEMERAL);
                }
                self.connect_ports.insert(net.port);
            }
            (Op::Bind, Proto::Tcp | Proto::Unknown) => {
                self.ephemeral_bound |= net.port == 0;
                self.bind_ports.insert(net.port);
            }
            (Op::Connect | Op::Send, Proto::Udp) => self.udp_to(addr, net.port, nameservers),
            (Op::Bind, Proto::Udp) => {
                self.udp.get_or_insert_with(Udp::default);
            }
            (Op::Connect | Op::Send, Proto::Icmp) => {
                self.icmp.get_or_insert_with(BTreeSet::new).insert(addr);
            }
            _ => return Verdict::Ignored(reason::NO_POLICY),
        }
        Verdict::Used
    }

    fn udp_to(&mut self, addr: IpAddr, port: u16, nameservers: &[IpAddr]) {
        let udp = self.udp.get_or_insert_with(Udp::default);
        if port == 53 && nameservers.contains(&addr) {
            udp.dns = true;
            return;
        }
        udp.to.insert(SocketAddr::new(addr, port));
        if port == 53 {
            self.warn(
                format!("dns {addr}"),
                format!(
                    "UDP to port 53 of {addr}, which is not a nameserver of this machine's /etc/resolv.conf: kept as the \
exact destination {}",
                    SocketAddr::new(addr, port)
                ),
            );
        }
    }

    fn unix(&mut self, e: &Event, layout: &Layout) -> Verdict {
        let Some(path) = e.path.as_deref() else { return Verdict::Ignored(reason::NO_ADDRESS) };
        if let Some(name) = path.strip_prefix('@') {
            match e.op {
                Op::Bind => {
                    self.abstract_bound.insert(name.to_owned());
                }
                _ if !self.abstract_bound.contains(name) => {
                    self.sandbox.abstract_unix_outside = true;
                    self.note(
                        format!("abstract {name}"),
                        format!(
                            "sandbox.abstract_unix_outside = true: {} connected to the abstract socket {path}, which no \
process of the traced tree bound",
                            e.comm
                        ),
                    );
                }
                _ => {}
            }
            return Verdict::Used;
        }
        if e.op == Op::Bind || !path.starts_with('/') {
            // A pathname bind creates a file: the filesystem side grants it.
            return Verdict::Ignored(reason::NO_POLICY);
        }
        if let Some(s) = layout.sensitive.socket(path) {
            let hit = self.hits.entry(path.to_owned()).or_insert_with(|| SensitiveHit {
                path: path.to_owned(),
                matched: s.path.clone(),
                rights: BTreeSet::new(),
                ops: BTreeSet::new(),
                pids: Vec::new(),
                comms: Vec::new(),
                why: format!("a connect to sensitive socket {} ({}); not granted unless allowed", s.path, s.why),
                class: s.class,
                missing: false,
            });
            hit.ops.insert(e.op);
            if !hit.pids.contains(&e.pid) && hit.pids.len() < 16 {
                hit.pids.push(e.pid);
            }
            if !hit.comms.contains(&e.comm) && hit.comms.len() < 16 {
                hit.comms.push(e.comm.clone());
            }
            return Verdict::Ignored(reason::NO_POLICY);
        }
        self.unix_connect.insert(path.to_owned());
        Verdict::Used
    }

    fn signal(&mut self, e: &Event, pids: &HashSet<u32>) -> Verdict {
        let Some((sig, target)) = e.signal() else { return Verdict::Ignored(reason::NO_ADDRESS) };
        if e.outcome != Outcome::Ok {
            return Verdict::Ignored(reason::SIGNAL_FAILED);
        }
        // A group signal (target <= 0) reaches the tree's own group; only
        // a process named outside the tree needs the scope relaxed.
        if target <= 0 || pids.contains(&(target as u32)) {
            return Verdict::Ignored(reason::SIGNAL_INSIDE);
        }
        self.sandbox.signal_outside = true;
        self.note(
            format!("signal {target}"),
            format!("sandbox.signal_outside = true: {} sent signal {sig} to pid {target}, outside the traced tree", e.comm),
        );
        Verdict::Used
    }

    fn facility(&mut self, e: &Event) -> Verdict {
        let Some(f) = e.facility() else { return Verdict::Ignored(reason::NO_POLICY) };
        if e.outcome != Outcome::Ok {
            return Verdict::Ignored(reason::SYSCALL_FAILED);
        }
        self.sandbox.allow.insert(f);
        let call = Facility::syscall_name(e.arg as i64).unwrap_or("?");
        self.note(format!("facility {f}"), format!("sandbox.allow += {f}: {} called {call}", e.comm));
        Verdict::Used
    }

    fn note(&mut self, key: String, text: String) {
        if self.notes.len() < MAX_NOTES * 4 {
            self.notes.entry(key).or_insert(text);
        }
    }

    fn warn(&mut self, key: String, text: String) {
        if self.warnings.len() < MAX_NOTES {
            self.warnings.entry(key).or_insert(text);
        }
    }

    /// The notes, then the warnings, each once.
    pub(crate) fn take_notes(&mut self) -> (Vec<String>, Vec<String>) {
        (std::mem::take(&mut self.notes).into_values().collect(), std::mem::take(&mut self.warnings).into_values().collect())
    }
}

/// The access got past every permission check: success, or a failure the
/// kernel reports after the checks (a non-blocking connect in progress, a
/// Unix socket nobody listens on).
fn passed(e: &Event) -> bool {
    match e.outcome {
        Outcome::Ok => true,
        Outcome::Error(errno) => match e.op {
            Op::Connect => {
                matches!(errno, libc::EINPROGRESS | libc::EALREADY | libc::EAGAIN | libc::EISCONN | libc::ECONNREFUSED)
            }
            Op::Send => matches!(errno, libc::EAGAIN | libc::ECONNREFUSED | libc::EMSGSIZE),
            _ => false,
        },
        Outcome::Denied { .. } => false,
    }
}
