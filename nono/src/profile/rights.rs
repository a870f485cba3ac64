//! The filesystem-right vocabulary shared by the learner (which decides
//! which rights a path needs) and the enforcer (which turns them into
//! Landlock rules). Names match Landlock's `LANDLOCK_ACCESS_FS_*` in
//! `snake_case` and are part of the profile format: never rename one.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One Landlock filesystem right.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsRight {
    Execute,
    WriteFile,
    ReadFile,
    ReadDir,
    RemoveDir,
    RemoveFile,
    MakeChar,
    MakeDir,
    MakeReg,
    MakeSock,
    MakeFifo,
    MakeBlock,
    MakeSym,
    /// Rename or link a file across directories (Landlock ABI 2).
    Refer,
    /// `truncate(2)`, `O_TRUNC` (Landlock ABI 3).
    Truncate,
    /// `ioctl(2)` on character/block devices (Landlock ABI 5).
    IoctlDev,
}

impl FsRight {
    pub const ALL: [FsRight; 16] = [
        FsRight::Execute,
        FsRight::WriteFile,
        FsRight::ReadFile,
        FsRight::ReadDir,
        FsRight::RemoveDir,
        FsRight::RemoveFile,
        FsRight::MakeChar,
        FsRight::MakeDir,
        FsRight::MakeReg,
        FsRight::MakeSock,
        FsRight::MakeFifo,
        FsRight::MakeBlock,
        FsRight::MakeSym,
        FsRight::Refer,
        FsRight::Truncate,
        FsRight::IoctlDev,
    ];

    /// Rights that make sense on a regular file (the rest need a directory).
    pub const FILE_RIGHTS: [FsRight; 5] =
        [FsRight::Execute, FsRight::WriteFile, FsRight::ReadFile, FsRight::Truncate, FsRight::IoctlDev];

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            FsRight::Execute => "execute",
            FsRight::WriteFile => "write_file",
            FsRight::ReadFile => "read_file",
            FsRight::ReadDir => "read_dir",
            FsRight::RemoveDir => "remove_dir",
            FsRight::RemoveFile => "remove_file",
            FsRight::MakeChar => "make_char",
            FsRight::MakeDir => "make_dir",
            FsRight::MakeReg => "make_reg",
            FsRight::MakeSock => "make_sock",
            FsRight::MakeFifo => "make_fifo",
            FsRight::MakeBlock => "make_block",
            FsRight::MakeSym => "make_sym",
            FsRight::Refer => "refer",
            FsRight::Truncate => "truncate",
            FsRight::IoctlDev => "ioctl_dev",
        }
    }

    /// Whether the right applies to a regular file (not only directories).
    #[must_use]
    pub fn applies_to_file(self) -> bool {
        FsRight::FILE_RIGHTS.contains(&self)
    }

    /// The "read" bundle of the original nono format: read files, list
    /// directories, execute.
    #[must_use]
    pub fn read_set() -> BTreeSet<FsRight> {
        [FsRight::Execute, FsRight::ReadFile, FsRight::ReadDir].into()
    }

    /// The "write" bundle of the original nono format: everything that
    /// modifies the tree, without reading.
    #[must_use]
    pub fn write_set() -> BTreeSet<FsRight> {
        FsRight::ALL.into_iter().filter(|r| !matches!(r, FsRight::Execute | FsRight::ReadFile | FsRight::ReadDir)).collect()
    }
}

impl fmt::Display for FsRight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for a right name that Landlock does not have.
#[derive(Debug, thiserror::Error)]
#[error("unknown filesystem right {0:?}; expected one of: {list}", list = FsRight::ALL.map(FsRight::name).join(", "))]
pub struct UnknownRight(pub String);

impl FromStr for FsRight {
    type Err = UnknownRight;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FsRight::ALL.into_iter().find(|r| r.name() == s).ok_or_else(|| UnknownRight(s.to_owned()))
    }
}

/// A fine-grained grant: exactly these rights beneath (or on) one path.
/// This is nono's extension to the original format, under
/// `filesystem.rules`; learned profiles use it to grant the smallest set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsRule {
    /// Path, possibly starting with a variable (`$HOME`, `$CWD`, `$TMPDIR`,
    /// `$XDG_CONFIG_HOME`, `$XDG_CACHE_HOME`).
    pub path: String,
    /// Rights granted. Sorted, no duplicates.
    pub access: BTreeSet<FsRight>,
    /// The path is a single file rather than a directory tree.
    #[serde(default, skip_serializing_if = "is_false")]
    pub file: bool,
    /// Why the learner granted it (shown by `--explain`, kept for review).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// In a merge of several sessions: in how many of them the rule was seen,
    /// when that is fewer than all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_in: Option<SeenIn>,
    /// Rights in `access` that no run used: the learner added them because a
    /// later run of the agent will need them (it removes, renames or rewrites
    /// what an earlier run created here). Review them like the rest.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub anticipated: BTreeSet<FsRight>,
}

/// "Seen in `runs` of `of` merged sessions" and, for a profile learned
/// across a fleet (`nono learn --from ... --db postgres://...`), "on
/// `hosts` of `of_hosts` hosts".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeenIn {
    pub runs: u32,
    pub of: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of_hosts: Option<u32>,
}

#[expect(clippy::trivially_copy_pass_by_ref, reason = "serde's skip_serializing_if passes a reference")]
fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for r in FsRight::ALL {
            assert_eq!(r.name().parse::<FsRight>().ok(), Some(r));
            let json = serde_json::to_string(&r).expect("serialize");
            assert_eq!(json, format!("\"{}\"", r.name()));
        }
        assert!("read".parse::<FsRight>().is_err());
    }

    #[test]
    fn read_and_write_sets_partition_all_rights() {
        let mut all = FsRight::read_set();
        all.extend(FsRight::write_set());
        assert_eq!(all.len(), FsRight::ALL.len());
        assert!(FsRight::read_set().is_disjoint(&FsRight::write_set()));
    }
}
