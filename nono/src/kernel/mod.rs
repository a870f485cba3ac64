//! What this kernel supports: the facts behind `nono setup --check-only`
//! and the recorder's backend choice.
//!
//! Two sources, kept apart so tests can use fixture trees:
//! - [`KernelFs`] reads kernel-controlled files under a root (`/` in
//!   production, a fixture tree in tests): version, active LSMs, BTF,
//!   tracefs, WSL2 markers. Never environment variables: any parent process
//!   can set `WSL_DISTRO_NAME`, only the kernel writes `/proc/version`.
//! - [`Probes`] are real syscalls against the running kernel: the Landlock
//!   ABI, loading (and attaching) a 2-instruction BPF LSM program and a
//!   BTF tracepoint program, and installing a seccomp user-notification filter
//!   in a child. A listed `bpf` LSM does not mean its programs load: this
//!   kernel lists it and refuses them with EPERM.

mod probe;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::record::Backend;

pub(crate) use probe::lsm_program as lsm_program_loads;
pub use probe::{Probes, seccomp_notify};

/// Kernel-controlled files under a root.
#[derive(Clone, Debug)]
pub struct KernelFs {
    pub root: PathBuf,
}

/// What the files say.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Facts {
    pub release: String,
    pub version: String,
    /// `None`: securityfs not mounted (or the file is missing).
    pub lsms: Option<Vec<String>>,
    pub btf: bool,
    pub tracefs: bool,
    pub wsl2: bool,
}

impl KernelFs {
    #[must_use]
    pub fn new(root: impl Into<PathBuf>) -> KernelFs {
        KernelFs { root: root.into() }
    }

    fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    fn read(&self, abs: &str) -> Option<String> {
        std::fs::read_to_string(self.path(abs)).ok().map(|s| s.trim().to_owned())
    }

    #[must_use]
    pub fn facts(&self) -> Facts {
        let version = self.read("/proc/version").unwrap_or_default();
        let lower = version.to_lowercase();
        Facts {
            release: self.read("/proc/sys/kernel/osrelease").unwrap_or_default(),
            lsms: self.read("/sys/kernel/security/lsm").map(|l| l.split(',').map(str::to_owned).collect()),
            btf: self.path("/sys/kernel/btf/vmlinux").exists(),
            tracefs: self.path("/sys/kernel/tracing/events").exists() || self.path("/sys/kernel/debug/tracing/events").exists(),
            wsl2: self.path("/proc/sys/fs/binfmt_misc/WSLInterop").exists()
                || lower.contains("microsoft")
                || lower.contains("wsl"),
            version,
        }
    }
}

/// Three-way status of one line of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Available,
    Degraded,
    Unavailable,
}

impl Status {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Available => "available",
            Status::Degraded => "degraded",
            Status::Unavailable => "unavailable",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
}

/// The feature matrix and the backend `nono learn --backend auto` uses.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub kernel: String,
    pub landlock_abi: i32,
    pub wsl2: bool,
    pub checks: Vec<Check>,
    pub backend: Option<Backend>,
    pub backend_reason: String,
    /// Known limits of this platform, stated up front.
    pub notes: Vec<String>,
}

/// Landlock features by ABI version.
pub const LANDLOCK_FEATURES: &[(i32, &str)] = &[
    (1, "filesystem access control"),
    (2, "refer (cross-directory rename/link)"),
    (3, "truncate"),
    (4, "TCP bind/connect ports"),
    (5, "ioctl on devices (ioctl_dev)"),
    (6, "scoping (abstract unix sockets, signals)"),
    (7, "audit logging flags"),
];

/// Builds the report from file facts and probe results. Pure.
#[must_use]
pub fn report(facts: &Facts, probes: &Probes) -> Report {
    let mut checks = Vec::new();
    let mut notes = Vec::new();
    checks.push(Check {
        name: "kernel",
        status: Status::Available,
        detail: if facts.release.is_empty() { "unknown release".to_owned() } else { facts.release.clone() },
    });
    let abi = probes.landlock_abi.unwrap_or(0);
    let features: Vec<&str> = LANDLOCK_FEATURES.iter().filter(|(v, _)| *v <= abi).map(|(_, f)| *f).collect();
    let missing: Vec<&str> = LANDLOCK_FEATURES.iter().filter(|(v, _)| *v > abi).map(|(_, f)| *f).collect();
    checks.push(match probes.landlock_abi {
        None => Check { name: "landlock", status: Status::Unavailable, detail: "not probed (fixture root)".to_owned() },
        Some(0) => Check {
            name: "landlock",
            status: Status::Unavailable,
            detail: "landlock_create_ruleset failed: Landlock is not built in or not enabled (add `landlock` to lsm= on the kernel command line)".to_owned(),
        },
        Some(v) if v < 4 => Check {
            name: "landlock",
            status: Status::Degraded,
            detail: format!("ABI {v}: {}; missing: {}", features.join(", "), missing.join(", ")),
        },
        Some(v) => Check {
            name: "landlock",
            status: Status::Available,
            detail: format!("ABI {v}: {}{}", features.join(", "), if missing.is_empty() { String::new() } else { format!("; missing: {}", missing.join(", ")) }),
        },
    });
    let bpf_listed = facts.lsms.as_ref().map(|l| l.iter().any(|m| m == "bpf"));
    checks.push(match (&facts.lsms, bpf_listed) {
        (None, _) => Check {
            name: "bpf lsm active",
            status: Status::Unavailable,
            detail: "cannot tell: /sys/kernel/security/lsm is missing (mount securityfs: `nono setup` does it)".to_owned(),
        },
        (Some(l), Some(true)) => {
            Check { name: "bpf lsm active", status: Status::Available, detail: format!("lsm = {}", l.join(",")) }
        }
        (Some(l), _) => Check {
            name: "bpf lsm active",
            status: Status::Unavailable,
            detail: format!("`bpf` is not in lsm = {} (boot with lsm=...,bpf)", l.join(",")),
        },
    });
    checks.push(probe_check("bpf lsm programs", &probes.lsm_program, "an LSM program loaded and attached (file_open)"));
    checks.push(probe_check(
        "tracepoint programs",
        &probes.tracepoint_program,
        "a BTF tracepoint program loaded and attached (sys_exit)",
    ));
    checks.push(Check {
        name: "btf",
        status: if facts.btf { Status::Available } else { Status::Unavailable },
        detail: if facts.btf {
            "/sys/kernel/btf/vmlinux".to_owned()
        } else {
            "no /sys/kernel/btf/vmlinux: the recorder needs it for struct offsets".to_owned()
        },
    });
    checks.push(probe_check(
        "seccomp user-notify",
        &probes.seccomp_notify,
        "a SECCOMP_FILTER_FLAG_NEW_LISTENER filter installed in a child",
    ));
    checks.push(match &probes.containment {
        None => {
            Check { name: "tree ends with nono", status: Status::Unavailable, detail: "not probed (fixture root)".to_owned() }
        }
        Some(Ok(how)) => Check { name: "tree ends with nono", status: Status::Available, detail: how.clone() },
        Some(Err(how)) => Check { name: "tree ends with nono", status: Status::Degraded, detail: how.clone() },
    });
    checks.push(if facts.wsl2 {
        Check {
            name: "platform",
            status: Status::Degraded,
            detail: "WSL2 (from /proc/version or WSLInterop); see notes".to_owned(),
        }
    } else {
        Check { name: "platform", status: Status::Available, detail: "native Linux (not WSL2)".to_owned() }
    });
    if facts.wsl2 {
        notes.push("WSL2: seccomp user notification is claimed by WSL's init, so capability elevation (proxy-only networking) is unavailable".to_owned());
        if abi < 4 {
            notes.push(format!("WSL2: per-port TCP rules need Landlock ABI 4; this kernel has ABI {abi}"));
        }
    }
    let lsm_ok = matches!(probes.lsm_program, Some(Ok(())));
    let tp_ok = matches!(probes.tracepoint_program, Some(Ok(())));
    let (backend, backend_reason) = if lsm_ok && facts.btf {
        (Some(Backend::Lsm), "BPF LSM programs load here".to_owned())
    } else if tp_ok && facts.btf {
        let why = match (&probes.lsm_program, bpf_listed) {
            (Some(Err(e)), _) => format!("BPF LSM programs are refused: {e}"),
            (_, Some(false)) => "BPF LSM is not active".to_owned(),
            _ => "BPF LSM was not probed".to_owned(),
        };
        (Some(Backend::Tracepoint), why)
    } else if !facts.btf {
        (None, "no BTF: the recorder cannot find kernel struct offsets".to_owned())
    } else {
        (None, "neither BPF LSM nor tracepoint programs load here (are you root?)".to_owned())
    };
    Report { kernel: facts.release.clone(), landlock_abi: abi, wsl2: facts.wsl2, checks, backend, backend_reason, notes }
}

fn probe_check(name: &'static str, result: &Option<Result<(), String>>, ok: &str) -> Check {
    match result {
        None => Check { name, status: Status::Unavailable, detail: "not probed (fixture root)".to_owned() },
        Some(Ok(())) => Check { name, status: Status::Available, detail: ok.to_owned() },
        Some(Err(e)) => Check { name, status: Status::Unavailable, detail: e.clone() },
    }
}

/// The facts and probes of the running kernel.
#[must_use]
pub fn running() -> Report {
    report(&KernelFs::new("/").facts(), &Probes::run())
}

/// Where fixtures keep assumed probe results (`--assume-probes`).
pub fn load_probes(path: &Path) -> anyhow::Result<Probes> {
    let text = std::fs::read_to_string(path)?;
    Ok(serde_json::from_str(&text)?)
}
