//! What the first stage of synthesis keeps per path: the rights checked
//! on it as a file and as a directory, whether the run created it, and
//! (near sensitive paths only) who touched it. Produced by `synth`,
//! consumed by `generalise`.

use super::rights::Mask;

/// Pids and comms of accesses that may end up in a sensitive report.
#[derive(Clone, Debug, Default)]
pub(crate) struct Watch {
    pub pids: Vec<u32>,
    pub comms: Vec<String>,
}

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
    /// Kept only for paths near a sensitive one, to bound memory.
    pub watch: Option<Box<Watch>>,
}
