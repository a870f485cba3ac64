//! Profiles: the JSON format, built-ins, `extends` resolution, path
//! variables and validation. `rights` is the shared vocabulary of Landlock
//! filesystem rights.
//!
//! Fail closed: unknown keys, malformed JSON, unknown variables, relative
//! or `..` paths, unknown rights and `extends` cycles are errors that name
//! the file (and line and column where serde can tell), never a silent
//! widening. A profile never grants more than it lists.

pub mod network;
pub mod rights;

pub mod user;

mod builtin;
mod glob;
mod resolve;
mod rollback;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::event::Facility;
use rights::{FsRight, FsRule};

pub use builtin::{BUILTINS, builtin};
pub use glob::name_glob;
pub use resolve::{
    Grant, Link, Resolved, VARIABLES, Vars, controlling_terminal_is, load, load_observed, load_str, own_terminal, read_file,
    resolve,
};
pub use rollback::{ByteSize, RollbackSettings};

/// Largest profile file accepted (a learned profile is a few KiB).
pub const MAX_PROFILE_BYTES: u64 = 4 << 20;
/// Longest `extends` chain.
pub const MAX_EXTENDS_DEPTH: usize = 8;
/// Most distinct files one profile's `extends` graph may read.
pub const MAX_EXTENDS_FILES: usize = 64;

/// Why a profile could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("reading profile {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "profile {path} is {size} bytes or more; the limit is {MAX_PROFILE_BYTES} (for one file and for all of its `extends` together)"
    )]
    TooLarge { path: String, size: u64 },
    #[error("profile {path} is a {kind}, not a regular file")]
    NotRegular { path: String, kind: &'static str },
    #[error("`extends` reads more than {MAX_EXTENDS_FILES} distinct files: {0}")]
    TooManyFiles(String),
    #[error("{path}:{line}:{column}: {message}")]
    Parse { path: String, line: usize, column: usize, message: String },
    #[error("unknown built-in profile {name:?}; built-ins: {available} (or give a path to a .json file)")]
    UnknownBuiltin { name: String, available: String },
    #[error("`extends` cycle: {0}")]
    Cycle(String),
    #[error("`extends` chain deeper than {MAX_EXTENDS_DEPTH}: {0}")]
    TooDeep(String),
    #[error("{profile}: bad path {path:?}: {why}")]
    BadPath { profile: String, path: String, why: String },
    #[error("{profile}: {message}")]
    Invalid { profile: String, message: String },
}

/// A profile as written (before `extends` and variables are resolved).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default)]
    pub meta: Meta,
    #[serde(default, skip_serializing_if = "Extends::is_empty")]
    pub extends: Extends,
    #[serde(default)]
    pub filesystem: Filesystem,
    #[serde(default)]
    pub network: Network,
    #[serde(default, skip_serializing_if = "SandboxPolicy::is_default")]
    pub sandbox: SandboxPolicy,
    #[serde(default, skip_serializing_if = "Security::is_default")]
    pub security: Security,
    /// Snapshots before `nono run` (`crate::snapshot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackSettings>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where a learned profile came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

/// Provenance of a learned profile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    pub sessions: Vec<i64>,
    pub nono_version: String,
    pub backend: String,
    pub lost_events: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub learned_at: String,
    /// The audit chain root of each source session that has one (`nono
    /// audit verify` recomputes it): signing the profile signs these too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain_roots: Vec<ChainRoot>,
}

/// A source session's audit chain root (SHA-256, hex).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainRoot {
    pub session: i64,
    pub root: String,
}

/// `extends`: one name/path or several.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Extends {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Extends {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        match self {
            Extends::None => true,
            Extends::One(_) => false,
            Extends::Many(v) => v.is_empty(),
        }
    }

    #[must_use]
    pub fn names(&self) -> Vec<String> {
        match self {
            Extends::None => Vec::new(),
            Extends::One(s) => vec![s.clone()],
            Extends::Many(v) => v.clone(),
        }
    }
}

/// Filesystem grants. `allow` = read + write, `read` = read-only, `write`
/// = write-only, on directory trees; the `_file` forms grant one file.
/// `rules` is nono's fine-grained extension (learned profiles use it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filesystem {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub write: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_file: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_file: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub write_file: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<FsRule>,
    /// Operations nono's supervisor performs on the command's behalf where
    /// Landlock cannot express the grant (an atomic save beside secrets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brokered: Vec<BrokeredRule>,
    /// Where `chmod`, `chown`, `utimensat` and the xattr calls may change
    /// metadata (Landlock has no right for them).
    #[serde(default, skip_serializing_if = "MetadataPolicy::is_default")]
    pub metadata: MetadataPolicy,
}

/// A brokered rule: in directory `dir`, entries whose names match one of
/// `names` (globs within one directory: `*` and `?`, no `/`) may undergo
/// `ops`, performed by the supervisor. A rename is allowed only when both
/// names match in the same directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokeredRule {
    pub dir: String,
    pub names: Vec<String>,
    pub ops: BTreeSet<BrokerOp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a brokered rule lets the supervisor do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerOp {
    /// Create a regular file (the new descriptor is handed to the command).
    Create,
    /// Open an existing matching file for writing.
    Write,
    /// Rename one matching name over another (an atomic replace).
    Rename,
    /// Unlink a matching file.
    Remove,
    /// Create a matching directory (a lock directory).
    Mkdir,
    /// Remove a matching directory.
    Rmdir,
    /// Change mode or timestamps of a matching entry (`chmod`, `utimensat`).
    Metadata,
}

/// Where metadata changes (`chmod`, `chown`, timestamps, xattrs) are allowed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetadataPolicy {
    /// Beneath a grant that allows writing (`write_file` on a file, or a
    /// directory rule with `write_file`), and on brokered entries with the
    /// `metadata` op; denied elsewhere.
    #[default]
    WriteGrants,
    /// Nowhere.
    None,
    /// Anywhere the user's own permissions allow (nono does not restrict them).
    Any,
}

impl MetadataPolicy {
    #[expect(clippy::trivially_copy_pass_by_ref, reason = "serde's skip_serializing_if passes a reference")]
    fn is_default(&self) -> bool {
        *self == MetadataPolicy::default()
    }
}

/// Network policy. A port list that is present (even empty) restricts TCP
/// connect (`open_port`) or bind (`listen_port`) to those ports; absent
/// leaves it unrestricted. `block` denies all network but Unix sockets.
///
/// Everything else is closed unless listed: UDP (`udp`), ICMP ping sockets
/// (`icmp`), connects to pathname Unix sockets (`unix_connect`) and socket
/// families other than Unix, IPv4 and IPv6 (`families`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub block: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_port: Option<BTreeSet<u16>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_port: Option<BTreeSet<u16>>,
    /// UDP destinations; absent means no UDP socket at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<Udp>,
    /// Hosts ICMP echo ("ping") sockets may send to; absent means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp: Option<BTreeSet<IpAddr>>,
    /// Pathname Unix sockets the command may connect (or send) to, with
    /// variables like filesystem paths; absent means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unix_connect: Option<Vec<String>>,
    /// Socket families beyond `unix`, `inet` and `inet6` (`netlink`,
    /// `vsock`, ...; see `crate::event::SOCKET_FAMILIES`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub families: Vec<String>,
    /// Host names nono's proxy lets the command reach (issue 23). When
    /// present (even `[]`), the command reaches the network only through
    /// the proxy: TCP connects go to the proxy alone, DNS is the proxy's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_domains: Option<Vec<network::DomainEntry>>,
    /// Secrets the proxy injects; the command gets a phantom in `env`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<network::Credential>,
}

/// UDP destinations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Udp {
    /// Queries to the system's DNS resolvers (the `nameserver`s of
    /// `/etc/resolv.conf`, read when the sandbox starts) on port 53.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dns: bool,
    /// Other destinations, `ADDR:PORT` (`[v6]:PORT` for IPv6).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub to: BTreeSet<SocketAddr>,
}

/// Kernel facilities beyond files and sockets, and Landlock's scoping
/// (ABI 6): by default the command cannot signal or reach abstract Unix
/// sockets of processes outside the sandbox, and cannot use `io_uring`,
/// keyrings, `SysV` IPC or POSIX message queues.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxPolicy {
    /// Let the command signal processes outside the sandbox.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub signal_outside: bool,
    /// Let the command connect to abstract Unix sockets outside the sandbox.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub abstract_unix_outside: bool,
    /// Facilities the command may use.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub allow: BTreeSet<Facility>,
}

impl SandboxPolicy {
    fn is_default(&self) -> bool {
        *self == SandboxPolicy::default()
    }

    /// Parent then child: what either allows is allowed (grants add up).
    #[must_use]
    pub fn merge(&self, other: &SandboxPolicy) -> SandboxPolicy {
        SandboxPolicy {
            signal_outside: self.signal_outside || other.signal_outside,
            abstract_unix_outside: self.abstract_unix_outside || other.abstract_unix_outside,
            allow: self.allow.union(&other.allow).copied().collect(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Security {
    #[serde(default)]
    pub wsl2_proxy_policy: Wsl2ProxyPolicy,
}

impl Security {
    fn is_default(&self) -> bool {
        *self == Security::default()
    }
}

/// What to do on WSL2 with a proxy-only network policy, which WSL2 cannot
/// enforce (its init claims seccomp user notification).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Wsl2ProxyPolicy {
    #[default]
    Error,
    InsecureProxy,
}

impl Profile {
    /// Parses profile JSON; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let p: Profile = serde_json::from_str(text).map_err(|e| ProfileError::Parse {
            path: origin.to_owned(),
            line: e.line(),
            column: e.column(),
            message: e.to_string().split(" at line ").next().unwrap_or_default().to_owned(),
        })?;
        Ok(p)
    }

    pub fn to_json_pretty(&self) -> Result<String, serde_json::Error> {
        let mut s = serde_json::to_string_pretty(self)?;
        s.push('\n');
        Ok(s)
    }

    /// Every filesystem grant of this profile (not of its parents) as
    /// `(path, rights, file)`, paths still spelled with variables.
    #[must_use]
    pub fn fs_grants(&self) -> Vec<(String, BTreeSet<FsRight>, bool)> {
        let fs = &self.filesystem;
        let file_only =
            |set: BTreeSet<FsRight>| -> BTreeSet<FsRight> { set.into_iter().filter(|r| r.applies_to_file()).collect() };
        let all: BTreeSet<FsRight> = FsRight::ALL.into_iter().collect();
        let mut out = Vec::new();
        for p in &fs.allow {
            out.push((p.clone(), all.clone(), false));
        }
        for p in &fs.read {
            out.push((p.clone(), FsRight::read_set(), false));
        }
        for p in &fs.write {
            out.push((p.clone(), FsRight::write_set(), false));
        }
        for p in &fs.allow_file {
            out.push((p.clone(), file_only(all.clone()), true));
        }
        for p in &fs.read_file {
            out.push((p.clone(), file_only(FsRight::read_set()), true));
        }
        for p in &fs.write_file {
            out.push((p.clone(), file_only(FsRight::write_set()), true));
        }
        for r in &fs.rules {
            out.push((r.path.clone(), r.access.clone(), r.file));
        }
        out
    }

    #[must_use]
    pub fn display_name(&self) -> &str {
        self.meta.name.as_deref().unwrap_or("(unnamed)")
    }
}

/// Directory of a profile path, for resolving relative `extends` entries.
pub(crate) fn dir_of(path: &std::path::Path) -> PathBuf {
    path.parent().map_or_else(|| PathBuf::from("."), std::path::Path::to_path_buf)
}

#[cfg(test)]
pub(crate) mod tests;
