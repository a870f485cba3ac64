//! Walking a root: every entry's metadata, by directory descriptor, never
//! following a symbolic link and never leaving the root's filesystem.
//!
//! A directory is opened with `openat2(root, rel, RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)` when its turn comes (not while its parent is
//! open, so a wide tree never holds more than one descriptor per root),
//! and the inode it opened is compared with the one listed: a directory
//! swapped for another between the two is reported, not followed.

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::PathBuf;

use super::exclude::{Excludes, name_glob};
use super::manifest::{Entry, FilterMeta, Kind, Problem, RootMeta};
use super::{SnapshotError, sys};
use crate::event::{escape_bytes, unescape_bytes, unescape_path};

/// One tree (or part of a directory) a snapshot covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    /// The directory, absolute and canonical.
    pub dir: PathBuf,
    pub filter: Filter,
    /// The grant it comes from, for people.
    pub origin: String,
}

/// Which entries of [`Root::dir`] belong to the snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// All of it.
    All,
    /// One name (a single-file grant).
    One(Vec<u8>),
    /// Names matching these globs (`*`, `?`), with what is beneath them
    /// (a brokered rule).
    Names(Vec<Vec<u8>>),
}

impl Filter {
    fn admits(&self, name: &[u8]) -> bool {
        match self {
            Filter::All => true,
            Filter::One(n) => n == name,
            Filter::Names(globs) => globs.iter().any(|g| name_glob(g, name)),
        }
    }
}

impl Root {
    /// The header form, with the directory's identity.
    #[must_use]
    pub fn meta(&self, dev: u64, ino: u64) -> RootMeta {
        RootMeta {
            dir: escape_bytes(self.dir.as_os_str().as_bytes()),
            filter: match &self.filter {
                Filter::All => FilterMeta::All,
                Filter::One(n) => FilterMeta::One(escape_bytes(n)),
                Filter::Names(g) => FilterMeta::Names(g.iter().map(|n| escape_bytes(n)).collect()),
            },
            origin: self.origin.clone(),
            dev,
            ino,
        }
    }

    /// Back from the header form.
    pub fn from_meta(m: &RootMeta) -> Result<Root, SnapshotError> {
        let bad = |e: crate::event::BadEscape| SnapshotError::Encode(e.to_string());
        Ok(Root {
            dir: unescape_path(&m.dir).map_err(bad)?,
            filter: match &m.filter {
                FilterMeta::All => Filter::All,
                FilterMeta::One(n) => Filter::One(unescape_bytes(n).map_err(bad)?),
                FilterMeta::Names(g) => {
                    Filter::Names(g.iter().map(|n| unescape_bytes(n)).collect::<Result<_, _>>().map_err(bad)?)
                }
            },
            origin: m.origin.clone(),
        })
    }

    /// The absolute path of `rel` beneath this root.
    #[must_use]
    pub fn join(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() { self.dir.clone() } else { self.dir.join(std::ffi::OsStr::from_bytes(rel)) }
    }
}

/// `parent/name`, or `name` at the top.
#[must_use]
pub fn join_rel(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        return name.to_vec();
    }
    let mut v = Vec::with_capacity(parent.len() + 1 + name.len());
    v.extend_from_slice(parent);
    v.push(b'/');
    v.extend_from_slice(name);
    v
}

/// The parent part and the last name of a relative path.
#[must_use]
pub fn split_rel(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&[], rel),
    }
}

/// How to walk.
pub struct Walker<'a> {
    pub excludes: &'a Excludes,
    /// Directories never walked, by `(dev, ino)`: the snapshot store.
    pub skip: Vec<(u64, u64)>,
    /// Relative paths (per root) below which nothing is walked: what a
    /// snapshot did not hold whole, when walking the tree of today.
    pub stop_at: Option<&'a HashSet<(u16, Vec<u8>)>>,
}

/// What a walk found.
pub struct Walked {
    /// The root's directory, open (`None` when it does not exist).
    pub fd: Option<OwnedFd>,
    pub dev: u64,
    pub ino: u64,
    pub entries: Vec<Entry>,
    /// Entries that vanished or were swapped while they were walked.
    pub problems: Vec<Problem>,
}

impl Walker<'_> {
    /// Walks root number `idx`.
    pub fn walk(&self, idx: u16, root: &Root) -> Result<Walked, SnapshotError> {
        let fd = match sys::open_dir_path(&root.dir) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                return Ok(Walked { fd: None, dev: 0, ino: 0, entries: Vec::new(), problems: Vec::new() });
            }
            Err(e) => return Err(SnapshotError::io("open", &root.dir)(e)),
        };
        let st = sys::fstat(fd.as_fd()).map_err(SnapshotError::io("inspect", &root.dir))?;
        let mut w = Walked { fd: None, dev: st.st_dev, ino: st.st_ino, entries: Vec::new(), problems: Vec::new() };
        // Directories still to list: the index of their entry.
        let mut pending: Vec<usize> = Vec::new();
        let names = match &root.filter {
            Filter::All => {
                w.entries.push(Entry::from_stat(idx, Vec::new(), Kind::Dir, &st));
                None
            }
            Filter::One(n) => Some(vec![n.clone()]),
            Filter::Names(_) => Some(sys::read_dir(fd.as_fd()).map_err(SnapshotError::io("list", &root.dir))?),
        };
        match names {
            None => pending.push(0),
            Some(mut names) => {
                names.retain(|n| root.filter.admits(n));
                names.sort_unstable();
                for name in names {
                    self.visit(idx, root, fd.as_fd(), &[], &name, st.st_dev, &mut w, &mut pending)?;
                }
            }
        }
        while let Some(i) = pending.pop() {
            let rel = w.entries[i].path.clone();
            let dir = match sys::openat2(fd.as_fd(), &rel, libc::O_RDONLY | libc::O_DIRECTORY, 0, sys::RESOLVE_STRICT) {
                Ok(d) => d,
                Err(e) => {
                    Self::unlisted(&mut w, i, root, &e);
                    continue;
                }
            };
            let dst = sys::fstat(dir.as_fd()).map_err(SnapshotError::io("inspect", &root.join(&rel)))?;
            if dst.st_ino != w.entries[i].ino || dst.st_dev != w.entries[i].dev {
                w.problems.push(Problem {
                    path: escape_bytes(root.join(&rel).as_os_str().as_bytes()),
                    why: "replaced while it was walked".into(),
                });
                w.entries[i].kind = Kind::Unreadable;
                w.entries[i].text = b"replaced while it was walked".to_vec();
                continue;
            }
            let mut names = match sys::read_dir(dir.as_fd()) {
                Ok(n) => n,
                Err(e) => {
                    Self::unlisted(&mut w, i, root, &e);
                    continue;
                }
            };
            names.sort_unstable();
            for name in names {
                self.visit(idx, root, dir.as_fd(), &rel, &name, st.st_dev, &mut w, &mut pending)?;
            }
        }
        w.fd = Some(fd);
        Ok(w)
    }

    /// A directory that could not be opened or listed.
    fn unlisted(w: &mut Walked, i: usize, root: &Root, e: &io::Error) {
        let path = root.join(&w.entries[i].path);
        if let Some(libc::ENOENT | libc::ELOOP | libc::ENOTDIR | libc::EXDEV) = e.raw_os_error() {
            w.problems.push(Problem {
                path: escape_bytes(path.as_os_str().as_bytes()),
                why: "vanished or replaced while it was walked".into(),
            });
        }
        w.entries[i].kind = Kind::Unreadable;
        w.entries[i].text = format!("cannot list it: {e}").into_bytes();
    }

    #[expect(clippy::too_many_arguments, reason = "the walk's state, passed down one level")]
    fn visit(
        &self,
        idx: u16,
        root: &Root,
        dir: std::os::fd::BorrowedFd<'_>,
        parent: &[u8],
        name: &[u8],
        root_dev: u64,
        w: &mut Walked,
        pending: &mut Vec<usize>,
    ) -> Result<(), SnapshotError> {
        let rel = join_rel(parent, name);
        let st = match sys::lstatat(dir, name) {
            Ok(st) => st,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                w.problems.push(Problem {
                    path: escape_bytes(root.join(&rel).as_os_str().as_bytes()),
                    why: "vanished while it was walked".into(),
                });
                return Ok(());
            }
            Err(e) => return Err(SnapshotError::io("inspect", &root.join(&rel))(e)),
        };
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let mut kind = Kind::of_mode(st.st_mode);
        let mut text = Vec::new();
        if self.skip.contains(&(st.st_dev, st.st_ino)) {
            kind = Kind::Excluded;
            text = b"the rollback store itself".to_vec();
        } else if self.stop_at.is_some_and(|s| s.contains(&(idx, rel.clone()))) {
            kind = Kind::Excluded;
            text = b"not held by the snapshot".to_vec();
        } else if let Some(p) = self.excludes.matches(&rel, name, is_dir) {
            kind = Kind::Excluded;
            text = p.as_bytes().to_vec();
        } else if is_dir && st.st_dev != root_dev {
            kind = Kind::OtherFs;
            text = b"another filesystem is mounted here".to_vec();
        } else if kind == Kind::Symlink {
            text = match sys::readlinkat(dir, name) {
                Ok(t) => t,
                Err(e) => {
                    kind = Kind::Unreadable;
                    format!("cannot read the link: {e}").into_bytes()
                }
            };
        }
        let mut e = Entry::from_stat(idx, rel, kind, &st);
        e.text = text;
        w.entries.push(e);
        if kind == Kind::Dir {
            pending.push(w.entries.len() - 1);
        }
        Ok(())
    }
}
