//! The content-addressed object store: one file per distinct content,
//! named by its SHA-256 (`objects/ab/cdef...`), shared by every snapshot
//! that holds that content.
//!
//! An object is made in `tmp/` (cloned with FICLONE where the source's
//! filesystem is the store's and supports it, else copied, holes kept) and
//! hashed from what was written, so a name always matches its content; it
//! is then renamed into place without replacing an existing one (the same
//! content from another file or another snapshot). Objects are never
//! hard-linked into a tree (the agent could write through the link), and
//! are only removed by a prune that holds the store's exclusive lock.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{SnapshotError, sys};

const CHUNK: usize = 256 * 1024;
static ZEROS: [u8; CHUNK] = [0; CHUNK];

/// A hash as the hex name of its object.
#[must_use]
pub fn hex(hash: &[u8; 32]) -> String {
    use std::fmt::Write as _;
    hash.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// What storing one file did.
#[derive(Clone, Copy, Debug)]
pub struct Put {
    pub hash: [u8; 32],
    /// Bytes read (may differ from the size asked for when the file
    /// changed while it was copied).
    pub len: u64,
    pub reflinked: bool,
    /// The store already held this content.
    pub existed: bool,
}

/// The store's `objects/` and `tmp/` directories.
pub struct Objects {
    dir: PathBuf,
    root: OwnedFd,
    tmp: OwnedFd,
    store_dev: u64,
    /// Per source filesystem: whether FICLONE into the store works.
    reflink: Mutex<HashMap<u64, bool>>,
    counter: AtomicU64,
    /// Temp names of this process: its pid and random bits (another nono
    /// may share the store; a name is created exclusively anyway).
    prefix: String,
    /// Prefix directories that got a new object (for [`Objects::sync`]).
    touched: Mutex<std::collections::HashSet<String>>,
}

impl Objects {
    /// Opens the store's object directories (which must exist).
    pub fn open(store: &Path) -> Result<Objects, SnapshotError> {
        let objects_path = store.join("objects");
        let objects = sys::open_dir_path(&objects_path).map_err(SnapshotError::io("open", &objects_path))?;
        let tmp_path = store.join("tmp");
        let tmp = sys::open_dir_path(&tmp_path).map_err(SnapshotError::io("open", &tmp_path))?;
        let st = sys::fstat(objects.as_fd()).map_err(SnapshotError::io("inspect", &objects_path))?;
        Ok(Objects {
            dir: objects_path,
            root: objects,
            tmp,
            store_dev: st.st_dev,
            reflink: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(0),
            touched: Mutex::new(std::collections::HashSet::new()),
            prefix: format!("{}-{:08x}", std::process::id(), sys::random_u32()),
        })
    }

    /// Where the object `hash` lives.
    #[must_use]
    pub fn path(&self, hash: &[u8; 32]) -> PathBuf {
        let h = hex(hash);
        self.dir.join(&h[..2]).join(&h[2..])
    }

    /// The descriptor of the objects directory (for `syncfs`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    fn may_reflink(&self, dev: u64) -> bool {
        self.reflink.lock().map_or(true, |m| *m.get(&dev).unwrap_or(&true))
    }

    fn set_reflink(&self, dev: u64, works: bool) {
        if let Ok(mut m) = self.reflink.lock() {
            m.insert(dev, works);
        }
    }

    /// Stores the first `st_size` bytes of `src` (a regular file, `st`
    /// its `fstat`), unless the store holds them already; `flush`: make the
    /// new object durable now (see [`Objects::sync`]).
    pub fn put(&self, src: &File, st: &libc::stat, flush: bool) -> Result<Put, SnapshotError> {
        let size = st.st_size as u64;
        // Fully allocated: no hole to look for.
        let dense = (st.st_blocks as u64).saturating_mul(512) >= size;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}-{n}.tmp", self.prefix);
        let tmp_path = self.dir.with_file_name("tmp").join(&name);
        let fd = sys::openat(self.tmp.as_fd(), name.as_bytes(), libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, 0o400)
            .map_err(SnapshotError::io("create", &tmp_path))?;
        let tmp = File::from(fd);
        let result = self.fill(src, &tmp, (st.st_dev, size, dense), &tmp_path).and_then(|(hash, len, reflinked)| {
            if flush {
                tmp.sync_all().map_err(SnapshotError::io("flush", &tmp_path))?;
            }
            let existed = self.commit(name.as_bytes(), &hash, &tmp_path)?;
            Ok(Put { hash, len, reflinked, existed })
        });
        if result.is_err() {
            let _ = sys::unlinkat(self.tmp.as_fd(), name.as_bytes(), false);
        }
        result
    }

    /// Clones or copies `src` into `tmp`; returns the hash of what `tmp`
    /// holds, its length, and whether it was cloned.
    fn fill(
        &self,
        src: &File,
        tmp: &File,
        (dev, size, dense): (u64, u64, bool),
        tmp_path: &Path,
    ) -> Result<([u8; 32], u64, bool), SnapshotError> {
        if dev == self.store_dev && self.may_reflink(dev) {
            match sys::ficlone(tmp.as_fd(), src.as_fd()) {
                Ok(()) => {
                    self.set_reflink(dev, true);
                    // Hash the clone, not the source: the clone cannot
                    // change under us, so its name matches its content.
                    let len = tmp.metadata().map_err(SnapshotError::io("inspect", tmp_path))?.len();
                    let hash = copy_hashing(tmp, None, len, dense).map_err(SnapshotError::io("read", tmp_path))?.0;
                    return Ok((hash, len, true));
                }
                Err(e) if sys::clone_unsupported(&e) => self.set_reflink(dev, false),
                Err(e) => return Err(SnapshotError::io("clone into", tmp_path)(e)),
            }
        }
        let (hash, len) = copy_hashing(src, Some(tmp), size, dense).map_err(SnapshotError::io("copy into", tmp_path))?;
        Ok((hash, len, false))
    }

    /// Moves the filled temp file to its object name; `true` when the
    /// object existed already (the temp file is then dropped).
    fn commit(&self, tmp_name: &[u8], hash: &[u8; 32], tmp_path: &Path) -> Result<bool, SnapshotError> {
        let h = hex(hash);
        let rel = format!("{}/{}", &h[..2], &h[2..]);
        let mut made_dir = false;
        loop {
            match sys::renameat2(self.tmp.as_fd(), tmp_name, self.root.as_fd(), rel.as_bytes(), libc::RENAME_NOREPLACE) {
                Ok(()) => {
                    if let Ok(mut t) = self.touched.lock() {
                        t.insert(h[..2].to_owned());
                    }
                    return Ok(false);
                }
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                    let _ = sys::unlinkat(self.tmp.as_fd(), tmp_name, false);
                    return Ok(true);
                }
                // The first object of this prefix: make its directory.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && !made_dir => {
                    match sys::mkdirat(self.root.as_fd(), &h.as_bytes()[..2], 0o700) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                        Err(e) => return Err(SnapshotError::io("create the object directory for", tmp_path)(e)),
                    }
                    made_dir = true;
                }
                Err(e) => return Err(SnapshotError::io("store", tmp_path)(e)),
            }
        }
    }

    /// Makes the objects stored so far durable, when they are few: each
    /// was flushed as it was written; this flushes the directories that
    /// got new names. Many objects are flushed by [`background_sync`]
    /// instead, while the command runs.
    pub fn sync_few(&self) -> Result<(), SnapshotError> {
        let touched: Vec<String> = self.touched.lock().map(|t| t.iter().cloned().collect()).unwrap_or_default();
        for sub in touched {
            let d = sys::openat(self.root.as_fd(), sub.as_bytes(), libc::O_RDONLY | libc::O_DIRECTORY, 0)
                .map_err(SnapshotError::io("open", &self.dir.join(&sub)))?;
            sys::fsync(d.as_fd()).map_err(SnapshotError::io("flush", &self.dir.join(&sub)))?;
        }
        sys::fsync(self.root.as_fd()).map_err(SnapshotError::io("flush", &self.dir))
    }

    /// Opens an object for reading.
    pub fn open_object(&self, hash: &[u8; 32]) -> Result<File, SnapshotError> {
        let h = hex(hash);
        let rel = format!("{}/{}", &h[..2], &h[2..]);
        let path = self.path(hash);
        let fd = sys::openat2(self.root.as_fd(), rel.as_bytes(), libc::O_RDONLY, 0, sys::RESOLVE_STRICT)
            .map_err(|e| SnapshotError::Object { hash: h.clone(), path: path.clone(), why: e.to_string() })?;
        Ok(File::from(fd))
    }

    /// Fills `dst` (empty, on device `dst_dev`) with the object `hash` of
    /// `size` bytes: a clone where possible, else a copy that checks the
    /// content against its name. Returns whether it was cloned.
    pub fn restore_into(&self, hash: &[u8; 32], size: u64, dst: &File, dst_dev: u64) -> Result<bool, SnapshotError> {
        let obj = self.open_object(hash)?;
        let path = self.path(hash);
        let bad = |why: String| SnapshotError::Object { hash: hex(hash), path: path.clone(), why };
        let meta = obj.metadata().map_err(|e| bad(e.to_string()))?;
        let len = meta.len();
        let dense = std::os::unix::fs::MetadataExt::blocks(&meta).saturating_mul(512) >= len;
        if len != size {
            return Err(bad(format!("holds {len} bytes, the snapshot recorded {size}")));
        }
        if dst_dev == self.store_dev && self.may_reflink(dst_dev) {
            // A clone is not read: check the object first (a power cut
            // soon after a snapshot can leave an object short or zeroed,
            // see `take`), so a damaged one is never put back.
            let (got, _) = copy_hashing(&obj, None, size, dense).map_err(|e| bad(format!("reading it: {e}")))?;
            if &got != hash {
                return Err(bad("its content does not match its name (damaged)".to_owned()));
            }
            match sys::ficlone(dst.as_fd(), obj.as_fd()) {
                Ok(()) => return Ok(true),
                Err(e) if sys::clone_unsupported(&e) => self.set_reflink(dst_dev, false),
                Err(e) => return Err(bad(format!("cloning it: {e}"))),
            }
        }
        let (got, _) = copy_hashing(&obj, Some(dst), size, dense).map_err(|e| {
            if matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) {
                SnapshotError::DiskFull { path: path.clone() }
            } else {
                bad(format!("copying it: {e}"))
            }
        })?;
        if &got != hash {
            return Err(bad("its content does not match its name (damaged)".to_owned()));
        }
        Ok(false)
    }

    /// Hashes the first `size` bytes of `file` (to compare a file in the
    /// tree with the snapshot's).
    pub fn hash_file(file: &File, size: u64) -> io::Result<[u8; 32]> {
        copy_hashing(file, None, size, false).map(|(h, _)| h)
    }
}

/// Reads `src` up to `size` bytes, hashing them and writing them to `dst`
/// at the same offsets. Holes (`SEEK_HOLE`) are hashed as zeros and left
/// as holes in `dst`, so a sparse file stays sparse. Returns the hash and
/// the bytes covered (short when `src` shrank).
fn copy_hashing(src: &File, dst: Option<&File>, size: u64, dense: bool) -> io::Result<([u8; 32], u64)> {
    let mut h = openssl::sha::Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut pos = 0u64;
    // The end of the last data written to `dst`.
    let mut written = 0u64;
    while pos < size {
        // Filesystems without SEEK_DATA answer EINVAL: all data then.
        let data = match sys::seek(src.as_fd(), pos, libc::SEEK_DATA) {
            _ if dense => pos,
            Ok(d) => d.unwrap_or(size).min(size),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => pos,
            Err(e) => return Err(e),
        };
        while pos < data {
            let n = ((data - pos) as usize).min(CHUNK);
            h.update(&ZEROS[..n]);
            pos += n as u64;
        }
        if pos >= size {
            break;
        }
        let hole = match sys::seek(src.as_fd(), pos, libc::SEEK_HOLE) {
            _ if dense => size,
            Ok(h) => h.unwrap_or(size).min(size),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => size,
            Err(e) => return Err(e),
        };
        let end = if hole > pos { hole } else { size };
        while pos < end {
            let want = ((end - pos) as usize).min(CHUNK);
            let n = match src.read_at(&mut buf[..want], pos) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                // The file shrank while it was read.
                if let Some(d) = dst {
                    d.set_len(pos)?;
                }
                return Ok((h.finish(), pos));
            }
            h.update(&buf[..n]);
            if let Some(d) = dst {
                d.write_all_at(&buf[..n], pos)?;
            }
            pos += n as u64;
            written = pos;
        }
    }
    if let Some(d) = dst
        && written < pos
    {
        // Extends `dst` over a trailing hole (a truncate costs a journal
        // entry: only when there is one).
        d.set_len(pos)?;
    }
    Ok((h.finish(), pos))
}

/// Flushes the filesystem of the store at `dir` on a thread of its own
/// (`syncfs`): many new objects are made durable while the command runs
/// instead of before it starts. Call it with the signals that `nono run`
/// forwards blocked, so the thread never takes one of them.
pub fn background_sync(dir: &Path) -> std::thread::JoinHandle<io::Result<()>> {
    let dir = dir.join("objects");
    std::thread::spawn(move || sys::open_dir_path(&dir).and_then(|fd| sys::syncfs(fd.as_fd())))
}
