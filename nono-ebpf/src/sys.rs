//! The syscall-tracepoint recorder: remember arguments at `sys_enter_*`,
//! build the record at `sys_exit_*` when the result is known and user
//! memory has been faulted in by the syscall itself.
//!
//! Paths: a successful open or ftruncate is resolved from the returned (or
//! given) descriptor, so it is the kernel's canonical path. Everything else
//! is the raw user string plus the components of its base directory (the
//! cwd or the dirfd), which userspace joins and normalises.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task, bpf_probe_read_user},
    programs::TracePointContext,
};
use nono_common::{FMODE_CREATED, Pending, flag, mode as rec_mode, op, stat};

use crate::emit::{HANDOFF, Handoff, PENDING, Slot, TAIL, bump, mode, traced_tgid};
use crate::kread::{self, Field, off};

/// Internal syscall numbers (not the kernel's).
pub mod nr {
    pub const OPEN: u32 = 1;
    pub const OPENAT: u32 = 2;
    pub const OPENAT2: u32 = 3;
    pub const CREAT: u32 = 4;
    pub const EXECVE: u32 = 5;
    pub const EXECVEAT: u32 = 6;
    pub const UNLINK: u32 = 7;
    pub const UNLINKAT: u32 = 8;
    pub const RMDIR: u32 = 9;
    pub const RENAME: u32 = 10;
    pub const RENAMEAT: u32 = 11;
    pub const RENAMEAT2: u32 = 12;
    pub const MKDIR: u32 = 13;
    pub const MKDIRAT: u32 = 14;
    pub const LINK: u32 = 15;
    pub const LINKAT: u32 = 16;
    pub const SYMLINK: u32 = 17;
    pub const SYMLINKAT: u32 = 18;
    pub const TRUNCATE: u32 = 19;
    pub const FTRUNCATE: u32 = 20;
    pub const MKNOD: u32 = 21;
    pub const MKNODAT: u32 = 22;
    pub const CONNECT: u32 = 23;
    pub const BIND: u32 = 24;
}

const AT_FDCWD: i32 = -100;
const AT_REMOVEDIR: u64 = 0x200;
const O_CREAT_WRONLY_TRUNC: u64 = 0o1101;
const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// Where a path operand comes from.
#[derive(Clone, Copy)]
enum P {
    None,
    /// A user string relative to the cwd (or absolute).
    Cwd(usize),
    /// A user string relative to the directory fd in the first argument.
    At(usize, usize),
    /// An open file descriptor.
    Fd(usize),
    /// A user string kept as written (a symlink's target).
    Raw(usize),
}

#[derive(Clone, Copy)]
struct Desc {
    op: u16,
    p1: P,
    p2: P,
    /// Argument carrying flags or mode, if any.
    arg: Option<usize>,
}

#[inline(always)]
const fn desc(sys: u32) -> Desc {
    match sys {
        nr::OPEN => d(op::OPEN, P::Cwd(0), P::None, Some(1)),
        nr::OPENAT => d(op::OPEN, P::At(0, 1), P::None, Some(2)),
        nr::OPENAT2 => d(op::OPEN, P::At(0, 1), P::None, None),
        nr::CREAT => d(op::OPEN, P::Cwd(0), P::None, None),
        nr::EXECVE => d(op::EXEC, P::Cwd(0), P::None, None),
        nr::EXECVEAT => d(op::EXEC, P::At(0, 1), P::None, Some(4)),
        nr::UNLINK => d(op::UNLINK, P::Cwd(0), P::None, None),
        nr::UNLINKAT => d(op::UNLINK, P::At(0, 1), P::None, Some(2)),
        nr::RMDIR => d(op::RMDIR, P::Cwd(0), P::None, None),
        nr::RENAME => d(op::RENAME, P::Cwd(0), P::Cwd(1), None),
        nr::RENAMEAT => d(op::RENAME, P::At(0, 1), P::At(2, 3), None),
        nr::RENAMEAT2 => d(op::RENAME, P::At(0, 1), P::At(2, 3), Some(4)),
        nr::MKDIR => d(op::MKDIR, P::Cwd(0), P::None, Some(1)),
        nr::MKDIRAT => d(op::MKDIR, P::At(0, 1), P::None, Some(2)),
        nr::LINK => d(op::LINK, P::Cwd(0), P::Cwd(1), None),
        nr::LINKAT => d(op::LINK, P::At(0, 1), P::At(2, 3), Some(4)),
        nr::SYMLINK => d(op::SYMLINK, P::Cwd(1), P::Raw(0), None),
        nr::SYMLINKAT => d(op::SYMLINK, P::At(1, 2), P::Raw(0), None),
        nr::TRUNCATE => d(op::TRUNCATE, P::Cwd(0), P::None, Some(1)),
        nr::FTRUNCATE => d(op::TRUNCATE, P::Fd(0), P::None, Some(1)),
        nr::MKNOD => d(op::MKNOD, P::Cwd(0), P::None, Some(1)),
        nr::MKNODAT => d(op::MKNOD, P::At(0, 1), P::None, Some(2)),
        nr::CONNECT => d(op::CONNECT, P::None, P::None, None),
        nr::BIND => d(op::BIND, P::None, P::None, None),
        _ => d(0, P::None, P::None, None),
    }
}

#[inline(always)]
const fn d(op: u16, p1: P, p2: P, arg: Option<usize>) -> Desc {
    Desc { op, p1, p2, arg }
}

/// `sys_enter_*`: remember the arguments of a traced thread's syscall.
#[inline(always)]
pub fn enter(ctx: &TracePointContext, sys: u32) -> u32 {
    if traced_tgid().is_none() {
        return 0;
    }
    let mut p = Pending { sys, _pad: 0, args: [0; 6] };
    for (i, a) in p.args.iter_mut().enumerate() {
        // SAFETY: syscall tracepoint records hold six u64 args from offset 16.
        *a = unsafe { ctx.read_at::<u64>(16 + 8 * i) }.unwrap_or(0);
    }
    let tid = bpf_get_current_pid_tgid() as u32;
    if PENDING.insert(&tid, &p, 0).is_err() {
        bump(stat::PENDING_FULL);
    }
    0
}

/// `sys_exit_*`: build and send the record.
#[inline(always)]
pub fn exit(ctx: &TracePointContext, sys: u32) -> u32 {
    let Some(tgid) = traced_tgid() else { return 0 };
    let tid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: the entry is copied out before it is removed.
    let Some(p) = (unsafe { PENDING.get(&tid) }).copied() else {
        bump(stat::ORPHAN_EXITS);
        return 0;
    };
    let _ = PENDING.remove(&tid);
    if p.sys != sys {
        bump(stat::ORPHAN_EXITS);
        return 0;
    }
    // SAFETY: syscall exit records hold `long ret` at offset 16.
    let ret = unsafe { ctx.read_at::<i64>(16) }.unwrap_or(-1);
    // In LSM mode successful operations are reported by the hooks; failures
    // never reach a hook, so they come from here.
    if mode() == rec_mode::LSM && ret >= 0 {
        return 0;
    }
    // A successful execve is reported by sched_process_exec, with the path
    // of the new executable: the old image's user strings are gone.
    if (sys == nr::EXECVE || sys == nr::EXECVEAT) && ret >= 0 {
        return 0;
    }
    if !kread::offsets_valid() {
        return 0;
    }
    let d = desc(sys);
    if d.op == 0 {
        return 0;
    }
    // Everything that depends on which syscall this is is decided here,
    // where `sys` is a constant, and handed over as plain integers: the
    // common program then has one generic shape for the verifier.
    let mut hand = Handoff { ret, tgid, op: d.op, ..Handoff::EMPTY };
    if let Some(i) = d.arg {
        hand.arg = p.args[i];
    }
    match sys {
        nr::CREAT => hand.arg = O_CREAT_WRONLY_TRUNC,
        nr::OPENAT2 => {
            // struct open_how starts with `u64 flags`.
            // SAFETY: bpf_probe_read_user validates the user pointer.
            hand.arg = unsafe { bpf_probe_read_user(p.args[2] as *const u64) }.unwrap_or(0);
        }
        nr::UNLINKAT if p.args[2] & AT_REMOVEDIR != 0 => hand.op = op::RMDIR,
        nr::MKDIR | nr::MKDIRAT | nr::MKNOD | nr::MKNODAT => hand.mode = hand.arg as u32,
        _ => {}
    }
    if sys == nr::CONNECT || sys == nr::BIND {
        hand.k1 = K_SOCKADDR;
        hand.ptr1 = p.args[1];
    } else if d.op == op::OPEN && ret >= 0 {
        hand.k1 = K_OPENED;
        hand.fd1 = ret;
    } else {
        (hand.k1, hand.fd1, hand.ptr1) = plan(d.p1, &p);
    }
    (hand.k2, hand.fd2, hand.ptr2) = plan(d.p2, &p);
    let Some(slot) = HANDOFF.get_ptr_mut(0) else { return 0 };
    // SAFETY: per-CPU slot, written here and consumed by the tail call on
    // this same CPU before anything else can run here.
    unsafe { *slot = hand };
    // SAFETY: ctx is this program's context; TAIL is filled by userspace
    // before any sys_exit program is attached.
    unsafe { TAIL.tail_call(ctx, 0) };
    // Only reached if the tail call failed: the record is lost, and counted.
    bump(stat::PATH_FAILURES);
    0
}

/// Operand kinds in a [`Handoff`].
const K_NONE: u32 = 0;
/// The file just opened (`fd1` = the returned descriptor).
const K_OPENED: u32 = 1;
/// An open descriptor.
const K_FD: u32 = 2;
/// A user string kept verbatim (a symlink's target).
const K_RAW: u32 = 3;
/// A user string relative to directory fd `fd` (or `AT_FDCWD`).
const K_RELATIVE: u32 = 4;
/// A user `struct sockaddr`.
const K_SOCKADDR: u32 = 5;

#[inline(always)]
fn plan(which: P, p: &Pending) -> (u32, i64, u64) {
    match which {
        P::None => (K_NONE, 0, 0),
        P::Fd(i) => (K_FD, i64::from(p.args[i] as i32), 0),
        P::Raw(i) => (K_RAW, 0, p.args[i]),
        P::Cwd(i) => (K_RELATIVE, i64::from(AT_FDCWD), p.args[i]),
        P::At(dfd, i) => (K_RELATIVE, i64::from(p.args[dfd] as i32), p.args[i]),
    }
}

/// `sys_exit_common`, tail-called by every `sys_exit_*`: resolves the
/// operands and sends the record described by the per-CPU [`Handoff`].
#[inline(always)]
pub fn exit_common(ctx: &TracePointContext) -> u32 {
    let _ = ctx;
    let Some(hand) = HANDOFF.get(0).copied() else { return 0 };
    let Some(mut slot) = Slot::acquire() else { return 0 };
    // SAFETY: returns the current task pointer; only read through probe helpers.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let h = slot.header(hand.op, hand.tgid);
    h.result = if hand.ret < 0 { hand.ret as i32 } else { 0 };
    h.arg = hand.arg;
    h.mode = hand.mode;
    if hand.k1 == K_SOCKADDR {
        let len = sockaddr(&mut slot, hand.ptr1 as *const u8);
        slot.send_paths(len, 0);
        return 0;
    }
    if hand.k1 == K_OPENED {
        opened_file(&mut slot, kread::file_of_fd(task, hand.fd1));
    } else {
        operand(&mut slot, task, hand.k1, hand.fd1, hand.ptr1, Field::First);
    }
    let len1 = kread::field_len(slot.buf);
    kread::begin(slot.buf, Field::Second);
    operand(&mut slot, task, hand.k2, hand.fd2, hand.ptr2, Field::Second);
    let len2 = kread::field_len(slot.buf);
    slot.send_paths(len1, len2);
    0
}

/// Writes the path of an open file as the first field and sets the
/// CREATED / DIRECTORY flags and the file mode.
#[inline(always)]
fn opened_file(slot: &mut Slot, file: *const u8) {
    let (mnt, dentry) = kread::file_path(file);
    kread::walk_dentry(slot.buf, Field::First, mnt, dentry);
    let fmode = kread::read::<u32>(file, off!(file_mode)).unwrap_or(0);
    let imode = kread::dentry_mode(dentry);
    // SAFETY: the slot is owned by this handler.
    let h = unsafe { &mut (*slot.buf).hdr };
    h.mode = imode;
    if fmode & FMODE_CREATED != 0 {
        h.flags |= flag::CREATED;
    }
    if imode & 0o170_000 == 0o040_000 {
        h.flags |= flag::DIRECTORY;
    }
}

/// Writes one path operand as `field`.
#[inline(always)]
fn operand(slot: &mut Slot, task: *const u8, kind: u32, fd: i64, ptr: u64, field: Field) {
    match kind {
        K_FD => {
            let (mnt, dentry) = kread::file_path(kread::file_of_fd(task, fd));
            kread::walk_dentry(slot.buf, field, mnt, dentry);
        }
        K_RAW => {
            kread::raw_user_path(slot.buf, field, ptr as *const u8);
        }
        K_RELATIVE => relative(slot, task, field, fd as i32, ptr),
        _ => {}
    }
}

/// The raw user string, followed (when it is relative) by the components
/// of the directory it is relative to.
#[inline(always)]
fn relative(slot: &mut Slot, task: *const u8, field: Field, dfd: i32, user: u64) {
    if kread::raw_user_path(slot.buf, field, user as *const u8) {
        return;
    }
    let (mnt, dentry) =
        if dfd == AT_FDCWD { kread::cwd_path(task) } else { kread::file_path(kread::file_of_fd(task, i64::from(dfd))) };
    kread::walk_dentry(slot.buf, field, mnt, dentry);
}

/// Decodes a user `struct sockaddr` into the header. AF_UNIX paths go into
/// the first path field. Returns the path data length.
#[inline(always)]
fn sockaddr(slot: &mut Slot, addr: *const u8) -> usize {
    // SAFETY: user pointer validated by the helper.
    let Ok(raw) = (unsafe { bpf_probe_read_user(addr.cast::<[u8; 24]>()) }) else {
        // SAFETY: the slot is owned by this handler.
        unsafe { (*slot.buf).hdr.flags |= flag::PATH_FAILED };
        bump(stat::PATH_FAILURES);
        return 0;
    };
    let family = u16::from_ne_bytes([raw[0], raw[1]]);
    // SAFETY: the slot is owned by this handler.
    let h = unsafe { &mut (*slot.buf).hdr };
    h.net_family = family;
    h.net_port = u16::from_be_bytes([raw[2], raw[3]]);
    match family {
        AF_INET => h.net_addr[..4].copy_from_slice(&raw[4..8]),
        AF_INET6 => h.net_addr.copy_from_slice(&raw[8..24]),
        AF_UNIX => {
            h.net_port = 0;
            kread::raw_user_path(slot.buf, Field::First, addr.wrapping_add(2));
            return kread::field_len(slot.buf);
        }
        _ => {}
    }
    0
}
