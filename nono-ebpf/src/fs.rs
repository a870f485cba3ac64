//! Filesystem syscalls at `sys_exit`: which operands a syscall has, and
//! the one generic part that resolves them into path fields and sends the
//! record.
//!
//! Paths: a successful open, an ftruncate and a metadata change made
//! through a descriptor (`fchmod`, `fchown`, `fsetxattr`, `AT_EMPTY_PATH`,
//! `utimensat(fd, NULL)`) are resolved from the returned (or given)
//! descriptor, so they are the kernel's canonical path. Everything else is
//! the raw user string plus the components of its base directory (the cwd
//! or the dirfd), which userspace joins and normalises: a metadata call
//! with `AT_SYMLINK_NOFOLLOW` (or `lchown`) and one without name the same
//! path, the one the caller wrote.

use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_user};
use nono_common::{FMODE_CREATED, Pending, flag, op, sysno as nr};

use crate::emit::{HANDOFF, Handoff, Slot};
use crate::kread::{self, AT_FDCWD, Field, off};

const AT_REMOVEDIR: u64 = 0x200;
const AT_EMPTY_PATH: u64 = 0x1000;
const EBADF: i64 = 9;
const O_CREAT_WRONLY_TRUNC: u64 = 0o1101;

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

/// The operands of each filesystem syscall; `op == 0` for any other.
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
        // Metadata: `arg` names the `AT_*` flags argument, if any (the
        // record's `arg` is the syscall number, set in `exit`).
        nr::CHMOD | nr::CHOWN | nr::LCHOWN | nr::UTIME | nr::UTIMES => d(op::METADATA, P::Cwd(0), P::None, None),
        nr::SETXATTR | nr::LSETXATTR | nr::REMOVEXATTR | nr::LREMOVEXATTR => d(op::METADATA, P::Cwd(0), P::None, None),
        nr::FCHMOD | nr::FCHOWN | nr::FSETXATTR | nr::FREMOVEXATTR => d(op::METADATA, P::Fd(0), P::None, None),
        nr::FCHMODAT | nr::FUTIMESAT => d(op::METADATA, P::At(0, 1), P::None, None),
        nr::FCHMODAT2 | nr::UTIMENSAT => d(op::METADATA, P::At(0, 1), P::None, Some(3)),
        nr::FCHOWNAT => d(op::METADATA, P::At(0, 1), P::None, Some(4)),
        nr::SETXATTRAT | nr::REMOVEXATTRAT => d(op::METADATA, P::At(0, 1), P::None, Some(2)),
        _ => d(0, P::None, P::None, None),
    }
}

#[inline(always)]
const fn d(op: u16, p1: P, p2: P, arg: Option<usize>) -> Desc {
    Desc { op, p1, p2, arg }
}

/// Whether `sys` is a filesystem syscall this module records.
#[inline(always)]
pub const fn is_fs(sys: u32) -> bool {
    desc(sys).op != 0
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

/// A [`Desc`] packed into one integer: `op | arg << 16 | p1 << 24 | p2 << 40`,
/// each operand `kind | a << 4 | b << 8` (kind: 0 none, 1 cwd, 2 at, 3 fd,
/// 4 raw; `a`, `b` argument indices), `arg` 15 for none.
#[inline(always)]
const fn pack(d: Desc) -> u64 {
    const fn operand(p: P) -> u64 {
        match p {
            P::None => 0,
            P::Cwd(i) => 1 | (i as u64) << 4,
            P::At(dfd, i) => 2 | (dfd as u64) << 4 | (i as u64) << 8,
            P::Fd(i) => 3 | (i as u64) << 4,
            P::Raw(i) => 4 | (i as u64) << 4,
        }
    }
    let arg = match d.arg {
        Some(i) => i as u64,
        None => 15,
    };
    d.op as u64 | arg << 16 | operand(d.p1) << 24 | operand(d.p2) << 40
}

/// Argument `i` (masked into range), or 0 for an index past the six.
#[inline(always)]
fn arg_at(p: &Pending, i: u64) -> u64 {
    if i < 6 { p.args[(i as usize) % 6] } else { 0 }
}

/// `(kind, fd, pointer)` of a packed operand.
#[inline(always)]
fn plan(operand: u64, p: &Pending) -> (u32, i64, u64) {
    let (a, b) = ((operand >> 4) & 0xf, (operand >> 8) & 0xf);
    match operand & 0xf {
        1 => (K_RELATIVE, i64::from(AT_FDCWD), arg_at(p, a)),
        2 => (K_RELATIVE, i64::from(arg_at(p, a) as i32), arg_at(p, b)),
        3 => (K_FD, i64::from(arg_at(p, a) as i32), 0),
        4 => (K_RAW, 0, arg_at(p, a)),
        _ => (K_NONE, 0, 0),
    }
}

/// The flags of an open syscall from its second and third arguments
/// (`open`, `openat`, `creat`, and `openat2`'s `struct open_how`, which
/// starts with `u64 flags`); 0 for any other syscall. The LSM `file_open`
/// hook uses it too, on the registers of the call it runs in.
#[inline(always)]
pub fn open_flags(sys: u32, second: u64, third: u64) -> u64 {
    match sys {
        nr::OPEN => second,
        nr::OPENAT => third,
        nr::CREAT => O_CREAT_WRONLY_TRUNC,
        // SAFETY: bpf_probe_read_user validates the user pointer.
        nr::OPENAT2 => unsafe { bpf_probe_read_user(third as *const u64) }.unwrap_or(0),
        _ => 0,
    }
}

/// The syscall-specific half: what the record needs, written to the
/// per-CPU [`Handoff`], then the generic half.
///
/// The operand table is read as data (a packed integer passed through the
/// stack with volatile accesses), not folded into per-syscall code: LLVM
/// otherwise specialises the code per syscall and, on some of those paths,
/// reads a register it never wrote (the verifier's `!read_ok`).
#[inline(always)]
pub fn exit(sys: u32, p: &Pending, ret: i64, tgid: u32) {
    let mut packed = pack(desc(sys));
    // SAFETY: a local; the volatile round trip hides its value from LLVM.
    let packed = unsafe {
        core::ptr::write_volatile(&raw mut packed, packed);
        core::ptr::read_volatile(&raw const packed)
    };
    let op_code = (packed & 0xffff) as u16;
    let mut hand = Handoff { ret, tgid, op: op_code, arg: arg_at(p, (packed >> 16) & 0xf), ..Handoff::EMPTY };
    match sys {
        nr::CREAT | nr::OPENAT2 => hand.arg = open_flags(sys, p.args[1], p.args[2]),
        nr::UNLINKAT if p.args[2] & AT_REMOVEDIR != 0 => hand.op = op::RMDIR,
        nr::MKDIR | nr::MKDIRAT | nr::MKNOD | nr::MKNODAT => hand.mode = hand.arg as u32,
        _ => {}
    }
    if op_code == op::OPEN && ret >= 0 {
        hand.k1 = K_OPENED;
        hand.fd1 = ret;
    } else {
        (hand.k1, hand.fd1, hand.ptr1) = plan((packed >> 24) & 0xffff, p);
    }
    if op_code == op::METADATA {
        metadata_target(&mut hand, sys, ret);
    }
    (hand.k2, hand.fd2, hand.ptr2) = plan((packed >> 40) & 0xffff, p);
    let Some(slot) = HANDOFF.get_ptr_mut(0) else { return };
    // SAFETY: this CPU's slot; read back just below, on the same CPU.
    unsafe { core::ptr::write_volatile(slot, hand) };
    resolve_and_send();
}

/// A metadata change names its object by a descriptor (`fchmod`), by a
/// path, or by a directory descriptor with an empty path (`AT_EMPTY_PATH`)
/// or a NULL one (`utimensat`, `futimesat`): the descriptor cases are
/// resolved like a successful open (the kernel's path and the file type),
/// the path cases like any other path operand. `hand.arg` holds the
/// `AT_*` flags on entry and the syscall number on return.
#[inline(always)]
fn metadata_target(hand: &mut Handoff, sys: u32, ret: i64) {
    let at_flags = hand.arg;
    hand.arg = u64::from(sys);
    if ret == -EBADF {
        // No such descriptor: nothing to name, and not a lost path.
        hand.k1 = K_NONE;
        return;
    }
    if hand.k1 == K_FD {
        hand.k1 = K_OPENED;
        return;
    }
    if hand.k1 != K_RELATIVE {
        return;
    }
    let names_dirfd = if hand.ptr1 == 0 {
        true
    } else if at_flags & AT_EMPTY_PATH != 0 {
        // SAFETY: bpf_probe_read_user validates the user pointer.
        unsafe { bpf_probe_read_user(hand.ptr1 as *const u8) }.is_ok_and(|b| b == 0)
    } else {
        false
    };
    if !names_dirfd {
        return;
    }
    if hand.fd1 as i32 == AT_FDCWD {
        // `""` with `AT_EMPTY_PATH` is the cwd (the relative walk gives
        // it); a NULL path beside `AT_FDCWD` names nothing (EFAULT).
        if hand.ptr1 == 0 {
            hand.k1 = K_NONE;
        }
        return;
    }
    hand.k1 = K_OPENED;
}

/// The generic half: resolves the operands described by the per-CPU
/// [`Handoff`] and sends the record. Never inlined, and called from one
/// place, so the verifier checks it once whatever the syscall.
#[inline(never)]
fn resolve_and_send() {
    let Some(slot) = HANDOFF.get_ptr(0) else { return };
    // SAFETY: this CPU's slot, written just before the call.
    let hand = unsafe { core::ptr::read_volatile(slot) };
    let Some(mut slot) = Slot::acquire() else { return };
    // SAFETY: returns the current task pointer; only read through probe helpers.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let h = slot.header(hand.op, hand.tgid);
    h.result = if hand.ret < 0 { hand.ret as i32 } else { 0 };
    h.arg = hand.arg;
    h.mode = hand.mode;
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

/// Writes one path operand as `field`. One walk call site whatever the
/// kind, so the walk is verified once per field.
#[inline(always)]
fn operand(slot: &mut Slot, task: *const u8, kind: u32, fd: i64, ptr: u64, field: Field) {
    let (mnt, dentry) = match kind {
        K_FD => kread::file_path(kread::file_of_fd(task, fd)),
        K_RAW => {
            kread::raw_user_path(slot.buf, field, ptr as *const u8);
            return;
        }
        K_RELATIVE => {
            if kread::raw_user_path(slot.buf, field, ptr as *const u8) {
                return;
            }
            kread::base_dir(task, fd)
        }
        _ => return,
    };
    kread::walk_dentry(slot.buf, field, mnt, dentry);
}
