//! The kernel/user ABI of nono's recorder: every type that crosses the
//! eBPF ring buffer or a BPF map lives here and nowhere else.
//!
//! Rules for this file (checked by the layout tests below):
//! - every struct is `#[repr(C)]`, has no `bool`, and no implicit padding:
//!   padding is spelled out as `_pad` fields so both sides agree on every byte;
//! - widths are fixed (`u16`/`u32`/`u64`), never `usize`;
//! - enumerations are plain integer constants, because a Rust `enum` with an
//!   unknown discriminant read from the kernel would be undefined behaviour.
//!
//! A ring-buffer record is an [`EventHeader`] followed by `path_len` bytes of
//! the first path field and `path2_len` bytes of the second. A path field is
//! encoded by the kernel as described in [`path`]; userspace decodes it.
#![no_std]

/// Longest path field the kernel emits, in bytes.
pub const PATH_MAX: usize = 4096;
/// Longest single name component (NAME_MAX + NUL).
pub const NAME_MAX: usize = 256;
/// Deepest directory nesting the in-kernel path walk follows.
pub const MAX_PATH_DEPTH: u32 = 48;
/// Capacity of the walk's name-pointer array (a power of two >= depth,
/// so indices can be masked for the verifier).
pub const WALK_SLOTS: usize = 64;
/// `TASK_COMM_LEN`.
pub const COMM_LEN: usize = 16;

/// Operations. Values are stable: they are stored in audit databases.
pub mod op {
    pub const OPEN: u16 = 1;
    pub const EXEC: u16 = 2;
    pub const UNLINK: u16 = 3;
    pub const RMDIR: u16 = 4;
    pub const MKDIR: u16 = 5;
    pub const RENAME: u16 = 6;
    pub const LINK: u16 = 7;
    pub const SYMLINK: u16 = 8;
    pub const TRUNCATE: u16 = 9;
    pub const MKNOD: u16 = 10;
    pub const CONNECT: u16 = 11;
    pub const BIND: u16 = 12;
    pub const FORK: u16 = 13;
    pub const EXIT: u16 = 14;
    pub const IOCTL: u16 = 15;
    pub const CREATE: u16 = 16;
    /// `socket(2)`: family in `net_family`, type and protocol in
    /// `sock_type`/`sock_proto`, the raw type argument (with its flags) in `arg`.
    pub const SOCKET: u16 = 17;
    /// A datagram sent to an explicit address (`sendto`, `sendmsg`,
    /// `sendmmsg` with a name): the destination is in the `net_*` fields.
    pub const SEND: u16 = 18;
    /// `kill`/`tkill`/`tgkill`/`pidfd_send_signal`: `arg` holds the signal
    /// in its low 32 bits and the target pid (as `i32`) in its high 32 bits.
    pub const SIGNAL: u16 = 19;
    /// A kernel facility outside files and sockets (io_uring, keyrings,
    /// SysV IPC, POSIX message queues): `arg` is the x86_64 syscall number.
    pub const SYSCALL: u16 = 20;
    /// A metadata change (`chmod`, `chown`, timestamps, xattrs): `arg` is
    /// the `x86_64` syscall number. Recorded from the syscall's exit in both
    /// modes; nono's supervisor stores the same op for what it performs.
    pub const METADATA: u16 = 21;
    /// A DNS message on a traced task's UDP or TCP socket whose peer is
    /// port 53: `arg` is [`super::dns::SENT`] (a question) or
    /// [`super::dns::RECEIVED`] (an answer); the `net_*` fields hold the
    /// server's address and port and the socket's kind; the first path
    /// field holds the first [`super::dns::CAPTURE`] bytes of the message
    /// exactly as written or read (for TCP, with the 2-byte length prefix
    /// when the same call carried it), flagged `PATH_TRUNCATED` when it
    /// was longer. Userspace parses it; the kernel never does.
    pub const DNS: u16 = 22;
    /// Highest value in use; userspace rejects anything above.
    pub const MAX: u16 = 22;
}

/// `x86_64` syscall numbers the recorder dispatches on (the kernel's
/// `arch/x86/entry/syscalls/syscall_64.tbl`; checked against libc by a
/// test in the `nono` crate). `SYSCALL` events carry these in `arg`.
pub mod sysno {
    pub const READ: u32 = 0;
    pub const WRITE: u32 = 1;
    pub const WRITEV: u32 = 20;
    pub const RECVFROM: u32 = 45;
    pub const RECVMSG: u32 = 47;
    pub const SHMGET: u32 = 29;
    pub const SHMAT: u32 = 30;
    pub const SOCKET: u32 = 41;
    pub const CONNECT: u32 = 42;
    pub const SENDTO: u32 = 44;
    pub const SENDMSG: u32 = 46;
    pub const BIND: u32 = 49;
    pub const SOCKETPAIR: u32 = 53;
    pub const EXECVE: u32 = 59;
    pub const KILL: u32 = 62;
    pub const SEMGET: u32 = 64;
    pub const MSGGET: u32 = 68;
    pub const TRUNCATE: u32 = 76;
    pub const FTRUNCATE: u32 = 77;
    pub const RENAME: u32 = 82;
    pub const MKDIR: u32 = 83;
    pub const RMDIR: u32 = 84;
    pub const CREAT: u32 = 85;
    pub const LINK: u32 = 86;
    pub const UNLINK: u32 = 87;
    pub const SYMLINK: u32 = 88;
    pub const MKNOD: u32 = 133;
    pub const TKILL: u32 = 200;
    pub const TGKILL: u32 = 234;
    pub const MQ_OPEN: u32 = 240;
    pub const ADD_KEY: u32 = 248;
    pub const REQUEST_KEY: u32 = 249;
    pub const KEYCTL: u32 = 250;
    pub const OPENAT: u32 = 257;
    pub const MKDIRAT: u32 = 258;
    pub const MKNODAT: u32 = 259;
    pub const UNLINKAT: u32 = 263;
    pub const RENAMEAT: u32 = 264;
    pub const LINKAT: u32 = 265;
    pub const SYMLINKAT: u32 = 266;
    pub const SENDMMSG: u32 = 307;
    pub const RENAMEAT2: u32 = 316;
    pub const EXECVEAT: u32 = 322;
    pub const PIDFD_SEND_SIGNAL: u32 = 424;
    pub const IO_URING_SETUP: u32 = 425;
    pub const OPENAT2: u32 = 437;
    pub const OPEN: u32 = 2;
    // Metadata changes (`op::METADATA`).
    pub const CHMOD: u32 = 90;
    pub const FCHMOD: u32 = 91;
    pub const CHOWN: u32 = 92;
    pub const FCHOWN: u32 = 93;
    pub const LCHOWN: u32 = 94;
    pub const UTIME: u32 = 132;
    pub const SETXATTR: u32 = 188;
    pub const LSETXATTR: u32 = 189;
    pub const FSETXATTR: u32 = 190;
    pub const REMOVEXATTR: u32 = 197;
    pub const LREMOVEXATTR: u32 = 198;
    pub const FREMOVEXATTR: u32 = 199;
    pub const UTIMES: u32 = 235;
    pub const FCHOWNAT: u32 = 260;
    pub const FUTIMESAT: u32 = 261;
    pub const FCHMODAT: u32 = 268;
    pub const UTIMENSAT: u32 = 280;
    /// Linux 6.6.
    pub const FCHMODAT2: u32 = 452;
    /// Linux 6.13.
    pub const SETXATTRAT: u32 = 463;
    /// Linux 6.13.
    pub const REMOVEXATTRAT: u32 = 466;
    /// Every metadata-changing syscall, for the recorder's dispatcher and
    /// userspace checks that the broker and the recorder agree.
    pub const METADATA: [u32; 20] = [
        CHMOD,
        FCHMOD,
        FCHMODAT,
        FCHMODAT2,
        CHOWN,
        FCHOWN,
        LCHOWN,
        FCHOWNAT,
        UTIME,
        UTIMES,
        FUTIMESAT,
        UTIMENSAT,
        SETXATTR,
        LSETXATTR,
        FSETXATTR,
        REMOVEXATTR,
        LREMOVEXATTR,
        FREMOVEXATTR,
        SETXATTRAT,
        REMOVEXATTRAT,
    ];
}

/// DNS capture ([`op::DNS`]).
pub mod dns {
    /// The server's port: messages to or from it are captured.
    pub const PORT: u16 = 53;
    /// Bytes of each message copied into the record: a question section
    /// (a name of at most 255 bytes) and the first answers fit.
    pub const CAPTURE: usize = 512;
    /// `arg` of a message the traced task sent (a question).
    pub const SENT: u64 = 0;
    /// `arg` of a message the traced task received (an answer).
    pub const RECEIVED: u64 = 1;
}

/// Bits of [`EventHeader::flags`].
pub mod flag {
    /// An open created the file (`FMODE_CREATED`), or a create hook fired.
    pub const CREATED: u16 = 1 << 0;
    /// The first path field was cut short (too deep or too long).
    pub const PATH_TRUNCATED: u16 = 1 << 1;
    /// The second path field was cut short.
    pub const PATH2_TRUNCATED: u16 = 1 << 2;
    /// Reading the first path failed (user page not present, bad pointer).
    pub const PATH_FAILED: u16 = 1 << 3;
    /// Reading the second path failed.
    pub const PATH2_FAILED: u16 = 1 << 4;
    /// The event came from the LSM backend (paths are kernel objects).
    pub const FROM_LSM: u16 = 1 << 5;
    /// The fork created a thread, not a process.
    pub const THREAD: u16 = 1 << 6;
    /// The open's target is a directory.
    pub const DIRECTORY: u16 = 1 << 7;
    /// The first path is not reachable from the namespace root (a pipe,
    /// socket, anonymous inode, or an object of another mount namespace).
    /// Userspace must not read it as "/".
    pub const DETACHED: u16 = 1 << 8;
    /// The Unix socket address is abstract: the first path field is
    /// `RAW_TAG` followed by exactly the name's bytes (without the leading
    /// NUL, and with no terminator: a name may hold NULs).
    pub const ABSTRACT: u16 = 1 << 9;
    /// An open made by the kernel for an exec (`__FMODE_EXEC` in
    /// `f_flags`): the script, its `#!` interpreter, the ELF interpreter.
    pub const EXEC_OPEN: u16 = 1 << 10;
}

/// How a path field is encoded.
///
/// The kernel walks dentries from the leaf towards the root, so it writes
/// components in that order, each terminated by a NUL: `leaf\0parent\0...top\0`.
/// When a syscall passed a relative path, the raw user string comes first,
/// tagged: `RAW_TAG raw\0` followed by the components of the directory it
/// is relative to (the cwd or the dirfd). An absolute raw string has no
/// components after it. Userspace reverses, joins and normalises.
pub mod path {
    /// First byte of a field whose first segment is a raw user string.
    pub const RAW_TAG: u8 = 0x01;
}

/// Counters in the `STATS` per-CPU array, summed by userspace.
pub mod stat {
    /// Records that did not fit in the ring buffer.
    pub const RINGBUF_DROPS: u32 = 0;
    /// Path reads that failed (the event is still sent, flagged).
    pub const PATH_FAILURES: u32 = 1;
    /// Paths cut short by depth or length.
    pub const PATH_TRUNCATIONS: u32 = 2;
    /// Syscalls whose entry could not be remembered (pending map full).
    /// Always 0 since the recorder reads arguments at exit; the index is kept.
    pub const PENDING_FULL: u32 = 3;
    /// Children that could not be added to the traced set (map full).
    pub const TRACED_FULL: u32 = 4;
    /// Records sent.
    pub const EVENTS_SENT: u32 = 5;
    /// Handler found its per-CPU scratch slot busy (preempted handler).
    pub const SCRATCH_BUSY: u32 = 6;
    /// Syscall exits with no matching entry. Always 0 since the recorder
    /// reads arguments at exit; the index is kept.
    pub const ORPHAN_EXITS: u32 = 7;
    /// Messages of a `sendmmsg` beyond the ones the recorder inspects
    /// (their destinations were not recorded).
    pub const SENDMMSG_SKIPPED: u32 = 8;
    /// Execs through `/dev/fd/N` whose descriptor was closed by the time
    /// the new image ran (a close-on-exec fd: never a script, which the
    /// kernel refuses to run that way), so the named file is not recorded.
    pub const EXEC_NAME_UNRESOLVED: u32 = 9;
    /// Syscalls of a traced task made through the 32-bit (ia32) entry,
    /// which the recorder does not decode.
    pub const COMPAT_SYSCALLS: u32 = 10;
    pub const COUNT: u32 = 11;
}

/// Fixed part of every ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventHeader {
    /// `bpf_ktime_get_boot_ns()` at the event.
    pub boot_ns: u64,
    /// Operation-specific argument: open flags, `mode` for mkdir/mknod,
    /// the child pid for fork, the exit code for exit, the ioctl cmd, the
    /// `x86_64` syscall number for `SYSCALL` and `METADATA`.
    pub arg: u64,
    /// Thread-group id (the "pid" users see).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Parent's thread-group id.
    pub ppid: u32,
    /// Real uid of the task.
    pub uid: u32,
    /// One of [`op`].
    pub op: u16,
    /// Bits of [`flag`].
    pub flags: u16,
    /// 0 on success, or a negative errno.
    pub result: i32,
    /// `i_mode` of the object, when known (file type bits), else 0.
    pub mode: u32,
    /// Byte length of the first path field.
    pub path_len: u16,
    /// Byte length of the second path field (rename/link/symlink target).
    pub path2_len: u16,
    /// Socket family (`AF_INET`, `AF_INET6`, `AF_UNIX`), or 0.
    pub net_family: u16,
    /// Port in host byte order.
    pub net_port: u16,
    /// `SOCK_STREAM`, `SOCK_DGRAM`, ... of the socket involved, or 0.
    pub sock_type: u16,
    /// Protocol of the socket involved (`IPPROTO_TCP`, ...), or 0.
    pub sock_proto: u16,
    /// IPv4 address in the first 4 bytes, or IPv6 address, network order.
    pub net_addr: [u8; 16],
    /// `comm` of the task, NUL-padded.
    pub comm: [u8; COMM_LEN],
}

impl EventHeader {
    pub const SIZE: usize = core::mem::size_of::<Self>();
}

/// Scratch buffer in which the kernel assembles one record before
/// `bpf_ringbuf_output`. Two path areas, each `PATH_MAX` long, plus room
/// for one name component of overrun so masked writes stay in bounds.
#[repr(C)]
pub struct EventBuf {
    pub hdr: EventHeader,
    pub data: [u8; 2 * PATH_MAX + NAME_MAX],
    /// Name pointers collected by the path walk, leaf first. Kept in map
    /// memory (with `walk_len`/`walk_pos`) rather than registers so that the
    /// verifier sees them as unknown values and prunes converging paths.
    pub walk_names: [u64; WALK_SLOTS],
    /// The walk's current dentry and vfsmount.
    pub walk_dentry: u64,
    pub walk_mnt: u64,
    /// `walk_mnt`'s root dentry, read once per mount rather than per level.
    pub walk_mnt_root: u64,
    pub walk_len: u32,
    pub walk_pos: u32,
    /// [`flag`] bits gathered by the walks, OR-ed into the header at the end.
    pub walk_flags: u32,
    /// Non-zero while a handler owns this slot.
    pub busy: u32,
}

/// A syscall's number and its six raw arguments, as the `sys_exit`
/// dispatcher reads them from `pt_regs`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Pending {
    /// The x86_64 syscall number.
    pub sys: u32,
    pub _pad: u32,
    /// The six raw syscall arguments.
    pub args: [u64; 6],
}

/// Struct-member offsets the in-kernel path walk needs, read from the
/// running kernel's BTF by userspace and passed in as a read-only global.
/// This is how one eBPF object works across kernel versions without CO-RE.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub task_real_parent: u32,
    pub task_tgid: u32,
    pub task_pid: u32,
    pub task_fs: u32,
    pub task_files: u32,
    pub task_mm: u32,
    pub fs_pwd: u32,
    pub fs_root: u32,
    pub path_mnt: u32,
    pub path_dentry: u32,
    pub dentry_parent: u32,
    pub dentry_name: u32,
    pub dentry_inode: u32,
    pub qstr_name: u32,
    pub qstr_len: u32,
    pub mount_parent: u32,
    pub mount_mountpoint: u32,
    pub mount_mnt: u32,
    pub vfsmount_root: u32,
    pub files_fdt: u32,
    pub fdt_fd: u32,
    pub fdt_max_fds: u32,
    pub file_path: u32,
    pub file_mode: u32,
    pub file_inode: u32,
    pub inode_mode: u32,
    pub mm_exe_file: u32,
    pub sock_family: u32,
    /// `file.f_flags` (open flags; `__FMODE_EXEC` marks an exec open).
    pub file_flags: u32,
    /// `file.private_data` (`struct socket *` of a socket, `struct pid *`
    /// of a pidfd).
    pub file_private_data: u32,
    /// `socket.sk`.
    pub socket_sk: u32,
    /// `sock.sk_type` (u16).
    pub sk_type: u32,
    /// `sock.sk_protocol` (u16).
    pub sk_protocol: u32,
    /// `inode.i_private` (a pidfs pidfd's `struct pid *`).
    pub inode_private: u32,
    /// `pid.numbers` (the `struct upid` array; entry 0 is the initial
    /// namespace's number).
    pub pid_numbers: u32,
    /// `upid.nr`.
    pub upid_nr: u32,
    /// `linux_binprm.filename`: the name the exec was given.
    pub bprm_filename: u32,
    /// `task_struct.thread_info` + `thread_info.status` (x86 `TS_COMPAT`).
    pub task_ti_status: u32,
    /// `sock.__sk_common.skc_dport` (u16, network order): a connected
    /// socket's peer port.
    pub sk_dport: u32,
    /// `sock.__sk_common.skc_daddr` (IPv4 peer address).
    pub sk_daddr: u32,
    /// `sock.__sk_common.skc_v6_daddr` (IPv6 peer address); 0 when the
    /// kernel has no IPv6 (the address is then left out).
    pub sk_v6_daddr: u32,
    /// Non-zero once userspace filled the table; programs refuse to walk
    /// paths with an all-zero table rather than read garbage.
    pub valid: u32,
}

impl KernelOffsets {
    /// The all-zero table the eBPF object is built with; userspace replaces
    /// it before load. `valid == 0` makes every path walk refuse to run.
    #[must_use]
    pub const fn zeroed() -> Self {
        KernelOffsets {
            task_real_parent: 0,
            task_tgid: 0,
            task_pid: 0,
            task_fs: 0,
            task_files: 0,
            task_mm: 0,
            fs_pwd: 0,
            fs_root: 0,
            path_mnt: 0,
            path_dentry: 0,
            dentry_parent: 0,
            dentry_name: 0,
            dentry_inode: 0,
            qstr_name: 0,
            qstr_len: 0,
            mount_parent: 0,
            mount_mountpoint: 0,
            mount_mnt: 0,
            vfsmount_root: 0,
            files_fdt: 0,
            fdt_fd: 0,
            fdt_max_fds: 0,
            file_path: 0,
            file_mode: 0,
            file_inode: 0,
            inode_mode: 0,
            mm_exe_file: 0,
            sock_family: 0,
            file_flags: 0,
            file_private_data: 0,
            socket_sk: 0,
            sk_type: 0,
            sk_protocol: 0,
            inode_private: 0,
            pid_numbers: 0,
            upid_nr: 0,
            bprm_filename: 0,
            task_ti_status: 0,
            sk_dport: 0,
            sk_daddr: 0,
            sk_v6_daddr: 0,
            valid: 0,
        }
    }
}

/// Recorder configuration passed as a read-only global.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecorderConfig {
    /// One of [`mode`].
    pub mode: u32,
    pub _pad: u32,
}

/// Values of [`RecorderConfig::mode`].
pub mod mode {
    /// The syscall exit reports every operation.
    pub const TRACEPOINT: u32 = 0;
    /// LSM hooks report filesystem operations that reach the security
    /// layer; the syscall exit reports their failures (which never reach a
    /// hook) and every operation without a hook (sockets, sends, signals,
    /// facilities).
    pub const LSM: u32 = 1;
}

/// `__FMODE_EXEC` in `file.f_flags` (`include/linux/fs.h`, stable).
pub const FMODE_EXEC_FLAG: u32 = 0x20;

/// `FMODE_CREATED` from `include/linux/fs.h` (stable since 4.19).
pub const FMODE_CREATED: u32 = 0x0010_0000;

#[cfg(feature = "user")]
mod user {
    // SAFETY: all three are `#[repr(C)]`, contain only integers and integer
    // arrays, and have no implicit padding (checked by the layout tests), so
    // every bit pattern is valid and they may be copied to and from the kernel.
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::Pending {}
    unsafe impl aya::Pod for super::EventHeader {}
    // SAFETY: as above: `#[repr(C)]`, two `u32`s, no padding.
    unsafe impl aya::Pod for super::RecorderConfig {}
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    /// Guards the wire layout: a field moved or resized here without the
    /// other side noticing would silently corrupt every record.
    #[test]
    fn event_header_layout_is_fixed() {
        assert_eq!(offset_of!(EventHeader, boot_ns), 0);
        assert_eq!(offset_of!(EventHeader, arg), 8);
        assert_eq!(offset_of!(EventHeader, pid), 16);
        assert_eq!(offset_of!(EventHeader, tid), 20);
        assert_eq!(offset_of!(EventHeader, ppid), 24);
        assert_eq!(offset_of!(EventHeader, uid), 28);
        assert_eq!(offset_of!(EventHeader, op), 32);
        assert_eq!(offset_of!(EventHeader, flags), 34);
        assert_eq!(offset_of!(EventHeader, result), 36);
        assert_eq!(offset_of!(EventHeader, mode), 40);
        assert_eq!(offset_of!(EventHeader, path_len), 44);
        assert_eq!(offset_of!(EventHeader, path2_len), 46);
        assert_eq!(offset_of!(EventHeader, net_family), 48);
        assert_eq!(offset_of!(EventHeader, net_port), 50);
        assert_eq!(offset_of!(EventHeader, sock_type), 52);
        assert_eq!(offset_of!(EventHeader, sock_proto), 54);
        assert_eq!(offset_of!(EventHeader, net_addr), 56);
        assert_eq!(offset_of!(EventHeader, comm), 72);
        assert_eq!(size_of::<EventHeader>(), 88);
        assert_eq!(align_of::<EventHeader>(), 8);
    }

    /// No implicit padding: the sum of field sizes equals the struct size.
    #[test]
    fn structs_have_no_implicit_padding() {
        let header_fields = 8 + 8 + 4 * 4 + 2 + 2 + 4 + 4 + 2 + 2 + 2 + 2 + 2 + 2 + 16 + COMM_LEN;
        assert_eq!(size_of::<EventHeader>(), header_fields);
        assert_eq!(size_of::<Pending>(), 4 + 4 + 6 * 8);
        assert_eq!(size_of::<KernelOffsets>(), 42 * 4);
        assert_eq!(size_of::<RecorderConfig>(), 8);
        assert_eq!(size_of::<EventBuf>(), size_of::<EventHeader>() + 2 * PATH_MAX + NAME_MAX + 8 * WALK_SLOTS + 40);
        assert!(WALK_SLOTS.is_power_of_two() && WALK_SLOTS >= MAX_PATH_DEPTH as usize);
    }

    /// `DNS` follows `METADATA` as the newest op, and the metadata syscall list names each call
    /// once (the dispatcher and the broker are checked against it).
    #[test]
    fn metadata_op_and_syscalls_are_consistent() {
        assert_eq!(op::DNS, op::MAX);
        assert_eq!(op::METADATA + 1, op::DNS);
        let nrs = sysno::METADATA;
        for (i, a) in nrs.iter().enumerate() {
            assert!(!nrs[i + 1..].contains(a), "{a} listed twice");
        }
    }

    /// A DNS capture fits the first path field, and its length can be
    /// masked to a power of two for the verifier.
    #[test]
    fn dns_capture_fits_the_first_field() {
        assert!(dns::CAPTURE.is_power_of_two() && dns::CAPTURE < PATH_MAX);
    }

    #[test]
    fn path_area_fits_the_walk_bounds() {
        // The walk writes a component of at most NAME_MAX bytes at an offset
        // below PATH_MAX; the slack after the second area absorbs it.
        assert!(PATH_MAX.is_power_of_two());
        assert!(NAME_MAX.is_power_of_two());
    }
}
