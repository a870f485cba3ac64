//! The replay behind `nono audit check`: what `nono run` would do with each
//! recorded access under a profile.
//!
//! It owns no model of its own. It is built from the objects a run builds
//! ([`super::plan`], [`Plan::grants`] for the ABI of this kernel, the
//! [`BrokerPlan`] and the seccomp baseline) and decides with the functions
//! the run decides with: Landlock's rights through `rights_for_event` and
//! [`Grants::granted`] (as attribution does), brokered rules through
//! [`BrokerPlan::brokered_at`], datagram destinations through
//! [`BrokerPlan::datagram_allowed`], socket kinds and kernel facilities
//! through [`seccomp::Filter::decide`] on the baseline, and the broker's
//! own-listener exception and scoping as the run applies them. So a check
//! cannot disagree with enforcement about what a rule means.
//!
//! What it must not do: touch the filesystem beyond `stat` (the broker's
//! identities are read from the paths as they are now), or print.
//!
//! Creations meet the filesystem as it is now, as a run now would: a
//! `mkdir` of a directory that exists fails with `EEXIST` before any
//! Landlock hook, and an `O_CREAT` open of a file that exists creates
//! nothing (so a profile that cannot create `~/.agentstate` passes once
//! it exists; a check against a fresh home would not).
//!
//! Accesses that failed when they were recorded, other than sandbox
//! denials, fail the same way under any profile and are not replayed
//! (connects that failed after every permission check, such as
//! `EINPROGRESS`, are). Sandbox denials of a recorded `run` are replayed:
//! that is how a check tells whether an amended profile allows them.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::event::{Event, Op, Outcome, Proto, family_name};
use crate::learn::{Grants, rights_for_event};
use crate::profile::rights::FsRight;
use crate::profile::{BrokerOp, MetadataPolicy, Resolved};

use super::broker::BrokerPlan;
use super::{Plan, seccomp};

/// What would refuse an access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefusedBy {
    /// A Landlock filesystem right or TCP port rule.
    Landlock,
    /// Landlock's scoping (signals, abstract Unix sockets; ABI 6).
    Scope,
    /// The seccomp baseline (socket kinds, facilities).
    Seccomp,
    /// nono's supervisor (Unix sockets, datagram destinations, metadata).
    Broker,
}

impl RefusedBy {
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            RefusedBy::Landlock => "landlock",
            RefusedBy::Scope => "scope",
            RefusedBy::Seccomp => "seccomp",
            RefusedBy::Broker => "broker",
        }
    }
}

/// One access the profile would refuse, aggregated over identical needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Denial {
    pub op: Op,
    /// The path, or the destination (`tcp:443`, `udp:10.0.0.1:53`, `pid 77`).
    pub path: String,
    pub by: RefusedBy,
    /// Filesystem rights missing (Landlock only).
    pub missing: BTreeSet<FsRight>,
    /// The profile change that would allow it.
    pub needed_rule: String,
    pub count: u64,
    /// One process that did it.
    pub comm: String,
    pub pid: u32,
}

/// A profile as `nono run` would enforce it here, ready to replay events.
pub struct Replay {
    plan: Plan,
    grants: Grants,
    /// `None` where the run would have no broker.
    broker: Option<BrokerPlan>,
    baseline: seccomp::Filter,
    abi: i32,
    ephemeral: RangeInclusive<u16>,
    tree: HashSet<u32>,
    abstract_bound: HashSet<String>,
    tcp_bound: BTreeSet<u16>,
}

/// Landlock scopes signals and abstract sockets from this ABI on.
const SCOPE_ABI: i32 = 6;

impl Replay {
    /// The sandbox `nono run` would build for `resolved` on a kernel of
    /// Landlock ABI `abi`, with the supervisor's broker when `broker`
    /// (seccomp user notification available) and the resolver's
    /// `nameservers` (as the run reads them from `/etc/resolv.conf`).
    pub fn new(resolved: &Resolved, abi: i32, broker: bool, nameservers: Vec<IpAddr>) -> Result<Replay, seccomp::SeccompError> {
        let plan = super::plan(resolved);
        let grants = plan.grants(abi);
        let broker = broker.then(|| BrokerPlan::new(resolved, &plan, nameservers));
        let baseline = seccomp::Filter::new(seccomp::baseline::rules(&plan.seccomp_policy()))?;
        Ok(Replay {
            plan,
            grants,
            broker,
            baseline,
            abi,
            ephemeral: ephemeral_ports(),
            tree: HashSet::new(),
            abstract_bound: HashSet::new(),
            tcp_bound: BTreeSet::new(),
        })
    }

    /// The plan the replay enforces (its skipped rules are worth showing).
    #[must_use]
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Whether the replay has the broker (a run here would).
    #[must_use]
    pub fn has_broker(&self) -> bool {
        self.broker.is_some()
    }

    /// First pass: the process tree and what it bound, which scoping and
    /// the broker's own-listener exception depend on. Call for every event
    /// before [`Replay::decide`].
    pub fn observe(&mut self, e: &Event) {
        self.tree.insert(e.pid);
        self.tree.insert(e.tid);
        if e.op == Op::Fork {
            self.tree.insert(e.arg as u32);
        }
        if e.op == Op::Bind && e.outcome == Outcome::Ok {
            if let Some(name) = e.path.as_deref().and_then(|p| p.strip_prefix('@')) {
                self.abstract_bound.insert(name.to_owned());
            }
            if let Some(n) = &e.net
                && matches!(n.proto(), Proto::Tcp | Proto::Unknown)
                && n.addr.is_some()
            {
                self.tcp_bound.insert(n.port);
            }
        }
    }

    /// What the run would refuse of `e`: empty when it would allow it (or
    /// when `e` failed anyway).
    #[must_use]
    pub fn decide(&self, e: &Event) -> Vec<(RefusedBy, String, BTreeSet<FsRight>, String)> {
        let mut out = Vec::new();
        if !attempted(e) {
            return out;
        }
        match e.op {
            Op::Signal => self.signal(e, &mut out),
            Op::Syscall => self.facility(e, &mut out),
            Op::Socket => self.socket(e, &mut out),
            Op::Connect | Op::Send => self.destination(e, &mut out),
            Op::Bind => {
                self.bind(e, &mut out);
                self.fs(e, &mut out);
            }
            Op::Metadata => self.metadata(e, &mut out),
            // A DNS message rides on a socket whose send or connect is
            // checked on its own; its name is checked as a domain.
            Op::Fork | Op::Exit | Op::Dns => {}
            _ => self.fs(e, &mut out),
        }
        out
    }

    fn fs(&self, e: &Event, out: &mut Vec<(RefusedBy, String, BTreeSet<FsRight>, String)>) {
        let mut e = Event { outcome: Outcome::Ok, ..e.clone() };
        // A creation meets the filesystem as it is now: an entry that
        // exists fails with EEXIST before any Landlock hook (`mkdir -p`),
        // and an `O_CREAT` open of an existing file creates nothing.
        let exists = || e.path.as_deref().and_then(|p| crate::event::unescape_path(p).ok()).is_some_and(|p| p.exists());
        match e.op {
            Op::Mkdir | Op::Create | Op::Mknod | Op::Symlink if exists() => return,
            Op::Open if e.access.create && exists() => e.access.create = false,
            _ => {}
        }
        let e = &e;
        let needs = rights_for_event(e);
        let mut refused = Vec::new();
        for (path, rights, file) in needs {
            let have = self.grants.granted(&path);
            let missing: BTreeSet<FsRight> =
                rights.iter().copied().filter(|r| self.grants.handled.contains(r) && !have.contains(r)).collect();
            if !missing.is_empty() {
                refused.push((path, missing, file));
            }
        }
        if refused.is_empty() || self.brokered(e) {
            return;
        }
        for (path, missing, file) in refused {
            let shown = crate::event::escape_path(&path);
            let needed = format!(
                "{{\"path\": {:?}, \"access\": [{}]{}}}",
                shown,
                missing.iter().map(|r| format!("{:?}", r.name())).collect::<Vec<_>>().join(", "),
                if file { ", \"file\": true" } else { "" }
            );
            out.push((RefusedBy::Landlock, shown, missing, needed));
        }
    }

    /// Whether the broker would perform `e` itself (a brokered rule covers
    /// it), exactly as `broker::fs` decides for the call behind it.
    fn brokered(&self, e: &Event) -> bool {
        let Some(b) = &self.broker else { return false };
        let Some((dir, name)) = e.path.as_deref().and_then(split) else { return false };
        let rule = |dir: &Path, name: &[u8], op| b.brokered_at(dir, name, op);
        match e.op {
            // An open that created its file, or opened an existing one for
            // writing when the rule allows `write` (else Landlock decides).
            // A created file was an `O_CREAT` open whatever `arg` says.
            Op::Open if e.access.create || e.arg & libc::O_CREAT as u64 != 0 => {
                rule(&dir, &name, BrokerOp::Create).is_some_and(|r| e.access.create || r.ops.contains(&BrokerOp::Write))
            }
            Op::Create => rule(&dir, &name, BrokerOp::Create).is_some(),
            Op::Mkdir => rule(&dir, &name, BrokerOp::Mkdir).is_some(),
            Op::Unlink => rule(&dir, &name, BrokerOp::Remove).is_some(),
            Op::Rmdir => rule(&dir, &name, BrokerOp::Rmdir).is_some(),
            Op::Rename => {
                let Some((dir2, name2)) = e.path2.as_deref().and_then(split) else { return false };
                match (rule(&dir, &name, BrokerOp::Rename), rule(&dir2, &name2, BrokerOp::Rename)) {
                    // Both names in the same rule's directory.
                    (Some(a), Some(b)) => std::ptr::eq(a, b),
                    _ => false,
                }
            }
            _ => false,
        }
    }

    fn metadata(&self, e: &Event, out: &mut Vec<(RefusedBy, String, BTreeSet<FsRight>, String)>) {
        // Without the broker nothing restricts metadata changes.
        let Some(b) = &self.broker else { return };
        let Some(path) = e.path.as_deref() else { return };
        let allowed = match b.metadata {
            MetadataPolicy::Any => true,
            MetadataPolicy::None => false,
            MetadataPolicy::WriteGrants => {
                let real = crate::event::unescape_path(path).unwrap_or_else(|_| PathBuf::from(path));
                self.grants.granted(&real).contains(&FsRight::WriteFile)
                    || split(path).is_some_and(|(dir, name)| b.brokered_at(&dir, &name, BrokerOp::Metadata).is_some())
            }
        };
        if !allowed {
            let needed = if b.metadata == MetadataPolicy::None {
                "filesystem.metadata = \"write_grants\" (and a grant with write_file on it)".to_owned()
            } else {
                format!("a grant with write_file on {path} (or a brokered rule with the metadata op)")
            };
            out.push((RefusedBy::Broker, path.to_owned(), BTreeSet::new(), needed));
        }
    }

    fn signal(&self, e: &Event, out: &mut Vec<(RefusedBy, String, BTreeSet<FsRight>, String)>) {
        let Some((_, target)) = e.signal() else { return };
        // A group signal reaches the tree's own group.
        if self.abi < SCOPE_ABI || self.plan.signal_outside || target <= 0 || self.tree.contains(&(target as u32)) {
            return;
        }
        out.push((RefusedBy::Scope, format!("pid {target}"), BTreeSet::new(), "sandbox.signal_outside = true".to_owned()));
    }

    fn facility(&self, e: &Event, out: &mut Vec<(RefusedBy, String, BTreeSet<FsRight>, String)>) {
        let Some(f) = e.facility() else { return };
        if matches!(self.baseline.decide(e.arg as i64, &[0; 6]), seccomp::Action::Deny(_)) {
            let call = crate::event::Facility::syscall_name(e.arg as i64).unwrap_or("?");
            out.push((RefusedBy::Seccomp, call.to_owned(), BTreeSet::new(), format!("sandbox.allow += {f}")));
        }
    }

    fn socket(&self, e: &Event, out: &mut Vec<(RefusedBy, String, BTreeSet<FsRight>, String)>) {
        let Some(n) = &e.net else { return };
        let args = [u64::from(n.family), u64::from(n.sock_type), u64::from(n.protocol), 0, 0, 0];
        let seccomp::Action::Deny(_) = self.baseline.decide(libc::SYS_socket, &args) else { return };
        let family = i32::from(n.family);
        let needed = match n.proto() {
            Proto::Udp => "network.udp (present, with the destinations)".to_owned(),
            Proto::Icmp => "network.icmp".to_owned(),
            Proto::Other if crate::event::SOCKET_FAMILIES.iter().any(|(_, f)| *f == family) => {
                format!("network.families += {}", family_name(family))
            }
            Proto::Other => format!("nothing: profiles cannot allow family {family}"),
            _ if self.plan.block_net => "network.block = false".to_owned(),
            _ => "nothing while TCP ports are restricted: only plain TCP, UDP and ICMP pass".to_owned(),
        };
        let what = format!("{} socket", n.proto().name());
        out.push((RefusedBy::Seccomp, what, BTreeSet::new(), needed));
    }

    fn bind(&self, e: &Event, out: &mut Vec<(RefusedBy, String, BTreeSet<FsRight>, String)>) {
        let Some(n) = &e.net else { return };
        if n.addr.is_none() || !matches!(n.proto(), Proto::Tcp | Proto::Unknown) {
            return;
        }
        if self.grants.block_net || self.grants.bind_ports.as_ref().is_some_and(|p| !p.contains(&n.port)) {
            let needed = if self.grants.block_net {
                "network.block = false".to_owned()
            } else {
                format!("network.listen_port += {}", n.port)
            };
            out.push((RefusedBy::Landlock, format!("tcp:{}", n.port), BTreeSet::new(), needed));
        }
    }

    fn destination(&self, e: &Event, out: &mut Vec<(RefusedBy, String, BTreeSet<FsRight>, String)>) {
        let Some(n) = &e.net else { return };
        if i32::from(n.family) == libc::AF_UNIX {
            return self.unix(e, out);
        }
        let Some(ip) = n.addr else { return };
        let to = SocketAddr::new(ip, n.port);
        match n.proto() {
            Proto::Tcp | Proto::Unknown if e.op == Op::Connect => {
                let unlisted = self.grants.connect_ports.as_ref().is_some_and(|p| !p.contains(&n.port));
                if !self.grants.block_net && (!unlisted || self.own_listener(to)) {
                    return;
                }
                let needed = if self.grants.block_net {
                    "network.block = false".to_owned()
                } else {
                    format!("network.open_port += {}", n.port)
                };
                out.push((RefusedBy::Landlock, format!("tcp:{}", n.port), BTreeSet::new(), needed));
            }
            proto @ (Proto::Udp | Proto::Icmp) => {
                // Without the broker, destinations are not restricted.
                let Some(b) = &self.broker else { return };
                if b.datagram_allowed(proto, to) {
                    return;
                }
                let needed = match proto {
                    Proto::Icmp => format!("network.icmp += {ip}"),
                    _ if n.port == 53 && b.nameservers.contains(&ip) => "network.udp.dns = true".to_owned(),
                    _ => format!("network.udp.to += {to}"),
                };
                out.push((RefusedBy::Broker, format!("{}:{to}", proto.name()), BTreeSet::new(), needed));
            }
            _ => {}
        }
    }

    /// The broker's exception: a loopback connect to a port the sandbox's
    /// own listener holds (the tree bound that port, or port 0 and the
    /// kernel picked one from the ephemeral range).
    fn own_listener(&self, to: SocketAddr) -> bool {
        self.broker.is_some()
            && to.ip().is_loopback()
            && (self.tcp_bound.contains(&to.port()) || (self.tcp_bound.contains(&0) && self.ephemeral.contains(&to.port())))
    }

    fn unix(&self, e: &Event, out: &mut Vec<(RefusedBy, String, BTreeSet<FsRight>, String)>) {
        let Some(path) = e.path.as_deref() else { return };
        if let Some(name) = path.strip_prefix('@') {
            if self.abi >= SCOPE_ABI && !self.plan.abstract_unix_outside && !self.abstract_bound.contains(name) {
                let needed = "sandbox.abstract_unix_outside = true".to_owned();
                out.push((RefusedBy::Scope, path.to_owned(), BTreeSet::new(), needed));
            }
            return;
        }
        let Some(b) = &self.broker else { return };
        let real = crate::event::unescape_path(path).unwrap_or_else(|_| PathBuf::from(path));
        let same = |p: &PathBuf| *p == real || identity(p).is_some_and(|id| identity(&real) == Some(id));
        if !b.unix_connect.iter().any(same) {
            out.push((RefusedBy::Broker, path.to_owned(), BTreeSet::new(), format!("network.unix_connect += {path}")));
        }
    }
}

/// Replays `events` (two passes over the same iterator source): every
/// access the run would refuse, aggregated.
pub fn denials<'a, I>(replay: &mut Replay, events: impl Fn() -> I) -> Vec<Denial>
where
    I: Iterator<Item = &'a Event>,
{
    for e in events() {
        replay.observe(e);
    }
    let mut acc = Aggregate::default();
    for e in events() {
        acc.add(e, replay.decide(e));
    }
    acc.finish()
}

/// Folds refusals into [`Denial`]s, one per op, target and needed rule.
#[derive(Debug, Default)]
pub struct Aggregate {
    out: BTreeMap<(Op, String, String), Denial>,
}

impl Aggregate {
    pub fn add(&mut self, e: &Event, refusals: Vec<(RefusedBy, String, BTreeSet<FsRight>, String)>) {
        for (by, path, missing, needed_rule) in refusals {
            self.out.entry((e.op, path.clone(), needed_rule.clone())).and_modify(|d| d.count += 1).or_insert(Denial {
                op: e.op,
                path,
                by,
                missing,
                needed_rule,
                count: 1,
                comm: e.comm.clone(),
                pid: e.pid,
            });
        }
    }

    #[must_use]
    pub fn finish(self) -> Vec<Denial> {
        self.out.into_values().collect()
    }
}

/// Whether the recorded access got past the permission checks, or was
/// refused by a sandbox (so a profile decides it).
fn attempted(e: &Event) -> bool {
    match e.outcome {
        Outcome::Ok | Outcome::Denied { .. } => true,
        Outcome::Error(errno) => match e.op {
            Op::Connect => {
                matches!(errno, libc::EINPROGRESS | libc::EALREADY | libc::EAGAIN | libc::EISCONN | libc::ECONNREFUSED)
            }
            Op::Send => matches!(errno, libc::EAGAIN | libc::ECONNREFUSED | libc::EMSGSIZE),
            _ => false,
        },
    }
}

/// A recorded path (escaped text) as its directory and last name, as the
/// broker splits the caller's path. `None` for `/` and relative paths.
fn split(path: &str) -> Option<(PathBuf, Vec<u8>)> {
    use std::os::unix::ffi::OsStrExt as _;
    let real = crate::event::unescape_path(path).ok()?;
    if !real.is_absolute() {
        return None;
    }
    let name = real.file_name()?.as_bytes().to_vec();
    Some((real.parent()?.to_path_buf(), name))
}

fn identity(p: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`).
fn ephemeral_ports() -> RangeInclusive<u16> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut it = text.split_whitespace().filter_map(|s| s.parse::<u16>().ok());
    match (it.next(), it.next()) {
        (Some(lo), Some(hi)) if lo <= hi => lo..=hi,
        _ => 32768..=60999,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Access, NetAddr};
    use crate::profile::{Vars, load_str};

    fn ev(op: Op, path: &str) -> Event {
        Event {
            time_ns: 0,
            pid: 7,
            tid: 7,
            ppid: 1,
            uid: 1000,
            comm: "agent".into(),
            exe: None,
            op,
            path: Some(path.into()),
            path2: None,
            access: Access { read: true, ..Access::default() },
            arg: 0,
            file_type: libc::S_IFREG,
            outcome: Outcome::Ok,
            net: None,
            incomplete: false,
        }
    }

    fn udp(to: &str, port: u16) -> Event {
        let mut e = ev(Op::Send, "");
        e.path = None;
        e.net = Some(NetAddr {
            family: libc::AF_INET as u16,
            addr: Some(to.parse().expect("ip")),
            port,
            sock_type: libc::SOCK_DGRAM as u16,
            protocol: 0,
        });
        e
    }

    fn replay(dir: &Path, text: &str, broker: bool) -> Replay {
        let vars = Vars::for_home(dir.to_path_buf(), dir);
        let r = load_str(text, "t.json", &vars).expect("profile");
        Replay::new(&r, 7, broker, vec!["10.0.0.53".parse().expect("ip")]).expect("replay")
    }

    fn check(r: &mut Replay, events: &[Event]) -> Vec<Denial> {
        denials(r, || events.iter())
    }

    #[test]
    fn a_brokered_atomic_save_is_allowed_and_the_same_names_outside_the_rule_are_not() {
        let d = tempfile::tempdir().expect("tmp");
        let home = d.path().display().to_string();
        let text = format!(
            r#"{{"filesystem": {{"read_file": ["{home}/.app.json"], "brokered": [{{"dir": "{home}", "names": [".app.json", ".app.json.tmp.*"], "ops": ["create", "write", "rename", "remove"]}}]}}}}"#
        );
        std::fs::write(d.path().join(".app.json"), "{}").expect("file");
        let mut create = ev(Op::Open, &format!("{home}/.app.json.tmp.4242"));
        create.access = Access { write: true, create: true, ..Access::default() };
        create.arg = (libc::O_CREAT | libc::O_WRONLY) as u64;
        let mut rename = ev(Op::Rename, &format!("{home}/.app.json.tmp.4242"));
        rename.path2 = Some(format!("{home}/.app.json"));
        let mut other = create.clone();
        other.path = Some(format!("{home}/.bashrc.tmp"));
        let mut r = replay(d.path(), &text, true);
        let got = check(&mut r, &[create.clone(), rename.clone(), other.clone()]);
        // Only the name no rule covers: make_reg on the directory, write on the file.
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got.iter().all(|d| d.by == RefusedBy::Landlock && d.count == 1 && d.op == Op::Open), "{got:#?}");
        assert!(got.iter().any(|d| d.path.ends_with(".bashrc.tmp")), "{got:#?}");
        // Without the broker (nono wrap, WSL2) the save itself is refused too.
        let mut r = replay(d.path(), &text, false);
        let got = check(&mut r, &[create, rename, other]);
        assert!(got.iter().any(|d| d.op == Op::Rename) && got.iter().any(|d| d.path.ends_with(".app.json.tmp.4242")), "{got:#?}");
    }

    #[test]
    fn dns_to_a_nameserver_passes_the_broker_and_other_datagrams_name_their_rule() {
        let d = tempfile::tempdir().expect("tmp");
        let mut r = replay(d.path(), r#"{"network": {"udp": {"dns": true}}}"#, true);
        let got = check(&mut r, &[udp("10.0.0.53", 53), udp("1.1.1.1", 53), udp("10.0.0.53", 123)]);
        let rules: Vec<&str> = got.iter().map(|d| d.needed_rule.as_str()).collect();
        assert_eq!(rules, ["network.udp.to += 1.1.1.1:53", "network.udp.to += 10.0.0.53:123"], "{got:#?}");
        // No network.udp at all: the socket itself is the seccomp baseline's.
        let mut sock = udp("10.0.0.53", 53);
        sock.op = Op::Socket;
        let mut r = replay(d.path(), "{}", true);
        let got = check(&mut r, &[sock]);
        assert_eq!(got.len(), 1, "{got:#?}");
        assert_eq!(got[0].by, RefusedBy::Seccomp);
    }

    #[test]
    fn tcp_ports_scoping_and_failed_accesses() {
        let d = tempfile::tempdir().expect("tmp");
        let mut r = replay(d.path(), r#"{"network": {"open_port": [443]}}"#, true);
        let tcp = |port: u16, to: &str| {
            let mut e = udp(to, port);
            e.op = Op::Connect;
            e.net.as_mut().expect("net").sock_type = libc::SOCK_STREAM as u16;
            e
        };
        let mut bind0 = tcp(0, "127.0.0.1");
        bind0.op = Op::Bind;
        let mut missing = ev(Op::Open, "/nonexistent/x");
        missing.outcome = Outcome::Error(libc::ENOENT);
        let mut signal = ev(Op::Signal, "");
        signal.arg = (4242u64 << 32) | 15;
        let got = check(&mut r, &[tcp(443, "1.1.1.1"), tcp(22, "1.1.1.1"), bind0, tcp(40000, "127.0.0.1"), missing, signal]);
        let rules: Vec<&str> = got.iter().map(|d| d.needed_rule.as_str()).collect();
        assert_eq!(rules, ["network.open_port += 22", "sandbox.signal_outside = true"], "{got:#?}");
    }
}
