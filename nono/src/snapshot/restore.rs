//! Putting a tree back as a snapshot holds it: contents, modes, link
//! targets and times; what the run created is removed.
//!
//! # Threat model
//! The tree was in the hands of the agent: any directory in it may have
//! become a symbolic link to somewhere outside the grant (`src ->
//! ~/.ssh`), and a process it left behind may still be swapping names. So
//! every step works on a directory descriptor opened beneath the root with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`
//! and on one final name within it, with calls that never follow a link
//! there (`unlinkat`, `mkdirat`, `renameat2`, `symlinkat`, `fchmodat2`
//! with `AT_SYMLINK_NOFOLLOW`, `utimensat` with `AT_SYMLINK_NOFOLLOW`, and
//! `O_NOFOLLOW | O_EXCL` for new files). A directory replaced by a link is
//! removed as the link it is, then made again. A file is written under a
//! fresh temporary name and renamed over the old one, so it is never
//! half-written under its own name. An entry that is not the one the
//! comparison saw (swapped in between) is left alone and reported.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use super::diff::{Comparison, What, When, under};
use super::manifest::{Entry, Kind};
use super::object::Objects;
use super::walk::{Root, split_rel};
use super::{SnapshotError, sys};

/// What one step does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Remove what is there (a whole tree for a directory).
    Remove,
    /// Make a directory the snapshot held.
    MakeDir,
    /// Write a file from its object (replacing what is there).
    Write,
    /// Make a link (replacing what is there).
    Link,
    /// Make a FIFO.
    Fifo,
    /// Set mode and times only (the content is the snapshot's).
    Meta,
}

/// One step of a restore.
#[derive(Clone, Debug)]
pub struct Step {
    pub root: u16,
    pub path: Vec<u8>,
    pub op: Op,
    /// The snapshot's entry (for all but `Remove`).
    pub entry: Option<Entry>,
    /// What is there today (for `Remove`, and what `Write`/`Link` replace).
    pub now: Option<Entry>,
    pub when: When,
}

impl Step {
    /// Whether the step overwrites or removes something changed since the
    /// run ended (or whose state at the end is not known).
    #[must_use]
    pub fn needs_consent(&self) -> bool {
        self.when != When::Run
    }
}

/// The steps that put `cmp`'s changes back, limited to `only` (absolute
/// paths; empty: everything) and to the directories they need.
#[must_use]
pub fn plan(cmp: &Comparison, only: &[PathBuf]) -> Vec<Step> {
    let mut steps = Vec::new();
    for c in &cmp.changes {
        let step = |op, entry: Option<&Entry>| Step {
            root: c.root,
            path: c.path.clone(),
            op,
            entry: entry.cloned(),
            now: c.now.clone(),
            when: c.when,
        };
        match c.what {
            What::Created => steps.push(step(Op::Remove, None)),
            What::Deleted | What::TypeChanged => {
                if c.what == What::TypeChanged {
                    steps.push(step(Op::Remove, None));
                }
                if let Some(b) = &c.before {
                    steps.push(step(make_op(b.kind), Some(b)));
                }
            }
            What::Modified => {
                let Some(b) = &c.before else { continue };
                let op = match b.kind {
                    Kind::File if c.content => Op::Write,
                    Kind::Symlink if c.content => Op::Link,
                    _ => Op::Meta,
                };
                steps.push(step(op, Some(b)));
            }
        }
    }
    if only.is_empty() {
        return steps;
    }
    let wanted = |s: &Step| only.iter().any(|p| cmp.roots[usize::from(s.root)].join(&s.path).starts_with(p));
    let mut keep: Vec<bool> = steps.iter().map(wanted).collect();
    // A restored path needs its missing parents made again.
    let needed: Vec<(u16, Vec<u8>)> =
        steps.iter().zip(&keep).filter(|(_, k)| **k).map(|(s, _)| (s.root, s.path.clone())).collect();
    for (i, s) in steps.iter().enumerate() {
        if s.op == Op::MakeDir && needed.iter().any(|(r, p)| *r == s.root && under(p, &s.path)) {
            keep[i] = true;
        }
    }
    steps.into_iter().zip(keep).filter(|(_, k)| *k).map(|(s, _)| s).collect()
}

fn make_op(kind: Kind) -> Op {
    match kind {
        Kind::Dir => Op::MakeDir,
        Kind::Symlink => Op::Link,
        Kind::Fifo => Op::Fifo,
        _ => Op::Write,
    }
}

/// A step that did not happen, and why.
#[derive(Clone, Debug)]
pub struct Failed {
    pub path: PathBuf,
    pub why: String,
}

/// What a restore did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub removed: u64,
    pub written: u64,
    pub written_bytes: u64,
    pub reflinked: u64,
    pub dirs_made: u64,
    pub links: u64,
    pub meta: u64,
    pub failed: Vec<Failed>,
}

/// What one step did.
enum Done {
    Removed,
    DirMade,
    Written { bytes: u64, reflinked: bool },
    Linked,
    Meta,
}

/// Performs `steps` (from [`plan`]) on the tree, with objects from `objects`.
pub fn execute(cmp: &mut Comparison, steps: &[Step], objects: &Objects) -> Result<Report, SnapshotError> {
    let mut rep = Report::default();
    // Roots that no longer exist are made again first.
    for (i, root) in cmp.roots.iter().enumerate() {
        if cmp.fds[i].is_none() && steps.iter().any(|s| usize::from(s.root) == i) {
            std::fs::create_dir_all(&root.dir).map_err(SnapshotError::io("recreate", &root.dir))?;
            let fd = sys::open_dir_path(&root.dir).map_err(SnapshotError::io("open", &root.dir))?;
            cmp.devs[i] = sys::fstat(fd.as_fd()).map_err(SnapshotError::io("inspect", &root.dir))?.st_dev;
            cmp.fds[i] = Some(fd);
        }
    }
    let t = Tree { roots: &cmp.roots, fds: &cmp.fds };

    // 1. Removals, deepest first; a tree removed whole takes its entries along.
    let mut removes: Vec<&Step> = steps.iter().filter(|s| s.op == Op::Remove).collect();
    removes.sort_by_key(|s| std::cmp::Reverse(depth(&s.path)));
    let removed_dirs: Vec<(u16, &[u8])> = removes
        .iter()
        .filter(|s| s.now.as_ref().is_some_and(|n| !matches!(n.kind, Kind::File | Kind::Symlink)))
        .map(|s| (s.root, s.path.as_slice()))
        .collect();
    for s in &removes {
        if removed_dirs.iter().any(|(r, d)| *r == s.root && under(&s.path, d)) {
            continue;
        }
        t.run(&mut rep, s, |parent, name| Tree::remove(parent, name, s.now.as_ref()).map(|()| Done::Removed));
    }
    // 2. Directories, shallowest first (writable for now; modes come last).
    let mut dirs: Vec<&Step> = steps.iter().filter(|s| s.op == Op::MakeDir && !s.path.is_empty()).collect();
    dirs.sort_by_key(|s| depth(&s.path));
    for s in dirs {
        t.run(&mut rep, s, |parent, name| {
            with_writable(parent, || sys::mkdirat(parent, name, 0o700)).map(|()| Done::DirMade).map_err(StepError::from)
        });
    }
    // 3. Files, links and FIFOs.
    for s in steps.iter().filter(|s| matches!(s.op, Op::Write | Op::Link | Op::Fifo)) {
        let Some(e) = &s.entry else { continue };
        let dev = cmp.devs[usize::from(s.root)];
        t.run(&mut rep, s, |parent, name| Tree::make(parent, name, e, objects, dev));
    }
    // 4. Modes and times of what else changed.
    for s in steps.iter().filter(|s| s.op == Op::Meta && s.entry.as_ref().is_some_and(|e| e.kind != Kind::Dir)) {
        let Some(e) = &s.entry else { continue };
        t.run(&mut rep, s, |parent, name| set_meta(parent, name, e).map(|()| Done::Meta).map_err(StepError::from));
    }
    // 5. Directories last, deepest first: every change inside one moved
    //    its times (ours too), and a read-only mode must wait until it is full.
    let mut touched: HashSet<(u16, Vec<u8>)> = HashSet::new();
    for s in steps {
        let mut p = s.path.as_slice();
        touched.insert((s.root, p.to_vec()));
        while !p.is_empty() {
            p = split_rel(p).0;
            touched.insert((s.root, p.to_vec()));
        }
    }
    let mut dir_entries: Vec<&Entry> = touched.iter().filter_map(|k| cmp.dirs.get(k)).collect();
    dir_entries.sort_by(|a, b| (depth(&b.path), &b.path, b.root).cmp(&(depth(&a.path), &a.path, a.root)));
    for e in dir_entries {
        if e.path.is_empty() {
            let Some(fd) = &cmp.fds[usize::from(e.root)] else { continue };
            if let Err(err) = set_root_meta(fd.as_fd(), e) {
                rep.failed.push(Failed { path: cmp.roots[usize::from(e.root)].dir.clone(), why: err.to_string() });
            }
            continue;
        }
        let s = Step { root: e.root, path: e.path.clone(), op: Op::Meta, entry: Some(e.clone()), now: None, when: When::Run };
        t.run(&mut rep, &s, |parent, name| set_meta(parent, name, e).map(|()| Done::Meta).map_err(StepError::from));
    }
    Ok(rep)
}

/// The number of names in a relative path.
fn depth(rel: &[u8]) -> usize {
    if rel.is_empty() { 0 } else { rel.split(|&b| b == b'/').count() }
}

/// The roots' directories, for resolving steps beneath them.
struct Tree<'a> {
    roots: &'a [Root],
    fds: &'a [Option<OwnedFd>],
}

/// Why a step did not happen.
enum StepError {
    Io(io::Error),
    Other(String),
}

impl From<io::Error> for StepError {
    fn from(e: io::Error) -> Self {
        StepError::Io(e)
    }
}

impl Tree<'_> {
    /// Opens the parent of a step beneath its root (no links on the way)
    /// and runs `f` on it and the last name; failures are collected.
    fn run(&self, rep: &mut Report, s: &Step, f: impl FnOnce(BorrowedFd<'_>, &[u8]) -> Result<Done, StepError>) {
        let path = self.roots[usize::from(s.root)].join(&s.path);
        let Some(Some(root)) = self.fds.get(usize::from(s.root)) else {
            rep.failed.push(Failed { path, why: "its grant's directory does not exist".into() });
            return;
        };
        let (parent_rel, name) = split_rel(&s.path);
        let parent = match open_parent(root.as_fd(), parent_rel) {
            Ok(p) => p,
            Err(e) => {
                rep.failed.push(Failed { path, why: format!("cannot open its directory beneath the grant: {e}") });
                return;
            }
        };
        match f(parent.as_fd(), name) {
            Ok(Done::Removed) => rep.removed += 1,
            Ok(Done::DirMade) => rep.dirs_made += 1,
            Ok(Done::Linked) => rep.links += 1,
            Ok(Done::Meta) => rep.meta += 1,
            Ok(Done::Written { bytes, reflinked }) => {
                rep.written += 1;
                rep.written_bytes += bytes;
                rep.reflinked += u64::from(reflinked);
            }
            Err(StepError::Io(e)) => rep.failed.push(Failed { path, why: e.to_string() }),
            Err(StepError::Other(why)) => rep.failed.push(Failed { path, why }),
        }
    }

    /// Removes `name` if it is still the entry `now` describes.
    fn remove(parent: BorrowedFd<'_>, name: &[u8], now: Option<&Entry>) -> Result<(), StepError> {
        let st = sys::lstatat(parent, name)?;
        if let Some(n) = now
            && (st.st_ino != n.ino || st.st_dev != n.dev)
        {
            return Err(StepError::Other("it changed during the restore; left as it is".into()));
        }
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            remove_tree(parent, name)?;
        } else {
            with_writable(parent, || sys::unlinkat(parent, name, false))?;
        }
        Ok(())
    }

    /// Makes the file, link or FIFO `e` at `name` under a temporary name,
    /// then renames it over whatever is there.
    fn make(parent: BorrowedFd<'_>, name: &[u8], e: &Entry, objects: &Objects, dev: u64) -> Result<Done, StepError> {
        let tmp = format!(".nono-restore-{}-{:08x}", std::process::id(), sys::random_u32()).into_bytes();
        let made = (|| -> Result<Done, StepError> {
            match e.kind {
                Kind::Symlink => {
                    with_writable(parent, || sys::symlinkat(&e.text, parent, &tmp))?;
                    sys::utimensat_nofollow(parent, &tmp, e.atime, e.mtime)?;
                    Ok(Done::Linked)
                }
                Kind::Fifo => {
                    let c = std::ffi::CString::new(tmp.clone()).map_err(|_| StepError::Other("bad name".into()))?;
                    with_writable(parent, || {
                        // SAFETY: valid descriptor and C string.
                        if unsafe { libc::mkfifoat(std::os::fd::AsRawFd::as_raw_fd(&parent), c.as_ptr(), 0o600) } == 0 {
                            Ok(())
                        } else {
                            Err(io::Error::last_os_error())
                        }
                    })?;
                    set_meta(parent, &tmp, e)?;
                    Ok(Done::Linked)
                }
                _ => {
                    let hash = e.hash.ok_or_else(|| StepError::Other("the snapshot holds no content for it".into()))?;
                    let fd = with_writable(parent, || {
                        sys::openat(parent, &tmp, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o600)
                    })?;
                    let f = File::from(fd);
                    let reflinked =
                        objects.restore_into(&hash, e.size, &f, dev).map_err(|err| StepError::Other(err.to_string()))?;
                    sys::fchmod(f.as_fd(), e.perm())?;
                    sys::futimens(f.as_fd(), e.atime, e.mtime)?;
                    Ok(Done::Written { bytes: e.size, reflinked })
                }
            }
        })();
        let done = match made {
            Ok(d) => d,
            Err(err) => {
                let _ = sys::unlinkat(parent, &tmp, false);
                return Err(err);
            }
        };
        if let Err(err) = sys::renameat2(parent, &tmp, parent, name, 0) {
            let _ = sys::unlinkat(parent, &tmp, false);
            return Err(err.into());
        }
        Ok(done)
    }
}

/// The directory `rel` beneath `root`: read-only if it can be read, else
/// a path descriptor (enough for the `*at` calls).
fn open_parent(root: BorrowedFd<'_>, rel: &[u8]) -> io::Result<OwnedFd> {
    match sys::openat2(root, rel, libc::O_RDONLY | libc::O_DIRECTORY, 0, sys::RESOLVE_STRICT) {
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
            sys::openat2(root, rel, libc::O_PATH | libc::O_DIRECTORY, 0, sys::RESOLVE_STRICT)
        }
        r => r,
    }
}

/// Runs `f`; when the directory refuses it (a read-only directory the
/// user owns), makes the directory writable for the user and tries once
/// more. The final pass puts the directory's mode back.
fn with_writable<T>(dir: BorrowedFd<'_>, mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    match f() {
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
            let st = sys::fstat(dir)?;
            let proc = PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&dir)));
            std::fs::set_permissions(&proc, std::os::unix::fs::PermissionsExt::from_mode((st.st_mode & 0o7777) | 0o700))?;
            f()
        }
        r => r,
    }
}

/// Removes the tree at `name` in `dir`, by descriptor, never following a link.
fn remove_tree(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    let st = sys::lstatat(dir, name)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return with_writable(dir, || sys::unlinkat(dir, name, false));
    }
    let sub = match sys::openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0) {
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
            sys::chmod_at(dir, name, (st.st_mode & 0o7777) | 0o700)?;
            sys::openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?
        }
        r => r?,
    };
    for child in sys::read_dir(sub.as_fd())? {
        remove_tree(sub.as_fd(), &child)?;
    }
    with_writable(dir, || sys::unlinkat(dir, name, true))
}

/// Sets the mode (not for links) and times of `name` to `e`'s.
fn set_meta(dir: BorrowedFd<'_>, name: &[u8], e: &Entry) -> io::Result<()> {
    let st = sys::lstatat(dir, name)?;
    if Kind::of_mode(st.st_mode) != e.kind {
        return Err(io::Error::other(format!("it is a {} now, not a {}", Kind::of_mode(st.st_mode).name(), e.kind.name())));
    }
    if e.kind != Kind::Symlink && st.st_mode & 0o7777 != e.perm() {
        sys::chmod_at(dir, name, e.perm())?;
    }
    sys::utimensat_nofollow(dir, name, e.atime, e.mtime)
}

fn set_root_meta(fd: BorrowedFd<'_>, e: &Entry) -> io::Result<()> {
    let st = sys::fstat(fd)?;
    if st.st_mode & 0o7777 != e.perm() {
        sys::fchmod(fd, e.perm())?;
    }
    sys::futimens(fd, e.atime, e.mtime)
}
