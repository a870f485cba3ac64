//! What the first stage of synthesis keeps per path: the rights checked
//! on it as a file and as a directory, whether the run created it, and
//! (near sensitive paths only) who touched it. Produced by `synth`,
//! consumed by `generalise`.

use std::collections::BTreeMap;

use super::rights::{Kind, Mask};

/// Pids and comms of accesses that may end up in a sensitive report, and
/// (for a directory) which of its entries caused which of its rights, so
/// an atomic replace or a lock beside a secret can be told apart from
/// everything else done there (see `generalise::brokered`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Watch {
    pub pids: Vec<u32>,
    pub comms: Vec<String>,
    /// Rights on this directory caused by operations on one entry, by name.
    pub entries: BTreeMap<String, Entry>,
    /// Rights on this directory not caused by an entry (listing it).
    pub own: Mask,
    /// Renames within this directory, `(from, to)`.
    pub renames: Vec<(String, String)>,
}

/// What happened to one entry of a watched directory.
#[derive(Clone, Debug, Default)]
pub(crate) struct Entry {
    pub mask: Mask,
    /// Bits `1 << op.code()`.
    pub ops: u32,
    /// Created during the run (by an open, mkdir, or as a rename's target).
    pub born: bool,
}

/// Most entries a watched directory keeps (bounds memory; a directory
/// with more is not a candidate for brokered rules).
pub(crate) const MAX_ENTRIES: usize = 256;

/// Everything learned about one path.
#[derive(Clone, Debug, Default)]
pub(crate) struct PathAgg {
    /// Rights checked on the path as a file.
    pub file: Mask,
    /// Rights checked on the path as a directory (its own `read_dir`, and
    /// `make_*`/`remove_*`/`refer` for entries in it).
    pub dir: Mask,
    /// Created (or renamed/linked into place) during the run.
    pub born: bool,
    /// Bit `1 << op.code()` for each operation that needed rights here.
    pub ops: u32,
    /// A metadata change succeeded here (`rights::metadata_need`): `Dir`
    /// when the object is a directory or of unknown type, else `File`.
    pub meta: Option<Kind>,
    /// Kept only for paths near a sensitive one, to bound memory.
    pub watch: Option<Box<Watch>>,
}
