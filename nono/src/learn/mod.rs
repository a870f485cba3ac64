//! Profile synthesis: recorded [`Event`]s in, least-privilege Landlock
//! rules out. Pure: no I/O, no SQL, no aya, no environment, no clock;
//! everything comes in through [`LearnContext`] and the events, so every
//! rule here is unit-tested without a kernel.
//!
//! Data flow: [`Synthesiser::add`] folds each event into per-path rights
//! (`rights`: access -> Landlock rights, following the kernel's hooks),
//! then [`Synthesiser::finish`] generalises them (`generalise`) into
//! [`FsRule`]s spelled with `$CWD`, `$HOME`, ... variables. [`merge`]
//! combines several sessions.
//!
//! # Threat model
//! The learned profile confines an AI agent that may be prompt-injected.
//! The learner must not turn "the agent touched it once" into a grant
//! that exposes credentials or gives persistence:
//! - sensitive paths (`sensitive`) are never granted, nor any directory
//!   that contains one, because a Landlock rule on a directory covers all
//!   of it; they are reported in [`Learned::sensitive`] and granted only
//!   when the user lists them in [`LearnContext::allow_sensitive`];
//!   failed or denied attempts on them are reported there too;
//! - accesses denied while learning are never granted (a warning says so);
//! - incomplete paths are never granted (the path may be wrong);
//! - generalisation widens reads of read-only system trees, and the
//!   workdir, tool caches and temp dirs; anything else stays exact or moves
//!   up one level only when the name is known to change between runs.
//!
//! # Failed accesses (decision)
//! For `open` of a missing file without `O_CREAT` the kernel fails the
//! lookup in `path_openat` (`open_last_lookups`/`step_into` -> `-ENOENT`)
//! before `do_open` -> `vfs_open` -> `security_file_open`, Landlock's only
//! open hook; `execve` fails the same way in `do_open_execat`. Landlock
//! does not restrict path walks. So a probe of a missing file (`$PATH`
//! search, config search paths) returns `ENOENT` under the sandbox with
//! **no right at all**: the learner grants nothing for it. The same holds
//! for the other errors raised before any LSM hook (`EEXIST` from
//! `mkdir`/`O_EXCL` on an existing entry, `ENOTDIR`, `ELOOP`, `EISDIR`,
//! `EXDEV`, `EROFS`, `ETXTBSY`, ...): they are counted, not granted.
//! Errors raised after the hook (`ENOTEMPTY` from `rmdir`, `ENXIO` from a
//! FIFO, ...) are not granted either, but warned about, since under the
//! sandbox they turn into `EACCES`. `EACCES`/`EPERM` while learning:
//! not granted, warned. A non-blocking TCP `connect` that returned
//! `EINPROGRESS` passed the check and counts as a use of the port.
//!
//! # Generalisation
//! See `generalise` for the order of decisions. Every rule that is not the
//! exact observed path carries an [`Explanation`].
//!
//! `/proc/<pid>/...` of traced processes: reads collapse to a read-only
//! `/proc` rule (pids change every run, and `/proc/self` resolved when the
//! sandbox is built names one process only); Landlock's ptrace restriction
//! keeps other processes' `environ`, `mem` and fds unreadable. Writes are
//! kept exact, spelled `/proc/self/...`, with a warning.
//!
//! # Network and kernel facilities
//! TCP connect/bind ports become `open_port`/`listen_port`; a UDP or ICMP
//! destination becomes `network.udp`/`network.icmp` (queries to a
//! nameserver of the learning machine are `udp.dns`), a pathname Unix
//! socket connected or sent to becomes `network.unix_connect`, a socket
//! family beyond Unix/IP `network.families`. Binding a pathname Unix socket
//! creates a socket file (`make_sock` on its parent). Signals to processes
//! outside the traced tree, connects to abstract Unix sockets nobody in the
//! tree bound, and `io_uring`, keyring, `SysV` IPC and mqueue use set the matching
//! `sandbox` keys; each is reported ([`Learned::notes`]), because each
//! relaxes a default of the sandbox. Container-runtime and agent sockets
//! (Docker, ssh-agent, ...) are sensitive: never granted silently.
//!
//! # Steady state
//! One run is not the next: what a run creates in a directory the agent
//! owns (the workdir, temp and cache dirs, its own state directories such
//! as `~/.app` or `$XDG_CONFIG_HOME/app`, directories the run created), a
//! later run reads, overwrites, renames and removes. The learner adds those
//! rights to such rules and marks them ([`FsRule::anticipated`], and an
//! explanation), unless [`LearnContext::anticipate`] is off.

mod agg;
pub mod amend;
pub mod amend_domains;
mod brokered;
mod check;
pub mod dns;
pub mod domains;
mod fleet;
mod generalise;
mod layout;
mod merge;
mod names;
mod net;
mod paths;
mod rights;
mod sensitive;
mod synth;
#[cfg(test)]
mod tests;
mod to_profile;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::event::{Event, Op};
use crate::profile::rights::{FsRight, FsRule};
use crate::profile::{SandboxPolicy, Udp};

pub use check::{Grant, Grants};
pub use fleet::{FleetMerge, merge_fleet};
pub use merge::merge;
pub use rights::rights_for_event;
pub use sensitive::{
    Class, Exposed, Reach, SensitiveEntry, changes_entries, exposure, glob_intersects, glob_matches, is_companion,
    sensitive_entries, sensitive_paths,
};
pub use synth::Synthesiser;

/// Where the recorded session ran: the values behind the profile
/// variables, and the user's exceptions to the sensitive list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnContext {
    pub home: PathBuf,
    /// The workdir (`$CWD`).
    pub cwd: PathBuf,
    pub tmpdir: PathBuf,
    pub xdg_config_home: PathBuf,
    pub xdg_cache_home: PathBuf,
    /// Sensitive paths the user allows (they and everything beneath).
    pub allow_sensitive: Vec<PathBuf>,
    /// `$XDG_RUNTIME_DIR` of the learning user (agent and container
    /// sockets live there), if known.
    #[serde(default)]
    pub runtime_dir: Option<PathBuf>,
    /// `$SSH_AUTH_SOCK` of the learning session: the ssh-agent socket signs
    /// with the user's keys, so it is sensitive.
    #[serde(default)]
    pub ssh_auth_sock: Option<PathBuf>,
    /// The nameservers of the learning machine (`/etc/resolv.conf`): UDP to
    /// one of them on port 53 is DNS.
    #[serde(default)]
    pub nameservers: Vec<IpAddr>,
    /// Add the rights a later run needs in directories the agent owns (see
    /// the module docs). On unless `--no-anticipate`.
    #[serde(default = "yes")]
    pub anticipate: bool,
    /// The directories of `$PATH` (of the learning or running nono): those
    /// are persistence paths (a program placed there runs instead of the
    /// command the user meant), besides the usual ones in `$HOME`.
    #[serde(default)]
    pub path_dirs: Vec<PathBuf>,
}

fn yes() -> bool {
    true
}

/// The outcome of synthesis (or of a [`merge`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Learned {
    /// Sorted by path; paths use `$CWD`/`$HOME`/`$TMPDIR`/`$XDG_*` where they apply.
    pub rules: Vec<FsRule>,
    /// Saves and locks beside secrets, performed by nono's supervisor.
    pub brokered: Vec<crate::profile::BrokeredRule>,
    pub connect_ports: BTreeSet<u16>,
    pub bind_ports: BTreeSet<u16>,
    /// UDP use: `None` when the run created no UDP socket.
    pub udp: Option<Udp>,
    /// ICMP ("ping") destinations: `None` when the run created no ICMP socket.
    pub icmp: Option<BTreeSet<IpAddr>>,
    /// Pathname Unix sockets connected or sent to (rule spelling).
    pub unix_connect: BTreeSet<String>,
    /// Socket families beyond Unix and IP (`network.families` names).
    pub families: BTreeSet<String>,
    /// Scoping relaxations and facilities the run needed.
    pub sandbox: SandboxPolicy,
    /// What relaxed a sandbox default, and why (`signal_outside` because
    /// `kill` signalled pid 42, ...), for the summary.
    pub notes: Vec<String>,
    /// Accesses to sensitive paths that were not granted.
    pub sensitive: Vec<SensitiveHit>,
    /// Each generalisation: which concrete paths became which rule, and why.
    pub explanations: Vec<Explanation>,
    pub warnings: Vec<String>,
    pub stats: LearnStats,
}

/// An access that needed a sensitive path (or a directory containing one)
/// and was therefore not granted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensitiveHit {
    /// The concrete path that needed rights.
    pub path: String,
    /// The entry of the sensitive list it is (or contains).
    pub matched: String,
    pub rights: BTreeSet<FsRight>,
    pub ops: BTreeSet<Op>,
    /// Some of the processes involved (capped).
    pub pids: Vec<u32>,
    pub comms: Vec<String>,
    pub why: String,
    /// The class of the entry: a secret, or a file that runs code outside
    /// the sandbox (persistence: readable, never modified).
    #[serde(default)]
    pub class: sensitive::Class,
    /// Only failed lookups of a path that does not exist (`ENOENT` on
    /// `~/.netrc`): nothing was exposed or refused, worth a note only.
    #[serde(default)]
    pub missing: bool,
}

/// One generalisation, for `nono learn --explain`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// The rule's path, as in [`Learned::rules`].
    pub rule_path: String,
    /// Some of the concrete (absolute) paths folded into the rule.
    pub from: Vec<String>,
    /// How many concrete paths were folded in (`from` is capped).
    pub paths: usize,
    pub reason: String,
}

/// Counters of a synthesis.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnStats {
    /// Sessions this result stands for (1 from [`synthesise`], summed by [`merge`]).
    pub runs: u32,
    pub events: u64,
    /// Events that contributed a right or a port.
    pub used: u64,
    /// Events that contributed nothing, by reason.
    pub ignored: BTreeMap<String, u64>,
    pub distinct_paths: u64,
}

/// Synthesises a profile from one session's events: a thin wrapper over
/// [`Synthesiser`].
#[must_use]
pub fn synthesise(events: impl IntoIterator<Item = Event>, ctx: &LearnContext) -> Learned {
    let mut s = Synthesiser::new(ctx);
    for e in events {
        s.add(&e);
    }
    s.finish()
}
