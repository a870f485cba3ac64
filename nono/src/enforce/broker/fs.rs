//! Filesystem notifications: creating, opening for write, renaming and
//! removing the entries of brokered rules, and metadata changes.
//!
//! # How a brokered operation stays inside its rule
//! The caller's path is read once. Its parent directory is resolved by the
//! broker (as the user) and compared by inode with the rule's directory,
//! which was opened when the sandbox was built; the last component must
//! be one name that matches the rule's globs. The broker then performs the
//! operation itself relative to the rule's directory descriptor, with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS` (and
//! `O_NOFOLLOW`): a racing thread that swaps a path component for a
//! symlink after the check changes nothing, because nothing is resolved
//! again from the caller's path. Anything else is answered CONTINUE, and
//! Landlock decides as if the broker were not there.
//!
//! # Metadata
//! `chmod`, `chown`, timestamps and xattrs have no Landlock right. With the
//! default policy (`write_grants`) the broker resolves the target once,
//! checks that it lies beneath a rule with `write_file` (by inode, walking
//! `..`), and performs the change on its own descriptor of that object.
//! An entry of a brokered rule with the `metadata` op, named by a path or
//! by a descriptor open on it (`fchmod` of an atomic save's temp file), is
//! opened beneath the rule's directory (`RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS`, `O_NOFOLLOW`) and changed through that
//! descriptor. Elsewhere the call fails with EACCES.

use std::ffi::CString;
use std::os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd};

use super::Handled;
use super::caller::{Caller, Errno, open_path};
use super::notif::{Notif, Reply};
use super::plan::{BrokerPlan, BrokeredDir};
use crate::event::Op;
use crate::profile::{BrokerOp, MetadataPolicy};

const RESOLVE_STRICT: u64 = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;

fn last_errno() -> Errno {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

fn cstr(b: &[u8]) -> Result<CString, Errno> {
    CString::new(b).map_err(|_| libc::EINVAL)
}

/// `openat2(2)`.
fn openat2(dir: BorrowedFd<'_>, path: &[u8], flags: i32, mode: u32, resolve: u64) -> Result<OwnedFd, Errno> {
    let c = cstr(path)?;
    // open_how is non-exhaustive in libc (the kernel may grow it): zero it
    // and set the three fields this kernel ABI has.
    // SAFETY: plain integers; all-zero is valid.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = u64::from(mode);
    how.resolve = resolve;
    // SAFETY: `c` and `how` outlive the call; a non-negative result is a new descriptor we own.
    let fd = unsafe {
        libc::syscall(libc::SYS_openat2, dir.as_raw_fd(), c.as_ptr(), &raw const how, std::mem::size_of::<libc::open_how>())
    };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: fd is a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn fstat(fd: BorrowedFd<'_>) -> Result<libc::stat, Errno> {
    // SAFETY: stat is plain data; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and output pointer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &raw mut st) } != 0 {
        return Err(last_errno());
    }
    Ok(st)
}

fn ret(r: libc::c_int) -> Result<i64, Errno> {
    if r < 0 { Err(last_errno()) } else { Ok(i64::from(r)) }
}

/// A path as the caller gave it, split into its directory part and last
/// component.
struct Split {
    dir: Vec<u8>,
    name: Vec<u8>,
}

/// Splits `path` (trailing slashes dropped). `None` for paths whose last
/// component is not a name (`/`, `.`, `..`): never brokered.
fn split(path: &[u8]) -> Option<Split> {
    let mut end = path.len();
    while end > 1 && path[end - 1] == b'/' {
        end -= 1;
    }
    let path = &path[..end];
    let (dir, name) = match path.iter().rposition(|&b| b == b'/') {
        Some(0) => (b"/".to_vec(), path[1..].to_vec()),
        Some(i) => (path[..i].to_vec(), path[i + 1..].to_vec()),
        None => (b".".to_vec(), path.to_vec()),
    };
    (!name.is_empty() && name != b"." && name != b"..").then_some(Split { dir, name })
}

/// `/proc/self/...` names the caller, not the broker: rewrite it.
fn rewrite_self(caller: &Caller, dir: Vec<u8>) -> Vec<u8> {
    let tgid = caller.tgid().unwrap_or(caller.tid);
    for (prefix, with) in
        [(&b"/proc/self"[..], format!("/proc/{tgid}")), (&b"/proc/thread-self"[..], format!("/proc/{tgid}/task/{}", caller.tid))]
    {
        if dir == prefix || dir.starts_with(&[prefix, b"/"].concat()) {
            let mut out = with.into_bytes();
            out.extend_from_slice(&dir[prefix.len()..]);
            return out;
        }
    }
    dir
}

/// The directory a path's last component lives in, resolved once from the
/// caller's working directory or `dirfd`, following symlinks as the
/// kernel would for the directory part.
fn parent(caller: &mut Caller, dirfd: i32, s: &Split) -> Result<OwnedFd, Errno> {
    let dir = rewrite_self(caller, s.dir.clone());
    if dir.starts_with(b"/") {
        // SAFETY: AT_FDCWD is a valid dirfd for an absolute path.
        let cwd = unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) };
        return openat2(cwd, &dir, libc::O_PATH | libc::O_DIRECTORY, 0, 0);
    }
    let base = caller.base(dirfd)?;
    use std::os::fd::AsFd as _;
    openat2(base.as_fd(), &dir, libc::O_PATH | libc::O_DIRECTORY, 0, 0)
}

/// The brokered rule covering `path` (relative to `dirfd`) for `op`: the
/// rule and the entry's name.
fn brokered<'p>(
    plan: &'p BrokerPlan,
    caller: &mut Caller,
    dirfd: i32,
    path: &[u8],
    op: BrokerOp,
) -> Option<(&'p BrokeredDir, Vec<u8>)> {
    let s = split(path)?;
    if !plan.name_may_be_brokered(&s.name) {
        return None;
    }
    let p = parent(caller, dirfd, &s).ok()?;
    use std::os::fd::AsFd as _;
    let st = fstat(p.as_fd()).ok()?;
    plan.brokered_for(st.st_dev, st.st_ino, &s.name, op).map(|b| (b, s.name))
}

/// The audit note of a handled call: the op and the path as the caller named it.
fn note(op: Op, path: &[u8], path2: Option<&[u8]>, arg: u64) -> super::AuditNote {
    super::AuditNote {
        op,
        path: Some(crate::event::escape_bytes(path)),
        path2: path2.map(crate::event::escape_bytes),
        arg,
        net: None,
    }
}

/// Handles a filesystem notification, or `None` when it is not one.
pub(super) fn handle(n: &Notif, caller: &mut Caller, plan: &BrokerPlan, valid: &dyn Fn() -> bool) -> Option<Handled> {
    let a = n.args;
    let nr = i64::from(n.nr);
    let h = match nr {
        libc::SYS_open => open(caller, plan, libc::AT_FDCWD, a[0], a[1] as i32, a[2] as u32, valid),
        libc::SYS_creat => {
            open(caller, plan, libc::AT_FDCWD, a[0], libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC, a[1] as u32, valid)
        }
        libc::SYS_openat => open(caller, plan, a[0] as i32, a[1], a[2] as i32, a[3] as u32, valid),
        libc::SYS_openat2 => {
            let how: libc::open_how = match caller.read_struct(a[2]) {
                Ok(h) => h,
                Err(e) => return Some(Handled::reply(Reply::Error(e))),
            };
            open(caller, plan, a[0] as i32, a[1], how.flags as i32, how.mode as u32, valid)
        }
        libc::SYS_mkdir => simple(caller, plan, libc::AT_FDCWD, a[0], BrokerOp::Mkdir, a[1] as u32, valid),
        libc::SYS_mkdirat => simple(caller, plan, a[0] as i32, a[1], BrokerOp::Mkdir, a[2] as u32, valid),
        libc::SYS_unlink => simple(caller, plan, libc::AT_FDCWD, a[0], BrokerOp::Remove, 0, valid),
        libc::SYS_rmdir => simple(caller, plan, libc::AT_FDCWD, a[0], BrokerOp::Rmdir, 0, valid),
        libc::SYS_unlinkat => {
            let op = if a[2] as i32 & libc::AT_REMOVEDIR != 0 { BrokerOp::Rmdir } else { BrokerOp::Remove };
            simple(caller, plan, a[0] as i32, a[1], op, 0, valid)
        }
        libc::SYS_rename => rename(caller, plan, (libc::AT_FDCWD, a[0]), (libc::AT_FDCWD, a[1]), 0, valid),
        libc::SYS_renameat => rename(caller, plan, (a[0] as i32, a[1]), (a[2] as i32, a[3]), 0, valid),
        libc::SYS_renameat2 => rename(caller, plan, (a[0] as i32, a[1]), (a[2] as i32, a[3]), a[4] as u32, valid),
        _ => return super::metadata::handle(n, caller, plan, valid),
    };
    Some(h)
}

/// Reads a path argument, or answers with its errno.
fn path_arg(caller: &Caller, addr: u64) -> Result<Vec<u8>, Handled> {
    caller.read_cstr(addr).map_err(|e| Handled::reply(Reply::Error(e)))
}

fn open(
    caller: &mut Caller,
    plan: &BrokerPlan,
    dirfd: i32,
    path: u64,
    flags: i32,
    mode: u32,
    valid: &dyn Fn() -> bool,
) -> Handled {
    if flags & libc::O_CREAT == 0 {
        return Handled::cont();
    }
    let path = match path_arg(caller, path) {
        Ok(p) => p,
        Err(h) => return h,
    };
    let Some((rule, name)) = brokered(plan, caller, dirfd, &path, BrokerOp::Create) else { return Handled::cont() };
    if !valid() {
        return Handled::gone();
    }
    use std::os::fd::AsFd as _;
    let umask = caller.umask();
    let cloexec = flags & libc::O_CLOEXEC != 0;
    // Our own descriptor is close-on-exec; the caller's gets what it asked for.
    let base = (flags & !(libc::O_CLOEXEC | libc::O_PATH)) | libc::O_NOFOLLOW;
    let audit = note(Op::Open, &path, None, flags as u64);
    match openat2(rule.fd.as_fd(), &name, base | libc::O_CREAT | libc::O_EXCL, mode & !umask & 0o7777, RESOLVE_STRICT) {
        Ok(fd) => Handled::fd(fd, cloexec, audit.created()),
        Err(libc::EEXIST) if flags & libc::O_EXCL == 0 => {
            if !rule.ops.contains(&BrokerOp::Write) {
                // Opening an existing file: Landlock decides.
                return Handled::cont();
            }
            match openat2(rule.fd.as_fd(), &name, base & !libc::O_CREAT, 0, RESOLVE_STRICT) {
                Ok(fd) => Handled::fd(fd, cloexec, audit),
                Err(e) => Handled::reply_noted(Reply::Error(e), audit),
            }
        }
        Err(e) => Handled::reply_noted(Reply::Error(e), audit),
    }
}

fn simple(
    caller: &mut Caller,
    plan: &BrokerPlan,
    dirfd: i32,
    path: u64,
    op: BrokerOp,
    mode: u32,
    valid: &dyn Fn() -> bool,
) -> Handled {
    let path = match path_arg(caller, path) {
        Ok(p) => p,
        Err(h) => return h,
    };
    let Some((rule, name)) = brokered(plan, caller, dirfd, &path, op) else { return Handled::cont() };
    if !valid() {
        return Handled::gone();
    }
    let c = match cstr(&name) {
        Ok(c) => c,
        Err(e) => return Handled::reply(Reply::Error(e)),
    };
    let dir = rule.fd.as_raw_fd();
    // SAFETY (each call): `dir` is the rule's open directory and `c` one
    // valid name; *at calls never follow a last-component symlink here.
    let (r, audit_op) = match op {
        BrokerOp::Mkdir => (unsafe { libc::mkdirat(dir, c.as_ptr(), mode & !caller.umask() & 0o7777) }, Op::Mkdir),
        BrokerOp::Remove => (unsafe { libc::unlinkat(dir, c.as_ptr(), 0) }, Op::Unlink),
        BrokerOp::Rmdir => (unsafe { libc::unlinkat(dir, c.as_ptr(), libc::AT_REMOVEDIR) }, Op::Rmdir),
        _ => return Handled::cont(),
    };
    let reply = match ret(r) {
        Ok(v) => Reply::Value(v),
        Err(e) => Reply::Error(e),
    };
    Handled::reply_noted(reply, note(audit_op, &path, None, 0))
}

fn rename(
    caller: &mut Caller,
    plan: &BrokerPlan,
    from: (i32, u64),
    to: (i32, u64),
    flags: u32,
    valid: &dyn Fn() -> bool,
) -> Handled {
    let (old, new) = match (path_arg(caller, from.1), path_arg(caller, to.1)) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(h), _) | (_, Err(h)) => return h,
    };
    let Some((r1, old_name)) = brokered(plan, caller, from.0, &old, BrokerOp::Rename) else { return Handled::cont() };
    let Some((r2, new_name)) = brokered(plan, caller, to.0, &new, BrokerOp::Rename) else { return Handled::cont() };
    // Both names in the same rule's directory.
    if !std::ptr::eq(r1, r2) {
        return Handled::cont();
    }
    if !valid() {
        return Handled::gone();
    }
    let audit = note(Op::Rename, &old, Some(&new), u64::from(flags));
    let result = if flags == 0 && keeps_inode(plan, r1, &new_name) {
        replace_in_place(r1, &old_name, &new_name)
    } else {
        rename_at(r1, &old_name, &new_name, flags)
    };
    let reply = match result {
        Ok(()) => Reply::Value(0),
        Err(e) => Reply::Error(e),
    };
    Handled::reply_noted(reply, audit)
}

fn rename_at(rule: &BrokeredDir, old: &[u8], new: &[u8], flags: u32) -> Result<(), Errno> {
    let (o, n) = (cstr(old)?, cstr(new)?);
    let dir = rule.fd.as_raw_fd();
    // SAFETY: both names are single components in the rule's directory;
    // renameat2 never follows a last-component symlink.
    let r = unsafe { libc::syscall(libc::SYS_renameat2, dir, o.as_ptr(), dir, n.as_ptr(), flags) };
    if r < 0 { Err(last_errno()) } else { Ok(()) }
}

/// A replace must keep the destination's inode when a Landlock file rule
/// is bound to it: a new inode would carry no rule, and the command could
/// not read its own file again until the next run.
fn keeps_inode(plan: &BrokerPlan, rule: &BrokeredDir, name: &[u8]) -> bool {
    use std::os::fd::AsFd as _;
    let Ok(fd) = openat2(rule.fd.as_fd(), name, libc::O_PATH | libc::O_NOFOLLOW, 0, RESOLVE_STRICT) else { return false };
    let Ok(st) = fstat(fd.as_fd()) else { return false };
    st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_nlink == 1 && plan.rule_files.contains(&(st.st_dev, st.st_ino))
}

/// The most data an in-place replace copies. A bigger source (written by
/// the sandbox itself: holes are not copied, so a sparse file costs
/// nothing) is renamed over the target instead, which gives the name a new
/// inode without the target's Landlock file rule until the next run.
const MAX_IN_PLACE: u64 = 1 << 30;

/// Chunk of the read/write fallback (a filesystem without
/// `copy_file_range`): the only memory a replace takes.
const CHUNK: usize = 1 << 20;

/// Writes `old`'s content into `new` (same inode; mode and times taken
/// from `old`), syncs it, then removes `old`. If anything fails before the sync, `old`
/// is left in place with the full new content.
///
/// The content is streamed in the kernel (`copy_file_range`), extent by
/// extent (`SEEK_DATA`/`SEEK_HOLE`, so holes stay holes), never read into
/// nono's memory: a 3 GiB sparse temp costs nothing (tested, by nono's
/// peak RSS).
fn replace_in_place(rule: &BrokeredDir, old: &[u8], new: &[u8]) -> Result<(), Errno> {
    use std::os::fd::AsFd as _;
    let src = openat2(rule.fd.as_fd(), old, libc::O_RDONLY | libc::O_NOFOLLOW, 0, RESOLVE_STRICT)?;
    let st = fstat(src.as_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        // Not a regular file: a plain rename has the right semantics.
        return rename_at(rule, old, new, 0);
    }
    let size = u64::try_from(st.st_size).unwrap_or(0);
    let extents = data_extents(src.as_fd(), size)?;
    if extents.iter().map(|(_, len)| len).sum::<u64>() > MAX_IN_PLACE {
        return rename_at(rule, old, new, 0);
    }
    let dst = openat2(rule.fd.as_fd(), new, libc::O_WRONLY | libc::O_NOFOLLOW, 0, RESOLVE_STRICT)?;
    // Empty first, then the source's data where it has some: the rest
    // reads as zeros, as in the source.
    // SAFETY (each call): plain syscalls on our own descriptors.
    if unsafe { libc::ftruncate(dst.as_raw_fd(), 0) } != 0 {
        return Err(last_errno());
    }
    let mut buf = Vec::new();
    for (start, len) in extents {
        copy_range(src.as_fd(), dst.as_fd(), start, len, &mut buf)?;
    }
    if unsafe { libc::ftruncate(dst.as_raw_fd(), st.st_size) } != 0 {
        return Err(last_errno());
    }
    // What a rename would carry over besides the content: the mode and the
    // times of the replacement (a mode-preserving save copies both from the
    // original onto its temp file first).
    unsafe { libc::fchmod(dst.as_raw_fd(), st.st_mode & 0o7777) };
    let times = [
        libc::timespec { tv_sec: st.st_atime, tv_nsec: st.st_atime_nsec },
        libc::timespec { tv_sec: st.st_mtime, tv_nsec: st.st_mtime_nsec },
    ];
    // SAFETY: our descriptor and a two-element array that outlives the call.
    unsafe { libc::futimens(dst.as_raw_fd(), times.as_ptr()) };
    if unsafe { libc::fsync(dst.as_raw_fd()) } != 0 {
        return Err(last_errno());
    }
    let o = cstr(old)?;
    // SAFETY: one name in the rule's directory.
    if unsafe { libc::unlinkat(rule.fd.as_raw_fd(), o.as_ptr(), 0) } != 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// The `(offset, length)` ranges of `fd` that hold data, up to `size`
/// (the whole file where the filesystem cannot tell holes).
fn data_extents(fd: BorrowedFd<'_>, size: u64) -> Result<Vec<(u64, u64)>, Errno> {
    let mut out = Vec::new();
    let mut off: u64 = 0;
    let Ok(end) = i64::try_from(size) else { return Err(libc::EFBIG) };
    while off < size {
        // SAFETY (both): lseek on our descriptor.
        let data = unsafe { libc::lseek(fd.as_raw_fd(), off as i64, libc::SEEK_DATA) };
        if data < 0 {
            match last_errno() {
                // No data past `off`.
                libc::ENXIO => break,
                // No hole support: all of it.
                libc::EINVAL | libc::EOPNOTSUPP => return Ok(vec![(off, size - off)]),
                e => return Err(e),
            }
        }
        let hole = unsafe { libc::lseek(fd.as_raw_fd(), data, libc::SEEK_HOLE) };
        let hole = if hole < 0 { end } else { hole.min(end) };
        if hole <= data {
            break;
        }
        out.push((data as u64, (hole - data) as u64));
        off = hole as u64;
    }
    Ok(out)
}

/// Copies `len` bytes at `start` from `src` to the same offset of `dst`,
/// in the kernel where it can, else through `buf` ([`CHUNK`] bytes).
fn copy_range(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, start: u64, len: u64, buf: &mut Vec<u8>) -> Result<(), Errno> {
    let (mut off_in, mut off_out) = (start as i64, start as i64);
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left.min(CHUNK as u64 * 64)).unwrap_or(CHUNK);
        // SAFETY: offsets are ours; the kernel copies between our descriptors.
        let n = unsafe { libc::copy_file_range(src.as_raw_fd(), &raw mut off_in, dst.as_raw_fd(), &raw mut off_out, want, 0) };
        if n > 0 {
            left -= n as u64;
            continue;
        }
        if n == 0 {
            // The source shrank meanwhile: what is left reads as zeros.
            return Ok(());
        }
        match last_errno() {
            libc::EINTR => {}
            libc::EXDEV | libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP => {
                return copy_by_chunks(src, dst, off_in as u64, left, buf);
            }
            e => return Err(e),
        }
    }
    Ok(())
}

fn copy_by_chunks(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, mut off: u64, mut left: u64, buf: &mut Vec<u8>) -> Result<(), Errno> {
    buf.resize(CHUNK, 0);
    while left > 0 {
        let want = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
        // SAFETY: reading into our buffer of at least `want` bytes.
        let n = unsafe { libc::pread(src.as_raw_fd(), buf.as_mut_ptr().cast(), want, off as i64) };
        if n < 0 {
            if last_errno() == libc::EINTR {
                continue;
            }
            return Err(last_errno());
        }
        if n == 0 {
            return Ok(());
        }
        let mut done = 0usize;
        while done < n as usize {
            // SAFETY: writing bytes of our buffer.
            let w = unsafe {
                libc::pwrite(dst.as_raw_fd(), buf[done..].as_ptr().cast(), n as usize - done, (off + done as u64) as i64)
            };
            if w < 0 {
                if last_errno() == libc::EINTR {
                    continue;
                }
                return Err(last_errno());
            }
            done += w as usize;
        }
        off += n as u64;
        left -= n as u64;
    }
    Ok(())
}

/// Resolves the object a metadata call names and checks the policy.
/// Returns the object's descriptor, or the answer.
pub(super) fn metadata_target(
    caller: &mut Caller,
    plan: &BrokerPlan,
    dirfd: i32,
    path: Option<&[u8]>,
    follow: bool,
) -> Result<OwnedFd, Errno> {
    use std::os::fd::AsFd as _;
    let obj = match path {
        // The descriptor itself (fchmod, AT_EMPTY_PATH).
        None => {
            let obj = caller.getfd(dirfd)?;
            if let Some(entry) = brokered_entry(plan, obj.as_fd()) {
                return Ok(entry);
            }
            obj
        }
        Some(p) if p.is_empty() => return Err(libc::ENOENT),
        Some(p) => {
            let Some(s) = split(p) else {
                // `/`, `.`, `..`: the directory itself.
                let base = caller.base(dirfd)?;
                let target = openat2(base.as_fd(), &rewrite_self(caller, p.to_vec()), libc::O_PATH, 0, 0)?;
                return if covered(plan, target.as_fd()) { Ok(target) } else { Err(libc::EACCES) };
            };
            let parent = parent(caller, dirfd, &s)?;
            let pst = fstat(parent.as_fd())?;
            if let Some(rule) = plan.brokered_for(pst.st_dev, pst.st_ino, &s.name, BrokerOp::Metadata) {
                return openat2(rule.fd.as_fd(), &s.name, libc::O_PATH | libc::O_NOFOLLOW, 0, RESOLVE_STRICT);
            }
            let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
            openat2(parent.as_fd(), &s.name, libc::O_PATH | nofollow, 0, 0)?
        }
    };
    match plan.metadata {
        MetadataPolicy::Any => Ok(obj),
        MetadataPolicy::None => Err(libc::EACCES),
        MetadataPolicy::WriteGrants => {
            if covered(plan, obj.as_fd()) {
                Ok(obj)
            } else {
                Err(libc::EACCES)
            }
        }
    }
}

/// Resolves a path a `truncate(2)` names (following links, as the call
/// does) to an `O_PATH` descriptor of a regular file beneath a rule that
/// allows `write_file`; EACCES otherwise.
pub(super) fn write_target(caller: &mut Caller, plan: &BrokerPlan, path: &[u8]) -> Result<OwnedFd, Errno> {
    use std::os::fd::AsFd as _;
    if path.is_empty() {
        return Err(libc::ENOENT);
    }
    let Some(s) = split(path) else { return Err(libc::EISDIR) };
    let parent = parent(caller, libc::AT_FDCWD, &s)?;
    let obj = openat2(parent.as_fd(), &s.name, libc::O_PATH, 0, 0)?;
    let st = fstat(obj.as_fd())?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return Err(libc::EISDIR);
    }
    if covered(plan, obj.as_fd()) { Ok(obj) } else { Err(libc::EACCES) }
}

/// When the caller's descriptor is open on an entry of a brokered rule
/// with the `metadata` op (the temp file of an atomic save, whose mode an
/// editor copies from the original with `fchmod` before the rename), that
/// entry, opened again beneath the rule's directory. The descriptor's
/// current name only proposes the candidate; the decision is that the rule
/// directory's entry of that name is, by inode, the caller's object.
fn brokered_entry(plan: &BrokerPlan, obj: BorrowedFd<'_>) -> Option<OwnedFd> {
    use std::os::fd::AsFd as _;
    use std::os::unix::ffi::OsStrExt as _;
    if !plan.brokered.iter().any(|b| b.ops.contains(&BrokerOp::Metadata)) {
        return None;
    }
    let st = fstat(obj).ok()?;
    let shown = std::fs::read_link(format!("/proc/self/fd/{}", obj.as_raw_fd())).ok()?;
    let name = shown.file_name()?.as_bytes();
    if !plan.name_may_be_brokered(name) {
        return None;
    }
    // SAFETY: AT_FDCWD is a valid dirfd for an absolute path.
    let cwd = unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) };
    let dir = openat2(cwd, shown.parent()?.as_os_str().as_bytes(), libc::O_PATH | libc::O_DIRECTORY, 0, 0).ok()?;
    let dst = fstat(dir.as_fd()).ok()?;
    let rule = plan.brokered_for(dst.st_dev, dst.st_ino, name, BrokerOp::Metadata)?;
    let entry = openat2(rule.fd.as_fd(), name, libc::O_PATH | libc::O_NOFOLLOW, 0, RESOLVE_STRICT).ok()?;
    let est = fstat(entry.as_fd()).ok()?;
    ((est.st_dev, est.st_ino) == (st.st_dev, st.st_ino)).then_some(entry)
}

/// Whether the object lies beneath (or is) a rule that allows
/// `write_file`, by inode: the object itself, then its directory and each
/// one above it.
fn covered(plan: &BrokerPlan, obj: BorrowedFd<'_>) -> bool {
    use std::os::fd::AsFd as _;
    let Ok(st) = fstat(obj) else { return false };
    if plan.write_files.contains(&(st.st_dev, st.st_ino)) || plan.write_dirs.contains(&(st.st_dev, st.st_ino)) {
        return true;
    }
    // The directory holding the object: for a directory, `..`; for
    // anything else, the directory of the kernel's path of the object.
    let mut cur = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        match openat2(obj, b"..", libc::O_PATH | libc::O_DIRECTORY, 0, 0) {
            Ok(p) => p,
            Err(_) => return false,
        }
    } else {
        let Ok(target) = std::fs::read_link(format!("/proc/self/fd/{}", obj.as_raw_fd())) else { return false };
        let Some(dir) = target.parent() else { return false };
        let Some(dir) = dir.to_str() else { return false };
        match open_path(dir, libc::O_DIRECTORY) {
            Ok(d) => d,
            Err(_) => return false,
        }
    };
    for _ in 0..512 {
        let Ok(st) = fstat(cur.as_fd()) else { return false };
        if plan.write_dirs.contains(&(st.st_dev, st.st_ino)) {
            return true;
        }
        let Ok(up) = openat2(cur.as_fd(), b"..", libc::O_PATH | libc::O_DIRECTORY, 0, 0) else { return false };
        let Ok(ust) = fstat(up.as_fd()) else { return false };
        if (ust.st_dev, ust.st_ino) == (st.st_dev, st.st_ino) {
            return false;
        }
        cur = up;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_directory_and_one_name() {
        let s = split(b"a/b/c").expect("split");
        assert_eq!((s.dir.as_slice(), s.name.as_slice()), (&b"a/b"[..], &b"c"[..]));
        let s = split(b"/x/").expect("split");
        assert_eq!((s.dir.as_slice(), s.name.as_slice()), (&b"/"[..], &b"x"[..]));
        let s = split(b"name").expect("split");
        assert_eq!((s.dir.as_slice(), s.name.as_slice()), (&b"."[..], &b"name"[..]));
        assert!(split(b"/").is_none());
        assert!(split(b"a/..").is_none());
        assert!(split(b".").is_none());
    }
}
