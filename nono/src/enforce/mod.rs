//! Enforcement: a resolved profile becomes a Landlock ruleset (filesystem
//! rights, TCP ports) plus a seccomp filter for what Landlock cannot reach
//! (non-TCP sockets under `--block-net`), applied to a process just before
//! it execs the command.
//!
//! # Threat model
//! The command is an AI agent that may be prompt-injected into reading
//! secrets, writing outside its workdir or talking to the network. After
//! `apply`, the process and everything it execs or forks can only reach
//! what the plan grants: Landlock domains are inherited and cannot be
//! lifted, and `no_new_privs` stops set-uid programs from escaping.
//! Landlock does not restrict: reads of already-open descriptors, path
//! walks (`stat` of any path still works), Unix-socket connects, UDP (on
//! ABI < 8, unless `--block-net`), signals and ptrace outside the domain's
//! scope rules. Degradation on older kernels is always reported, and
//! `--strict` makes it fatal; a ruleset the kernel does not enforce at all
//! is always fatal.
//!
//! The plan is pure (`plan`), the kernel objects are built in the parent
//! (`prepare`: opens every rule path, so a missing path is reported before
//! anything runs), and only `Prepared::apply` runs in the child.

pub mod broker;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreated, RulesetCreatedAttr, RulesetStatus,
};

use crate::profile::Resolved;
use crate::profile::rights::FsRight;

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
    Seccomp(String),
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
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub fs: Vec<PlanRule>,
    /// Rules left out, with the reason (e.g. the path does not exist).
    pub skipped: Vec<String>,
    pub connect_ports: Option<BTreeSet<u16>>,
    pub bind_ports: Option<BTreeSet<u16>>,
    pub block_net: bool,
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
    Plan {
        fs: by_path.into_values().collect(),
        skipped,
        connect_ports: resolved.network.open_port.clone(),
        bind_ports: resolved.network.listen_port.clone(),
        block_net: resolved.network.block,
    }
}

impl Plan {
    /// Forbids all network (`--block-net`).
    pub fn block_network(&mut self) {
        self.block_net = true;
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
    out
}

/// A sandbox ready to apply: the ruleset (rule paths already opened) and
/// the seccomp program, built in the parent.
pub struct Prepared {
    ruleset: RulesetCreated,
    seccomp: Option<seccompiler::BpfProgram>,
    strict: bool,
    /// Everything the kernel will not enforce, for the user.
    pub degraded: Vec<String>,
    pub abi: i32,
}

/// Builds the ruleset and filter for `plan`. With `strict`, any
/// degradation is an error here, before anything runs.
pub fn prepare(plan: &Plan, strict: bool) -> Result<Prepared, EnforceError> {
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
    let seccomp = if plan.block_net { Some(block_net_filter()?) } else { None };
    Ok(Prepared { ruleset: created, seccomp, strict, degraded, abi })
}

impl Prepared {
    /// Restricts the calling process (sets `no_new_privs`), then installs
    /// the seccomp filter. Runs in the child just before exec.
    pub fn apply(self) -> Result<(), EnforceError> {
        let status = self.ruleset.restrict_self()?;
        match status.ruleset {
            RulesetStatus::NotEnforced => {
                return Err(EnforceError::NotEnforced("restrict_self reported NotEnforced".into()));
            }
            RulesetStatus::PartiallyEnforced if self.strict => {
                return Err(EnforceError::Degraded("restrict_self reported PartiallyEnforced".into()));
            }
            _ => {}
        }
        if let Some(prog) = &self.seccomp {
            seccompiler::apply_filter(prog).map_err(|e| EnforceError::Seccomp(e.to_string()))?;
        }
        Ok(())
    }
}

/// `--block-net` beyond TCP: `socket()` for any family but `AF_UNIX`
/// fails with `EACCES`; `io_uring_setup` fails too (io_uring can open
/// sockets without the `socket` syscall).
fn block_net_filter() -> Result<seccompiler::BpfProgram, EnforceError> {
    use seccompiler::{SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch};
    let err = |e: &dyn std::fmt::Display| EnforceError::Seccomp(e.to_string());
    let not_unix =
        SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, libc::AF_UNIX as u64).map_err(|e| err(&e))?;
    let mut rules = BTreeMap::new();
    rules.insert(libc::SYS_socket, vec![SeccompRule::new(vec![not_unix]).map_err(|e| err(&e))?]);
    rules.insert(libc::SYS_io_uring_setup, vec![]);
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| err(&e))?;
    let filter =
        SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(libc::EACCES as u32), arch).map_err(|e| err(&e))?;
    filter.try_into().map_err(|e: seccompiler::BackendError| err(&e))
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
