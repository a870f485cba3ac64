//! Landlock's filesystem rights as a set of grants: which rights a path
//! gets from a resolved profile. `nono run`'s attribution, `nono audit
//! check` (through `enforce::replay`) and `profile amend` all compare a
//! recorded access's needs (`rights_for_event`) with these grants, so
//! they agree on what a rule covers. Pure, like the rest of `learn`.
//!
//! Landlock's semantics, as modelled here: an access needing right R on
//! path P is allowed iff some rule on P itself or on one of its ancestor
//! directories grants R (rights of all such rules add up); a file rule
//! only covers that file. Rights the ruleset does not handle are always
//! allowed. TCP connect/bind are allowed iff the port list is absent or
//! holds the port.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::profile::rights::FsRight;

/// One absolute grant of a resolved profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub path: PathBuf,
    pub rights: BTreeSet<FsRight>,
    /// Covers only this file, not a tree.
    pub file: bool,
}

/// A resolved profile, as the checks see it.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    pub fs: Vec<Grant>,
    /// Rights the ruleset handles (all of them for a learned profile).
    pub handled: BTreeSet<FsRight>,
    /// `None`: TCP connect unrestricted.
    pub connect_ports: Option<BTreeSet<u16>>,
    pub bind_ports: Option<BTreeSet<u16>>,
    /// All network denied (`network.block`).
    pub block_net: bool,
}

impl Grants {
    /// Rights granted on `path`: by a rule on it or on a directory above it.
    pub fn granted(&self, path: &Path) -> BTreeSet<FsRight> {
        let mut got = BTreeSet::new();
        for g in &self.fs {
            let covers = if g.file { g.path == path } else { path.starts_with(&g.path) };
            if covers {
                got.extend(g.rights.iter().copied());
            }
        }
        got
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants() -> Grants {
        Grants {
            fs: vec![
                Grant { path: "/usr".into(), rights: FsRight::read_set(), file: false },
                Grant { path: "/w".into(), rights: FsRight::ALL.into_iter().collect(), file: false },
                Grant { path: "/etc/hosts".into(), rights: [FsRight::ReadFile].into(), file: true },
            ],
            handled: FsRight::ALL.into_iter().collect(),
            ..Grants::default()
        }
    }

    #[test]
    fn directory_rules_cover_their_tree_and_file_rules_one_file() {
        let g = grants();
        assert!(g.granted(Path::new("/usr/lib/libc.so")).contains(&FsRight::ReadFile));
        assert!(g.granted(Path::new("/w/src/main.rs")).contains(&FsRight::WriteFile));
        assert_eq!(g.granted(Path::new("/etc/hosts")), [FsRight::ReadFile].into());
        assert!(g.granted(Path::new("/etc/hosts.allow")).is_empty(), "a file rule is not a prefix");
        assert!(g.granted(Path::new("/usrx/lib")).is_empty(), "components, not bytes");
    }

    #[test]
    fn names_that_are_not_utf8_are_the_bytes_they_stand_for() {
        use std::os::unix::ffi::OsStrExt as _;
        let mut g = grants();
        let real = PathBuf::from(std::ffi::OsStr::from_bytes(b"/srv/caf\xe9"));
        g.fs.push(Grant { path: real.clone(), rights: [FsRight::ReadFile].into(), file: true });
        assert!(g.granted(&real).contains(&FsRight::ReadFile));
        assert!(g.granted(Path::new("/srv/caf\\xe9")).is_empty());
    }
}
