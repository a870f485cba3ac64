//! The recorder: watches exactly one process tree in the kernel and turns
//! what it does into [`Event`](crate::event::Event)s.
//!
//! Two backends sit behind the [`Recorder`] trait:
//! - `lsm`: BPF LSM hooks (paths from kernel objects), the primary design;
//! - `tracepoint`: syscall enter/exit tracepoints, for kernels that refuse
//!   trampoline programs (like the Firecracker host nono is developed on).
//!
//! Both share the process-tree tracking (sched fork/exec/exit), the ring
//! buffer, the loss counters and the decoder. This module must not know
//! about SQL, profiles or Landlock.

pub mod btf;
pub mod decode;
pub mod loader;
pub mod session;
pub mod spawn;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use loader::{KernelCounters, Recorder, load};

/// Which recording backend to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Lsm,
    Tracepoint,
}

impl Backend {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Backend::Lsm => "lsm",
            Backend::Tracepoint => "tracepoint",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "lsm" => Ok(Backend::Lsm),
            "tracepoint" => Ok(Backend::Tracepoint),
            other => Err(format!("unknown backend {other:?}; expected lsm or tracepoint")),
        }
    }
}

/// The `--backend` choice: a backend, or `auto` (BPF LSM where its
/// programs load, else tracepoints).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    #[default]
    Auto,
    Lsm,
    Tracepoint,
}

/// Everything that can go wrong while recording.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(
        "this nono binary was built without its eBPF programs (AYA_BUILD_SKIP was set); rebuild with `cargo build --release`"
    )]
    NoPrograms,
    #[error("reading kernel type information (BTF) from {path}")]
    Btf {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The 2-instruction probe LSM program was refused (its message says how).
    #[error("{0}")]
    LsmRefused(String),
    #[error("loading the eBPF object")]
    Load(#[source] aya::EbpfError),
    #[error("eBPF program {0} is missing from the object")]
    MissingProgram(String),
    #[error("eBPF map {0} is missing from the object")]
    MissingMap(&'static str),
    #[error("loading eBPF program {name} (for the {backend} backend)")]
    Program {
        name: String,
        backend: Backend,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("using eBPF map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("adding pid {pid} to the traced set")]
    Trace {
        pid: u32,
        #[source]
        source: aya::maps::MapError,
    },
    #[error(transparent)]
    Spawn(#[from] spawn::SpawnError),
    #[error("{call} failed")]
    Sys {
        call: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the audit store writer failed")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}
