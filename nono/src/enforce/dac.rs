//! File permissions as the kernel checks them, for telling a refusal by
//! the sandbox from one by the file's mode (`attribute`) and for knowing
//! what a grant would expose (`sensitive`).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use super::sensitive::Who;

pub(crate) const R: u32 = 4;
pub(crate) const W: u32 = 2;
pub(crate) const X: u32 = 1;

/// Mode bits for `who`, or `true` when the file has a POSIX ACL (the
/// ACL may grant more than the bits say).
pub(crate) fn mode_allows(who: &Who, meta: &std::fs::Metadata, path: &Path, mode: u32) -> bool {
    if has_acl(path) {
        return true;
    }
    let bits = meta.mode();
    let class = if meta.uid() == who.uid {
        bits >> 6
    } else if meta.gid() == who.gid || who.groups.contains(&meta.gid()) {
        bits >> 3
    } else {
        bits
    } & 7;
    class & mode == mode
}

pub(crate) fn has_acl(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else { return true };
    [c"system.posix_acl_access", c"system.posix_acl_default"].iter().any(|name| {
        // SAFETY: a size query (NULL buffer, size 0) on a valid path and name.
        let r = unsafe { libc::getxattr(c.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
        if r >= 0 {
            return true;
        }
        // No such attribute, or no xattrs on this filesystem: no ACL.
        // Any other error: assume one.
        !matches!(std::io::Error::last_os_error().raw_os_error(), Some(libc::ENODATA | libc::EOPNOTSUPP))
    })
}
