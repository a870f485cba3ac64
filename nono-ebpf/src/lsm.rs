//! The BPF LSM recorder: hooks report operations that reach the security
//! layer, with paths taken from kernel objects (`struct path`, dentries),
//! so they are absolute and canonical whatever dirfd or cwd was used.
//! Every hook returns 0: recording never denies.

use aya_ebpf::programs::LsmContext;
use nono_common::{flag, op};

use crate::emit::{Slot, traced_tgid};
use crate::kread::{self, Field, off};

const FMODE_READ: u32 = 0x1;
const FMODE_WRITE: u32 = 0x2;
const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFBLK: u32 = 0o060_000;
const O_WRONLY: u64 = 0o1;
const O_RDWR: u64 = 0o2;

/// Records `op` on one or two `(mnt, dentry)` objects.
#[inline(always)]
fn record(
    op_code: u16,
    arg: u64,
    first: (*const u8, *const u8),
    second: Option<(*const u8, *const u8)>,
    extra_flags: u16,
) -> i32 {
    let Some(tgid) = traced_tgid() else { return 0 };
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
    let file: *const u8 = ctx.arg(0);
    let fmode = kread::read::<u32>(file, off!(file_mode)).unwrap_or(0);
    let mut flags = 0;
    if fmode & FMODE_READ != 0 && fmode & FMODE_WRITE != 0 {
        flags = O_RDWR;
    } else if fmode & FMODE_WRITE != 0 {
        flags = O_WRONLY;
    }
    let (mnt, dentry) = kread::file_path(file);
    let mut extra = 0;
    if fmode & nono_common::FMODE_CREATED != 0 {
        extra |= flag::CREATED;
    }
    if kread::dentry_mode(dentry) & S_IFMT == S_IFDIR {
        extra |= flag::DIRECTORY;
    }
    record(op::OPEN, flags, (mnt, dentry), None, extra)
}

pub fn path_unlink(ctx: &LsmContext) -> i32 {
    let dir: *const u8 = ctx.arg(0);
    let dentry: *const u8 = ctx.arg(1);
    record(op::UNLINK, 0, (mnt_of(dir), dentry), None, 0)
}

pub fn path_rmdir(ctx: &LsmContext) -> i32 {
    let dir: *const u8 = ctx.arg(0);
    let dentry: *const u8 = ctx.arg(1);
    record(op::RMDIR, 0, (mnt_of(dir), dentry), None, 0)
}

pub fn path_mkdir(ctx: &LsmContext) -> i32 {
    let dir: *const u8 = ctx.arg(0);
    let dentry: *const u8 = ctx.arg(1);
    let mode: u64 = ctx.arg(2);
    record(op::MKDIR, mode & 0xffff, (mnt_of(dir), dentry), None, 0)
}

pub fn path_mknod(ctx: &LsmContext) -> i32 {
    let dir: *const u8 = ctx.arg(0);
    let dentry: *const u8 = ctx.arg(1);
    let mode: u64 = ctx.arg(2);
    let kind = mode as u32 & S_IFMT;
    // open(O_CREAT) of a regular file passes through path_mknod with S_IFREG
    // (or no type bits): that is a create, not a device node.
    let op_code = if kind == 0 || kind == S_IFREG { op::CREATE } else { op::MKNOD };
    record(op_code, mode & 0xffff, (mnt_of(dir), dentry), None, flag::CREATED)
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
    raw_kernel_str(slot.buf, old_name);
    let len2 = kread::field_len(slot.buf);
    // SAFETY: the slot is owned by this handler.
    let h = unsafe { &mut (*slot.buf).hdr };
    h.flags |= flag::FROM_LSM;
    h.mode = kread::dentry_mode(dentry);
    slot.send_paths(len1, len2);
    0
}

/// Writes the symlink's target (a kernel copy of the user's string, kept
/// verbatim like the tracepoint backend's raw field) into the second field,
/// tagged with `RAW_TAG` so user space does not treat it as components.
#[inline(always)]
fn raw_kernel_str(buf: *mut nono_common::EventBuf, kstr: *const u8) {
    use nono_common::{PATH_MAX, path::RAW_TAG};
    if kstr.is_null() {
        kread::add_flags(buf, u32::from(flag::PATH2_FAILED));
        return;
    }
    // SAFETY: the second field starts at PATH_MAX and the window is
    // PATH_MAX/2 + 1 long; the data area is 2*PATH_MAX + NAME_MAX long.
    let area = unsafe { core::slice::from_raw_parts_mut((*buf).data.as_mut_ptr().add(PATH_MAX), PATH_MAX / 2 + 1) };
    area[0] = RAW_TAG;
    // SAFETY: the helper validates `kstr` and NUL-terminates within the slice.
    match unsafe { aya_ebpf::helpers::bpf_probe_read_kernel_str_bytes(kstr, &mut area[1..]) } {
        Ok(bytes) => {
            let n = bytes.len();
            if n >= PATH_MAX / 2 - 1 {
                kread::add_flags(buf, u32::from(flag::PATH2_TRUNCATED));
            }
            // SAFETY: buf is the handler's scratch slot.
            unsafe { core::ptr::write_volatile(&raw mut (*buf).walk_pos, (n + 2) as u32) };
        }
        Err(_) => kread::add_flags(buf, u32::from(flag::PATH2_FAILED)),
    }
}

pub fn path_link(ctx: &LsmContext) -> i32 {
    let old: *const u8 = ctx.arg(0);
    let new_dir: *const u8 = ctx.arg(1);
    let new: *const u8 = ctx.arg(2);
    let mnt = mnt_of(new_dir);
    record(op::LINK, 0, (mnt, old), Some((mnt, new)), 0)
}

pub fn path_rename(ctx: &LsmContext) -> i32 {
    let old_dir: *const u8 = ctx.arg(0);
    let old: *const u8 = ctx.arg(1);
    let new_dir: *const u8 = ctx.arg(2);
    let new: *const u8 = ctx.arg(3);
    let flags: u64 = ctx.arg(4);
    record(op::RENAME, flags, (mnt_of(old_dir), old), Some((mnt_of(new_dir), new)), 0)
}

pub fn path_truncate(ctx: &LsmContext) -> i32 {
    let path: *const u8 = ctx.arg(0);
    let (mnt, dentry) = kread::path_parts(path, 0);
    record(op::TRUNCATE, 0, (mnt, dentry), None, 0)
}

pub fn file_ioctl(ctx: &LsmContext) -> i32 {
    let file: *const u8 = ctx.arg(0);
    let cmd: u64 = ctx.arg(1);
    let (mnt, dentry) = kread::file_path(file);
    let kind = kread::dentry_mode(dentry) & S_IFMT;
    if kind != S_IFCHR && kind != S_IFBLK {
        return 0;
    }
    record(op::IOCTL, cmd & 0xffff_ffff, (mnt, dentry), None, 0)
}

pub fn socket_connect(ctx: &LsmContext) -> i32 {
    socket(ctx, op::CONNECT)
}

pub fn socket_bind(ctx: &LsmContext) -> i32 {
    socket(ctx, op::BIND)
}

/// `socket_connect` / `socket_bind(struct socket *, struct sockaddr *, int)`.
fn socket(ctx: &LsmContext, op_code: u16) -> i32 {
    let Some(tgid) = traced_tgid() else { return 0 };
    let addr: *const u8 = ctx.arg(1);
    let Some(raw) = kread::read::<[u8; 24]>(addr, 0) else { return 0 };
    let family = u16::from_ne_bytes([raw[0], raw[1]]);
    if family != 2 && family != 10 {
        // AF_UNIX connects resolve to a filesystem path and are seen by the
        // open-side hooks and the syscall exits; other families carry no port.
        return 0;
    }
    let Some(mut slot) = Slot::acquire() else { return 0 };
    let h = slot.header(op_code, tgid);
    h.flags |= flag::FROM_LSM;
    h.net_family = family;
    h.net_port = u16::from_be_bytes([raw[2], raw[3]]);
    if family == 2 {
        h.net_addr[..4].copy_from_slice(&raw[4..8]);
    } else {
        h.net_addr.copy_from_slice(&raw[8..24]);
    }
    slot.send(0);
    0
}
