//! The recorder: watches exactly one process tree in the kernel and turns
//! what it does into [`Event`](crate::event::Event)s.
//!
//! Two backends sit behind the [`Recorder`] trait:
//! - `lsm`: BPF LSM hooks for filesystem operations (paths from kernel
//!   objects), the primary design;
//! - `tracepoint`: one BTF program on the raw `sys_exit` tracepoint that
//!   dispatches on the syscall number, for kernels that refuse trampoline
//!   programs (like the Firecracker host nono is developed on).
//!
//! Both share the process-tree tracking (sched fork/exec/exit), the
//! syscall dispatcher for what has no LSM hook (sockets, sends, signals,
//! kernel facilities) and for failures, the ring buffer, the loss counters
//! and the decoder. This module must not know about SQL, profiles or
//! Landlock.

pub mod btf;
pub mod decode;
pub mod dns;
pub mod guardian;
pub mod kaudit;
pub mod loader;
pub mod progress;
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

#[cfg(test)]
mod tests {
    /// The eBPF dispatcher's syscall numbers (in `nono_common::sysno`) are
    /// the kernel's `x86_64` numbers, and `SYSCALL` events carry them: they
    /// must agree with libc, which the learner and the seccomp filter use.
    #[test]
    fn dispatcher_syscall_numbers_match_libc() {
        use nono_common::sysno as n;
        let pairs: &[(u32, i64)] = &[
            (n::OPEN, libc::SYS_open),
            (n::SHMGET, libc::SYS_shmget),
            (n::SHMAT, libc::SYS_shmat),
            (n::SOCKET, libc::SYS_socket),
            (n::CONNECT, libc::SYS_connect),
            (n::SENDTO, libc::SYS_sendto),
            (n::SENDMSG, libc::SYS_sendmsg),
            (n::BIND, libc::SYS_bind),
            (n::SOCKETPAIR, libc::SYS_socketpair),
            (n::EXECVE, libc::SYS_execve),
            (n::KILL, libc::SYS_kill),
            (n::SEMGET, libc::SYS_semget),
            (n::MSGGET, libc::SYS_msgget),
            (n::TRUNCATE, libc::SYS_truncate),
            (n::FTRUNCATE, libc::SYS_ftruncate),
            (n::RENAME, libc::SYS_rename),
            (n::MKDIR, libc::SYS_mkdir),
            (n::RMDIR, libc::SYS_rmdir),
            (n::CREAT, libc::SYS_creat),
            (n::LINK, libc::SYS_link),
            (n::UNLINK, libc::SYS_unlink),
            (n::SYMLINK, libc::SYS_symlink),
            (n::MKNOD, libc::SYS_mknod),
            (n::TKILL, libc::SYS_tkill),
            (n::TGKILL, libc::SYS_tgkill),
            (n::MQ_OPEN, libc::SYS_mq_open),
            (n::ADD_KEY, libc::SYS_add_key),
            (n::REQUEST_KEY, libc::SYS_request_key),
            (n::KEYCTL, libc::SYS_keyctl),
            (n::OPENAT, libc::SYS_openat),
            (n::MKDIRAT, libc::SYS_mkdirat),
            (n::MKNODAT, libc::SYS_mknodat),
            (n::UNLINKAT, libc::SYS_unlinkat),
            (n::RENAMEAT, libc::SYS_renameat),
            (n::LINKAT, libc::SYS_linkat),
            (n::SYMLINKAT, libc::SYS_symlinkat),
            (n::SENDMMSG, libc::SYS_sendmmsg),
            (n::RENAMEAT2, libc::SYS_renameat2),
            (n::EXECVEAT, libc::SYS_execveat),
            (n::PIDFD_SEND_SIGNAL, libc::SYS_pidfd_send_signal),
            (n::IO_URING_SETUP, libc::SYS_io_uring_setup),
            (n::OPENAT2, libc::SYS_openat2),
            (n::CHMOD, libc::SYS_chmod),
            (n::FCHMOD, libc::SYS_fchmod),
            (n::CHOWN, libc::SYS_chown),
            (n::FCHOWN, libc::SYS_fchown),
            (n::LCHOWN, libc::SYS_lchown),
            (n::UTIME, libc::SYS_utime),
            (n::SETXATTR, libc::SYS_setxattr),
            (n::LSETXATTR, libc::SYS_lsetxattr),
            (n::FSETXATTR, libc::SYS_fsetxattr),
            (n::REMOVEXATTR, libc::SYS_removexattr),
            (n::LREMOVEXATTR, libc::SYS_lremovexattr),
            (n::FREMOVEXATTR, libc::SYS_fremovexattr),
            (n::UTIMES, libc::SYS_utimes),
            (n::FCHOWNAT, libc::SYS_fchownat),
            (n::FUTIMESAT, libc::SYS_futimesat),
            (n::FCHMODAT, libc::SYS_fchmodat),
            (n::UTIMENSAT, libc::SYS_utimensat),
            // Newer than some libc headers: the kernel's table.
            (n::FCHMODAT2, 452),
            (n::SETXATTRAT, 463),
            (n::REMOVEXATTRAT, 466),
        ];
        for &(ours, libc_nr) in pairs {
            assert_eq!(i64::from(ours), libc_nr);
        }
        // Every facility syscall the recorder treats as creating one belongs
        // to that facility in the event model.
        for nr in
            [n::IO_URING_SETUP, n::ADD_KEY, n::REQUEST_KEY, n::KEYCTL, n::SHMGET, n::SHMAT, n::SEMGET, n::MSGGET, n::MQ_OPEN]
        {
            assert!(crate::event::Facility::of_syscall(i64::from(nr)).is_some(), "{nr}");
        }
    }
}
