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
use crate::profile::name_glob as glob;

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
    /// Proxy-only networking (issue 23): every TCP connect must go to
    /// this address (nono's proxy) or to one of the sandbox's own
    /// loopback listeners (see `crate::enforce::proxy`).
    pub proxy_only: Option<SocketAddr>,
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

    /// [`Self::brokered_for`] for a directory named by path (`nono audit
    /// check`): by the identity of what the path names now, else (gone) by
    /// the rule's path.
    #[must_use]
    pub fn brokered_at(&self, dir: &std::path::Path, name: &[u8], op: BrokerOp) -> Option<&BrokeredDir> {
        match identity(dir) {
            Some((dev, ino)) => self.brokered_for(dev, ino, name, op),
            None => self.brokered.iter().find(|b| b.path == dir && b.ops.contains(&op) && b.names.iter().any(|g| glob(g, name))),
        }
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
