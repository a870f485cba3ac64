//! Snapshots of what a sandboxed command may change, and putting them back
//! (`nono run --rollback`, `nono rollback`).
//!
//! A learned profile limits *where* an agent may write, not *what* it
//! does there. Before the command starts, every write grant (the workdir,
//! granted state directories, the entries of brokered rules) is recorded
//! in a snapshot: a [`manifest`] of every path with its metadata, whose
//! file contents live in a content-addressed [`object`] store shared by
//! all snapshots. When the command ends, a second walk records what it
//! left. [`diff`] compares a snapshot with the tree of today, and
//! [`restore`] puts it back: contents, modes, links and times, removing
//! what the run created, and telling changes made after the run ended
//! from the run's own.
//!
//! This module owns the snapshot store (under the user's state directory)
//! and the trees it restores; it knows nothing of profiles, recording or
//! the audit store (the CLI hands it roots and an audit session's id).
//! It sits beside `store`, below `learn`.
//!
//! # Threat model
//! - The agent controlled the tree: a restore works on descriptors opened
//!   beneath each root with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` and
//!   never follows a link out of the grant (see [`restore`]).
//! - The store is the user's: created 0700 by a thread with the user's
//!   filesystem identity (under sudo too, see `crate::invoker`), refused
//!   when it is a link, another user's or open to others. `nono run`
//!   refuses `--rollback` when a write grant covers the store, since the
//!   agent could then alter its own undo.
//! - A snapshot exists only once its manifest, checksummed end to end, has
//!   been renamed into place after its objects were flushed: an
//!   interrupted snapshot (SIGKILL, a full disk) is never read as a whole
//!   one (see [`take`]).
//! - Objects are named by the SHA-256 of their bytes; a copy back checks
//!   the bytes against the name.

pub mod diff;
pub mod exclude;
pub mod manifest;
pub mod object;
pub mod prune;
pub mod restore;
pub mod store;
mod sys;
pub mod take;
pub mod walk;

use std::io;
use std::path::{Path, PathBuf};

pub use exclude::{DEFAULT_EXCLUDES, Excludes};
pub use manifest::{AfterMeta, AuditLink, Entry, Kind, SnapMeta, Stats};
pub use store::{Listed, Loaded, SnapStore};
pub use take::{TakeOptions, Taken, take};
pub use walk::{Filter, Root};

/// Why a snapshot, a diff, a restore or a prune failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A system call on a path failed.
    #[error("cannot {what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The filesystem holding the store (or a restored tree) is full.
    #[error(
        "no space left for the snapshot in {path}: nothing was committed (free space, exclude large trees, or lower rollback.max_size)"
    )]
    DiskFull { path: PathBuf },
    /// The grants hold more than the size limit.
    #[error(
        "the write grants hold {bytes} bytes of files, more than the rollback limit of {limit} (largest: {}); exclude trees (rollback.exclude) or raise rollback.max_size",
        largest.iter().map(|(p, b)| format!("{p} {b} bytes")).collect::<Vec<_>>().join(", ")
    )]
    TooLarge { bytes: u64, limit: u64, largest: Vec<(String, u64)> },
    /// A manifest is damaged, cut short or not one.
    #[error("snapshot manifest {path}: {why}")]
    Corrupt { path: PathBuf, why: String },
    /// An object is missing or does not hold what its name says.
    #[error("snapshot object {hash} ({path}): {why}")]
    Object { hash: String, path: PathBuf, why: String },
    /// The store cannot be trusted or made.
    #[error("snapshot store {path}: {why}")]
    Store { path: PathBuf, why: String },
    /// No such snapshot.
    #[error("no snapshot {0:?} (see `nono rollback list`)")]
    NotFound(String),
    /// Another nono holds what this needs.
    #[error("{0} is held by another nono; try again when it is done")]
    Busy(String),
    /// An exclusion pattern is malformed.
    #[error("bad rollback exclusion {pattern:?}: {why}")]
    BadPattern { pattern: String, why: String },
    /// A manifest could not be encoded.
    #[error("encoding a snapshot manifest: {0}")]
    Encode(String),
}

impl SnapshotError {
    /// Wraps a failed call on `path` (a full disk becomes [`SnapshotError::DiskFull`]).
    pub fn io<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> SnapshotError + 'p {
        move |source| {
            if matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) {
                return SnapshotError::DiskFull { path: path.to_path_buf() };
            }
            SnapshotError::Io { what, path: path.to_path_buf(), source }
        }
    }
}

/// Parses a size: a number of bytes with an optional binary unit (`K`,
/// `M`, `G`, `T`, with or without `iB`/`B`): `500M`, `10GiB`, `1048576`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("bad size {s:?}: expected a number of bytes, like 500M or 10G"))?;
    let shift = match unit.trim().to_ascii_uppercase().trim_end_matches('B').trim_end_matches('I') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(format!("bad size {s:?}: the unit must be K, M, G or T")),
    };
    n.checked_mul(1 << shift).ok_or_else(|| format!("size {s:?} is too large"))
}

/// Bytes for people: `1.5 GiB`.
#[must_use]
#[expect(clippy::cast_precision_loss, reason = "one decimal is shown")]
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

#[cfg(test)]
mod tests;
