//! Comparing a snapshot with the tree of today: what was created,
//! deleted, modified (content, mode, times) or changed type, and for each
//! change whether the run made it or something changed it after the run
//! ended (by the walk taken then). Also what the snapshot did not hold
//! (excluded, unreadable, other filesystems), and what became of it.
//!
//! A file is unchanged when its inode, size, mtime and ctime are the
//! snapshot's; otherwise it is read and hashed (unless its size differs),
//! so a file rewritten with the same bytes is not reported as modified.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::fd::{AsFd as _, OwnedFd};

use super::exclude::Excludes;
use super::manifest::{Entry, Kind};
use super::object::Objects;
use super::store::Loaded;
use super::walk::{Root, Walker};
use super::{SnapshotError, sys};

/// Who made a change, by the walk taken when the run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// The tree still holds what the run left there.
    Run,
    /// It changed after the run ended.
    Later,
    /// The end of the run was not recorded (nono died, or the run is still going).
    Unknown,
}

/// The kind of a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum What {
    Created,
    Deleted,
    Modified,
    /// A file became a directory, a link a file, ...
    TypeChanged,
}

/// One path that differs from the snapshot.
#[derive(Clone, Debug)]
pub struct Change {
    pub root: u16,
    pub path: Vec<u8>,
    pub what: What,
    /// The snapshot's entry.
    pub before: Option<Entry>,
    /// The entry of today.
    pub now: Option<Entry>,
    /// The content (or a link's target) differs.
    pub content: bool,
    pub mode: bool,
    pub times: bool,
    pub when: When,
}

impl Change {
    /// A directory whose times alone moved (because its entries changed):
    /// restored, but not worth showing.
    #[must_use]
    pub fn is_dir_times_only(&self) -> bool {
        self.what == What::Modified && self.before.as_ref().is_some_and(|b| b.kind == Kind::Dir) && !self.mode && !self.content
    }
}

/// What became of something the snapshot did not hold whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UntrackedState {
    /// Its own metadata is as it was (what is beneath an excluded
    /// directory is not known).
    Same,
    Changed,
    Removed,
}

/// A path the snapshot left out, and its state today.
#[derive(Clone, Debug)]
pub struct Untracked {
    pub root: u16,
    pub entry: Entry,
    pub state: UntrackedState,
}

/// A snapshot against the tree of today.
pub struct Comparison {
    pub roots: Vec<Root>,
    pub changes: Vec<Change>,
    pub untracked: Vec<Untracked>,
    /// Each root's directory, open, when it exists.
    pub fds: Vec<Option<OwnedFd>>,
    /// Each root's device today.
    pub devs: Vec<u64>,
    /// Whether the run's end was recorded.
    pub has_after: bool,
    /// The snapshot's directories (a restore puts back the times of every
    /// directory it worked in).
    pub dirs: HashMap<(u16, Vec<u8>), Entry>,
}

/// Compares `snap` with the tree of today. `skip`: directories never
/// walked (the store).
pub fn compare(snap: &Loaded, skip: Vec<(u64, u64)>) -> Result<Comparison, SnapshotError> {
    let roots: Vec<Root> = snap.meta.roots.iter().map(Root::from_meta).collect::<Result<_, _>>()?;
    let excludes = Excludes::from_patterns(&snap.meta.exclude)?;
    let stop_at: HashSet<(u16, Vec<u8>)> =
        snap.entries.iter().filter(|e| !e.kind.is_tracked()).map(|e| (e.root, e.path.clone())).collect();
    let walker = Walker { excludes: &excludes, skip, stop_at: Some(&stop_at) };
    let mut fds = Vec::new();
    let mut devs = Vec::new();
    let mut now: Vec<Entry> = Vec::new();
    for (i, root) in roots.iter().enumerate() {
        let w = walker.walk(i as u16, root)?;
        now.extend(w.entries);
        fds.push(w.fd);
        devs.push(w.dev);
    }
    let now_ix: HashMap<(u16, &[u8]), &Entry> = now.iter().map(|e| ((e.root, e.path.as_slice()), e)).collect();
    let before_ix: HashMap<(u16, &[u8]), &Entry> = snap.entries.iter().map(|e| ((e.root, e.path.as_slice()), e)).collect();
    let after_ix: Option<HashMap<(u16, &[u8]), &Entry>> =
        snap.after.as_ref().map(|(_, a)| a.iter().map(|e| ((e.root, e.path.as_slice()), e)).collect());
    let mut changes = Vec::new();
    let mut untracked = Vec::new();
    for b in &snap.entries {
        let n = now_ix.get(&(b.root, b.path.as_slice())).copied();
        if !b.kind.is_tracked() {
            let state = match n {
                None => UntrackedState::Removed,
                Some(n) if n.ino == b.ino && n.mtime == b.mtime && n.ctime == b.ctime => UntrackedState::Same,
                Some(_) => UntrackedState::Changed,
            };
            untracked.push(Untracked { root: b.root, entry: b.clone(), state });
            continue;
        }
        let change = |what, content, mode, times| Change {
            root: b.root,
            path: b.path.clone(),
            what,
            before: Some(b.clone()),
            now: n.cloned(),
            content,
            mode,
            times,
            when: When::Unknown,
        };
        let Some(n) = n else {
            changes.push(change(What::Deleted, true, false, false));
            continue;
        };
        if n.kind != b.kind {
            changes.push(change(What::TypeChanged, true, true, true));
            continue;
        }
        if b.same_stat(n) && b.text == n.text {
            continue;
        }
        let content = match b.kind {
            Kind::File => b.size != n.size || !same_content(fds[usize::from(b.root)].as_ref(), b, n),
            Kind::Symlink => b.text != n.text,
            _ => false,
        };
        let (mode, times) = (b.perm() != n.perm(), b.mtime != n.mtime);
        if content || mode || times {
            changes.push(change(What::Modified, content, mode, times));
        }
    }
    for n in &now {
        if !before_ix.contains_key(&(n.root, n.path.as_slice())) {
            changes.push(Change {
                root: n.root,
                path: n.path.clone(),
                what: What::Created,
                before: None,
                now: Some(n.clone()),
                content: true,
                mode: false,
                times: false,
                when: When::Unknown,
            });
        }
    }
    if let Some(after) = &after_ix {
        for c in &mut changes {
            c.when = when(after.get(&(c.root, c.path.as_slice())).copied(), c.now.as_ref());
        }
    }
    changes.sort_by(|a, b| (a.root, &a.path).cmp(&(b.root, &b.path)));
    let dirs = snap.entries.iter().filter(|e| e.kind == Kind::Dir).map(|e| ((e.root, e.path.clone()), e.clone())).collect();
    Ok(Comparison { roots, changes, untracked, fds, devs, has_after: after_ix.is_some(), dirs })
}

/// Whether the tree's entry is still what the run left.
fn when(after: Option<&Entry>, now: Option<&Entry>) -> When {
    match (after, now) {
        (None, None) => When::Run,
        (Some(a), Some(n)) if a.kind == Kind::Dir && n.kind == Kind::Dir => {
            if a.ino == n.ino && a.mode == n.mode {
                When::Run
            } else {
                When::Later
            }
        }
        (Some(a), Some(n)) if a.same_stat(n) && a.text == n.text => When::Run,
        _ => When::Later,
    }
}

/// Whether the file of today holds the snapshot's bytes (read beneath the
/// root, links not followed). Unreadable counts as different.
fn same_content(root: Option<&OwnedFd>, before: &Entry, now: &Entry) -> bool {
    let (Some(root), Some(want)) = (root, before.hash) else { return false };
    let Ok(fd) =
        sys::openat2(root.as_fd(), &now.path, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY, 0, sys::RESOLVE_STRICT)
    else {
        return false;
    };
    let f = File::from(fd);
    Objects::hash_file(&f, now.size).is_ok_and(|h| h == want)
}

/// Renames found among a comparison's changes.
#[derive(Debug, Default)]
pub struct Renames {
    /// `(created index, deleted index)`: the same inode and kind.
    pub pairs: Vec<(usize, usize)>,
    /// Entries that moved along with a renamed directory (shown by it).
    pub hidden: HashSet<usize>,
}

/// Pairs the created and deleted entries of `changes` that are one inode
/// under two names (same inode, mtime, and size or link target; a renamed
/// directory whose entries also changed shows as deleted and created).
#[must_use]
pub fn renames(changes: &[Change]) -> Renames {
    let mut deleted: HashMap<(u64, u64, Kind), usize> = HashMap::new();
    for (i, c) in changes.iter().enumerate() {
        if c.what == What::Deleted
            && let Some(b) = &c.before
        {
            deleted.insert((b.dev, b.ino, b.kind), i);
        }
    }
    let mut out = Renames::default();
    let mut moved_dirs: Vec<(u16, Vec<u8>, Vec<u8>)> = Vec::new();
    for (i, c) in changes.iter().enumerate() {
        if c.what != What::Created {
            continue;
        }
        let Some(n) = &c.now else { continue };
        let Some(&d) = deleted.get(&(n.dev, n.ino, n.kind)) else { continue };
        // A freed inode is soon reused by a new file: a rename also keeps
        // the mtime (and a file its size, a link its target).
        let Some(b) = &changes[d].before else { continue };
        if changes[d].root != c.root || b.mtime != n.mtime || (n.kind != Kind::Dir && b.size != n.size) || b.text != n.text {
            continue;
        }
        let from = &changes[d].path;
        let inside = moved_dirs.iter().any(|(r, to_dir, from_dir)| {
            *r == c.root && under(&c.path, to_dir) && under(from, from_dir) && c.path[to_dir.len()..] == from[from_dir.len()..]
        });
        if inside {
            out.hidden.insert(i);
            out.hidden.insert(d);
            continue;
        }
        if n.kind == Kind::Dir {
            moved_dirs.push((c.root, c.path.clone(), from.clone()));
        }
        out.pairs.push((i, d));
    }
    out
}

/// Whether `path` lies strictly beneath `dir`.
#[must_use]
pub fn under(path: &[u8], dir: &[u8]) -> bool {
    if dir.is_empty() {
        return !path.is_empty();
    }
    path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/'
}
