//! Reading kernel objects: struct members through the BTF-derived offset
//! table, and the path walk that turns a `(vfsmount, dentry)` pair into the
//! components of an absolute path.
//!
//! Verifier discipline: loops are `bpf_loop` callbacks (verified once, not
//! once per iteration), and every value carried across an iteration or a
//! walk (positions, counts, flags) lives in the scratch slot and is read
//! back with volatile loads. The verifier then sees unknown scalars, so the
//! many ways out of a walk converge to one state and verification stays
//! linear instead of multiplying per branch.
//!
//! Nothing here writes to the kernel or decides whether to record.

use core::ffi::c_void;

use aya_ebpf::helpers::{
    bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes, bpf_probe_read_user_str_bytes, generated::bpf_loop,
};
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

/// What the `bpf_loop` callbacks of a walk share. It lives on the
/// caller's stack (the helper requires that); `buf` keeps its map-value
/// type through the spill, so the callbacks may index the slot.
#[repr(C)]
struct WalkCtx {
    buf: *mut EventBuf,
    /// 0 for the first path field, 1 for the second.
    field: u64,
    /// Set by the collecting callback when it reached a root (or a dead end).
    done: u64,
}

impl WalkCtx {
    #[inline(always)]
    fn field(&self) -> Field {
        if self.field == 0 { Field::First } else { Field::Second }
    }
}

/// Appends the components of `(mnt, dentry)` leaf-first at the field's
/// current position. Mount crossings are followed to the namespace root.
///
/// Two passes, each a `bpf_loop`: the first chases pointers and stores
/// name pointers, the second copies names. The helper makes the verifier
/// check each loop body once instead of once per possible iteration,
/// which is what keeps loading the programs fast.
#[inline(always)]
pub fn walk_dentry(buf: *mut EventBuf, field: Field, vfsmnt: *const u8, dentry: *const u8) {
    if vfsmnt.is_null() || dentry.is_null() {
        add_flags(buf, field.failed());
        return;
    }
    let start = get_pos(buf);
    let mnt_root = ptr(vfsmnt, off!(vfsmount_root));
    // SAFETY: buf is the handler's scratch slot.
    unsafe {
        core::ptr::write_volatile(&raw mut (*buf).walk_len, 0);
        core::ptr::write_volatile(&raw mut (*buf).walk_mnt, vfsmnt as u64);
        core::ptr::write_volatile(&raw mut (*buf).walk_mnt_root, mnt_root as u64);
        core::ptr::write_volatile(&raw mut (*buf).walk_dentry, dentry as u64);
    }
    // Non-zero placeholders, then volatile stores: a zero initialiser of
    // these two words compiles to a call of a byte-at-a-time memset.
    let mut c = WalkCtx { buf, field: u64::MAX, done: u64::MAX };
    // SAFETY: plain stores to a local.
    unsafe {
        core::ptr::write_volatile(&raw mut c.field, u64::from(field == Field::Second));
        core::ptr::write_volatile(&raw mut c.done, 0);
    }
    let ctx = (&raw mut c).cast::<c_void>();
    // SAFETY: the callbacks only touch `c` (on this stack frame, alive for
    // the call) and the scratch slot it points to.
    unsafe { bpf_loop(MAX_PATH_DEPTH, collect_step as *mut c_void, ctx, 0) };
    // SAFETY: read back after the helper wrote through the pointer.
    if unsafe { core::ptr::read_volatile(&raw const c.done) } == 0 {
        add_flags(buf, field.truncated());
    }
    // SAFETY: buf is the handler's scratch slot.
    let n = unsafe { core::ptr::read_volatile(&raw const (*buf).walk_len) };
    // SAFETY: as above.
    unsafe { bpf_loop(n & (WALK_SLOTS as u32 - 1), copy_step as *mut c_void, ctx, 0) };
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

/// One step of the first pass: from the cursor (mount, dentry) in the slot
/// to its parent, storing the name pointer; across a mount to the mount
/// point; stopping at the namespace root or a dead end. Returns 1 to stop.
extern "C" fn collect_step(_index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `WalkCtx` that `walk_dentry` passed to bpf_loop.
    let c = unsafe { &mut *ctx.cast::<WalkCtx>() };
    let buf = c.buf;
    // SAFETY: buf is the handler's slot.
    let (mnt, mnt_root, d) = unsafe {
        (
            core::ptr::read_volatile(&raw const (*buf).walk_mnt) as *const u8,
            core::ptr::read_volatile(&raw const (*buf).walk_mnt_root) as *const u8,
            core::ptr::read_volatile(&raw const (*buf).walk_dentry) as *const u8,
        )
    };
    let (parent, name) = parent_and_name(d);
    if d == mnt_root || d == parent || parent.is_null() {
        // At the root of this mount: continue in the parent mount, or stop
        // at the namespace root (a mount that is its own parent).
        let mount = mnt.wrapping_sub(off!(mount_mnt));
        let mparent = ptr(mount, off!(mount_parent));
        if mparent.is_null() || mparent == mount || d != mnt_root {
            // Any dead end other than the namespace root (pseudo
            // filesystems, detached trees) must not read as "/".
            if d != mnt_root || mparent.is_null() {
                add_flags(buf, c.field().detached());
            }
            c.done = 1;
            return 1;
        }
        let mountpoint = ptr(mount, off!(mount_mountpoint));
        let next_mnt = mparent.wrapping_add(off!(mount_mnt));
        let next_root = ptr(next_mnt, off!(vfsmount_root));
        // SAFETY: buf is the handler's slot.
        unsafe {
            core::ptr::write_volatile(&raw mut (*buf).walk_dentry, mountpoint as u64);
            core::ptr::write_volatile(&raw mut (*buf).walk_mnt, next_mnt as u64);
            core::ptr::write_volatile(&raw mut (*buf).walk_mnt_root, next_root as u64);
        }
        return 0;
    }
    // SAFETY: buf is the handler's slot; the index is masked.
    unsafe {
        let n = core::ptr::read_volatile(&raw const (*buf).walk_len) as usize;
        (*buf).walk_names[n & (WALK_SLOTS - 1)] = name as u64;
        core::ptr::write_volatile(&raw mut (*buf).walk_len, (n + 1) as u32);
        core::ptr::write_volatile(&raw mut (*buf).walk_dentry, parent as u64);
    }
    0
}

/// `dentry.d_parent` and `dentry.d_name.name` of `d`: one read when they
/// lie within 24 bytes of each other (16 apart on every kernel so far),
/// else two. The walk runs this once per path component of every record.
#[inline(always)]
fn parent_and_name(d: *const u8) -> (*const u8, *const u8) {
    let parent_off = off!(dentry_parent);
    let name_off = off!(dentry_name) + off!(qstr_name);
    let delta = name_off.wrapping_sub(parent_off);
    if delta == 8 || delta == 16 {
        let words = read::<[u64; 3]>(d, parent_off).unwrap_or([0; 3]);
        let name = if delta == 8 { words[1] } else { words[2] };
        return (words[0] as *const u8, name as *const u8);
    }
    (ptr(d, parent_off), ptr(d, name_off))
}

/// One step of the second pass: copies name `index` to the field.
extern "C" fn copy_step(index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `WalkCtx` that `walk_dentry` passed to bpf_loop.
    let c = unsafe { &mut *ctx.cast::<WalkCtx>() };
    let buf = c.buf;
    let field = c.field();
    let pos = get_pos(buf);
    if pos > PATH_MAX - NAME_MAX {
        add_flags(buf, field.truncated());
        return 1;
    }
    // SAFETY: the index is masked to the array's power-of-two length.
    let name = unsafe { (*buf).walk_names[index as usize & (WALK_SLOTS - 1)] } as *const u8;
    let idx = field.base() + (pos & (PATH_MAX - 1));
    // SAFETY: idx <= 2*PATH_MAX - 1 and the data area has NAME_MAX bytes
    // of slack after 2*PATH_MAX, so the window is in bounds.
    let dst = unsafe { core::slice::from_raw_parts_mut((*buf).data.as_mut_ptr().add(idx), NAME_MAX) };
    // SAFETY: the helper validates `name` and NUL-terminates within dst.
    match unsafe { bpf_probe_read_kernel_str_bytes(name, dst) } {
        Ok(bytes) => {
            set_pos(buf, pos + bytes.len() + 1);
            0
        }
        Err(_) => {
            add_flags(buf, field.failed());
            1
        }
    }
}

/// Writes a raw user string, tagged with [`RAW_TAG`], at the start of the
/// field. Returns whether it is absolute (a relative one needs its base
/// directory's components appended).
#[inline(always)]
pub fn raw_user_path(buf: *mut EventBuf, field: Field, user: *const u8) -> bool {
    raw_str(buf, field, user, true)
}

/// [`raw_user_path`] for a string in kernel memory (a symlink target the
/// LSM hook sees, the name an exec was given).
#[inline(always)]
pub fn raw_kernel_path(buf: *mut EventBuf, field: Field, kstr: *const u8) -> bool {
    raw_str(buf, field, kstr, false)
}

#[inline(always)]
fn raw_str(buf: *mut EventBuf, field: Field, src: *const u8, user: bool) -> bool {
    if src.is_null() {
        add_flags(buf, field.failed());
        return true;
    }
    // SAFETY: base <= PATH_MAX, the window is PATH_MAX/2 + 1 long and the
    // data area is 2*PATH_MAX + NAME_MAX long.
    let area = unsafe { core::slice::from_raw_parts_mut((*buf).data.as_mut_ptr().add(field.base()), PATH_MAX / 2 + 1) };
    area[0] = RAW_TAG;
    // SAFETY: the helpers validate `src` and NUL-terminate within the slice.
    let read = unsafe {
        if user {
            bpf_probe_read_user_str_bytes(src, &mut area[1..])
        } else {
            bpf_probe_read_kernel_str_bytes(src, &mut area[1..])
        }
    };
    match read {
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

/// `(vfsmount, dentry)` of the directory a relative path is relative to:
/// the cwd (`AT_FDCWD`) or the directory open as `dfd`.
#[inline(always)]
pub fn base_dir(task: *const u8, dfd: i64) -> (*const u8, *const u8) {
    if dfd as i32 == AT_FDCWD { cwd_path(task) } else { file_path(file_of_fd(task, dfd)) }
}

/// `AT_FDCWD`.
pub const AT_FDCWD: i32 = -100;

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
    let (max, table) = if off!(fdt_max_fds) == 0 && off!(fdt_fd) == 8 {
        // `struct fdtable` as every kernel so far lays it out: one read.
        let head = read::<[u64; 2]>(fdt, 0).unwrap_or([0; 2]);
        (head[0] & 0xffff_ffff, head[1] as *const u8)
    } else {
        (u64::from(read::<u32>(fdt, off!(fdt_max_fds)).unwrap_or(0)), ptr(fdt, off!(fdt_fd)))
    };
    if fd as u64 >= max {
        return core::ptr::null();
    }
    ptr(table, (fd as usize) * 8)
}

/// `(vfsmount, dentry)` of a `struct path` embedded at `base + path_off`.
#[inline(always)]
pub fn path_parts(base: *const u8, path_off: usize) -> (*const u8, *const u8) {
    let (mnt_off, dentry_off) = (off!(path_mnt), off!(path_dentry));
    if mnt_off == 0 && dentry_off == 8 {
        // `struct path` as every kernel so far lays it out: one read.
        let pair = read::<[u64; 2]>(base, path_off).unwrap_or([0; 2]);
        return (pair[0] as *const u8, pair[1] as *const u8);
    }
    (ptr(base, path_off + mnt_off), ptr(base, path_off + dentry_off))
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

/// `(type, protocol, family)` of the socket open as `fd`, or zeros when
/// `fd` is not a socket.
#[inline(always)]
pub fn socket_kind(task: *const u8, fd: i64) -> (u16, u16, u16) {
    let file = file_of_fd(task, fd);
    let inode = ptr(file, off!(file_inode));
    let imode = u32::from(read::<u16>(inode, off!(inode_mode)).unwrap_or(0));
    if imode & 0o170_000 != 0o140_000 {
        return (0, 0, 0);
    }
    let socket = ptr(file, off!(file_private_data));
    let sk = ptr(socket, off!(socket_sk));
    (
        read::<u16>(sk, off!(sk_type)).unwrap_or(0),
        read::<u16>(sk, off!(sk_protocol)).unwrap_or(0),
        read::<u16>(sk, off!(sock_family)).unwrap_or(0),
    )
}

/// The pid (in the initial pid namespace, like every pid nono records)
/// of the process a pidfd refers to, or 0.
#[inline(always)]
pub fn pid_of_pidfd(task: *const u8, fd: i64) -> i32 {
    let file = file_of_fd(task, fd);
    // An anonymous-inode pidfd (before 6.9) keeps the pid in the file;
    // a pidfs one (6.9 on) in its inode.
    let mut pid = ptr(file, off!(file_private_data));
    if pid.is_null() {
        pid = ptr(ptr(file, off!(file_inode)), off!(inode_private));
    }
    read::<i32>(pid, off!(pid_numbers) + off!(upid_nr)).unwrap_or(0)
}

/// `TS_COMPAT` (`arch/x86/include/asm/thread_info.h`): the task is in a
/// 32-bit syscall.
const TS_COMPAT: u32 = 0x0002;

/// Whether the current syscall came through the ia32 entry (its number
/// is then not an x86_64 number).
#[inline(always)]
pub fn in_compat_syscall(task: *const u8) -> bool {
    read::<u32>(task, off!(task_ti_status)).unwrap_or(0) & TS_COMPAT != 0
}
