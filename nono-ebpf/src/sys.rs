//! The syscall recorder: one program on the raw `sys_exit` tracepoint
//! (BTF-typed, so `pt_regs` fields are plain loads), dispatching on the
//! x86_64 syscall number. The record is built at exit, when the result is
//! known and user memory has been faulted in by the syscall itself.
//!
//! Cost: a syscall nono does not record returns after one comparison
//! chain, in every process. A recorded syscall of a process outside the
//! traced tree costs one map lookup.

use aya_ebpf::{helpers::bpf_get_current_task, programs::BtfTracePointContext};
use nono_common::{Pending, mode as rec_mode, op, stat, sysno as nr};

use crate::emit::{Slot, bump, mode, traced_tgid};
use crate::{dns, fs, kread, net};

/// What the exit does with a syscall.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Not recorded.
    None,
    /// A path operation (`fs`).
    Fs,
    /// A metadata change (`fs`, `op::METADATA`): no LSM hook records it,
    /// so the exit does in both modes.
    Meta,
    /// `socket`, `socketpair`.
    Socket,
    /// `connect`, `bind`, `sendto`, `sendmsg` (the last two also carry
    /// DNS messages, `dns`).
    Addr,
    Sendmmsg,
    /// `read`, `write`, `writev`, `recvfrom`, `recvmsg`: only DNS
    /// messages (`dns`) are recorded.
    Io,
    Signal,
    /// Creating or attaching a kernel facility (io_uring, keyrings, SysV
    /// IPC, POSIX message queues).
    Facility,
}

#[inline(always)]
fn class(sys: u32) -> Class {
    match sys {
        nr::SOCKET | nr::SOCKETPAIR => Class::Socket,
        nr::CONNECT | nr::BIND | nr::SENDTO | nr::SENDMSG => Class::Addr,
        nr::SENDMMSG => Class::Sendmmsg,
        nr::READ | nr::WRITE | nr::WRITEV | nr::RECVFROM | nr::RECVMSG => Class::Io,
        nr::KILL | nr::TKILL | nr::TGKILL | nr::PIDFD_SEND_SIGNAL => Class::Signal,
        nr::IO_URING_SETUP
        | nr::ADD_KEY
        | nr::REQUEST_KEY
        | nr::KEYCTL
        | nr::SHMGET
        | nr::SHMAT
        | nr::SEMGET
        | nr::MSGGET
        | nr::MQ_OPEN => Class::Facility,
        nr::CHMOD
        | nr::FCHMOD
        | nr::FCHMODAT
        | nr::FCHMODAT2
        | nr::CHOWN
        | nr::FCHOWN
        | nr::LCHOWN
        | nr::FCHOWNAT
        | nr::UTIME
        | nr::UTIMES
        | nr::FUTIMESAT
        | nr::UTIMENSAT
        | nr::SETXATTR
        | nr::LSETXATTR
        | nr::FSETXATTR
        | nr::REMOVEXATTR
        | nr::LREMOVEXATTR
        | nr::FREMOVEXATTR
        | nr::SETXATTRAT
        | nr::REMOVEXATTRAT => Class::Meta,
        s if fs::is_fs(s) => Class::Fs,
        _ => Class::None,
    }
}

/// `pt_regs` slots (in u64s) on x86_64.
pub(crate) mod regs {
    pub const R10: usize = 7;
    pub const R9: usize = 8;
    pub const R8: usize = 9;
    pub const DX: usize = 12;
    pub const SI: usize = 13;
    pub const DI: usize = 14;
    pub const ORIG_AX: usize = 15;
}

/// Reads `pt_regs` slot `i`. In a BTF tracepoint the pointer is typed, so
/// this is a plain (fault-safe) load, not a helper call.
#[inline(always)]
fn reg(regs: *const u64, i: usize) -> u64 {
    // SAFETY: `regs` is the tracepoint's `struct pt_regs *`; the verifier
    // checks the access against its BTF and makes it fault-safe.
    unsafe { core::ptr::read_volatile(regs.add(i)) }
}

/// `sys_exit(regs, ret)`: build and send the record.
///
/// No entry program: at the exit tracepoint `pt_regs` still hold the
/// arguments the syscall ran with (ptrace and seccomp act before the entry
/// tracepoint, the syscalls recorded here never rewrite their argument
/// registers, and a successful `execve`, which does, is reported by
/// `sched_process_exec`). One program per syscall instead of two, and no
/// per-thread table of pending arguments to insert into and delete from.
#[inline(always)]
pub fn exit(ctx: &BtfTracePointContext) -> u32 {
    let r: *const u64 = ctx.arg(0);
    let id = reg(r, regs::ORIG_AX) as i64;
    if !(0..=i64::from(u16::MAX)).contains(&id) {
        return 0;
    }
    let sys = id as u32;
    let cls = class(sys);
    if cls == Class::None {
        return 0;
    }
    let ret: i64 = ctx.arg(1);
    // In LSM mode successful filesystem operations are reported by the
    // hooks; failures never reach a hook, so they come from here (metadata
    // changes, `Class::Meta`, always come from here). Decided
    // before the map lookup: it is most of what a traced process does.
    if cls == Class::Fs && ret >= 0 && mode() == rec_mode::LSM {
        return 0;
    }
    // The one map lookup a process outside the traced tree pays, and only
    // for the syscalls recorded here.
    let Some(tgid) = traced_tgid() else { return 0 };
    if !kread::offsets_valid() {
        return 0;
    }
    // SAFETY: returns the current task pointer; only read through probe helpers.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    if kread::in_compat_syscall(task) {
        // An ia32 syscall: its number is not an x86_64 number.
        bump(stat::COMPAT_SYSCALLS);
        return 0;
    }
    let p = Pending {
        sys,
        _pad: 0,
        args: [reg(r, regs::DI), reg(r, regs::SI), reg(r, regs::DX), reg(r, regs::R10), reg(r, regs::R8), reg(r, regs::R9)],
    };
    match cls {
        Class::Fs | Class::Meta => {
            // A successful exec is reported by sched_process_exec, with the
            // new executable's path: the old image's user strings are gone.
            if (sys == nr::EXECVE || sys == nr::EXECVEAT) && ret >= 0 {
                return 0;
            }
            fs::exit(sys, &p, ret, tgid);
        }
        Class::Socket => net::socket(&p, ret, tgid),
        Class::Addr => {
            net::exit(sys, &p, ret, tgid);
            if sys == nr::SENDTO || sys == nr::SENDMSG {
                dns::sent(sys, &p, ret, tgid);
            }
        }
        Class::Sendmmsg => {
            net::sendmmsg(&p, ret, tgid);
            dns::sendmmsg(&p, ret, tgid);
        }
        Class::Io => dns::io(sys, &p, ret, tgid),
        Class::Signal => signal(sys, &p, ret, tgid),
        Class::Facility => facility(sys, ret, tgid),
        Class::None => {}
    }
    0
}

/// `kill`, `tkill`, `tgkill`, `pidfd_send_signal`: `arg` = signal | target << 32.
#[inline(always)]
fn signal(sys: u32, p: &Pending, ret: i64, tgid: u32) {
    const EBADF: i64 = 9;
    const EINVAL: i64 = 22;
    let (target, sig) = match sys {
        nr::TGKILL => (p.args[0] as i32, p.args[2]),
        nr::PIDFD_SEND_SIGNAL => {
            // The descriptor names the process; it is still open at exit.
            let target = if ret == -EBADF || ret == -EINVAL {
                0
            } else {
                // SAFETY: returns the current task pointer; only read through probe helpers.
                let task = unsafe { bpf_get_current_task() } as *const u8;
                kread::pid_of_pidfd(task, i64::from(p.args[0] as i32))
            };
            (target, p.args[1])
        }
        // kill(pid, sig), tkill(tid, sig)
        _ => (p.args[0] as i32, p.args[1]),
    };
    let Some(mut slot) = Slot::acquire() else { return };
    let h = slot.header(op::SIGNAL, tgid);
    h.result = if ret < 0 { ret as i32 } else { 0 };
    h.arg = (sig & 0xffff_ffff) | (u64::from(target as u32) << 32);
    slot.send(0);
}

/// A facility syscall: `arg` = its number.
#[inline(always)]
fn facility(sys: u32, ret: i64, tgid: u32) {
    let Some(mut slot) = Slot::acquire() else { return };
    let h = slot.header(op::SYSCALL, tgid);
    h.result = if ret < 0 { ret as i32 } else { 0 };
    h.arg = u64::from(sys);
    slot.send(0);
}
