//! Seccomp for what Landlock cannot reach: a rule list in Rust, compiled
//! to classic BPF by hand, and evaluated by the same rules in Rust.
//!
//! # Why our own compiler
//! `seccompiler` (the crate nono used before) emits one action per filter
//! besides the default, has no `SECCOMP_RET_USER_NOTIF` and does not refuse
//! the x32 ABI (syscall numbers with bit 30 set reach the same kernel code
//! through different numbers). The supervisor of issue 14 needs per-rule
//! errnos and `Notify`, and needs to tell which rule fired: so the rules
//! live here as data ([`Rule`]), [`Filter::compile`] turns them into BPF
//! and [`Filter::decide`] evaluates them in Rust. A test checks both agree
//! against the real kernel.
//!
//! # Semantics
//! - The filter first checks `seccomp_data.arch == AUDIT_ARCH_X86_64`;
//!   anything else (the i386 `int 0x80` entry, which reaches a different
//!   syscall table) kills the process. A syscall number with the x32 bit
//!   (`0x4000_0000`) kills the process too.
//! - Then the first rule whose syscall matches and whose argument
//!   conditions all hold decides; no match allows.
//! - [`Width::Int`] compares the low 32 bits only: the kernel truncates
//!   `int`/`unsigned int` arguments, so garbage in the upper half must not
//!   dodge a rule. [`Width::Long`] compares all 64 bits (pointers, `long`).
//!
//! # Threat model
//! The filter is installed after Landlock's `restrict_self` (which set
//! `no_new_privs`) in the process that then execs the command; it is
//! inherited by every descendant and cannot be removed. Installing it is
//! async-signal-safe ([`Program::install`]): the BPF program is built in
//! the parent before `fork`.

pub mod baseline;
mod bpf;

use std::io;
use std::os::fd::{FromRawFd as _, OwnedFd};

/// `AUDIT_ARCH_X86_64` (`EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`).
pub const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
/// Bit set in the syscall number by the x32 ABI.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// Largest errno a seccomp filter may return (`MAX_ERRNO`).
pub const MAX_ERRNO: u16 = 4095;

/// Why a filter could not be built or installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// A rule names an argument beyond the sixth.
    #[error("rule {rule:?}: argument index {index} (syscalls have 6 arguments)")]
    BadArgument { rule: String, index: u8 },
    /// A rule's errno does not fit seccomp's return value.
    #[error("rule {rule:?}: errno {errno} is above {MAX_ERRNO}")]
    BadErrno { rule: String, errno: u16 },
    /// The program is longer than the kernel accepts (`BPF_MAXINSNS`).
    #[error("the seccomp program has {0} instructions; the kernel accepts 4096")]
    TooLong(usize),
    /// A conditional jump does not fit classic BPF's 8-bit offset.
    #[error("a seccomp jump of {0} instructions does not fit in 8 bits")]
    JumpTooFar(usize),
    /// A jump without a forward target (a bug in the compiler).
    #[error("internal error: a seccomp jump has no forward target")]
    BadJump,
    /// `seccomp(SECCOMP_SET_MODE_FILTER)` failed.
    #[error("{call} failed")]
    Install {
        call: &'static str,
        #[source]
        source: io::Error,
    },
}

/// What a matching rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Allow,
    /// Fail the syscall with this errno (never a silent success).
    Deny(u16),
    /// Ask the supervisor (`SECCOMP_RET_USER_NOTIF`; needs a listener).
    Notify,
    /// Kill the whole process (`SECCOMP_RET_KILL_PROCESS`).
    KillProcess,
}

impl Action {
    /// The filter's return value.
    #[must_use]
    pub const fn ret(self) -> u32 {
        match self {
            Action::Allow => 0x7fff_0000,
            Action::Deny(errno) => 0x0005_0000 | (errno as u32 & 0xffff),
            Action::Notify => 0x7fc0_0000,
            Action::KillProcess => 0x8000_0000,
        }
    }
}

/// How many bits of an argument a condition compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// `int`, `unsigned int`: the low 32 bits (the kernel truncates).
    Int,
    /// Pointers and `long`: all 64 bits.
    Long,
}

/// A comparison of one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq(u64),
    Ne(u64),
    /// `arg & mask == value`.
    MaskedEq {
        mask: u64,
        value: u64,
    },
}

/// A condition on argument `index` (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arg {
    pub index: u8,
    pub width: Width,
    pub cmp: Cmp,
}

impl Arg {
    /// `int` argument `index` equals `value`.
    #[must_use]
    pub const fn int_eq(index: u8, value: u64) -> Arg {
        Arg { index, width: Width::Int, cmp: Cmp::Eq(value) }
    }

    /// `int` argument `index` differs from `value`.
    #[must_use]
    pub const fn int_ne(index: u8, value: u64) -> Arg {
        Arg { index, width: Width::Int, cmp: Cmp::Ne(value) }
    }

    /// `int` argument `index` masked with `mask` equals `value`.
    #[must_use]
    pub const fn int_masked(index: u8, mask: u64, value: u64) -> Arg {
        Arg { index, width: Width::Int, cmp: Cmp::MaskedEq { mask, value } }
    }

    /// Whether the condition holds for this argument value.
    #[must_use]
    pub fn holds(&self, raw: u64) -> bool {
        let m = match self.width {
            Width::Int => 0xffff_ffff,
            Width::Long => u64::MAX,
        };
        let v = raw & m;
        match self.cmp {
            Cmp::Eq(x) => v == x & m,
            Cmp::Ne(x) => v != x & m,
            Cmp::MaskedEq { mask, value } => v & mask & m == value & m,
        }
    }
}

/// One rule: the syscall (`x86_64` number), conditions that must all hold,
/// the action, and a name for people and the supervisor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub syscall: i64,
    pub args: Vec<Arg>,
    pub action: Action,
    pub name: String,
}

impl Rule {
    #[must_use]
    pub fn new(syscall: i64, args: Vec<Arg>, action: Action, name: impl Into<String>) -> Rule {
        Rule { syscall, args, action, name: name.into() }
    }

    fn matches(&self, nr: u32, args: &[u64; 6]) -> bool {
        i64::from(nr) == self.syscall && self.args.iter().all(|a| a.holds(args[usize::from(a.index)]))
    }
}

/// What the filter does with one syscall, and which rule decided it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub action: Action,
    /// Index into [`Filter::rules`]; `None` for the architecture checks and
    /// the default.
    pub rule: Option<usize>,
}

/// An ordered rule list; the first match wins, no match allows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    rules: Vec<Rule>,
}

impl Filter {
    /// Checks every rule (argument indexes, errnos).
    pub fn new(rules: Vec<Rule>) -> Result<Filter, SeccompError> {
        for r in &rules {
            if let Some(a) = r.args.iter().find(|a| a.index > 5) {
                return Err(SeccompError::BadArgument { rule: r.name.clone(), index: a.index });
            }
            if let Action::Deny(errno) = r.action
                && errno > MAX_ERRNO
            {
                return Err(SeccompError::BadErrno { rule: r.name.clone(), errno });
            }
        }
        Ok(Filter { rules })
    }

    #[must_use]
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether a rule asks the supervisor (the filter then needs a listener).
    #[must_use]
    pub fn needs_listener(&self) -> bool {
        self.rules.iter().any(|r| r.action == Action::Notify)
    }

    /// The action for a native `x86_64` syscall `nr` with `args`.
    #[must_use]
    pub fn decide(&self, nr: i64, args: &[u64; 6]) -> Action {
        self.verdict(AUDIT_ARCH_X86_64, nr as u32, args).action
    }

    /// The verdict for a raw `seccomp_data` (architecture, number, args),
    /// exactly as the compiled program decides it.
    #[must_use]
    pub fn verdict(&self, arch: u32, nr: u32, args: &[u64; 6]) -> Verdict {
        if arch != AUDIT_ARCH_X86_64 || nr & X32_SYSCALL_BIT != 0 {
            return Verdict { action: Action::KillProcess, rule: None };
        }
        match self.rules.iter().position(|r| r.matches(nr, args)) {
            Some(i) => Verdict { action: self.rules[i].action, rule: Some(i) },
            None => Verdict { action: Action::Allow, rule: None },
        }
    }

    /// The classic BPF program.
    pub fn compile(&self) -> Result<Program, SeccompError> {
        Ok(Program { insns: bpf::compile(&self.rules)?, listener: self.needs_listener() })
    }
}

/// A compiled filter, ready to install (built before `fork`).
pub struct Program {
    insns: Vec<libc::sock_filter>,
    listener: bool,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program").field("len", &self.insns.len()).field("listener", &self.listener).finish()
    }
}

const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_ulong = 1 << 3;

impl Program {
    #[must_use]
    pub fn instructions(&self) -> &[libc::sock_filter] {
        &self.insns
    }

    /// Installs the filter on the calling thread (and what it execs).
    /// With a `Notify` rule the filter is installed with
    /// `SECCOMP_FILTER_FLAG_NEW_LISTENER` and the listener is returned
    /// (the supervisor's end). Async-signal-safe: no allocation, only
    /// `prctl` and `seccomp`, so it may run in a child after `fork`.
    pub fn install(&self) -> Result<Option<OwnedFd>, SeccompError> {
        let prog = libc::sock_fprog { len: self.insns.len() as u16, filter: self.insns.as_ptr().cast_mut() };
        // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only. It is
        // already set by Landlock's restrict_self; setting it again is a
        // no-op, and without it an unprivileged seccomp install fails.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(SeccompError::Install { call: "prctl(PR_SET_NO_NEW_PRIVS)", source: io::Error::last_os_error() });
        }
        let flags = if self.listener { SECCOMP_FILTER_FLAG_NEW_LISTENER } else { 0 };
        // SAFETY: `prog` points at `self.insns`, which outlives the call;
        // the kernel copies the program.
        let r = unsafe { libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &raw const prog) };
        if r < 0 {
            return Err(SeccompError::Install { call: "seccomp(SECCOMP_SET_MODE_FILTER)", source: io::Error::last_os_error() });
        }
        if self.listener {
            // SAFETY: with NEW_LISTENER the kernel returned a new descriptor we own.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(r as i32) }));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests;
