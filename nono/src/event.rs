//! The decoded, owned form of one recorded access: what the recorder
//! produces, the store persists and the learner consumes.
//!
//! This module owns the vocabulary (operations, access kinds, results) and
//! its stable text names. It must not know about eBPF, SQL or Landlock.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a process did. The numeric values are stored in audit databases
/// and match `nono_common::op`; never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u16)]
pub enum Op {
    Open = 1,
    Exec = 2,
    Unlink = 3,
    Rmdir = 4,
    Mkdir = 5,
    Rename = 6,
    Link = 7,
    Symlink = 8,
    Truncate = 9,
    Mknod = 10,
    Connect = 11,
    Bind = 12,
    Fork = 13,
    Exit = 14,
    Ioctl = 15,
    Create = 16,
    /// `socket(2)`: [`Event::net`] holds the family, type and protocol.
    Socket = 17,
    /// A datagram sent to an explicit address (`sendto`/`sendmsg`/`sendmmsg`).
    Send = 18,
    /// A signal sent to a process (see [`Event::signal`]).
    Signal = 19,
    /// A kernel facility outside files and sockets ([`Facility`]); `arg` is
    /// the x86_64 syscall number.
    Syscall = 20,
    /// A metadata change (`chmod`, `chown`, timestamps, xattrs), recorded
    /// at the syscall's exit (and by nono's supervisor for what it
    /// performs without a recorder watching); `arg` is the `x86_64` syscall
    /// number ([`metadata_syscall_name`]).
    Metadata = 21,
    /// A DNS message to or from port 53 (issue 23): `path` is the
    /// question's name (checked and lower-cased by `record::dns`; `None`
    /// when the message could not be parsed, with `incomplete` set),
    /// `path2` an answer's addresses, comma-separated; `arg` packs the
    /// direction, query type and response code ([`DnsArg`]); `net` is the
    /// server.
    Dns = 22,
}

impl Op {
    pub const ALL: [Op; 22] = [
        Op::Open,
        Op::Exec,
        Op::Unlink,
        Op::Rmdir,
        Op::Mkdir,
        Op::Rename,
        Op::Link,
        Op::Symlink,
        Op::Truncate,
        Op::Mknod,
        Op::Connect,
        Op::Bind,
        Op::Fork,
        Op::Exit,
        Op::Ioctl,
        Op::Create,
        Op::Socket,
        Op::Send,
        Op::Signal,
        Op::Syscall,
        Op::Metadata,
        Op::Dns,
    ];

    #[must_use]
    pub fn from_code(code: u16) -> Option<Op> {
        Op::ALL.into_iter().find(|op| *op as u16 == code)
    }

    #[must_use]
    pub const fn code(self) -> u16 {
        self as u16
    }

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Op::Open => "open",
            Op::Exec => "exec",
            Op::Unlink => "unlink",
            Op::Rmdir => "rmdir",
            Op::Mkdir => "mkdir",
            Op::Rename => "rename",
            Op::Link => "link",
            Op::Symlink => "symlink",
            Op::Truncate => "truncate",
            Op::Mknod => "mknod",
            Op::Connect => "connect",
            Op::Bind => "bind",
            Op::Fork => "fork",
            Op::Exit => "exit",
            Op::Ioctl => "ioctl",
            Op::Create => "create",
            Op::Socket => "socket",
            Op::Send => "send",
            Op::Signal => "signal",
            Op::Syscall => "syscall",
            Op::Metadata => "metadata",
            Op::Dns => "dns",
        }
    }

    /// Operations that name a filesystem path.
    #[must_use]
    pub const fn is_filesystem(self) -> bool {
        !matches!(self, Op::Connect | Op::Bind | Op::Fork | Op::Exit | Op::Socket | Op::Send | Op::Signal | Op::Syscall | Op::Dns)
    }

    /// Operations on sockets (their details are in [`Event::net`]).
    #[must_use]
    pub const fn is_network(self) -> bool {
        matches!(self, Op::Connect | Op::Bind | Op::Socket | Op::Send | Op::Dns)
    }
}

/// [`Op::Dns`]'s `arg`: bit 0 set for an answer the process received
/// (clear for a question it sent), the query type in bits 16..32, the
/// response code in bits 32..40 (answers only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsArg {
    pub answer: bool,
    pub qtype: u16,
    pub rcode: u8,
}

impl DnsArg {
    #[must_use]
    pub fn pack(self) -> u64 {
        u64::from(self.answer) | (u64::from(self.qtype) << 16) | (u64::from(self.rcode) << 32)
    }

    #[must_use]
    pub fn unpack(arg: u64) -> DnsArg {
        DnsArg { answer: arg & 1 != 0, qtype: (arg >> 16) as u16, rcode: (arg >> 32) as u8 }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for an operation name that is not one of [`Op::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown operation {0:?}; expected one of: {list}", list = Op::ALL.map(Op::name).join(", "))]
pub struct UnknownOp(pub String);

impl FromStr for Op {
    type Err = UnknownOp;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Op::ALL.into_iter().find(|op| op.name() == s).ok_or_else(|| UnknownOp(s.to_owned()))
    }
}

/// How an `open` accessed its file, derived from the open flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Access {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
    pub create: bool,
    pub truncate: bool,
    pub directory: bool,
}

impl Access {
    /// Decode `open(2)` flags. `O_PATH` opens grant no data access.
    #[must_use]
    pub fn from_open_flags(flags: u64, created: bool, directory: bool) -> Access {
        let flags = flags as i32;
        let path_only = flags & libc::O_PATH != 0;
        let mode = flags & libc::O_ACCMODE;
        Access {
            read: !path_only && (mode == libc::O_RDONLY || mode == libc::O_RDWR),
            write: !path_only && (mode == libc::O_WRONLY || mode == libc::O_RDWR),
            exec: false,
            create: created,
            truncate: !path_only && flags & libc::O_TRUNC != 0 && mode != libc::O_RDONLY,
            directory: directory || flags & libc::O_DIRECTORY != 0,
        }
    }

    /// Short stable text such as `rw`, `r-`, `x`, `wct`.
    #[must_use]
    pub fn label(self) -> String {
        let mut s = String::new();
        if self.read {
            s.push('r');
        }
        if self.write {
            s.push('w');
        }
        if self.exec {
            s.push('x');
        }
        if self.create {
            s.push('c');
        }
        if self.truncate {
            s.push('t');
        }
        if self.directory {
            s.push('d');
        }
        if s.is_empty() {
            s.push('-');
        }
        s
    }
}

/// Outcome of the access.
///
/// `Denied` means the sandbox refused it, and says how that was
/// established. A permission error the sandbox did not cause (file modes,
/// another user's `/proc/N/environ`, another LSM) is an `Error`: counting
/// it as a denial would send the user chasing rules that cannot help.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    Ok,
    /// The sandbox refused it (`errno` is EACCES or EPERM, or EXDEV for a
    /// rename Landlock refused for lack of `refer`).
    Denied {
        errno: i32,
        by: DenyBy,
    },
    /// Any errno the sandbox did not cause (ENOENT, EEXIST, a DAC EACCES, ...).
    Error(i32),
}

/// How a denial was attributed to the sandbox. Values are stored in audit
/// databases; never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DenyBy {
    /// Landlock's own audit record (kernel audit, Landlock ABI >= 7).
    LandlockAudit = 1,
    /// The access needed a right the enforced plan did not grant, and file
    /// permissions would have allowed it.
    Computed = 2,
    /// nono's seccomp filter refused the syscall.
    Seccomp = 3,
    /// nono's supervisor (the broker) refused the operation.
    Broker = 4,
    /// A database written before attribution existed (schema < 4): every
    /// EACCES/EPERM was stored as a denial.
    Unattributed = 5,
}

impl DenyBy {
    pub const ALL: [DenyBy; 5] = [DenyBy::LandlockAudit, DenyBy::Computed, DenyBy::Seccomp, DenyBy::Broker, DenyBy::Unattributed];

    #[must_use]
    pub const fn code(self) -> u8 {
        self as u8
    }

    #[must_use]
    pub fn from_code(code: u8) -> Option<DenyBy> {
        DenyBy::ALL.into_iter().find(|d| d.code() == code)
    }

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            DenyBy::LandlockAudit => "landlock-audit",
            DenyBy::Computed => "computed",
            DenyBy::Seccomp => "seccomp",
            DenyBy::Broker => "broker",
            DenyBy::Unattributed => "unattributed",
        }
    }
}

impl fmt::Display for DenyBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Outcome {
    /// From a kernel return value: 0 or positive is success, negative is
    /// -errno. The kernel does not say who refused an access, so this is
    /// never `Denied`: attribution comes later, from what the sandbox knows.
    #[must_use]
    pub fn from_ret(ret: i64) -> Outcome {
        if ret >= 0 { Outcome::Ok } else { Outcome::Error((-ret) as i32) }
    }

    /// The errno, or 0 for success.
    #[must_use]
    pub fn errno(self) -> i32 {
        match self {
            Outcome::Ok => 0,
            Outcome::Denied { errno, .. } | Outcome::Error(errno) => errno,
        }
    }

    /// A permission error (EACCES or EPERM), whoever raised it.
    #[must_use]
    pub fn is_permission_error(self) -> bool {
        matches!(self.errno(), libc::EACCES | libc::EPERM)
    }

    /// `ok`, `denied` or `error`: the `--result` filter vocabulary.
    #[must_use]
    pub fn class(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied { .. } => "denied",
            Outcome::Error(_) => "error",
        }
    }

    /// Who refused it, for denials.
    #[must_use]
    pub fn denied_by(self) -> Option<DenyBy> {
        match self {
            Outcome::Denied { by, .. } => Some(by),
            _ => None,
        }
    }
}

/// Kernel facilities outside files and sockets that a sandbox either
/// forbids or lets through whole (the profile's `sandbox` section). The
/// recorder traces their syscalls, the learner maps them back, and the
/// seccomp baseline denies them unless allowed: one list for all three.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Facility {
    /// io_uring: performs file and socket operations without the syscalls
    /// the rest of the sandbox filters.
    IoUring,
    /// Kernel keyrings: the user's session keyring is shared with processes
    /// outside the sandbox.
    Keyring,
    /// SysV shared memory, semaphores and message queues: keyed objects
    /// shared with every process of the user.
    SysvIpc,
    /// POSIX message queues: named objects shared with every process of the user.
    PosixMqueue,
}

impl Facility {
    pub const ALL: [Facility; 4] = [Facility::IoUring, Facility::Keyring, Facility::SysvIpc, Facility::PosixMqueue];

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Facility::IoUring => "io_uring",
            Facility::Keyring => "keyring",
            Facility::SysvIpc => "sysv_ipc",
            Facility::PosixMqueue => "posix_mqueue",
        }
    }

    /// The x86_64 syscalls that use the facility. Creating or attaching
    /// is enough to learn it; all of them are denied when it is forbidden.
    #[must_use]
    pub const fn syscalls(self) -> &'static [i64] {
        match self {
            Facility::IoUring => &[libc::SYS_io_uring_setup, libc::SYS_io_uring_enter, libc::SYS_io_uring_register],
            Facility::Keyring => &[libc::SYS_add_key, libc::SYS_request_key, libc::SYS_keyctl],
            Facility::SysvIpc => &[
                libc::SYS_shmget,
                libc::SYS_shmat,
                libc::SYS_shmctl,
                libc::SYS_shmdt,
                libc::SYS_semget,
                libc::SYS_semop,
                libc::SYS_semctl,
                libc::SYS_semtimedop,
                libc::SYS_msgget,
                libc::SYS_msgsnd,
                libc::SYS_msgrcv,
                libc::SYS_msgctl,
            ],
            Facility::PosixMqueue => &[
                libc::SYS_mq_open,
                libc::SYS_mq_unlink,
                libc::SYS_mq_timedsend,
                libc::SYS_mq_timedreceive,
                libc::SYS_mq_notify,
                libc::SYS_mq_getsetattr,
            ],
        }
    }

    /// The facility a syscall belongs to.
    #[must_use]
    pub fn of_syscall(nr: i64) -> Option<Facility> {
        Facility::ALL.into_iter().find(|f| f.syscalls().contains(&nr))
    }

    /// The syscall's name, for people.
    #[must_use]
    pub fn syscall_name(nr: i64) -> Option<&'static str> {
        Some(match nr {
            libc::SYS_io_uring_setup => "io_uring_setup",
            libc::SYS_io_uring_enter => "io_uring_enter",
            libc::SYS_io_uring_register => "io_uring_register",
            libc::SYS_add_key => "add_key",
            libc::SYS_request_key => "request_key",
            libc::SYS_keyctl => "keyctl",
            libc::SYS_shmget => "shmget",
            libc::SYS_shmat => "shmat",
            libc::SYS_shmctl => "shmctl",
            libc::SYS_shmdt => "shmdt",
            libc::SYS_semget => "semget",
            libc::SYS_semop => "semop",
            libc::SYS_semctl => "semctl",
            libc::SYS_semtimedop => "semtimedop",
            libc::SYS_msgget => "msgget",
            libc::SYS_msgsnd => "msgsnd",
            libc::SYS_msgrcv => "msgrcv",
            libc::SYS_msgctl => "msgctl",
            libc::SYS_mq_open => "mq_open",
            libc::SYS_mq_unlink => "mq_unlink",
            libc::SYS_mq_timedsend => "mq_timedsend",
            libc::SYS_mq_timedreceive => "mq_timedreceive",
            libc::SYS_mq_notify => "mq_notify",
            libc::SYS_mq_getsetattr => "mq_getsetattr",
            _ => return None,
        })
    }
}

impl fmt::Display for Facility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The socket side of a network event: the endpoint of a connect, bind or
/// send, and the kind of socket (for `socket` events, only the kind).
/// A Unix socket's address is in [`Event::path`]: a path, or `@name` for
/// an abstract one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NetAddr {
    /// `AF_INET`, `AF_INET6`, `AF_UNIX`, `AF_NETLINK`, ... (as numbers).
    pub family: u16,
    /// `None` for families without an IP address.
    pub addr: Option<IpAddr>,
    pub port: u16,
    /// `SOCK_STREAM`, `SOCK_DGRAM`, ... of the socket; 0 when unknown
    /// (records from before the recorder read it).
    #[serde(default)]
    pub sock_type: u16,
    /// `IPPROTO_*` of the socket; 0 when unknown or the family's default.
    #[serde(default)]
    pub protocol: u16,
}

/// What kind of traffic a socket carries, as the sandbox rules see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Proto {
    Tcp,
    Udp,
    /// ICMP "ping" sockets (`SOCK_DGRAM` + `IPPROTO_ICMP`/`ICMPV6`).
    Icmp,
    /// Multipath TCP, SCTP and other IP protocols Landlock's port rules miss.
    OtherIp,
    UnixStream,
    UnixDgram,
    /// Another family (netlink, vsock, packet, ...).
    Other,
    /// The recorder did not say (old records).
    Unknown,
}

impl NetAddr {
    /// The socket's traffic kind, from family, type and protocol.
    #[must_use]
    pub fn proto(&self) -> Proto {
        let ty = i32::from(self.sock_type) & 0xf;
        let proto = i32::from(self.protocol);
        match i32::from(self.family) {
            libc::AF_INET | libc::AF_INET6 => match (ty, proto) {
                (0, _) => Proto::Unknown,
                (libc::SOCK_STREAM, 0 | libc::IPPROTO_TCP) => Proto::Tcp,
                (libc::SOCK_DGRAM, 0 | libc::IPPROTO_UDP) => Proto::Udp,
                (libc::SOCK_DGRAM, libc::IPPROTO_ICMP | libc::IPPROTO_ICMPV6) => Proto::Icmp,
                _ => Proto::OtherIp,
            },
            libc::AF_UNIX => match ty {
                0 => Proto::Unknown,
                libc::SOCK_DGRAM => Proto::UnixDgram,
                _ => Proto::UnixStream,
            },
            _ => Proto::Other,
        }
    }
}

impl Proto {
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::OtherIp => "other-ip",
            Proto::UnixStream => "unix-stream",
            Proto::UnixDgram => "unix-dgram",
            Proto::Other => "other",
            Proto::Unknown => "unknown",
        }
    }
}

/// Names of socket families a profile may allow beyond Unix and IP
/// (`network.families`). Index = name, value = `AF_*`.
pub const SOCKET_FAMILIES: &[(&str, i32)] = &[
    ("netlink", libc::AF_NETLINK),
    ("vsock", libc::AF_VSOCK),
    ("packet", libc::AF_PACKET),
    ("alg", libc::AF_ALG),
    ("bluetooth", libc::AF_BLUETOOTH),
    ("can", libc::AF_CAN),
    ("xdp", libc::AF_XDP),
    ("tipc", libc::AF_TIPC),
    ("rds", libc::AF_RDS),
];

/// The name of a socket family, as profiles spell it.
#[must_use]
pub fn family_name(family: i32) -> String {
    match family {
        libc::AF_UNIX => "unix".to_owned(),
        libc::AF_INET => "inet".to_owned(),
        libc::AF_INET6 => "inet6".to_owned(),
        f => SOCKET_FAMILIES.iter().find(|(_, v)| *v == f).map_or_else(|| format!("family-{f}"), |(n, _)| (*n).to_owned()),
    }
}

/// One recorded access, fully decoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Wall-clock time, nanoseconds since the Unix epoch.
    pub time_ns: i64,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub comm: String,
    /// The executable the process was running, when known.
    pub exe: Option<String>,
    pub op: Op,
    /// Absolute, normalised path, in the escaped form of [`escape_bytes`]
    /// (invalid UTF-8 as `\xNN`, a backslash as `\\`). For a Unix socket
    /// event, the socket's path or `@name` for an abstract one.
    pub path: Option<String>,
    /// Second path: rename/link destination; for a symlink (whose `path` is
    /// the new link) the target exactly as written; for an exec, the file the
    /// exec named (a script) when it is not the executable that runs.
    pub path2: Option<String>,
    pub access: Access,
    /// Raw operation argument (open flags, mode, child pid, exit code).
    pub arg: u64,
    /// File type bits of the object, when known (`S_IFMT` part of `i_mode`).
    pub file_type: u32,
    pub outcome: Outcome,
    pub net: Option<NetAddr>,
    /// The kernel could not read the whole path: the record is incomplete.
    pub incomplete: bool,
}

/// The name of a metadata-changing syscall ([`Op::Metadata`]'s `arg`).
#[must_use]
pub fn metadata_syscall_name(nr: u64) -> Option<&'static str> {
    use nono_common::sysno as n;
    let nr = u32::try_from(nr).ok()?;
    Some(match nr {
        n::CHMOD => "chmod",
        n::FCHMOD => "fchmod",
        n::FCHMODAT => "fchmodat",
        n::FCHMODAT2 => "fchmodat2",
        n::CHOWN => "chown",
        n::FCHOWN => "fchown",
        n::LCHOWN => "lchown",
        n::FCHOWNAT => "fchownat",
        n::UTIME => "utime",
        n::UTIMES => "utimes",
        n::FUTIMESAT => "futimesat",
        n::UTIMENSAT => "utimensat",
        n::SETXATTR => "setxattr",
        n::LSETXATTR => "lsetxattr",
        n::FSETXATTR => "fsetxattr",
        n::REMOVEXATTR => "removexattr",
        n::LREMOVEXATTR => "lremovexattr",
        n::FREMOVEXATTR => "fremovexattr",
        n::SETXATTRAT => "setxattrat",
        n::REMOVEXATTRAT => "removexattrat",
        _ => return None,
    })
}

impl Event {
    /// `(signal, target pid)` of a [`Op::Signal`] event. A target of 0 or
    /// below addresses a process group.
    #[must_use]
    pub fn signal(&self) -> Option<(i32, i32)> {
        (self.op == Op::Signal).then_some(((self.arg & 0xffff_ffff) as i32, (self.arg >> 32) as u32 as i32))
    }

    /// The facility of a [`Op::Syscall`] event.
    #[must_use]
    pub fn facility(&self) -> Option<Facility> {
        if self.op != Op::Syscall {
            return None;
        }
        Facility::of_syscall(self.arg as i64)
    }
}

/// Bytes to text, unambiguously: valid UTF-8 stays as it is except `\`,
/// which becomes `\\`; every byte that is not valid UTF-8 becomes `\xNN`.
/// [`unescape_bytes`] inverts it exactly, so a name containing a backslash
/// can never be mistaken for one containing an invalid byte.
#[must_use]
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        if valid.contains('\\') {
            out.push_str(&valid.replace('\\', "\\\\"));
        } else {
            out.push_str(valid);
        }
        for b in chunk.invalid() {
            use std::fmt::Write as _;
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// A malformed escape in a path string.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad escape at byte {at} of {text:?}: a backslash must start `\\\\` or `\\xNN` (two hex digits)")]
pub struct BadEscape {
    pub text: String,
    pub at: usize,
}

/// The inverse of [`escape_bytes`].
pub fn unescape_bytes(text: &str) -> Result<Vec<u8>, BadEscape> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let bad = || BadEscape { text: text.to_owned(), at: i };
        match b.get(i + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(b'x') => {
                let hex = text.get(i + 2..i + 4).ok_or_else(bad)?;
                let v = u8::from_str_radix(hex, 16).map_err(|_| bad())?;
                out.push(v);
                i += 4;
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

/// An escaped path string as a filesystem path.
pub fn unescape_path(text: &str) -> Result<std::path::PathBuf, BadEscape> {
    use std::os::unix::ffi::OsStringExt as _;
    Ok(std::path::PathBuf::from(std::ffi::OsString::from_vec(unescape_bytes(text)?)))
}

/// A filesystem path in the escaped text form.
#[must_use]
pub fn escape_path(path: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt as _;
    escape_bytes(path.as_os_str().as_bytes())
}

/// Text for a terminal table: control characters (C0, DEL, C1) and the
/// Unicode bidirectional overrides and isolates are shown as `\u{..}`
/// (`\n`, `\t`, `\r` by name), so a file name cannot fake rows or
/// reorder what the reader sees.
#[must_use]
pub fn display_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if unsafe_char(c) => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_escaping_is_unambiguous_and_round_trips() {
        let real_backslash = b"/w/a\\xffb".to_vec();
        let invalid_byte = b"/w/a\xffb".to_vec();
        let (e1, e2) = (escape_bytes(&real_backslash), escape_bytes(&invalid_byte));
        assert_ne!(e1, e2, "a backslash name and an invalid-byte name must differ");
        assert_eq!(unescape_bytes(&e1).expect("e1"), real_backslash);
        assert_eq!(unescape_bytes(&e2).expect("e2"), invalid_byte);
        assert_eq!(escape_bytes("/plain/ünïcode".as_bytes()), "/plain/ünïcode");
        assert!(unescape_bytes("/bad\\q").is_err());
        assert!(unescape_bytes("/bad\\x4").is_err());
    }

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(display_safe("a\nb"), "a\\nb");
        assert_eq!(display_safe("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert!(matches!(display_safe("/usr/bin/ls"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn socket_kinds_are_classified() {
        let n = |family: i32, ty: i32, proto: i32| NetAddr {
            family: family as u16,
            addr: None,
            port: 0,
            sock_type: ty as u16,
            protocol: proto as u16,
        };
        assert_eq!(n(libc::AF_INET, libc::SOCK_STREAM, 0).proto(), Proto::Tcp);
        assert_eq!(n(libc::AF_INET6, libc::SOCK_DGRAM, libc::IPPROTO_UDP).proto(), Proto::Udp);
        assert_eq!(n(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_ICMP).proto(), Proto::Icmp);
        assert_eq!(n(libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_MPTCP).proto(), Proto::OtherIp);
        assert_eq!(n(libc::AF_UNIX, libc::SOCK_DGRAM, 0).proto(), Proto::UnixDgram);
        assert_eq!(n(libc::AF_NETLINK, libc::SOCK_RAW, 0).proto(), Proto::Other);
        assert_eq!(family_name(libc::AF_NETLINK), "netlink");
    }

    #[test]
    fn facilities_own_their_syscalls() {
        for f in Facility::ALL {
            for nr in f.syscalls() {
                assert_eq!(Facility::of_syscall(*nr), Some(f));
                assert!(Facility::syscall_name(*nr).is_some());
            }
        }
        assert_eq!(Facility::of_syscall(libc::SYS_read), None);
    }

    #[test]
    fn op_codes_match_the_kernel_abi() {
        use nono_common::op;
        let pairs = [
            (Op::Open, op::OPEN),
            (Op::Exec, op::EXEC),
            (Op::Unlink, op::UNLINK),
            (Op::Rmdir, op::RMDIR),
            (Op::Mkdir, op::MKDIR),
            (Op::Rename, op::RENAME),
            (Op::Link, op::LINK),
            (Op::Symlink, op::SYMLINK),
            (Op::Truncate, op::TRUNCATE),
            (Op::Mknod, op::MKNOD),
            (Op::Connect, op::CONNECT),
            (Op::Bind, op::BIND),
            (Op::Fork, op::FORK),
            (Op::Exit, op::EXIT),
            (Op::Ioctl, op::IOCTL),
            (Op::Create, op::CREATE),
            (Op::Socket, op::SOCKET),
            (Op::Send, op::SEND),
            (Op::Signal, op::SIGNAL),
            (Op::Syscall, op::SYSCALL),
            (Op::Metadata, op::METADATA),
            (Op::Dns, op::DNS),
        ];
        assert_eq!(pairs.len(), Op::ALL.len());
        for (o, code) in pairs {
            assert_eq!(o.code(), code, "{o}");
            assert_eq!(Op::from_code(code), Some(o));
            assert_eq!(o.name().parse::<Op>().ok(), Some(o));
        }
        assert_eq!(Op::from_code(op::MAX), Some(Op::Dns));
        assert_eq!(Op::from_code(op::MAX + 1), None);
    }

    #[test]
    fn every_metadata_syscall_has_a_name() {
        for nr in nono_common::sysno::METADATA {
            assert!(metadata_syscall_name(u64::from(nr)).is_some(), "{nr}");
        }
        assert_eq!(metadata_syscall_name(libc::SYS_fchmod as u64), Some("fchmod"));
        assert_eq!(metadata_syscall_name(libc::SYS_read as u64), None);
    }

    #[test]
    fn open_flags_decode() {
        let a = Access::from_open_flags(libc::O_RDONLY as u64, false, false);
        assert!(a.read && !a.write && !a.truncate);
        let a = Access::from_open_flags((libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC) as u64, true, false);
        assert!(!a.read && a.write && a.create && a.truncate);
        let a = Access::from_open_flags((libc::O_PATH | libc::O_RDWR) as u64, false, false);
        assert!(!a.read && !a.write);
        assert_eq!(Outcome::from_ret(-2), Outcome::Error(2));
        assert_eq!(Outcome::from_ret(-13).class(), "error", "the kernel's EACCES is not yet a sandbox denial");
        assert_eq!(Outcome::from_ret(3), Outcome::Ok);
    }
}
