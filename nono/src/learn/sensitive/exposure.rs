//! The one answer to "what does this grant let the sandbox do to that
//! sensitive path", shared by `learn` (which never writes such a grant)
//! and `nono run` (which refuses one, `enforce::sensitive`), so the two
//! cannot disagree. Pure: the rights of the grant, where it lies relative
//! to the entry, and the entry's class. `run` then asks file permissions
//! whether the sandboxed user could actually do it; `learn` cannot look
//! and assumes it could.
//!
//! What each right exposes, following Landlock's semantics (a directory
//! rule covers everything beneath it; `read_dir` only lists names):
//!
//! | right | secret | persistence |
//! |---|---|---|
//! | `read_file`, `execute` on it or above it | read | - |
//! | `read_dir` on a directory above it | - (names only, not contents) | - |
//! | `read_dir` on it or inside it | list (an explicit listing of a secret directory) | - |
//! | `write_file`, `truncate` (and so metadata, which the broker allows beneath write grants) | write | write |
//! | `make_*`, `remove_*`, `refer` inside it (a directory) | create or remove entries in | same |
//! | `make_*`, `remove_*`, `refer` on a directory above it | create, replace or remove it | same |
//! | `ioctl_dev` | - | - |

use std::collections::BTreeSet;

use super::Class;
use crate::profile::rights::FsRight;

/// Where a grant lies relative to a sensitive entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// The grant is the entry, or lies inside it (or inside a name that
    /// extends it, see `SensitiveSet`'s companions).
    Within,
    /// The grant is a directory strictly above the entry.
    Above,
}

/// One thing a grant lets the sandbox do to a sensitive entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Exposed {
    /// Read its contents.
    Read,
    /// List the names inside it (a grant on the secret directory itself).
    List,
    /// Write the file, or files inside the directory (and change their
    /// metadata: the broker allows that beneath write grants).
    Write,
    /// Create, remove or rename entries inside the directory.
    Entries,
    /// Create, replace, rename over or remove the entry itself in its parent.
    Replace,
}

fn reads_contents(r: FsRight) -> bool {
    matches!(r, FsRight::ReadFile | FsRight::Execute)
}

fn writes_files(r: FsRight) -> bool {
    matches!(r, FsRight::WriteFile | FsRight::Truncate)
}

/// Rights that create, remove or move directory entries.
#[must_use]
pub fn changes_entries(r: FsRight) -> bool {
    !matches!(r, FsRight::ReadFile | FsRight::Execute | FsRight::ReadDir | FsRight::IoctlDev) && !writes_files(r)
}

/// What a grant with `rights`, lying at `reach` from an entry of `class`,
/// lets the sandbox do to it (before file permissions are considered).
#[must_use]
pub fn exposure(class: Class, reach: Reach, rights: impl IntoIterator<Item = FsRight>) -> BTreeSet<Exposed> {
    let mut out = BTreeSet::new();
    for r in rights {
        if reads_contents(r) && class == Class::Secret {
            out.insert(Exposed::Read);
        }
        if r == FsRight::ReadDir && class == Class::Secret && reach == Reach::Within {
            out.insert(Exposed::List);
        }
        if writes_files(r) {
            out.insert(Exposed::Write);
        }
        if changes_entries(r) {
            out.insert(Exposed::Entries);
            if reach == Reach::Above {
                out.insert(Exposed::Replace);
            }
        }
    }
    out
}

/// The rights a grant at `reach` from an entry of `class` must not have.
#[must_use]
pub fn forbidden(class: Class, reach: Reach) -> BTreeSet<FsRight> {
    FsRight::ALL.into_iter().filter(|r| !exposure(class, reach, [*r]).is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_exposes_nothing_and_reading_exposes_only_secrets() {
        for class in [Class::Secret, Class::Persistence] {
            assert!(exposure(class, Reach::Above, [FsRight::ReadDir, FsRight::IoctlDev]).is_empty(), "{class:?}");
        }
        assert!(exposure(Class::Persistence, Reach::Within, [FsRight::ReadDir]).is_empty());
        assert_eq!(exposure(Class::Secret, Reach::Within, [FsRight::ReadDir]), [Exposed::List].into());
        assert_eq!(exposure(Class::Secret, Reach::Above, [FsRight::ReadFile]), [Exposed::Read].into());
        assert!(exposure(Class::Persistence, Reach::Within, [FsRight::ReadFile, FsRight::Execute]).is_empty());
    }

    #[test]
    fn every_change_is_exposure_for_both_classes() {
        for class in [Class::Secret, Class::Persistence] {
            assert_eq!(exposure(class, Reach::Within, [FsRight::Truncate]), [Exposed::Write].into());
            assert_eq!(exposure(class, Reach::Within, [FsRight::MakeReg]), [Exposed::Entries].into());
            assert_eq!(exposure(class, Reach::Above, [FsRight::RemoveFile]), [Exposed::Entries, Exposed::Replace].into());
        }
        let p = forbidden(Class::Persistence, Reach::Above);
        assert!(!p.contains(&FsRight::ReadFile) && !p.contains(&FsRight::ReadDir) && !p.contains(&FsRight::Execute));
        assert!(p.contains(&FsRight::WriteFile) && p.contains(&FsRight::Refer) && p.contains(&FsRight::MakeSym));
        let s = forbidden(Class::Secret, Reach::Within);
        assert_eq!(FsRight::ALL.len() - s.len(), 1, "only ioctl_dev: {s:?}");
    }
}
