//! What the broker enforces, decided before the command runs: brokered
//! directories (with descriptors opened now, so a later rename of a path
//! cannot redirect them), where metadata may change, which Unix sockets
//! and datagram destinations the command may reach. Pure data plus the
//! small pure decisions on it (name globs, destinations).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;

use crate::profile::{BrokerOp, MetadataPolicy, Resolved, Udp};

use super::caller::open_path;

/// One brokered directory, held open.
#[derive(Debug)]
pub struct BrokeredDir {
    pub path: PathBuf,
    /// `O_PATH` descriptor of the directory, opened when the plan was made.
    pub fd: OwnedFd,
    pub dev: u64,
    pub ino: u64,
    /// Name globs, as raw bytes (`*`, `?`).
    pub names: Vec<Vec<u8>>,
    pub ops: BTreeSet<BrokerOp>,
    /// Where the rule comes from, for messages.
    pub origin: String,
}

/// Everything the broker decides on.
#[derive(Debug, Default)]
pub struct BrokerPlan {
    pub brokered: Vec<BrokeredDir>,
    /// Brokered rules whose directory does not exist here (reported).
    pub skipped: Vec<String>,
    pub metadata: MetadataPolicy,
    /// Directories whose Landlock rule allows `write_file` (metadata may
    /// change beneath them), as `(dev, ino)`.
    pub write_dirs: Vec<(u64, u64)>,
    /// Single files whose rule allows `write_file`.
    pub write_files: Vec<(u64, u64)>,
    /// Every single-file Landlock rule's inode: a brokered replace keeps
    /// such a file's inode, or its rule would stop applying.
    pub rule_files: Vec<(u64, u64)>,
    /// Pathname Unix sockets the command may connect or send to.
    pub unix_connect: Vec<PathBuf>,
    pub udp: Option<Udp>,
    pub nameservers: Vec<IpAddr>,
    pub icmp: Option<BTreeSet<IpAddr>>,
    /// TCP ports the command may listen on (`None`: unrestricted).
    pub listen_ports: Option<BTreeSet<u16>>,
    /// TCP ports the command may connect to (`None`: unrestricted), as
    /// Landlock enforces them.
    pub connect_ports: Option<BTreeSet<u16>>,
}

/// `(dev, ino)` of a path, following symlinks.
fn identity(p: &std::path::Path) -> Option<(u64, u64)> {
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

impl BrokerPlan {
    /// The broker's part of a resolved profile and its Landlock plan.
    #[must_use]
    pub fn new(resolved: &Resolved, plan: &crate::enforce::Plan, nameservers: Vec<IpAddr>) -> BrokerPlan {
        use crate::profile::rights::FsRight;
        let mut out = BrokerPlan {
            metadata: resolved.metadata,
            unix_connect: resolved.unix_connect.clone().unwrap_or_default(),
            udp: resolved.network.udp.clone(),
            icmp: resolved.network.icmp.clone(),
            nameservers,
            listen_ports: if plan.block_net { Some(BTreeSet::new()) } else { plan.bind_ports.clone() },
            connect_ports: if plan.block_net { Some(BTreeSet::new()) } else { plan.connect_ports.clone() },
            ..BrokerPlan::default()
        };
        for b in &resolved.brokered {
            let Some(shown) = b.dir.to_str() else { continue };
            match open_path(shown, libc::O_DIRECTORY) {
                Ok(fd) => {
                    let Some((dev, ino)) = identity(&b.dir) else { continue };
                    let names = b
                        .names
                        .iter()
                        .map(|n| crate::event::unescape_bytes(n).unwrap_or_else(|_| n.as_bytes().to_vec()))
                        .collect();
                    out.brokered.push(BrokeredDir {
                        path: b.dir.clone(),
                        fd,
                        dev,
                        ino,
                        names,
                        ops: b.ops.clone(),
                        origin: b.origin.clone(),
                    });
                }
                Err(_) => out.skipped.push(format!("{} ({}): does not exist here", b.spelled, b.origin)),
            }
        }
        for rule in &plan.fs {
            let Some(id) = identity(&rule.path) else { continue };
            if rule.file {
                out.rule_files.push(id);
            }
            if rule.rights.contains(&FsRight::WriteFile) {
                if rule.file {
                    out.write_files.push(id);
                } else {
                    out.write_dirs.push(id);
                }
            }
        }
        out
    }

    /// Whether any part of the plan needs the broker at all.
    #[must_use]
    pub fn needs_fs_notifications(&self) -> bool {
        !self.brokered.is_empty()
    }

    /// The brokered rule that covers `name` in the directory `(dev, ino)`
    /// for `op`, if any.
    #[must_use]
    pub fn brokered_for(&self, dev: u64, ino: u64, name: &[u8], op: BrokerOp) -> Option<&BrokeredDir> {
        self.brokered
            .iter()
            .find(|b| b.dev == dev && b.ino == ino && b.ops.contains(&op) && b.names.iter().any(|g| glob(g, name)))
    }

    /// Whether any brokered rule's names could match `name` (a cheap test
    /// before resolving directories).
    #[must_use]
    pub fn name_may_be_brokered(&self, name: &[u8]) -> bool {
        self.brokered.iter().any(|b| b.names.iter().any(|g| glob(g, name)))
    }

    /// Whether a datagram to `to` is allowed on a socket of kind `proto`.
    #[must_use]
    pub fn datagram_allowed(&self, proto: crate::event::Proto, to: SocketAddr) -> bool {
        match proto {
            crate::event::Proto::Udp => self
                .udp
                .as_ref()
                .is_some_and(|u| u.to.contains(&to) || (u.dns && to.port() == 53 && self.nameservers.contains(&to.ip()))),
            crate::event::Proto::Icmp => self.icmp.as_ref().is_some_and(|i| i.contains(&to.ip())),
            _ => false,
        }
    }
}

/// Glob match of one name: `*` any run of bytes, `?` one byte; no `/` in
/// names, so nothing crosses a directory.
#[must_use]
pub fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == name[n]) && pattern[p] != b'*' {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = n;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            n = mark;
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_one_name() {
        assert!(glob(b".claude.json.tmp.*", b".claude.json.tmp.4242.1732912345678"));
        assert!(glob(b".claude.json", b".claude.json"));
        assert!(!glob(b".claude.json", b".claude.json.lock"));
        assert!(glob(b"*.lock", b".claude.json.lock"));
        assert!(glob(b"a?c", b"abc"));
        assert!(!glob(b"a?c", b"ac"));
        assert!(!glob(b".claude.json.tmp.*", b".bashrc"));
        assert!(glob(b"*", b""));
    }
}
