//! The snapshot store's layout, ownership check, locks and listing.
//!
//! ```text
//! rollback/                 0700, the user's
//!   lock                    flock: shared while a snapshot is taken or restored,
//!                           exclusive while a prune removes objects
//!   objects/ab/cdef...      content, by SHA-256 (see object.rs)
//!   tmp/                    objects being written
//!   snapshots/ID/manifest   committed snapshots (the rename of .partial-ID makes one whole)
//!   snapshots/ID/after      the walk taken when the command ended
//!   snapshots/.partial-ID/  a snapshot being taken, or one that died (removed by prune)
//!   objects.size            bytes of objects after the last prune
//! ```
//! A running `nono run` holds a shared `flock` on its snapshot's manifest,
//! which a prune respects.

use std::fs::File;
use std::os::fd::AsFd as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use super::manifest::{self, AfterMeta, Entry, SnapMeta};
use super::{SnapshotError, sys};

/// A snapshot store directory.
#[derive(Clone, Debug)]
pub struct SnapStore {
    pub dir: PathBuf,
}

/// A held `flock`; released when dropped.
#[derive(Debug)]
pub struct Lock(#[expect(dead_code, reason = "held for its flock, released on drop")] File);

/// One committed snapshot, by its header.
#[derive(Clone, Debug)]
pub struct Listed {
    pub meta: SnapMeta,
    /// The header of the walk taken when the run ended (`None`: the run
    /// is still going, or nono died before it ended).
    pub after: Option<AfterMeta>,
    /// A `nono run` still holds it.
    pub in_use: bool,
}

/// A snapshot read whole.
pub struct Loaded {
    pub meta: SnapMeta,
    pub entries: Vec<Entry>,
    pub after: Option<(AfterMeta, Vec<Entry>)>,
}

impl SnapStore {
    /// The store at `dir`, creating it (0700, as the user) if needed.
    pub fn create(dir: &Path) -> Result<SnapStore, SnapshotError> {
        for d in [dir.to_path_buf(), dir.join("objects"), dir.join("tmp"), dir.join("snapshots")] {
            crate::invoker::fs::make_private_dirs(&d)
                .map_err(|e| SnapshotError::Store { path: d.clone(), why: e.to_string() })?;
        }
        let s = SnapStore { dir: dir.to_path_buf() };
        s.check()?;
        Ok(s)
    }

    /// The store at `dir` if it exists.
    pub fn existing(dir: &Path) -> Result<Option<SnapStore>, SnapshotError> {
        match std::fs::symlink_metadata(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SnapshotError::io("inspect", dir)(e)),
            Ok(_) => {
                let s = SnapStore { dir: dir.to_path_buf() };
                s.check()?;
                Ok(Some(s))
            }
        }
    }

    /// Refuses a store that is a link, not a directory, not the user's, or
    /// open to others: its snapshots could have been planted or altered.
    fn check(&self) -> Result<(), SnapshotError> {
        let bad = |why: String| SnapshotError::Store { path: self.dir.clone(), why };
        let m = std::fs::symlink_metadata(&self.dir).map_err(SnapshotError::io("inspect", &self.dir))?;
        if m.file_type().is_symlink() {
            return Err(bad("it is a symbolic link (nono keeps snapshots only in a real directory)".into()));
        }
        if !m.is_dir() {
            return Err(bad("it is not a directory".into()));
        }
        let me = crate::invoker::thread_identity().map_or_else(|_| nix::unistd::geteuid().as_raw(), |t| t.fsuid);
        if m.uid() != me {
            return Err(bad(format!("it belongs to uid {}, not to uid {me} who nono acts for", m.uid())));
        }
        if m.mode() & 0o077 != 0 {
            return Err(bad(format!("its mode is {:o}: others could alter snapshots (chmod 700 it)", m.mode() & 0o7777)));
        }
        Ok(())
    }

    fn snapshots(&self) -> PathBuf {
        self.dir.join("snapshots")
    }

    /// The directory of snapshot `id`.
    #[must_use]
    pub fn snapshot_dir(&self, id: &str) -> PathBuf {
        self.snapshots().join(id)
    }

    /// Takes the store lock (`exclusive` for prunes). `Ok(None)` when
    /// `nonblocking` and another nono holds it the other way.
    pub fn lock(&self, exclusive: bool, nonblocking: bool) -> Result<Option<Lock>, SnapshotError> {
        let path = self.dir.join("lock");
        let f = crate::invoker::fs::open_private_file(&path)
            .map_err(|e| SnapshotError::Store { path: path.clone(), why: e.to_string() })?;
        let op = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH };
        if sys::flock(f.as_fd(), op, nonblocking).map_err(SnapshotError::io("lock", &path))? {
            Ok(Some(Lock(f)))
        } else {
            Ok(None)
        }
    }

    /// Every committed snapshot, oldest first.
    pub fn list(&self) -> Result<Vec<Listed>, SnapshotError> {
        let dir = self.snapshots();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(SnapshotError::io("list", &dir)(e)),
        };
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(SnapshotError::io("list", &dir))?;
            let name = ent.file_name();
            let Some(id) = name.to_str().filter(|n| valid_id(n)) else { continue };
            let path = ent.path().join("manifest");
            let meta: SnapMeta = match manifest::read_meta(&path) {
                Ok(m) => m,
                Err(e) => {
                    log::warn!("skipping snapshot {id}: {e}");
                    continue;
                }
            };
            let after = manifest::read_meta::<AfterMeta>(&ent.path().join("after")).ok();
            let in_use = after.is_none() && self.held(&path);
            out.push(Listed { meta, after, in_use });
        }
        out.sort_by(|a, b| (a.meta.created_ns, &a.meta.id).cmp(&(b.meta.created_ns, &b.meta.id)));
        Ok(out)
    }

    /// Whether a running nono holds snapshot manifest `path`.
    #[must_use]
    pub fn held(&self, path: &Path) -> bool {
        File::open(path).is_ok_and(|f| sys::flock(f.as_fd(), libc::LOCK_EX, true).is_ok_and(|got| !got))
    }

    /// Reads snapshot `id` whole (its manifest checked end to end).
    pub fn load(&self, id: &str) -> Result<Loaded, SnapshotError> {
        if !valid_id(id) {
            return Err(SnapshotError::NotFound(id.to_owned()));
        }
        let dir = self.snapshot_dir(id);
        let path = dir.join("manifest");
        if !path.exists() {
            return Err(SnapshotError::NotFound(id.to_owned()));
        }
        let (meta, entries) = manifest::read::<SnapMeta>(&path)?;
        let after_path = dir.join("after");
        let after = if after_path.exists() { Some(manifest::read::<AfterMeta>(&after_path)?) } else { None };
        Ok(Loaded { meta, entries, after })
    }

    /// Bytes of objects as the last prune counted them, or `None`.
    #[must_use]
    pub fn counted_object_bytes(&self) -> Option<(u64, i64)> {
        let text = std::fs::read_to_string(self.dir.join("objects.size")).ok()?;
        let mut it = text.split_whitespace();
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    }
}

/// Whether `s` has the form of a snapshot id (`YYYYMMDD-HHMMSS-xxxxxx`):
/// nothing else in `snapshots/` is read as one.
#[must_use]
pub fn valid_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 22
        && b[8] == b'-'
        && b[15] == b'-'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
        && b[16..].iter().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

/// A new snapshot id: the UTC time and 24 random bits.
#[must_use]
pub fn new_id(now_ns: i64) -> String {
    let t = jiff::Timestamp::from_nanosecond(i128::from(now_ns)).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    format!("{}-{:06x}", t.strftime("%Y%m%d-%H%M%S"), sys::random_u32() & 0xff_ffff)
}
