//! Taking a snapshot before a command runs, and the walk after it ends.
//!
//! 1. Under the store's shared lock, a `.partial-ID` directory is made.
//! 2. Every root is walked for metadata. A file whose inode, size, mtime and
//!    ctime equal its entry in the latest snapshot of the same root takes
//!    that entry's content object without being read: the second snapshot
//!    of an unchanged tree is a metadata walk.
//! 3. The other files are cloned or copied into objects by a few threads,
//!    each opened beneath its root with `RESOLVE_BENEATH |
//!    RESOLVE_NO_SYMLINKS` and compared (`fstat`) with what the walk saw,
//!    before and after: a difference marks the snapshot inconsistent and
//!    names the path.
//! 4. Every entry is looked at again; what changed since the walk is
//!    named the same way.
//! 5. The manifest is written and flushed, and `.partial-ID` is renamed
//!    to `ID`: only then does the snapshot exist. A SIGKILL or a full disk
//!    before that leaves a `.partial-` directory and unreferenced objects,
//!    which `list` and `restore` never read and `prune` removes.
//!
//! Durability: a few new objects are flushed one by one before the
//! commit. Many are flushed by one `syncfs` on a thread of their own while
//! the command runs ([`Taken::flush_in_background`]), and the end of the
//! run waits for it: flushing a gigabyte first would delay every first
//! snapshot by the disk's write time. A power cut in that window can leave
//! a committed snapshot with short or zeroed objects; a restore checks
//! every object against its hash before it puts it back, so such a file is
//! refused, never restored wrong.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use super::exclude::Excludes;
use super::manifest::{self, AfterMeta, AuditLink, Entry, FORMAT, Kind, Problem, SnapMeta, Stats};
use super::object::Objects;
use super::store::{Lock, SnapStore, new_id};
use super::walk::{Root, Walked, Walker};
use super::{SnapshotError, sys};
use crate::event::escape_bytes;

/// A change of a file's ctime this close to the walk (ns) might hide a
/// later write with the same timestamp (coarse clocks tick every few ms,
/// network filesystems skew): such an entry is not reused next time.
const RACY_NS: i64 = 2_000_000_000;

/// Up to this many files to copy, each object is flushed as it is
/// written; beyond, the filesystem is synced once.
const FEW: usize = 64;

/// What to snapshot, and how.
pub struct TakeOptions {
    pub roots: Vec<Root>,
    /// Write grants left out, with why (recorded and reported).
    pub skipped: Vec<String>,
    pub excludes: Excludes,
    /// Most bytes of files a snapshot may cover.
    pub max_bytes: u64,
    pub command: Vec<String>,
    pub cwd: String,
    pub audit: Option<AuditLink>,
    /// Copying threads.
    pub threads: usize,
}

/// A committed snapshot whose command is running: holds a shared lock on
/// its manifest so that no prune removes it meanwhile.
pub struct Taken {
    pub meta: SnapMeta,
    store: SnapStore,
    roots: Vec<Root>,
    excludes: Excludes,
    skip: Vec<(u64, u64)>,
    _hold: File,
    /// Its objects still need flushing (many were written).
    unflushed: bool,
    flush: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

fn ms_since(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

fn display(root: &Root, rel: &[u8]) -> String {
    escape_bytes(root.join(rel).as_os_str().as_bytes())
}

/// Removes a `.partial-` directory of this process after a failure.
struct Partial<'a> {
    store: &'a SnapStore,
    name: String,
    done: bool,
}

impl Drop for Partial<'_> {
    fn drop(&mut self) {
        if !self.done {
            let dir = self.store.dir.join("snapshots").join(&self.name);
            let _ = std::fs::remove_file(dir.join("manifest"));
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

/// The latest snapshot's entries of each root, for reuse: `(root index,
/// path) -> entry`.
fn previous(store: &SnapStore, roots: &[Root]) -> HashMap<(u16, Vec<u8>), Entry> {
    let mut out = HashMap::new();
    let Ok(list) = store.list() else { return out };
    let mut loaded: HashMap<String, Option<super::store::Loaded>> = HashMap::new();
    for (idx, root) in roots.iter().enumerate() {
        let meta = root.meta(0, 0);
        let Some(l) = list.iter().rev().find(|l| l.meta.roots.iter().any(|r| r.dir == meta.dir && r.filter == meta.filter))
        else {
            continue;
        };
        let snap = loaded.entry(l.meta.id.clone()).or_insert_with(|| store.load(&l.meta.id).ok());
        let Some(snap) = snap else { continue };
        let Some(their) = snap.meta.roots.iter().position(|r| r.dir == meta.dir && r.filter == meta.filter) else { continue };
        for e in &snap.entries {
            if usize::from(e.root) == their && e.kind == Kind::File && e.reusable && e.hash.is_some() {
                out.insert((idx as u16, e.path.clone()), e.clone());
            }
        }
    }
    out
}

/// Takes a snapshot of `opts.roots` into `store`.
pub fn take(store: &SnapStore, opts: &TakeOptions) -> Result<Taken, SnapshotError> {
    let started = Instant::now();
    let created_ns = now_ns();
    let lock: Lock = store.lock(false, false)?.ok_or_else(|| SnapshotError::Busy("the store lock".into()))?;
    let snapshots = store.dir.join("snapshots");
    let (id, partial) = loop {
        let id = new_id(created_ns);
        let name = format!(".partial-{id}");
        match std::fs::DirBuilder::new().mode_0700().create(snapshots.join(&name)) {
            Ok(()) => break (id, Partial { store, name, done: false }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(SnapshotError::io("create a snapshot in", &snapshots)(e)),
        }
    };
    let store_st = std::fs::metadata(&store.dir).map_err(SnapshotError::io("inspect", &store.dir))?;
    let skip = vec![(std::os::unix::fs::MetadataExt::dev(&store_st), std::os::unix::fs::MetadataExt::ino(&store_st))];
    let walker = Walker { excludes: &opts.excludes, skip: skip.clone(), stop_at: None };

    // 2. Metadata.
    let prev = previous(store, &opts.roots);
    let mut walks: Vec<Walked> = Vec::new();
    let mut problems: Vec<Problem> = Vec::new();
    let mut bytes = 0u64;
    for (i, root) in opts.roots.iter().enumerate() {
        let mut w = walker.walk(i as u16, root)?;
        problems.append(&mut w.problems);
        bytes += w.entries.iter().filter(|e| e.kind == Kind::File).map(|e| e.size).sum::<u64>();
        walks.push(w);
    }
    if bytes > opts.max_bytes {
        return Err(SnapshotError::TooLarge { bytes, limit: opts.max_bytes, largest: largest(&opts.roots, &walks) });
    }
    let objects = Objects::open(&store.dir)?;
    let mut stats = Stats::default();
    let mut todo: Vec<(usize, usize)> = Vec::new();
    for (wi, w) in walks.iter_mut().enumerate() {
        for (ei, e) in w.entries.iter_mut().enumerate() {
            if e.kind != Kind::File {
                continue;
            }
            e.reusable = e.ctime.0.saturating_mul(1_000_000_000) + i64::from(e.ctime.1) < created_ns - RACY_NS;
            match prev.get(&(e.root, e.path.clone())) {
                Some(p) if p.ino == e.ino && p.dev == e.dev && p.size == e.size && p.mtime == e.mtime && p.ctime == e.ctime => {
                    e.hash = p.hash;
                    stats.reused_files += 1;
                }
                _ => todo.push((wi, ei)),
            }
        }
    }
    let new_bytes: u64 = todo.iter().map(|&(wi, ei)| walks[wi].entries[ei].size).sum();
    let store_dev = std::os::unix::fs::MetadataExt::dev(&store_st);
    if walks.iter().any(|w| w.fd.is_some() && w.dev != store_dev) {
        let free = sys::free_bytes(objects.fd()).map_err(SnapshotError::io("inspect", &store.dir))?;
        if new_bytes > free {
            return Err(SnapshotError::DiskFull { path: store.dir.clone() });
        }
    }

    // 3. Content. A few new files are flushed one by one; many, by one
    //    sync of the filesystem at the end.
    let few = todo.len() <= FEW;
    copy_all(&objects, &opts.roots, &mut walks, &todo, opts.threads.max(1), few, &mut stats, &mut problems)?;

    // 4. Anything that moved since it was walked.
    for (i, w) in walks.iter().enumerate() {
        recheck(&opts.roots[i], w, &mut problems);
    }

    // 5. Commit.
    if few {
        objects.sync_few()?;
    }
    let mut entries = Vec::new();
    let mut roots_meta = Vec::new();
    for (i, w) in walks.into_iter().enumerate() {
        roots_meta.push(opts.roots[i].meta(w.dev, w.ino));
        entries.extend(w.entries);
    }
    count(&entries, &mut stats);
    // One entry per path, its reasons joined: the inconsistent count is a
    // count of paths, and each is named once.
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    let mut merged: Vec<Problem> = Vec::with_capacity(problems.len());
    for p in problems {
        match merged.last_mut() {
            Some(last) if last.path == p.path => {
                if !last.why.split("; ").any(|w| w == p.why) {
                    last.why = format!("{}; {}", last.why, p.why);
                }
            }
            _ => merged.push(p),
        }
    }
    let problems = merged;
    let meta = SnapMeta {
        format: FORMAT,
        id: id.clone(),
        created_ns,
        took_ms: ms_since(started),
        uid: crate::invoker::thread_identity().map_or_else(|_| nix::unistd::geteuid().as_raw(), |t| t.fsuid),
        command: opts.command.clone(),
        cwd: opts.cwd.clone(),
        roots: roots_meta,
        exclude: opts.excludes.patterns(),
        skipped: opts.skipped.clone(),
        stats,
        inconsistent: problems,
        audit: opts.audit.clone(),
    };
    let bytes = manifest::encode(&meta, &entries)?;
    let part_dir = snapshots.join(&partial.name);
    let mpath = part_dir.join("manifest");
    write_new(&mpath, &bytes)?;
    let snap_fd = sys::open_dir_path(&snapshots).map_err(SnapshotError::io("open", &snapshots))?;
    sys::renameat2(snap_fd.as_fd(), partial.name.as_bytes(), snap_fd.as_fd(), id.as_bytes(), libc::RENAME_NOREPLACE)
        .map_err(SnapshotError::io("commit", &store.snapshot_dir(&id)))?;
    let mut partial = partial;
    partial.done = true;
    sys::fsync(snap_fd.as_fd()).map_err(SnapshotError::io("flush", &snapshots))?;
    let hold =
        File::open(store.snapshot_dir(&id).join("manifest")).map_err(SnapshotError::io("open", &store.snapshot_dir(&id)))?;
    sys::flock(hold.as_fd(), libc::LOCK_SH, false).map_err(SnapshotError::io("lock", &store.snapshot_dir(&id)))?;
    drop(lock);
    Ok(Taken {
        meta,
        store: store.clone(),
        roots: opts.roots.clone(),
        excludes: opts.excludes.clone(),
        skip,
        _hold: hold,
        unflushed: !few,
        flush: None,
    })
}

trait DirBuilderExt {
    fn mode_0700(&mut self) -> &mut Self;
}

impl DirBuilderExt for std::fs::DirBuilder {
    fn mode_0700(&mut self) -> &mut Self {
        std::os::unix::fs::DirBuilderExt::mode(self, 0o700)
    }
}

/// Writes a new file (never an existing one, never through a link) and
/// flushes it.
fn write_new(path: &std::path::Path, bytes: &[u8]) -> Result<(), SnapshotError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(SnapshotError::io("create", path))?;
    f.write_all(bytes).map_err(SnapshotError::io("write", path))?;
    f.sync_all().map_err(SnapshotError::io("flush", path))
}

fn count(entries: &[Entry], s: &mut Stats) {
    for e in entries {
        match e.kind {
            Kind::File => {
                s.files += 1;
                s.bytes += e.size;
            }
            Kind::Dir => s.dirs += 1,
            Kind::Symlink => s.symlinks += 1,
            Kind::Fifo | Kind::Special => s.other += 1,
            Kind::Excluded | Kind::OtherFs => s.excluded += 1,
            Kind::Unreadable => s.unreadable += 1,
        }
    }
}

/// The biggest top-level entries of each root, for the size-limit error.
fn largest(roots: &[Root], walks: &[Walked]) -> Vec<(String, u64)> {
    let mut by_top: HashMap<String, u64> = HashMap::new();
    for (i, w) in walks.iter().enumerate() {
        for e in w.entries.iter().filter(|e| e.kind == Kind::File) {
            let top = e.path.split(|&b| b == b'/').next().unwrap_or(&[]);
            *by_top.entry(display(&roots[i], top)).or_default() += e.size;
        }
    }
    let mut v: Vec<(String, u64)> = by_top.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(5);
    v
}

/// One copied file's outcome.
enum Copied {
    Stored { wi: usize, ei: usize, put: super::object::Put, before: libc::stat, moved: Option<&'static str> },
    Unreadable { wi: usize, ei: usize, why: String, vanished: bool },
}

/// Copies the `todo` files into objects on `threads` threads; a full disk
/// stops them all.
#[expect(clippy::too_many_arguments, reason = "the snapshot's state, handed to one step")]
fn copy_all(
    objects: &Objects,
    roots: &[Root],
    walks: &mut [Walked],
    todo: &[(usize, usize)],
    threads: usize,
    flush: bool,
    stats: &mut Stats,
    problems: &mut Vec<Problem>,
) -> Result<(), SnapshotError> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let results: Mutex<Vec<Copied>> = Mutex::new(Vec::with_capacity(todo.len()));
    let failure: Mutex<Option<SnapshotError>> = Mutex::new(None);
    {
        let fds: Vec<Option<BorrowedFd<'_>>> = walks.iter().map(|w| w.fd.as_ref().map(OwnedFd::as_fd)).collect();
        let walks_ro: &[Walked] = walks;
        std::thread::scope(|s| {
            for _ in 0..threads.min(todo.len().max(1)) {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(wi, ei)) = todo.get(n) else { break };
                        let Some(fd) = fds[wi] else { continue };
                        match copy_one(objects, fd, &walks_ro[wi].entries[ei], wi, ei, flush) {
                            Ok(c) => mine.push(c),
                            Err(e) => {
                                stop.store(true, Ordering::Relaxed);
                                if let Ok(mut f) = failure.lock() {
                                    f.get_or_insert(e);
                                }
                            }
                        }
                    }
                    if let Ok(mut r) = results.lock() {
                        r.append(&mut mine);
                    }
                });
            }
        });
    }
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    for c in results.into_inner().unwrap_or_default() {
        match c {
            Copied::Stored { wi, ei, put, before, moved } => {
                let e = &mut walks[wi].entries[ei];
                let walked = e.clone();
                let mut fresh = Entry::from_stat(e.root, std::mem::take(&mut e.path), Kind::File, &before);
                fresh.reusable = e.reusable && moved.is_none();
                fresh.size = put.len;
                fresh.hash = Some(put.hash);
                if !walked.same_stat(&fresh) || put.len != before.st_size as u64 {
                    problems.push(Problem {
                        path: display(&roots[wi], &fresh.path),
                        why: "changed while the snapshot was taken".into(),
                    });
                    fresh.reusable = false;
                }
                if let Some(why) = moved {
                    problems.push(Problem { path: display(&roots[wi], &fresh.path), why: why.into() });
                }
                stats.copied_files += 1;
                stats.copied_bytes += put.len;
                stats.reflinked_files += u64::from(put.reflinked);
                stats.deduplicated_files += u64::from(put.existed);
                stats.added_bytes += if put.existed { 0 } else { put.len };
                *e = fresh;
            }
            Copied::Unreadable { wi, ei, why, vanished } => {
                let e = &mut walks[wi].entries[ei];
                if vanished {
                    problems.push(Problem { path: display(&roots[wi], &e.path), why: why.clone() });
                }
                e.kind = Kind::Unreadable;
                e.text = why.into_bytes();
            }
        }
    }
    Ok(())
}

/// Stores one file's content.
fn copy_one(
    objects: &Objects,
    root: BorrowedFd<'_>,
    e: &Entry,
    wi: usize,
    ei: usize,
    flush: bool,
) -> Result<Copied, SnapshotError> {
    // O_NONBLOCK: a FIFO swapped in for the file must not hang the open.
    let flags = libc::O_RDONLY | libc::O_NOCTTY | libc::O_NONBLOCK;
    let opened = match sys::openat2(root, &e.path, flags | libc::O_NOATIME, 0, sys::RESOLVE_STRICT) {
        Err(err) if err.raw_os_error() == Some(libc::EPERM) => sys::openat2(root, &e.path, flags, 0, sys::RESOLVE_STRICT),
        r => r,
    };
    let fd = match opened {
        Ok(fd) => fd,
        Err(err) => {
            let vanished = matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ELOOP | libc::EXDEV | libc::ENOTDIR));
            let why = if vanished {
                "vanished or replaced while the snapshot was taken".to_owned()
            } else {
                format!("cannot read it: {err}")
            };
            return Ok(Copied::Unreadable { wi, ei, why, vanished });
        }
    };
    let file = File::from(fd);
    let before = sys::fstat(file.as_fd()).map_err(|err| SnapshotError::io("inspect", std::path::Path::new("(file)"))(err))?;
    if before.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Ok(Copied::Unreadable { wi, ei, why: "replaced while the snapshot was taken".into(), vanished: true });
    }
    let put = objects.put(&file, &before, flush)?;
    let after = sys::fstat(file.as_fd()).map_err(|err| SnapshotError::io("inspect", std::path::Path::new("(file)"))(err))?;
    let moved = (sys::times(&after)[..2] != sys::times(&before)[..2] || after.st_size != before.st_size)
        .then_some("changed while it was copied");
    Ok(Copied::Stored { wi, ei, put, before, moved })
}

/// Looks at every entry again (beneath its root, links not followed):
/// what differs now changed while the snapshot was taken.
fn recheck(root: &Root, w: &Walked, problems: &mut Vec<Problem>) {
    let Some(fd) = &w.fd else { return };
    for e in &w.entries {
        // Detection only: a directory on the way swapped for a link shows
        // as a difference here, which is all this needs to see.
        let st = if e.path.is_empty() { sys::fstat(fd.as_fd()) } else { sys::lstatat(fd.as_fd(), &e.path) };
        let same = match &st {
            Ok(st) => {
                let now = Entry::from_stat(e.root, Vec::new(), Kind::of_mode(st.st_mode), st);
                now.ino == e.ino && now.size == e.size && now.mtime == e.mtime && now.ctime == e.ctime
            }
            Err(_) => false,
        };
        if !same && e.kind != Kind::Unreadable {
            problems.push(Problem { path: display(root, &e.path), why: "changed while the snapshot was taken".into() });
        }
    }
}

impl Taken {
    /// The snapshot store it lives in.
    #[must_use]
    pub fn store(&self) -> &SnapStore {
        &self.store
    }

    /// Starts flushing its objects in the background, if it wrote many
    /// (see [`super::object::background_sync`]); [`Taken::finish`] waits
    /// for it. Without this call, `finish` flushes them itself.
    pub fn flush_in_background(&mut self) {
        if self.unflushed && self.flush.is_none() {
            self.flush = Some(super::object::background_sync(&self.store.dir));
        }
    }

    /// Walks the roots again now that the command has ended, and records
    /// what it left (`after`), so a restore can tell the run's changes
    /// from later ones. The snapshot's objects are durable once it returns.
    pub fn finish(mut self) -> Result<AfterMeta, SnapshotError> {
        self.flush_in_background();
        if let Some(h) = self.flush.take() {
            let objects = self.store.dir.join("objects");
            h.join()
                .map_err(|_| SnapshotError::Store { path: objects.clone(), why: "the flushing thread panicked".into() })?
                .map_err(SnapshotError::io("flush", &objects))?;
        }
        let started = Instant::now();
        let ended_ns = now_ns();
        let walker = Walker { excludes: &self.excludes, skip: self.skip.clone(), stop_at: None };
        let mut entries = Vec::new();
        for (i, root) in self.roots.iter().enumerate() {
            entries.extend(walker.walk(i as u16, root)?.entries);
        }
        let changed = changed_count(&self.store, &self.meta.id, &entries);
        let meta = AfterMeta { format: FORMAT, id: self.meta.id.clone(), ended_ns, took_ms: ms_since(started), changed };
        let bytes = manifest::encode(&meta, &entries)?;
        let path = self.store.snapshot_dir(&self.meta.id).join("after");
        crate::invoker::fs::write_atomic(&path, &bytes, 0o600)
            .map_err(|e| SnapshotError::Store { path: path.clone(), why: e.to_string() })?;
        Ok(meta)
    }
}

/// How many entries the run added, removed or changed (by metadata; a
/// directory whose times alone moved is not counted).
fn changed_count(store: &SnapStore, id: &str, after: &[Entry]) -> u64 {
    let Ok(snap) = store.load(id) else { return 0 };
    let before: HashMap<(u16, &[u8]), &Entry> = snap.entries.iter().map(|e| ((e.root, e.path.as_slice()), e)).collect();
    let mut seen: HashSet<(u16, &[u8])> = HashSet::new();
    let mut n = 0;
    for a in after {
        seen.insert((a.root, a.path.as_slice()));
        match before.get(&(a.root, a.path.as_slice())) {
            None => n += 1,
            Some(b) if b.kind == Kind::Dir && a.kind == Kind::Dir => n += u64::from(b.mode != a.mode),
            Some(b) => n += u64::from(!b.same_stat(a) || b.text != a.text),
        }
    }
    n + snap.entries.iter().filter(|e| !seen.contains(&(e.root, e.path.as_slice()))).count() as u64
}
