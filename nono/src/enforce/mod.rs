//! Enforcement: a resolved profile becomes a Landlock ruleset (filesystem
//! rights, TCP ports, scoping) plus a seccomp filter for what Landlock
//! cannot reach (`seccomp::baseline`), applied to a process just before it
//! execs the command. `sensitive` refuses plans that would expose secrets
//! or let the command rewrite its own profile.
//!
//! # Threat model
//! The command is an AI agent that may be prompt-injected into reading
//! secrets, writing outside its workdir, talking to the network or
//! escaping through the user's other processes. After `apply`, the process
//! and everything it execs or forks can only reach what the plan grants:
//! Landlock domains and seccomp filters are inherited and cannot be
//! lifted, and `no_new_privs` stops set-uid programs from escaping.
//! - Landlock (ABI 1+): filesystem rights; ptrace of processes outside the
//!   domain; mounts. ABI 4: TCP connect/bind ports. ABI 6: scoping
//!   (signals and abstract Unix sockets stay inside the sandbox unless
//!   `sandbox.signal_outside` / `sandbox.abstract_unix_outside`).
//! - seccomp (always): terminal injection, socket kinds the port rules do
//!   not see, UDP and ICMP unless listed, TCP Fast Open, `io_uring`, keyrings,
//!   `SysV` IPC, POSIX message queues, the i386 and x32 entry points.
//! - Descriptors above 2 are closed before exec (`record::spawn`).
//!
//! Not restricted: reads of descriptors passed explicitly, path walks
//! (`stat` of any path), connects to pathname Unix sockets, UDP
//! destinations once UDP is allowed, metadata changes (`chmod`, `chown`,
//! `utimensat`, xattrs) -- the last three need the supervisor's broker.
//! Degradation on older kernels is always reported, and `--strict` makes
//! it fatal; a ruleset the kernel does not enforce at all is always fatal.
//!
//! `replay` decides, with the same plan, broker plan and seccomp baseline,
//! what a run would refuse of a recorded session (`nono audit check`).
//!
//! The plan is pure (`plan`), the kernel objects are built in the parent
//! (`prepare`: opens every rule path, so a missing path is reported before
//! anything runs, and compiles the seccomp program), and only
//! `Prepared::apply` runs in the child.

pub mod seccomp;
pub mod sensitive;

pub mod attribute;
pub mod broker;
mod dac;
pub mod proxy;
pub mod replay;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreated, RulesetCreatedAttr, RulesetStatus, Scope,
};

use crate::event::Facility;
use crate::profile::rights::FsRight;
use crate::profile::{MetadataPolicy, Resolved};

/// Why a sandbox could not be built or applied.
#[derive(Debug, thiserror::Error)]
pub enum EnforceError {
    #[error("Landlock: {0}")]
    Landlock(#[from] landlock::RulesetError),
    #[error("the kernel does not enforce Landlock ({0}); refusing to run unconfined")]
    NotEnforced(String),
    #[error("--strict: this kernel cannot enforce everything the profile asks: {0}")]
    Degraded(String),
    #[error("seccomp: {0}")]
    Seccomp(#[from] seccomp::SeccompError),
    #[error("opening {path} for a Landlock rule")]
    Open {
        path: String,
        #[source]
        source: landlock::PathFdError,
    },
}

/// One filesystem rule of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanRule {
    pub path: PathBuf,
    pub rights: BTreeSet<FsRight>,
    pub file: bool,
    pub origins: Vec<String>,
}

/// What will be enforced, before any syscall.
#[expect(clippy::struct_excessive_bools, reason = "independent policy switches, each from one profile key")]
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub fs: Vec<PlanRule>,
    /// Rules left out, with the reason (e.g. the path does not exist).
    pub skipped: Vec<String>,
    pub connect_ports: Option<BTreeSet<u16>>,
    pub bind_ports: Option<BTreeSet<u16>>,
    pub block_net: bool,
    /// `network.udp` is present (UDP sockets allowed).
    pub udp: bool,
    /// `network.icmp` is present (ICMP echo sockets allowed).
    pub icmp: bool,
    /// Socket families allowed beyond Unix, IPv4 and IPv6 (`AF_*`).
    pub families: BTreeSet<i32>,
    /// `sandbox.allow`.
    pub facilities: BTreeSet<Facility>,
    /// `sandbox.signal_outside`: no signal scoping.
    pub signal_outside: bool,
    /// `sandbox.abstract_unix_outside`: no abstract Unix socket scoping.
    pub abstract_unix_outside: bool,
    /// Rules of the profile only the supervisor's broker can enforce,
    /// described for people; nothing enforces them yet.
    pub needs_broker: Vec<String>,
    /// Weaker spots the profile chose (e.g. `io_uring` with restricted
    /// network), described for people.
    pub warnings: Vec<String>,
    /// The profile's `rollback` section (snapshots are taken by `nono run`).
    pub rollback: Option<crate::profile::RollbackSettings>,
}

/// Folds the resolved grants into one rule per path. A path that does not
/// exist cannot carry a Landlock rule: it is skipped (never widened to its
/// parent) and reported. A directory grant on a file keeps only the
/// rights a file can hold.
#[must_use]
pub fn plan(resolved: &Resolved) -> Plan {
    let mut by_path: BTreeMap<PathBuf, PlanRule> = BTreeMap::new();
    let mut skipped = Vec::new();
    for g in &resolved.grants {
        let meta = std::fs::metadata(&g.path);
        let Ok(meta) = meta else {
            if !g.origin.starts_with("builtin:") {
                skipped.push(format!("{} ({}): does not exist here", g.spelled, g.origin));
            }
            continue;
        };
        let is_file = !meta.is_dir();
        let rights: BTreeSet<FsRight> =
            if is_file { g.rights.iter().copied().filter(|r| r.applies_to_file()).collect() } else { g.rights.clone() };
        if rights.is_empty() {
            skipped.push(format!("{} ({}): only directory rights, but it is a file", g.spelled, g.origin));
            continue;
        }
        let rule = by_path.entry(g.path.clone()).or_insert_with(|| PlanRule {
            path: g.path.clone(),
            rights: BTreeSet::new(),
            file: is_file,
            origins: Vec::new(),
        });
        rule.rights.extend(rights);
        if !rule.origins.contains(&g.origin) {
            rule.origins.push(g.origin.clone());
        }
    }
    let net = &resolved.network;
    let families = net
        .families
        .iter()
        .filter_map(|name| crate::event::SOCKET_FAMILIES.iter().find(|(n, _)| n == name).map(|(_, f)| *f))
        .collect();
    let mut plan = Plan {
        fs: by_path.into_values().collect(),
        skipped,
        connect_ports: net.open_port.clone(),
        bind_ports: net.listen_port.clone(),
        block_net: net.block,
        udp: net.udp.is_some(),
        icmp: net.icmp.is_some(),
        families,
        facilities: resolved.sandbox.allow.clone(),
        signal_outside: resolved.sandbox.signal_outside,
        abstract_unix_outside: resolved.sandbox.abstract_unix_outside,
        needs_broker: needs_broker(resolved),
        warnings: Vec::new(),
        rollback: resolved.rollback.clone(),
    };
    plan.warn();
    plan
}

/// What the profile asks that only the supervisor's broker (issue 14) can
/// do. The defaults (no `unix_connect`, metadata beneath write grants) are
/// not listed: no profile can have them enforced yet, and the README's
/// threat model says so once.
fn needs_broker(r: &Resolved) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(udp) = &r.network.udp {
        let what = if udp.dns || !udp.to.is_empty() { "its destinations" } else { "that it has no destination" };
        out.push(format!("network.udp: UDP sockets are allowed, but not {what}: UDP can reach any host"));
    }
    if let Some(paths) = &r.unix_connect {
        out.push(format!(
            "network.unix_connect ({} path(s)): connects to pathname Unix sockets are not restricted to them",
            paths.len()
        ));
    }
    if !r.brokered.is_empty() {
        out.push(format!(
            "filesystem.brokered ({} rule(s)): the operations they allow will be denied (only the broker performs them)",
            r.brokered.len()
        ));
    }
    if r.metadata == MetadataPolicy::None {
        out.push("filesystem.metadata = none: chmod, chown, utimensat and xattr changes are not restricted".to_owned());
    }
    out
}

impl Plan {
    /// Forbids all network (`--block-net`).
    pub fn block_network(&mut self) {
        self.block_net = true;
        self.warn();
    }

    fn warn(&mut self) {
        self.warnings.clear();
        let restricted = self.block_net || self.connect_ports.is_some() || self.bind_ports.is_some() || !self.udp;
        if self.facilities.contains(&Facility::IoUring) && restricted && !self.block_net {
            self.warnings.push(
                "sandbox.allow lists io_uring: its socket and send operations bypass the seccomp network rules (socket kinds, UDP, TCP Fast Open)"
                    .to_owned(),
            );
        }
    }

    /// The seccomp baseline for this plan.
    #[must_use]
    pub fn seccomp_policy(&self) -> seccomp::baseline::Policy {
        seccomp::baseline::Policy {
            connect_restricted: self.connect_ports.is_some(),
            bind_restricted: self.bind_ports.is_some(),
            udp: self.udp,
            icmp: self.icmp,
            families: self.families.clone(),
            block_net: self.block_net,
            facilities: self.facilities.clone(),
        }
    }

    /// The Landlock scopes this plan asks for.
    #[must_use]
    pub fn scopes(&self) -> BitFlags<Scope> {
        let mut s = BitFlags::empty();
        if !self.signal_outside {
            s |= Scope::Signal;
        }
        if !self.abstract_unix_outside {
            s |= Scope::AbstractUnixSocket;
        }
        s
    }
}

/// The Landlock right for one of ours.
#[must_use]
pub fn access_fs(r: FsRight) -> AccessFs {
    match r {
        FsRight::Execute => AccessFs::Execute,
        FsRight::WriteFile => AccessFs::WriteFile,
        FsRight::ReadFile => AccessFs::ReadFile,
        FsRight::ReadDir => AccessFs::ReadDir,
        FsRight::RemoveDir => AccessFs::RemoveDir,
        FsRight::RemoveFile => AccessFs::RemoveFile,
        FsRight::MakeChar => AccessFs::MakeChar,
        FsRight::MakeDir => AccessFs::MakeDir,
        FsRight::MakeReg => AccessFs::MakeReg,
        FsRight::MakeSock => AccessFs::MakeSock,
        FsRight::MakeFifo => AccessFs::MakeFifo,
        FsRight::MakeBlock => AccessFs::MakeBlock,
        FsRight::MakeSym => AccessFs::MakeSym,
        FsRight::Refer => AccessFs::Refer,
        FsRight::Truncate => AccessFs::Truncate,
        FsRight::IoctlDev => AccessFs::IoctlDev,
    }
}

fn flags(rights: &BTreeSet<FsRight>) -> BitFlags<AccessFs> {
    rights.iter().fold(BitFlags::empty(), |acc, r| acc | access_fs(*r))
}

/// The Landlock ABI of the running kernel (0 when Landlock is off).
#[must_use]
pub fn kernel_abi() -> i32 {
    // SAFETY: the documented version query: no pointer is dereferenced.
    let v = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, 1u32) };
    i32::try_from(v).unwrap_or(0).max(0)
}

/// The filesystem rights a ruleset handles on Landlock ABI `abi` (the
/// others are never checked, so never the cause of a denial).
#[must_use]
pub fn handled_rights(abi: i32) -> BTreeSet<FsRight> {
    let supported = AccessFs::from_all(ABI::from(abi));
    FsRight::ALL.into_iter().filter(|r| supported.contains(access_fs(*r))).collect()
}

impl Plan {
    /// What `nono audit check` and attribution compare accesses with.
    #[must_use]
    pub fn grants(&self, abi: i32) -> crate::learn::Grants {
        crate::learn::Grants {
            fs: self
                .fs
                .iter()
                .map(|r| crate::learn::Grant { path: r.path.clone(), rights: r.rights.clone(), file: r.file })
                .collect(),
            handled: handled_rights(abi),
            connect_ports: if abi >= 4 { self.connect_ports.clone() } else { None },
            bind_ports: if abi >= 4 { self.bind_ports.clone() } else { None },
            block_net: self.block_net,
        }
    }
}

/// What the kernel will not enforce, by name, for this plan.
#[must_use]
pub fn degradation(plan: &Plan, abi: i32) -> Vec<String> {
    let supported = AccessFs::from_all(ABI::from(abi));
    let mut wanted: BTreeSet<FsRight> = FsRight::ALL.into_iter().collect();
    wanted.retain(|r| !supported.contains(access_fs(*r)));
    let mut out: Vec<String> = wanted
        .into_iter()
        .map(|r| format!("filesystem right `{}` (needs a newer Landlock ABI than {abi}): not restricted", r.name()))
        .collect();
    let net_supported = !AccessNet::from_all(ABI::from(abi)).is_empty();
    if !net_supported && (plan.connect_ports.is_some() || plan.bind_ports.is_some()) {
        out.push(format!("TCP port rules need Landlock ABI 4 (this kernel: {abi}): TCP connect/bind not restricted"));
    }
    if !net_supported && plan.block_net {
        out.push(format!(
            "--block-net needs Landlock ABI 4 for TCP (this kernel: {abi}): TCP sockets are still denied by seccomp, but an inherited or passed one could connect"
        ));
    }
    let scopes = Scope::from_all(ABI::from(abi));
    let wanted = plan.scopes();
    if wanted.contains(Scope::Signal) && !scopes.contains(Scope::Signal) {
        out.push(format!(
            "signal scoping needs Landlock ABI 6 (this kernel: {abi}): the command can signal processes outside the sandbox"
        ));
    }
    if wanted.contains(Scope::AbstractUnixSocket) && !scopes.contains(Scope::AbstractUnixSocket) {
        out.push(format!(
            "abstract Unix socket scoping needs Landlock ABI 6 (this kernel: {abi}): the command can connect to abstract sockets outside the sandbox"
        ));
    }
    out
}

/// A sandbox ready to apply: the ruleset (rule paths already opened) and
/// the seccomp program, built in the parent.
pub struct Prepared {
    /// Taken by the first `restrict_*`.
    ruleset: Option<RulesetCreated>,
    seccomp: seccomp::Program,
    /// The seccomp rules the program was compiled from (for a supervisor:
    /// which rule fired, which errno).
    pub filter: seccomp::Filter,
    /// The baseline alone, with its denials (what a denial turned into a
    /// notification answers).
    pub baseline: seccomp::Filter,
    strict: bool,
    /// Everything the kernel will not enforce, for the user.
    pub degraded: Vec<String>,
    pub abi: i32,
}

/// Builds the ruleset and filter for `plan`. With `strict`, any
/// degradation is an error here, before anything runs.
pub fn prepare(plan: &Plan, strict: bool) -> Result<Prepared, EnforceError> {
    prepare_with(plan, strict, &Extras::default())
}

/// What a supervised run adds to the sandbox.
#[derive(Clone, Debug, Default)]
pub struct Extras {
    /// Rules after the baseline's (the broker's notifications).
    pub rules: Vec<seccomp::Rule>,
    /// Ask Landlock to log denials after exec too (read back through the
    /// kernel audit log, `run --audit --kernel-audit`; Landlock ABI 7).
    pub log_new_exec: bool,
    /// The baseline's denials notify the supervisor instead, which answers
    /// with the same errno and records them (`run --audit`; the kernel
    /// skips the syscall tracepoints of a syscall seccomp refused, so the
    /// recorder would not see them).
    pub deny_via_notify: bool,
}

/// [`prepare`] with a supervisor's additions.
pub fn prepare_with(plan: &Plan, strict: bool, extras: &Extras) -> Result<Prepared, EnforceError> {
    let abi = kernel_abi();
    if abi == 0 {
        return Err(EnforceError::NotEnforced("Landlock is not available on this kernel".into()));
    }
    let degraded = degradation(plan, abi);
    if strict && !degraded.is_empty() {
        return Err(EnforceError::Degraded(degraded.join("; ")));
    }
    // Target the newest ABI whose rights we have names for; the crate
    // drops what the running kernel lacks (best effort) and we reported it.
    let target = ABI::V6;
    let level = if strict { CompatLevel::HardRequirement } else { CompatLevel::BestEffort };
    let handled_fs = {
        let all: BTreeSet<FsRight> = FsRight::ALL.into_iter().collect();
        flags(&all) & AccessFs::from_all(target)
    };
    let mut ruleset = Ruleset::default().set_compatibility(level).handle_access(handled_fs)?;
    let scopes = plan.scopes();
    if !scopes.is_empty() {
        // Best effort below ABI 6: dropped, and reported by `degradation`.
        ruleset = ruleset.scope(scopes)?;
    }
    let restrict_tcp = plan.block_net || plan.connect_ports.is_some() || plan.bind_ports.is_some();
    if restrict_tcp {
        let mut net = BitFlags::<AccessNet>::empty();
        if plan.block_net || plan.connect_ports.is_some() {
            net |= AccessNet::ConnectTcp;
        }
        if plan.block_net || plan.bind_ports.is_some() {
            net |= AccessNet::BindTcp;
        }
        ruleset = ruleset.handle_access(net)?;
    }
    let mut created = ruleset.create()?;
    if extras.log_new_exec && abi >= 7 {
        created = created.log_new_exec(true)?;
    }
    for rule in &plan.fs {
        let fd =
            PathFd::new(&rule.path).map_err(|source| EnforceError::Open { path: rule.path.display().to_string(), source })?;
        created = created.add_rule(PathBeneath::new(fd, flags(&rule.rights) & handled_fs))?;
    }
    if !plan.block_net {
        for port in plan.connect_ports.iter().flatten() {
            created = created.add_rule(NetPort::new(*port, AccessNet::ConnectTcp))?;
        }
        for port in plan.bind_ports.iter().flatten() {
            created = created.add_rule(NetPort::new(*port, AccessNet::BindTcp))?;
        }
    }
    let baseline = seccomp::baseline::rules(&plan.seccomp_policy());
    let mut rules: Vec<seccomp::Rule> = if extras.deny_via_notify {
        baseline
            .iter()
            .cloned()
            .map(|mut r| {
                if matches!(r.action, seccomp::Action::Deny(_)) {
                    r.action = seccomp::Action::Notify;
                }
                r
            })
            .collect()
    } else {
        baseline.clone()
    };
    rules.extend(extras.rules.iter().cloned());
    let filter = seccomp::Filter::new(rules)?;
    let seccomp = filter.compile()?;
    let baseline = seccomp::Filter::new(baseline)?;
    Ok(Prepared { ruleset: Some(created), seccomp, filter, baseline, strict, degraded, abi })
}

/// What applying left behind.
#[derive(Debug)]
pub struct Applied {
    /// The seccomp user-notification listener, when a rule asks the
    /// supervisor (`seccomp::Action::Notify`).
    pub listener: Option<std::os::fd::OwnedFd>,
}

impl Prepared {
    /// Restricts the calling process (sets `no_new_privs`), then installs
    /// the seccomp filter. Runs in the child just before exec; the seccomp
    /// step is async-signal-safe.
    pub fn apply(mut self) -> Result<Applied, EnforceError> {
        self.restrict_current_thread()?;
        let listener = self.seccomp.install()?;
        Ok(Applied { listener })
    }

    /// Puts the calling thread (and what it forks or execs) in the Landlock
    /// domain. Landlock acts per thread: the rest of nono stays outside.
    pub fn restrict_current_thread(&mut self) -> Result<(), EnforceError> {
        let ruleset = self.ruleset.take().ok_or_else(|| EnforceError::NotEnforced("the ruleset was already applied".into()))?;
        let status = ruleset.restrict_self()?;
        match status.ruleset {
            RulesetStatus::NotEnforced => {
                return Err(EnforceError::NotEnforced("restrict_self reported NotEnforced".into()));
            }
            RulesetStatus::PartiallyEnforced if self.strict => {
                return Err(EnforceError::Degraded("restrict_self reported PartiallyEnforced".into()));
            }
            _ => {}
        }
        Ok(())
    }

    /// The compiled seccomp program (installed in the command's process,
    /// after the domain, just before exec).
    #[must_use]
    pub fn program(&self) -> &seccomp::Program {
        &self.seccomp
    }
}

/// Installs the baseline seccomp filter in a forked child and checks it
/// bites (`ioctl(TIOCSTI)` fails with `EPERM`, not `EBADF`), and that
/// `close_range(CLOSE_RANGE_CLOEXEC)` (Linux 5.11) works: what `nono run`
/// needs besides Landlock. For `nono setup`.
pub fn probe_baseline() -> Result<(), String> {
    let program = seccomp::Filter::new(seccomp::baseline::rules(&seccomp::baseline::Policy::default()))
        .and_then(|f| f.compile())
        .map_err(|e| e.to_string())?;
    // SAFETY: the child only makes raw syscalls on memory built before fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: child side; raw syscalls, then _exit with a step code.
        unsafe {
            if program.install().is_err() {
                libc::_exit(10);
            }
            let r = libc::ioctl(-1, libc::TIOCSTI, c"x".as_ptr());
            if r != -1 || *libc::__errno_location() != libc::EPERM {
                libc::_exit(11);
            }
            if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 1u32 << 2) != 0 {
                libc::_exit(12);
            }
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &raw mut status, 0) };
    match (libc::WIFEXITED(status), libc::WEXITSTATUS(status)) {
        (true, 0) => Ok(()),
        (true, 10) => Err("installing a seccomp filter failed (CONFIG_SECCOMP_FILTER?)".to_owned()),
        (true, 11) => Err("the seccomp filter was installed but did not deny TIOCSTI".to_owned()),
        (true, 12) => Err("close_range(CLOSE_RANGE_CLOEXEC) failed (needs Linux 5.11)".to_owned()),
        _ => Err(format!("the probe child ended with status {status:#x}")),
    }
}

/// Whether this kernel is WSL2's: from kernel-controlled files only, never
/// from environment variables (which any parent process can set).
#[must_use]
pub fn is_wsl2(root: &std::path::Path) -> bool {
    if root.join("proc/sys/fs/binfmt_misc/WSLInterop").exists() {
        return true;
    }
    std::fs::read_to_string(root.join("proc/version")).is_ok_and(|v| {
        let v = v.to_lowercase();
        v.contains("microsoft") || v.contains("wsl")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Vars, load_str};

    #[test]
    fn the_plan_merges_paths_and_skips_missing_ones() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path().display().to_string();
        let vars = Vars::from_env(dir.path().to_path_buf());
        let text = format!(
            "{{\"filesystem\": {{\"read\": [\"{d}\"], \"write\": [\"$CWD\"], \"allow\": [\"{d}/missing\"], \"read_file\": [\"/etc/hostname\"]}}, \"network\": {{\"open_port\": [443]}}}}"
        );
        let r = load_str(&text, "t.json", &vars).expect("resolve");
        let p = plan(&r);
        assert_eq!(p.fs.len(), 2, "{p:#?}");
        let merged = &p.fs.iter().find(|r| r.path == dir.path()).expect("dir").rights;
        assert!(merged.contains(&FsRight::ReadFile) && merged.contains(&FsRight::MakeReg));
        assert!(p.skipped.iter().any(|s| s.contains("missing")), "{:?}", p.skipped);
        assert_eq!(p.connect_ports, Some([443].into()));
    }

    #[test]
    fn old_abis_report_what_they_drop() {
        let p = Plan { connect_ports: Some(BTreeSet::new()), ..Plan::default() };
        let d1 = degradation(&p, 1);
        assert!(d1.iter().any(|s| s.contains("refer")), "{d1:?}");
        assert!(d1.iter().any(|s| s.contains("truncate")), "{d1:?}");
        assert!(d1.iter().any(|s| s.contains("TCP")), "{d1:?}");
        assert!(degradation(&p, 6).is_empty());
        let d5 = degradation(&p, 5);
        assert!(d5.iter().any(|s| s.contains("signal scoping")), "{d5:?}");
        assert!(d5.iter().any(|s| s.contains("abstract Unix socket scoping")), "{d5:?}");
        let relaxed = Plan { signal_outside: true, abstract_unix_outside: true, ..Plan::default() };
        assert!(degradation(&relaxed, 5).is_empty(), "nothing to scope, nothing dropped");
    }

    #[test]
    fn the_plan_carries_the_network_and_sandbox_policy() {
        let dir = tempfile::tempdir().expect("tmp");
        let vars = Vars::from_env(dir.path().to_path_buf());
        let text = r#"{"network": {"open_port": [443], "udp": {"dns": true}, "families": ["netlink"], "unix_connect": ["/run/x.sock"]},
                       "sandbox": {"signal_outside": true, "allow": ["io_uring"]}, "filesystem": {"metadata": "none"}}"#;
        let p = plan(&load_str(text, "t.json", &vars).expect("resolve"));
        assert!(p.udp && !p.icmp && p.signal_outside && !p.abstract_unix_outside);
        assert_eq!(p.families, [libc::AF_NETLINK].into());
        assert_eq!(p.scopes(), Scope::AbstractUnixSocket);
        assert_eq!(p.needs_broker.len(), 3, "{:?}", p.needs_broker);
        assert!(p.warnings.iter().any(|w| w.contains("io_uring")), "{:?}", p.warnings);
        let plain = plan(&load_str("{}", "t.json", &vars).expect("resolve"));
        assert!(plain.needs_broker.is_empty() && plain.warnings.is_empty());
    }

    #[test]
    fn wsl2_is_read_from_kernel_files() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("proc")).expect("proc");
        std::fs::write(dir.path().join("proc/version"), "Linux version 6.6.36.6-microsoft-standard-WSL2").expect("v");
        assert!(is_wsl2(dir.path()));
        std::fs::write(dir.path().join("proc/version"), "Linux version 6.18.0 (gcc)").expect("v");
        assert!(!is_wsl2(dir.path()));
    }
}
