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
}

impl Op {
    pub const ALL: [Op; 16] = [
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
        }
    }

    /// Operations that name a filesystem path.
    #[must_use]
    pub const fn is_filesystem(self) -> bool {
        !matches!(self, Op::Connect | Op::Bind | Op::Fork | Op::Exit)
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    Ok,
    /// EACCES or EPERM: a permission check refused it.
    Denied(i32),
    /// Any other errno (ENOENT, EEXIST, ...).
    Error(i32),
}

impl Outcome {
    /// From a kernel return value: 0 or positive is success, negative is -errno.
    #[must_use]
    pub fn from_ret(ret: i64) -> Outcome {
        if ret >= 0 {
            return Outcome::Ok;
        }
        let errno = (-ret) as i32;
        if errno == libc::EACCES || errno == libc::EPERM { Outcome::Denied(errno) } else { Outcome::Error(errno) }
    }

    /// The errno, or 0 for success.
    #[must_use]
    pub fn errno(self) -> i32 {
        match self {
            Outcome::Ok => 0,
            Outcome::Denied(e) | Outcome::Error(e) => e,
        }
    }

    /// `ok`, `denied` or `error`: the `--result` filter vocabulary.
    #[must_use]
    pub fn class(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied(_) => "denied",
            Outcome::Error(_) => "error",
        }
    }
}

/// Socket endpoint of a connect or bind.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NetAddr {
    /// `AF_INET`, `AF_INET6` or `AF_UNIX` (as numbers).
    pub family: u16,
    /// `None` for families without an IP address.
    pub addr: Option<IpAddr>,
    pub port: u16,
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
    /// Absolute, normalised path. Invalid UTF-8 bytes appear as `\xNN`.
    pub path: Option<String>,
    /// Second path: rename/link destination; for a symlink (whose `path` is
    /// the new link) the target exactly as written.
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

#[cfg(test)]
mod tests {
    use super::*;

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
        ];
        assert_eq!(pairs.len(), Op::ALL.len());
        for (o, code) in pairs {
            assert_eq!(o.code(), code, "{o}");
            assert_eq!(Op::from_code(code), Some(o));
            assert_eq!(o.name().parse::<Op>().ok(), Some(o));
        }
        assert_eq!(Op::from_code(op::MAX + 1), None);
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
        assert_eq!(Outcome::from_ret(-13).class(), "denied");
        assert_eq!(Outcome::from_ret(3), Outcome::Ok);
    }
}
