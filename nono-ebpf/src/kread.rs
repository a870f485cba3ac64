//! Reading kernel objects: struct members through the BTF-derived offset
//! table, and the path walk that turns a `(vfsmount, dentry)` pair into the
//! components of an absolute path.
//!
//! Nothing here writes to the kernel or decides whether to record.

use aya_ebpf::helpers::{bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes, bpf_probe_read_user_str_bytes};
use nono_common::{EventBuf, KernelOffsets, MAX_PATH_DEPTH, NAME_MAX, PATH_MAX, path::RAW_TAG};

/// Filled in by userspace from the running kernel's BTF before load.
#[unsafe(no_mangle)]
pub(crate) static OFFSETS: KernelOffsets = KernelOffsets::zeroed();

/// Reads one offset. The volatile read stops the compiler from folding the
/// build-time zero into the code: the real value is patched into `.rodata`.
macro_rules! off {
    ($field:ident) => {
        // SAFETY: OFFSETS is a static that lives for the program's lifetime.
        unsafe { core::ptr::read_volatile(&raw const $crate::kread::OFFSETS.$field) as usize }
    };
}
pub(crate) use off;

/// Whether userspace supplied an offset table.
#[inline(always)]
pub fn offsets_valid() -> bool {
    off!(valid) != 0
}

/// Reads a `T` at `base + offset` from kernel memory.
#[inline(always)]
pub fn read<T>(base: *const u8, offset: usize) -> Option<T> {
    if base.is_null() {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel validates the address and fails cleanly.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(offset).cast::<T>()).ok() }
}

/// Reads a kernel pointer member.
#[inline(always)]
pub fn ptr(base: *const u8, offset: usize) -> *const u8 {
    read::<*const u8>(base, offset).unwrap_or(core::ptr::null())
}

/// Outcome of writing one path field.
pub struct Walk {
    pub truncated: bool,
    pub failed: bool,
    /// Stopped at a root that is not the namespace root.
    pub detached: bool,
}

impl Walk {
    pub const fn new() -> Walk {
        Walk { truncated: false, failed: false, detached: false }
    }
}

/// Appends the components of `(mnt, dentry)` leaf-first to the path area
/// starting at `buf.data[base + start]`. Mount crossings are followed to the
/// namespace root. Returns the new end offset relative to `base`.
#[inline(always)]
pub fn walk_dentry(buf: *mut EventBuf, base: usize, start: usize, vfsmnt: *const u8, dentry: *const u8, w: &mut Walk) -> usize {
    let mut pos = start;
    let mut mnt = vfsmnt;
    let mut d = dentry;
    if mnt.is_null() || d.is_null() || base > PATH_MAX {
        w.failed = true;
        return pos;
    }
    let mnt_root_off = off!(vfsmount_root);
    let parent_off = off!(dentry_parent);
    let name_off = off!(dentry_name) + off!(qstr_name);
    let mount_mnt_off = off!(mount_mnt);
    let mount_parent_off = off!(mount_parent);
    let mountpoint_off = off!(mount_mountpoint);
    let mut done = false;
    for _ in 0..MAX_PATH_DEPTH {
        let mnt_root = ptr(mnt, mnt_root_off);
        let parent = ptr(d, parent_off);
        if d == mnt_root || d == parent || parent.is_null() {
            // At the root of this mount: continue in the parent mount, or stop
            // at the namespace root (a mount that is its own parent).
            let mount = mnt.wrapping_sub(mount_mnt_off);
            let mparent = ptr(mount, mount_parent_off);
            if mparent.is_null() || mparent == mount || d != mnt_root {
                // A mount that is its own parent is the namespace root; any
                // other dead end (pseudo filesystems, detached trees) is not.
                w.detached = d != mnt_root || mparent.is_null();
                done = true;
                break;
            }
            d = ptr(mount, mountpoint_off);
            mnt = mparent.wrapping_add(mount_mnt_off);
            continue;
        }
        if pos > PATH_MAX - NAME_MAX {
            break;
        }
        let name = ptr(d, name_off);
        let idx = base + (pos & (PATH_MAX - 1));
        // SAFETY: idx <= 2*PATH_MAX - 1 and the data area has NAME_MAX bytes
        // of slack after 2*PATH_MAX, so the NAME_MAX-byte window is in bounds.
        let dst = unsafe { core::slice::from_raw_parts_mut((*buf).data.as_mut_ptr().add(idx), NAME_MAX) };
        // SAFETY: the helper validates `name` and NUL-terminates within dst.
        match unsafe { bpf_probe_read_kernel_str_bytes(name, dst) } {
            Ok(bytes) => pos += bytes.len() + 1,
            Err(_) => {
                w.failed = true;
                return pos;
            }
        }
        d = parent;
    }
    if !done {
        w.truncated = true;
    } else if !w.detached && pos == start && pos < PATH_MAX {
        // The namespace root itself: one empty component, so that "/" is
        // distinguishable from "no path".
        let idx = base + (pos & (PATH_MAX - 1));
        // SAFETY: idx < 2*PATH_MAX, inside the data area.
        unsafe { *(*buf).data.as_mut_ptr().add(idx) = 0 };
        pos += 1;
    }
    pos
}

/// Writes a raw user string (tagged with [`RAW_TAG`]) at the start of the
/// path area at `base`. Returns the end offset relative to `base`.
#[inline(always)]
pub fn raw_user_path(buf: *mut EventBuf, base: usize, user: *const u8, w: &mut Walk) -> (usize, bool) {
    if base > PATH_MAX || user.is_null() {
        w.failed = true;
        return (0, false);
    }
    // SAFETY: base <= PATH_MAX, the window is PATH_MAX/2 long and the data
    // area is 2*PATH_MAX + NAME_MAX long.
    let area = unsafe { core::slice::from_raw_parts_mut((*buf).data.as_mut_ptr().add(base), PATH_MAX / 2 + 1) };
    area[0] = RAW_TAG;
    // SAFETY: the helper validates `user` and NUL-terminates within the slice.
    match unsafe { bpf_probe_read_user_str_bytes(user, &mut area[1..]) } {
        Ok(bytes) => {
            let n = bytes.len();
            if n >= PATH_MAX / 2 - 1 {
                w.truncated = true;
            }
            let absolute = n > 0 && area[1] == b'/';
            (n + 2, absolute)
        }
        Err(_) => {
            w.failed = true;
            (0, false)
        }
    }
}

/// The `struct file *` behind descriptor `fd` of the current task.
#[inline(always)]
pub fn file_of_fd(task: *const u8, fd: i64) -> *const u8 {
    if fd < 0 {
        return core::ptr::null();
    }
    let files = ptr(task, off!(task_files));
    let fdt = ptr(files, off!(files_fdt));
    let max = read::<u32>(fdt, off!(fdt_max_fds)).unwrap_or(0);
    if fd as u64 >= u64::from(max) {
        return core::ptr::null();
    }
    let table = ptr(fdt, off!(fdt_fd));
    ptr(table, (fd as usize) * 8)
}

/// `(vfsmount, dentry)` of a `struct path` embedded at `base + path_off`.
#[inline(always)]
pub fn path_parts(base: *const u8, path_off: usize) -> (*const u8, *const u8) {
    (ptr(base, path_off + off!(path_mnt)), ptr(base, path_off + off!(path_dentry)))
}

/// `(vfsmount, dentry)` of an open file.
#[inline(always)]
pub fn file_path(file: *const u8) -> (*const u8, *const u8) {
    path_parts(file, off!(file_path))
}

/// `(vfsmount, dentry)` of the task's working directory.
#[inline(always)]
pub fn cwd_path(task: *const u8) -> (*const u8, *const u8) {
    let fs = ptr(task, off!(task_fs));
    path_parts(fs, off!(fs_pwd))
}

/// `i_mode` of the inode behind a dentry (0 if unknown).
#[inline(always)]
pub fn dentry_mode(dentry: *const u8) -> u32 {
    let inode = ptr(dentry, off!(dentry_inode));
    u32::from(read::<u16>(inode, off!(inode_mode)).unwrap_or(0))
}
