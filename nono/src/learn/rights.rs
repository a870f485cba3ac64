//! Access -> Landlock rights: which rights, on which path, one recorded
//! access needs. This is the single mapping shared by the learner and by
//! `nono audit check` (replay), so both agree on what a profile must allow.
//!
//! The mapping follows the kernel's Landlock hooks (`security/landlock/fs.c`):
//! - `hook_file_open` checks the opened object: `read_dir` for a directory
//!   opened for reading, otherwise `read_file` / `write_file` by the open
//!   mode, plus `execute` for opens with `__FMODE_EXEC`. `execve` opens the
//!   binary `O_RDONLY|__FMODE_EXEC`, so an exec needs `read_file` **and**
//!   `execute`. `O_PATH` opens never reach the hook.
//! - `truncate(2)`, and `O_TRUNC` on an existing file, need `truncate` on the
//!   file. An open that created the file drops `O_TRUNC` (`FMODE_CREATED`).
//! - `mkdir`, `mknod`, `O_CREAT` creation, `symlink`, `unlink`, `rmdir` are
//!   checked on the **parent directory** (`make_*`, `remove_*`).
//! - `rename` needs `remove_<type>` on the source parent and `make_<type>`
//!   on the destination parent, plus `remove_<type>` there when it replaces
//!   an existing entry; `link` needs `make_<type>` on the destination parent.
//!   When the parents differ both also need `refer`; in the same directory
//!   the union is checked on that one directory.
//! - `ioctl` is restricted only on character and block devices (`ioctl_dev`).
//!
//! Metadata changes are not Landlock's: [`metadata_need`] says how the
//! learner grants them.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::event::{Event, Op, Outcome};
use crate::profile::rights::FsRight;

use super::paths::parent;

/// `renameat2` flags (linux/fs.h); spelled out because not every libc
/// target exports them.
const RENAME_NOREPLACE: u64 = 1;
const RENAME_EXCHANGE: u64 = 2;

/// A set of [`FsRight`]s as a bit mask, so aggregating a million events
/// does not allocate a `BTreeSet` per access.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Mask(u16);

impl Mask {
    pub(crate) const EMPTY: Mask = Mask(0);

    pub(crate) const fn of(r: FsRight) -> Mask {
        Mask(1 << (r as u16))
    }

    #[must_use]
    pub(crate) const fn with(self, r: FsRight) -> Mask {
        Mask(self.0 | Mask::of(r).0)
    }

    #[must_use]
    pub(crate) const fn union(self, o: Mask) -> Mask {
        Mask(self.0 | o.0)
    }

    #[must_use]
    pub(crate) const fn intersect(self, o: Mask) -> Mask {
        Mask(self.0 & o.0)
    }

    #[must_use]
    pub(crate) const fn minus(self, o: Mask) -> Mask {
        Mask(self.0 & !o.0)
    }

    pub(crate) const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub(crate) const fn contains_all(self, o: Mask) -> bool {
        self.0 & o.0 == o.0
    }

    /// Execute, read files, list directories: the rights that only read.
    pub(crate) const fn read_class() -> Mask {
        Mask::of(FsRight::Execute).with(FsRight::ReadFile).with(FsRight::ReadDir)
    }

    /// Rights Landlock accepts on a rule for a single file.
    pub(crate) fn file_rights() -> Mask {
        FsRight::FILE_RIGHTS.into_iter().fold(Mask::EMPTY, Mask::with)
    }

    pub(crate) fn from_set(s: &BTreeSet<FsRight>) -> Mask {
        s.iter().copied().fold(Mask::EMPTY, Mask::with)
    }

    pub(crate) fn to_set(self) -> BTreeSet<FsRight> {
        FsRight::ALL.into_iter().filter(|r| self.contains_all(Mask::of(*r))).collect()
    }

    /// `read_file+write_file` style text for messages.
    pub(crate) fn label(self) -> String {
        let names: Vec<&str> = self.to_set().into_iter().map(FsRight::name).collect();
        names.join("+")
    }
}

/// The object of a successful metadata change (`chmod`, `chown`, times,
/// xattrs), and how to grant it. Landlock never checks these calls; nono's
/// broker does, under `filesystem.metadata`, whose default (`write_grants`)
/// allows a change beneath a rule with `write_file` (see
/// [`metadata_rights`]) or on an entry of a brokered rule with the
/// `metadata` op. So they are not among [`visit_needs`]' Landlock needs:
/// the learner places them itself, and attribution leaves them to the
/// broker's own log.
///
/// The kind is `File` only when the recorder knew the object is not a
/// directory (a descriptor-based call). A directory, or a path whose type
/// is unknown, is `Dir`: a rule on a directory covers everything beneath
/// it, so it must go through the placement that never covers a sensitive
/// path, and on a regular file such a rule still holds only file rights.
pub(crate) fn metadata_need(e: &Event) -> Option<(&str, Kind)> {
    if e.op != Op::Metadata {
        return None;
    }
    let path = e.path.as_deref()?;
    let kind = match e.file_type & libc::S_IFMT {
        0 | libc::S_IFDIR => Kind::Dir,
        _ => Kind::File,
    };
    Some((path, kind))
}

/// What a metadata change of kind `kind` adds to a path's file and
/// directory rights: `write_file`, which the `write_grants` policy looks
/// for (there is no narrower right to grant).
pub(crate) fn metadata_rights(kind: Kind, file: Mask, dir: Mask) -> (Mask, Mask) {
    match kind {
        Kind::File => (file.with(FsRight::WriteFile), dir),
        Kind::Dir => (file, dir.with(FsRight::WriteFile)),
    }
}

/// Whether a need is checked on the object as a file or as a directory
/// (a directory rule applies to everything beneath it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
}

/// `make_<type>` for an inode mode (Landlock's `get_mode_access`: mode 0
/// is a regular file, as for `mknod` without a type).
pub(crate) fn make_right(mode: u32) -> FsRight {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FsRight::MakeDir,
        libc::S_IFLNK => FsRight::MakeSym,
        libc::S_IFCHR => FsRight::MakeChar,
        libc::S_IFBLK => FsRight::MakeBlock,
        libc::S_IFIFO => FsRight::MakeFifo,
        libc::S_IFSOCK => FsRight::MakeSock,
        _ => FsRight::MakeReg,
    }
}

fn remove_right(mode: u32) -> FsRight {
    if mode & libc::S_IFMT == libc::S_IFDIR { FsRight::RemoveDir } else { FsRight::RemoveFile }
}

fn is_dir(mode: u32) -> bool {
    mode & libc::S_IFMT == libc::S_IFDIR
}

/// Errors the kernel returns during path lookup or argument checks, before
/// any LSM hook runs: Landlock would return the same errno, so such a
/// failed access needs no right (see the module docs of `learn`).
pub(crate) fn fails_before_landlock(errno: i32) -> bool {
    matches!(
        errno,
        libc::ENOENT
            | libc::EEXIST
            | libc::ENOTDIR
            | libc::ELOOP
            | libc::ENAMETOOLONG
            | libc::EISDIR
            | libc::EXDEV
            | libc::EROFS
            | libc::ETXTBSY
            | libc::EBADF
            | libc::EFAULT
    )
}

/// Calls `need(path, rights, kind)` for every right the access needs.
/// Ignores the outcome except for errors raised before any Landlock check
/// (those need nothing); the caller decides whether to grant.
pub(crate) fn visit_needs(e: &Event, mut need: impl FnMut(&str, Mask, Kind)) {
    if let Outcome::Error(errno) = e.outcome
        && fails_before_landlock(errno)
    {
        return;
    }
    let Some(path) = e.path.as_deref() else {
        return;
    };
    let mut on_parent = |p: &str, m: Mask| {
        if let Some(dir) = parent(p) {
            need(dir, m, Kind::Dir);
        }
    };
    match e.op {
        Op::Open => open_needs(e, path, &mut need),
        Op::Exec => {
            // The executable that runs, and the file the exec named when
            // that differs (a script: the kernel opens it for exec too,
            // then its `#!` interpreter).
            let x = Mask::of(FsRight::Execute).with(FsRight::ReadFile);
            need(path, x, Kind::File);
            if let Some(named) = e.path2.as_deref().filter(|n| *n != path && n.starts_with('/')) {
                need(named, x, Kind::File);
            }
        }
        Op::Unlink => on_parent(path, Mask::of(FsRight::RemoveFile)),
        Op::Rmdir => on_parent(path, Mask::of(FsRight::RemoveDir)),
        Op::Mkdir => on_parent(path, Mask::of(FsRight::MakeDir)),
        Op::Create => on_parent(path, Mask::of(make_right(e.file_type))),
        Op::Mknod => {
            // The recorder puts the mode in `arg`; `file_type` when known.
            let mode = if e.file_type & libc::S_IFMT != 0 { e.file_type } else { e.arg as u32 };
            on_parent(path, Mask::of(make_right(mode)));
        }
        // `path` is the link's target text; the new name is `path2`.
        // `path` is the new link; `path2` its target, verbatim and unchecked.
        Op::Symlink => on_parent(path, Mask::of(FsRight::MakeSym)),
        Op::Truncate => need(path, Mask::of(FsRight::Truncate), Kind::File),
        Op::Ioctl => {
            // Landlock restricts ioctl only on devices; an unknown type is
            // treated as a device so the learned profile is not too small.
            let t = e.file_type & libc::S_IFMT;
            if t == 0 || t == libc::S_IFCHR || t == libc::S_IFBLK {
                need(path, Mask::of(FsRight::IoctlDev), Kind::File);
            }
        }
        Op::Rename => refer_needs(e, path, true, &mut need),
        Op::Link => refer_needs(e, path, false, &mut need),
        // Binding a pathname unix socket creates a socket inode (mknod hook).
        Op::Bind => {
            if e.net.as_ref().is_some_and(|n| i32::from(n.family) == libc::AF_UNIX) {
                on_parent(path, Mask::of(FsRight::MakeSock));
            }
        }
        Op::Connect | Op::Fork | Op::Exit | Op::Socket | Op::Send | Op::Signal | Op::Syscall | Op::Metadata | Op::Dns => {}
    }
}

fn open_needs(e: &Event, path: &str, need: &mut impl FnMut(&str, Mask, Kind)) {
    let a = e.access;
    if a.create
        && let Some(dir) = parent(path)
    {
        need(dir, Mask::of(FsRight::MakeReg), Kind::Dir);
    }
    if a.directory || is_dir(e.file_type) {
        // A directory can only be opened for reading.
        if a.read {
            need(path, Mask::of(FsRight::ReadDir), Kind::Dir);
        }
        return;
    }
    let mut m = Mask::EMPTY;
    if is_terminal(path, e.file_type) && (a.read || a.write) {
        // A program that opens a terminal asks it for its size and modes
        // (TCGETS, TIOCGWINSZ). Landlock checks those ioctls on devices
        // opened inside the sandbox (ABI 5), and not every backend records
        // ioctls: grant them with the open.
        m = m.with(FsRight::IoctlDev);
    }
    if a.read {
        m = m.with(FsRight::ReadFile);
    }
    if a.write {
        m = m.with(FsRight::WriteFile);
    }
    if a.exec {
        m = m.with(FsRight::Execute);
    }
    if a.truncate && !a.create {
        m = m.with(FsRight::Truncate);
    }
    if !m.is_empty() {
        need(path, m, Kind::File);
    }
}

/// A terminal device: the controlling terminal, a pseudo-terminal, a
/// virtual console.
pub(crate) fn is_terminal(path: &str, file_type: u32) -> bool {
    if file_type & libc::S_IFMT != 0 && file_type & libc::S_IFMT != libc::S_IFCHR {
        return false;
    }
    matches!(path, "/dev/tty" | "/dev/console" | "/dev/ptmx")
        || path.strip_prefix("/dev/pts/").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        || path.strip_prefix("/dev/tty").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Rename (`removable`) and link. The recorder does not say whether a
/// rename's destination existed; replacing one is the common case (atomic
/// save), so `remove_<type>` is asked on the destination parent unless the
/// call used `RENAME_NOREPLACE`. The destination of an exchange is assumed
/// to have the source's type.
fn refer_needs(e: &Event, old: &str, removable: bool, need: &mut impl FnMut(&str, Mask, Kind)) {
    let Some(new) = e.path2.as_deref() else {
        return;
    };
    let (Some(old_dir), Some(new_dir)) = (parent(old), parent(new)) else {
        return;
    };
    let mode = e.file_type;
    let exchange = removable && e.arg & RENAME_EXCHANGE != 0;
    let mut p1 = Mask::EMPTY;
    let mut p2 = Mask::of(make_right(mode));
    if exchange {
        p1 = p1.with(make_right(mode));
    }
    if removable {
        p1 = p1.with(remove_right(mode));
        if exchange || e.arg & RENAME_NOREPLACE == 0 {
            p2 = p2.with(remove_right(mode));
        }
    }
    if old_dir == new_dir {
        need(old_dir, p1.union(p2), Kind::Dir);
    } else {
        need(old_dir, p1.with(FsRight::Refer), Kind::Dir);
        need(new_dir, p2.with(FsRight::Refer), Kind::Dir);
    }
}

/// The Landlock rights one recorded access needs: `(path, rights, file)`,
/// where `file` says the rights are checked on the path as a single file
/// rather than as a directory (whose rule would cover everything beneath).
///
/// Empty for accesses Landlock never checks: process events, TCP
/// connect/bind (ports, not paths), `O_PATH` opens, ioctls on non-devices,
/// and accesses that failed before any LSM hook (`ENOENT`, `EEXIST`, ...).
/// A denied access still lists what it would have needed, which is what a
/// replay (`nono audit check`) asks. Paths come back as real bytes.
#[must_use]
pub fn rights_for_event(e: &Event) -> Vec<(PathBuf, BTreeSet<FsRight>, bool)> {
    let mut out: Vec<(String, Mask, bool)> = Vec::new();
    visit_needs(e, |p, m, kind| {
        let file = kind == Kind::File;
        match out.iter_mut().find(|(q, _, f)| q == p && *f == file) {
            Some(slot) => slot.1 = slot.1.union(m),
            None => out.push((p.to_owned(), m, file)),
        }
    });
    // Event paths are in the escaped text form; the grants hold real bytes.
    out.into_iter()
        .map(|(p, m, file)| (crate::event::unescape_path(&p).unwrap_or_else(|_| PathBuf::from(p)), m.to_set(), file))
        .collect()
}
