//! The replay check behind `nono audit check`: given recorded events and a
//! profile's resolved grants, list every access Landlock would deny, with
//! the rule that would be needed. Pure, like the rest of `learn`.
//!
//! Landlock's semantics, as modelled here: an access needing right R on
//! path P is allowed iff some rule on P itself or on one of its ancestor
//! directories grants R (rights of all such rules add up); a file rule
//! only covers that file. Rights the ruleset does not handle are always
//! allowed. TCP connect/bind are allowed iff the port list is absent or
//! holds the port.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::event::{Event, Op, Outcome};
use crate::profile::rights::FsRight;

use super::rights_for_event;

/// One absolute grant of a resolved profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub path: PathBuf,
    pub rights: BTreeSet<FsRight>,
    /// Covers only this file, not a tree.
    pub file: bool,
}

/// A resolved profile, as the check sees it.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    pub fs: Vec<Grant>,
    /// Rights the ruleset handles (all of them for a learned profile).
    pub handled: BTreeSet<FsRight>,
    /// `None`: TCP connect unrestricted.
    pub connect_ports: Option<BTreeSet<u16>>,
    pub bind_ports: Option<BTreeSet<u16>>,
    /// All network denied (`network.block`).
    pub block_net: bool,
}

/// An access the profile would deny, aggregated over identical needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Denial {
    pub op: Op,
    /// The path (or `tcp:PORT` for network).
    pub path: String,
    /// Rights the access needs that no rule grants.
    pub missing: BTreeSet<FsRight>,
    /// The rule that would allow it, in profile terms.
    pub needed_rule: String,
    pub count: u64,
    /// One process that did it.
    pub comm: String,
    pub pid: u32,
}

impl Grants {
    /// Rights granted on `path`: by a rule on it or on a directory above it.
    pub fn granted(&self, path: &Path) -> BTreeSet<FsRight> {
        let mut got = BTreeSet::new();
        for g in &self.fs {
            let covers = if g.file { g.path == path } else { path.starts_with(&g.path) };
            if covers {
                got.extend(g.rights.iter().copied());
            }
        }
        got
    }
}

/// Every recorded access `grants` would deny. Accesses that already failed
/// before any Landlock hook (`ENOENT`, ...) need no right and never show.
#[must_use]
pub fn check<'a>(events: impl IntoIterator<Item = &'a Event>, grants: &Grants) -> Vec<Denial> {
    let mut out: BTreeMap<(Op, String, String), Denial> = BTreeMap::new();
    for e in events {
        if matches!(e.op, Op::Connect | Op::Bind) {
            check_net(e, grants, &mut out);
            continue;
        }
        for (path, rights, file) in rights_for_event(e) {
            let granted = grants.granted(&path);
            let missing: BTreeSet<FsRight> =
                rights.iter().copied().filter(|r| grants.handled.contains(r) && !granted.contains(r)).collect();
            if missing.is_empty() {
                continue;
            }
            let p = crate::event::escape_path(&path);
            let needed_rule = format!(
                "{{\"path\": {:?}, \"access\": [{}]{}}}",
                p,
                missing.iter().map(|r| format!("{:?}", r.name())).collect::<Vec<_>>().join(", "),
                if file { ", \"file\": true" } else { "" }
            );
            let key = (e.op, p.clone(), needed_rule.clone());
            out.entry(key).and_modify(|d| d.count += 1).or_insert(Denial {
                op: e.op,
                path: p,
                missing,
                needed_rule,
                count: 1,
                comm: e.comm.clone(),
                pid: e.pid,
            });
        }
    }
    out.into_values().collect()
}

fn check_net(e: &Event, grants: &Grants, out: &mut BTreeMap<(Op, String, String), Denial>) {
    let Some(net) = &e.net else { return };
    // Only TCP over IP is port-restricted by Landlock; AF_UNIX paths are not.
    if !matches!(net.family, 2 | 10) || matches!(e.outcome, Outcome::Error(_)) && e.outcome.errno() != libc::EINPROGRESS {
        return;
    }
    let (list, key) =
        if e.op == Op::Connect { (&grants.connect_ports, "open_port") } else { (&grants.bind_ports, "listen_port") };
    let denied = grants.block_net || list.as_ref().is_some_and(|ports| !ports.contains(&net.port));
    if !denied {
        return;
    }
    let path = format!("tcp:{}", net.port);
    let needed_rule =
        if grants.block_net { "network.block = false".to_owned() } else { format!("network.{key} += {}", net.port) };
    out.entry((e.op, path.clone(), needed_rule.clone())).and_modify(|d| d.count += 1).or_insert(Denial {
        op: e.op,
        path,
        missing: BTreeSet::new(),
        needed_rule,
        count: 1,
        comm: e.comm.clone(),
        pid: e.pid,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Access, NetAddr};

    fn open(path: &str, write: bool) -> Event {
        Event {
            time_ns: 0,
            pid: 7,
            tid: 7,
            ppid: 1,
            uid: 0,
            comm: "agent".into(),
            exe: None,
            op: Op::Open,
            path: Some(path.into()),
            path2: None,
            access: Access { read: !write, write, ..Access::default() },
            arg: if write { libc::O_WRONLY as u64 } else { 0 },
            file_type: 0o100_000,
            outcome: Outcome::Ok,
            net: None,
            incomplete: false,
        }
    }

    fn grants() -> Grants {
        Grants {
            fs: vec![
                Grant { path: "/usr".into(), rights: FsRight::read_set(), file: false },
                Grant { path: "/w".into(), rights: FsRight::ALL.into_iter().collect(), file: false },
                Grant { path: "/etc/hosts".into(), rights: [FsRight::ReadFile].into(), file: true },
            ],
            handled: FsRight::ALL.into_iter().collect(),
            connect_ports: Some([443].into()),
            bind_ports: None,
            block_net: false,
        }
    }

    #[test]
    fn granted_accesses_pass_and_others_name_the_missing_rule() {
        let events = [
            open("/usr/lib/libc.so", false),
            open("/w/src/main.rs", true),
            open("/etc/hosts", false),
            open("/etc/hosts", true),
            open("/home/u/.ssh/id_rsa", false),
            open("/home/u/.ssh/id_rsa", false),
        ];
        let d = check(&events, &grants());
        assert_eq!(d.len(), 2, "{d:#?}");
        assert_eq!(d[0].path, "/etc/hosts");
        assert!(d[0].missing.contains(&FsRight::WriteFile));
        assert_eq!(d[1].path, "/home/u/.ssh/id_rsa");
        assert_eq!(d[1].count, 2);
        assert!(d[1].needed_rule.contains("read_file"), "{}", d[1].needed_rule);
    }

    #[test]
    fn a_failed_lookup_needs_nothing_and_ports_are_checked() {
        let mut missing = open("/nope/x", false);
        missing.outcome = Outcome::Error(libc::ENOENT);
        let mut c443 = open("", false);
        c443.op = Op::Connect;
        c443.path = None;
        c443.net = Some(NetAddr { family: 2, addr: Some("1.1.1.1".parse().expect("ip")), port: 443, sock_type: 1, protocol: 0 });
        let mut c22 = c443.clone();
        c22.net = Some(NetAddr { family: 2, addr: Some("1.1.1.1".parse().expect("ip")), port: 22, sock_type: 1, protocol: 0 });
        let d = check(&[missing, c443, c22], &grants());
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!(d[0].path, "tcp:22");
        assert_eq!(d[0].needed_rule, "network.open_port += 22");
    }

    #[test]
    fn escaped_names_are_checked_as_the_bytes_they_stand_for() {
        use std::os::unix::ffi::OsStrExt as _;
        let mut g = grants();
        let real = PathBuf::from(std::ffi::OsStr::from_bytes(b"/srv/caf\xe9"));
        g.fs.push(Grant { path: real, rights: [FsRight::ReadFile].into(), file: true });
        // The file itself, as the store spells it, is granted; a file whose
        // name really is `caf\xe9` (a backslash) is not.
        let d = check(&[open("/srv/caf\\xe9", false), open("/srv/caf\\\\xe9", false)], &g);
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!(d[0].path, "/srv/caf\\\\xe9");
    }
}
