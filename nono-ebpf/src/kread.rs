//! Reading kernel objects: struct members through the BTF-derived offset
//! table, and the path walk that turns a `(vfsmount, dentry)` pair into the
//! components of an absolute path.
//!
//! Verifier discipline: every value carried across a loop iteration or a
//! walk (positions, counts, flags) lives in the scratch slot and is read
//! back with volatile loads. The verifier then sees unknown scalars, so the
//! many ways out of a walk converge to one state and verification stays
//! linear instead of multiplying per branch.
//!
//! Nothing here writes to the kernel or decides whether to record.

use aya_ebpf::helpers::{bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes, bpf_probe_read_user_str_bytes};
use nono_common::{EventBuf, KernelOffsets, MAX_PATH_DEPTH, NAME_MAX, PATH_MAX, WALK_SLOTS, flag, path::RAW_TAG};

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

/// Which of the two path fields a walk fills.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Field {
    First,
    Second,
}

impl Field {
    /// Start of the field's area in `data`.
    #[inline(always)]
    const fn base(self) -> usize {
        match self {
            Field::First => 0,
            Field::Second => PATH_MAX,
        }
    }

    #[inline(always)]
    const fn truncated(self) -> u32 {
        match self {
            Field::First => flag::PATH_TRUNCATED as u32,
            Field::Second => flag::PATH2_TRUNCATED as u32,
        }
    }

    #[inline(always)]
    const fn failed(self) -> u32 {
        match self {
            Field::First => flag::PATH_FAILED as u32,
            Field::Second => flag::PATH2_FAILED as u32,
        }
    }

    #[inline(always)]
    const fn detached(self) -> u32 {
        match self {
            Field::First => flag::DETACHED as u32,
            Field::Second => 0,
        }
    }
}

// Volatile accessors for the walk state in the slot.
#[inline(always)]
fn get_pos(buf: *mut EventBuf) -> usize {
    // SAFETY: buf is the handler's scratch slot.
    unsafe { core::ptr::read_volatile(&raw const (*buf).walk_pos) as usize }
}
#[inline(always)]
fn set_pos(buf: *mut EventBuf, pos: usize) {
    // SAFETY: buf is the handler's scratch slot.
    unsafe { core::ptr::write_volatile(&raw mut (*buf).walk_pos, pos as u32) }
}
#[inline(always)]
pub fn add_flags(buf: *mut EventBuf, bits: u32) {
    // SAFETY: buf is the handler's scratch slot.
    unsafe {
        let f = core::ptr::read_volatile(&raw const (*buf).walk_flags);
        core::ptr::write_volatile(&raw mut (*buf).walk_flags, f | bits);
    }
}
#[inline(always)]
pub fn get_flags(buf: *mut EventBuf) -> u32 {
    // SAFETY: buf is the handler's scratch slot.
    unsafe { core::ptr::read_volatile(&raw const (*buf).walk_flags) }
}

/// Starts a field: position 0, and (for the first field) no flags yet.
#[inline(always)]
pub fn begin(buf: *mut EventBuf, field: Field) {
    set_pos(buf, 0);
    if field == Field::First {
        // SAFETY: buf is the handler's scratch slot.
        unsafe { core::ptr::write_volatile(&raw mut (*buf).walk_flags, 0) };
    }
}

/// The field's length so far, bounded for the verifier to `[0, PATH_MAX]`.
#[inline(always)]
pub fn field_len(buf: *mut EventBuf) -> usize {
    let pos = get_pos(buf) & (2 * PATH_MAX - 1);
    if pos > PATH_MAX { PATH_MAX } else { pos }
}

/// Appends the components of `(mnt, dentry)` leaf-first at the field's
/// current position. Mount crossings are followed to the namespace root.
///
/// Two passes: the first chases pointers and stores name pointers, the
/// second copies names.
#[inline(always)]
pub fn walk_dentry(buf: *mut EventBuf, field: Field, vfsmnt: *const u8, dentry: *const u8) {
    if vfsmnt.is_null() || dentry.is_null() {
        add_flags(buf, field.failed());
        return;
    }
    let start = get_pos(buf);
    // SAFETY: buf is the handler's scratch slot.
    unsafe { core::ptr::write_volatile(&raw mut (*buf).walk_len, 0) };
    collect(buf, field, vfsmnt, dentry);
    for i in 0..MAX_PATH_DEPTH as usize {
        // SAFETY: buf is the handler's scratch slot.
        let n = unsafe { core::ptr::read_volatile(&raw const (*buf).walk_len) } as usize;
        if i >= n {
            break;
        }
        let pos = get_pos(buf);
        if pos > PATH_MAX - NAME_MAX {
            add_flags(buf, field.truncated());
            break;
        }
        // SAFETY: the index is masked to the array's power-of-two length.
        let name = unsafe { (*buf).walk_names[i & (WALK_SLOTS - 1)] } as *const u8;
        let idx = field.base() + (pos & (PATH_MAX - 1));
        // SAFETY: idx <= 2*PATH_MAX - 1 and the data area has NAME_MAX bytes
        // of slack after 2*PATH_MAX, so the window is in bounds.
        let dst = unsafe { core::slice::from_raw_parts_mut((*buf).data.as_mut_ptr().add(idx), NAME_MAX) };
        // SAFETY: the helper validates `name` and NUL-terminates within dst.
        match unsafe { bpf_probe_read_kernel_str_bytes(name, dst) } {
            Ok(bytes) => set_pos(buf, pos + bytes.len() + 1),
            Err(_) => {
                add_flags(buf, field.failed());
                break;
            }
        }
    }
    let pos = get_pos(buf);
    if pos == start && pos < PATH_MAX && get_flags(buf) & (field.detached() | field.truncated() | field.failed()) == 0 {
        // The namespace root itself: one empty component, so that "/" is
        // distinguishable from "no path".
        // A fresh read: LLVM would otherwise reuse the unbounded `start`.
        let idx = field.base() + (get_pos(buf) & (PATH_MAX - 1));
        // SAFETY: idx < 2*PATH_MAX, inside the data area.
        unsafe { *(*buf).data.as_mut_ptr().add(idx) = 0 };
        set_pos(buf, pos + 1);
    }
}

/// First pass: follow parents (and mounts) towards the root, storing name
/// pointers in the slot. Flags truncation or a detached root.
#[inline(always)]
fn collect(buf: *mut EventBuf, field: Field, vfsmnt: *const u8, dentry: *const u8) {
    let mnt_root_off = off!(vfsmount_root);
    let parent_off = off!(dentry_parent);
    let name_off = off!(dentry_name) + off!(qstr_name);
    let mount_mnt_off = off!(mount_mnt);
    let mount_parent_off = off!(mount_parent);
    let mountpoint_off = off!(mount_mountpoint);
    // SAFETY (loop): buf is the handler's slot; indices are masked. The
    // cursor lives in the slot so each iteration starts from unknown values.
    unsafe {
        core::ptr::write_volatile(&raw mut (*buf).walk_mnt, vfsmnt as u64);
        core::ptr::write_volatile(&raw mut (*buf).walk_dentry, dentry as u64);
    }
    for _ in 0..MAX_PATH_DEPTH {
        // SAFETY: as above.
        let (mnt, d) = unsafe {
            (
                core::ptr::read_volatile(&raw const (*buf).walk_mnt) as *const u8,
                core::ptr::read_volatile(&raw const (*buf).walk_dentry) as *const u8,
            )
        };
        let mnt_root = ptr(mnt, mnt_root_off);
        let parent = ptr(d, parent_off);
        if d == mnt_root || d == parent || parent.is_null() {
            // At the root of this mount: continue in the parent mount, or stop
            // at the namespace root (a mount that is its own parent).
            let mount = mnt.wrapping_sub(mount_mnt_off);
            let mparent = ptr(mount, mount_parent_off);
            if mparent.is_null() || mparent == mount || d != mnt_root {
                // Any dead end other than the namespace root (pseudo
                // filesystems, detached trees) must not read as "/".
                if d != mnt_root || mparent.is_null() {
                    add_flags(buf, field.detached());
                }
                return;
            }
            // SAFETY: as above.
            unsafe {
                core::ptr::write_volatile(&raw mut (*buf).walk_dentry, ptr(mount, mountpoint_off) as u64);
                core::ptr::write_volatile(&raw mut (*buf).walk_mnt, mparent.wrapping_add(mount_mnt_off) as u64);
            }
            continue;
        }
        // SAFETY: as above.
        unsafe {
            let n = core::ptr::read_volatile(&raw const (*buf).walk_len) as usize;
            (*buf).walk_names[n & (WALK_SLOTS - 1)] = ptr(d, name_off) as u64;
            core::ptr::write_volatile(&raw mut (*buf).walk_len, (n + 1) as u32);
            core::ptr::write_volatile(&raw mut (*buf).walk_dentry, parent as u64);
        }
    }
    add_flags(buf, field.truncated());
}

/// Writes a raw user string, tagged with [`RAW_TAG`], at the start of the
/// field. Returns whether it is absolute (a relative one needs its base
/// directory's components appended).
#[inline(always)]
pub fn raw_user_path(buf: *mut EventBuf, field: Field, user: *const u8) -> bool {
    if user.is_null() {
        add_flags(buf, field.failed());
        return true;
    }
    // SAFETY: base <= PATH_MAX, the window is PATH_MAX/2 + 1 long and the
    // data area is 2*PATH_MAX + NAME_MAX long.
    let area = unsafe { core::slice::from_raw_parts_mut((*buf).data.as_mut_ptr().add(field.base()), PATH_MAX / 2 + 1) };
    area[0] = RAW_TAG;
    // SAFETY: the helper validates `user` and NUL-terminates within the slice.
    match unsafe { bpf_probe_read_user_str_bytes(user, &mut area[1..]) } {
        Ok(bytes) => {
            let n = bytes.len();
            if n >= PATH_MAX / 2 - 1 {
                add_flags(buf, field.truncated());
            }
            set_pos(buf, n + 2);
            n > 0 && area[1] == b'/'
        }
        Err(_) => {
            add_flags(buf, field.failed());
            true
        }
    }
}

/// Moves the second field down to directly after the first, so the record
/// is contiguous. Returns the second field's final length (0 and flagged
/// truncated if both together exceed `PATH_MAX`).
#[inline(always)]
pub fn compact(buf: *mut EventBuf, len1: usize, len2: usize) -> usize {
    if len2 == 0 {
        return 0;
    }
    if len1 + len2 > PATH_MAX || len2 >= PATH_MAX || len1 >= PATH_MAX {
        add_flags(buf, Field::Second.truncated());
        return 0;
    }
    // SAFETY: both windows lie inside the data area: len1, len2 < PATH_MAX;
    // the source starts at PATH_MAX and the destination ends before it.
    unsafe {
        let data = (*buf).data.as_mut_ptr();
        let dst = core::slice::from_raw_parts_mut(data.add(len1 & (PATH_MAX - 1)), len2 & (PATH_MAX - 1));
        if aya_ebpf::helpers::bpf_probe_read_kernel_buf(data.add(PATH_MAX), dst).is_err() {
            add_flags(buf, Field::Second.failed());
            return 0;
        }
    }
    len2
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
