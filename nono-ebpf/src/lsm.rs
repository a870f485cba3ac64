//! The BPF LSM recorder: hooks report filesystem operations that reach the
//! security layer, with paths taken from kernel objects (`struct path`,
//! dentries), so they are absolute and canonical whatever dirfd or cwd was
//! used. Sockets, signals and facilities have no hook here: the syscall
//! exit records them in both modes. Every hook returns 0: recording never
//! denies.
//!
//! Metadata changes (`chmod`, `chown`, timestamps, xattrs) are recorded by
//! the syscall exit too, successes included, not by `path_chmod`,
//! `path_chown`, `inode_setattr`, `inode_setxattr`, `inode_removexattr`:
//! the last three see a dentry without its mount (no path across mount
//! points), and under `nono run --audit` the broker performs these calls
//! from the supervisor, outside the traced tree, where a hook would fire in
//! the wrong task while the exit still sees the command's own call return
//! with the broker's answer.

use aya_ebpf::helpers::{bpf_get_current_task, bpf_get_current_task_btf, bpf_probe_read_kernel, bpf_task_pt_regs};
use aya_ebpf::programs::LsmContext;
use nono_common::{flag, op};

use crate::emit::{Slot, traced_tgid};
use crate::kread::{self, Field, off};
use crate::sys::regs;

const FMODE_READ: u32 = 0x1;
const FMODE_WRITE: u32 = 0x2;
const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFBLK: u32 = 0o060_000;
const O_WRONLY: u64 = 0o1;
const O_RDWR: u64 = 0o2;
const O_ACCMODE: u64 = 0o3;

/// The flags of the open syscall this `file_open` runs in, or 0 when the
/// open is not a syscall's own (an exec's, io_uring's, the kernel's).
///
/// By the time the hook runs the kernel has cleared `O_CREAT`, `O_EXCL`,
/// `O_TRUNC` and `O_NOCTTY` from `f_flags`; the syscall's registers still
/// hold them. With them a record says what was asked, as the tracepoint
/// backend's does, and `audit check` can tell an `O_CREAT` open (which the
/// broker sees) from one without.
#[inline(always)]
fn syscall_open_flags() -> u64 {
    // SAFETY: returns the current task pointer; only read through helpers.
    if kread::in_compat_syscall(unsafe { bpf_get_current_task() } as *const u8) {
        // ia32 numbers are not x86_64 numbers.
        return 0;
    }
    // SAFETY: the BTF task pointer is what the helper takes; the returned
    // `pt_regs` pointer is only read through probe_read_kernel.
    let r = unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) } as *const u64;
    if r.is_null() {
        return 0;
    }
    // SAFETY: fault-safe helper reads of the task's saved registers.
    let reg = |i: usize| unsafe { bpf_probe_read_kernel(r.add(i)) }.unwrap_or(0);
    crate::fs::open_flags(reg(regs::ORIG_AX) as u32, reg(regs::SI), reg(regs::DX))
}

/// Records `op` on one or two `(mnt, dentry)` objects, for the traced
/// process `tgid` (looked up when the caller has not already).
#[inline(always)]
fn record(
    tgid: Option<u32>,
    op_code: u16,
    arg: u64,
    first: (*const u8, *const u8),
    second: Option<(*const u8, *const u8)>,
    extra_flags: u16,
) -> i32 {
    let Some(tgid) = tgid.or_else(traced_tgid) else { return 0 };
    if !kread::offsets_valid() {
        return 0;
    }
    let Some(mut slot) = Slot::acquire() else { return 0 };
    slot.header(op_code, tgid).arg = arg;
    kread::walk_dentry(slot.buf, Field::First, first.0, first.1);
    let len1 = kread::field_len(slot.buf);
    kread::begin(slot.buf, Field::Second);
    if let Some((mnt, dentry)) = second {
        kread::walk_dentry(slot.buf, Field::Second, mnt, dentry);
    }
    let len2 = kread::field_len(slot.buf);
    // SAFETY: the slot is owned by this handler.
    let h = unsafe { &mut (*slot.buf).hdr };
    h.flags |= flag::FROM_LSM | extra_flags;
    h.mode = kread::dentry_mode(first.1);
    slot.send_paths(len1, len2);
    0
}

/// The mount of a `const struct path *` argument.
#[inline(always)]
fn mnt_of(path: *const u8) -> *const u8 {
    kread::ptr(path, off!(path_mnt))
}

pub fn file_open(ctx: &LsmContext) -> i32 {
    // Every open of the machine passes here: decide first.
    let Some(tgid) = traced_tgid() else { return 0 };
    let file: *const u8 = ctx.arg(0);
    let fmode = kread::read::<u32>(file, off!(file_mode)).unwrap_or(0);
    let mut flags = 0;
    if fmode & FMODE_READ != 0 && fmode & FMODE_WRITE != 0 {
        flags = O_RDWR;
    } else if fmode & FMODE_WRITE != 0 {
        flags = O_WRONLY;
    }
    // The access mode is the file's; creation and truncation come from the call.
    flags |= syscall_open_flags() & !O_ACCMODE;
    let (mnt, dentry) = kread::file_path(file);
    let mut extra = 0;
    if fmode & nono_common::FMODE_CREATED != 0 {
        extra |= flag::CREATED;
    }
    if kread::dentry_mode(dentry) & S_IFMT == S_IFDIR {
        extra |= flag::DIRECTORY;
    }
    // The kernel's own opens for an exec (the script, its interpreter, the
    // ELF interpreter) need `execute`, as Landlock checks it here.
    if kread::read::<u32>(file, off!(file_flags)).unwrap_or(0) & nono_common::FMODE_EXEC_FLAG != 0 {
        extra |= flag::EXEC_OPEN;
    }
    record(Some(tgid), op::OPEN, flags, (mnt, dentry), None, extra)
}

pub fn path_unlink(ctx: &LsmContext) -> i32 {
    let dir: *const u8 = ctx.arg(0);
    let dentry: *const u8 = ctx.arg(1);
    record(None, op::UNLINK, 0, (mnt_of(dir), dentry), None, 0)
}

pub fn path_rmdir(ctx: &LsmContext) -> i32 {
    let dir: *const u8 = ctx.arg(0);
    let dentry: *const u8 = ctx.arg(1);
    record(None, op::RMDIR, 0, (mnt_of(dir), dentry), None, 0)
}

pub fn path_mkdir(ctx: &LsmContext) -> i32 {
    let dir: *const u8 = ctx.arg(0);
    let dentry: *const u8 = ctx.arg(1);
    let mode: u64 = ctx.arg(2);
    record(None, op::MKDIR, mode & 0xffff, (mnt_of(dir), dentry), None, 0)
}

pub fn path_mknod(ctx: &LsmContext) -> i32 {
    let dir: *const u8 = ctx.arg(0);
    let dentry: *const u8 = ctx.arg(1);
    let mode: u64 = ctx.arg(2);
    let kind = mode as u32 & S_IFMT;
    // open(O_CREAT) of a regular file passes through path_mknod with S_IFREG
    // (or no type bits): that is a create, not a device node.
    let op_code = if kind == 0 || kind == S_IFREG { op::CREATE } else { op::MKNOD };
    record(None, op_code, mode & 0xffff, (mnt_of(dir), dentry), None, flag::CREATED)
}

pub fn path_symlink(ctx: &LsmContext) -> i32 {
    let dir: *const u8 = ctx.arg(0);
    let dentry: *const u8 = ctx.arg(1);
    let old_name: *const u8 = ctx.arg(2);
    let Some(tgid) = traced_tgid() else { return 0 };
    if !kread::offsets_valid() {
        return 0;
    }
    let Some(mut slot) = Slot::acquire() else { return 0 };
    slot.header(op::SYMLINK, tgid).arg = 0;
    kread::walk_dentry(slot.buf, Field::First, mnt_of(dir), dentry);
    let len1 = kread::field_len(slot.buf);
    kread::begin(slot.buf, Field::Second);
    // The target as written, kept verbatim like the syscall path's raw field.
    kread::raw_kernel_path(slot.buf, Field::Second, old_name);
    let len2 = kread::field_len(slot.buf);
    // SAFETY: the slot is owned by this handler.
    let h = unsafe { &mut (*slot.buf).hdr };
    h.flags |= flag::FROM_LSM;
    h.mode = kread::dentry_mode(dentry);
    slot.send_paths(len1, len2);
    0
}

pub fn path_link(ctx: &LsmContext) -> i32 {
    let old: *const u8 = ctx.arg(0);
    let new_dir: *const u8 = ctx.arg(1);
    let new: *const u8 = ctx.arg(2);
    let mnt = mnt_of(new_dir);
    record(None, op::LINK, 0, (mnt, old), Some((mnt, new)), 0)
}

pub fn path_rename(ctx: &LsmContext) -> i32 {
    let old_dir: *const u8 = ctx.arg(0);
    let old: *const u8 = ctx.arg(1);
    let new_dir: *const u8 = ctx.arg(2);
    let new: *const u8 = ctx.arg(3);
    let flags: u64 = ctx.arg(4);
    record(None, op::RENAME, flags, (mnt_of(old_dir), old), Some((mnt_of(new_dir), new)), 0)
}

pub fn path_truncate(ctx: &LsmContext) -> i32 {
    let path: *const u8 = ctx.arg(0);
    let (mnt, dentry) = kread::path_parts(path, 0);
    record(None, op::TRUNCATE, 0, (mnt, dentry), None, 0)
}

pub fn file_ioctl(ctx: &LsmContext) -> i32 {
    let file: *const u8 = ctx.arg(0);
    let cmd: u64 = ctx.arg(1);
    let (mnt, dentry) = kread::file_path(file);
    let kind = kread::dentry_mode(dentry) & S_IFMT;
    if kind != S_IFCHR && kind != S_IFBLK {
        return 0;
    }
    record(None, op::IOCTL, cmd & 0xffff_ffff, (mnt, dentry), None, 0)
}
