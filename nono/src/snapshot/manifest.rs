//! The manifest: one entry per path a snapshot covers (its kind, mode,
//! owner, size, inode, times, and the content object or link target), after
//! a JSON header that says what the snapshot is.
//!
//! Layout: `NONOSNP1`, the header's length (u32 LE) and the header, the
//! entry count (u64 LE), the entries, `NONOEND1`, and the SHA-256 of every
//! byte before it. A reader checks the magic, the count and the checksum
//! before it trusts a byte, so a file cut short by a crash or a full disk
//! is refused, never read as a smaller snapshot. Names are bytes: any name
//! Linux allows (newlines, invalid UTF-8) round-trips exactly.

use std::io::Read as _;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::SnapshotError;

const MAGIC: &[u8; 8] = b"NONOSNP1";
const TRAILER: &[u8; 8] = b"NONOEND1";
/// A header larger than this is not one nono wrote.
const MAX_HEADER: usize = 64 << 20;

/// What kind of thing an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    File = 1,
    Dir = 2,
    Symlink = 3,
    Fifo = 4,
    /// A socket or device node: recorded, never recreated.
    Special = 5,
    /// Left out by an exclusion (its own metadata is kept, nothing beneath).
    Excluded = 6,
    /// Could not be read (or listed) as the user: not restorable.
    Unreadable = 7,
    /// A mount point of another filesystem: not walked.
    OtherFs = 8,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::File,
            2 => Kind::Dir,
            3 => Kind::Symlink,
            4 => Kind::Fifo,
            5 => Kind::Special,
            6 => Kind::Excluded,
            7 => Kind::Unreadable,
            8 => Kind::OtherFs,
            _ => return None,
        })
    }

    /// Whether the snapshot holds this entry whole (so a restore can bring
    /// it back as it was).
    #[must_use]
    pub fn is_tracked(self) -> bool {
        matches!(self, Kind::File | Kind::Dir | Kind::Symlink | Kind::Fifo)
    }

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "directory",
            Kind::Symlink => "symlink",
            Kind::Fifo => "fifo",
            Kind::Special => "special file",
            Kind::Excluded => "excluded",
            Kind::Unreadable => "unreadable",
            Kind::OtherFs => "mount point",
        }
    }

    /// The kind of a stat result, for entries that are walked.
    #[must_use]
    pub fn of_mode(mode: u32) -> Kind {
        match mode & libc::S_IFMT {
            libc::S_IFREG => Kind::File,
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFLNK => Kind::Symlink,
            libc::S_IFIFO => Kind::Fifo,
            _ => Kind::Special,
        }
    }
}

/// A timestamp: seconds and nanoseconds since the epoch.
pub type Ts = (i64, u32);

/// One path under a root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Index into the header's roots.
    pub root: u16,
    /// Relative to the root's directory; empty for the directory itself.
    pub path: Vec<u8>,
    pub kind: Kind,
    /// Its inode, size and times may vouch for its content in the next
    /// snapshot: false when it changed too close to the walk to be sure
    /// (the timestamp granularity could hide a later write).
    pub reusable: bool,
    /// `st_mode`, type bits included.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub dev: u64,
    pub ino: u64,
    pub mtime: Ts,
    pub ctime: Ts,
    pub atime: Ts,
    /// SHA-256 of a file's content: the name of its object.
    pub hash: Option<[u8; 32]>,
    /// A link's target; for entries left out, why.
    pub text: Vec<u8>,
}

impl Entry {
    /// An entry from a stat result.
    #[must_use]
    pub fn from_stat(root: u16, path: Vec<u8>, kind: Kind, st: &libc::stat) -> Entry {
        let [mtime, ctime, atime] = super::sys::times(st);
        Entry {
            root,
            path,
            kind,
            reusable: false,
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size as u64,
            dev: st.st_dev,
            ino: st.st_ino,
            mtime,
            ctime,
            atime,
            hash: None,
            text: Vec::new(),
        }
    }

    /// Permission bits (with setuid, setgid and sticky).
    #[must_use]
    pub fn perm(&self) -> u32 {
        self.mode & 0o7777
    }

    /// Same inode, size and times: nothing wrote to it, renamed over it or
    /// changed its metadata in between (a change moves the ctime).
    #[must_use]
    pub fn same_stat(&self, other: &Entry) -> bool {
        self.kind == other.kind
            && self.ino == other.ino
            && self.dev == other.dev
            && self.size == other.size
            && self.mtime == other.mtime
            && self.ctime == other.ctime
            && self.mode == other.mode
    }
}

/// One snapshot root as the header records it (paths escaped, see
/// [`crate::event::escape_bytes`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootMeta {
    /// The directory, absolute.
    pub dir: String,
    pub filter: FilterMeta,
    /// The grant it comes from, for people.
    pub origin: String,
    pub dev: u64,
    pub ino: u64,
}

/// Which entries of a root's directory belong to the snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterMeta {
    /// The whole tree.
    All,
    /// One file of the directory (a single-file grant).
    One(String),
    /// The names matching these globs, and what is beneath them (a
    /// brokered rule).
    Names(Vec<String>),
}

/// A path that changed while the snapshot was taken, or could not be
/// taken, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub path: String,
    pub why: String,
}

/// Counts of what a snapshot holds and what taking it cost.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// FIFOs, sockets and devices.
    pub other: u64,
    pub excluded: u64,
    pub unreadable: u64,
    /// Apparent bytes of the files.
    pub bytes: u64,
    /// Files whose content was read this time, and their bytes.
    pub copied_files: u64,
    pub copied_bytes: u64,
    /// Of those, files cloned with FICLONE rather than copied.
    pub reflinked_files: u64,
    /// Of those, files whose content the store already held.
    pub deduplicated_files: u64,
    /// Bytes of the objects this snapshot added to the store.
    pub added_bytes: u64,
    /// Files taken over from the previous snapshot by their metadata alone.
    pub reused_files: u64,
}

/// Which audit session a snapshot belongs to (`run --audit --rollback`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditLink {
    /// The audit database, absolute.
    pub db: String,
    pub session: i64,
}

/// The header of a snapshot taken before a command ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapMeta {
    pub format: u32,
    pub id: String,
    /// When the walk started, ns since the epoch.
    pub created_ns: i64,
    pub took_ms: u64,
    pub uid: u32,
    pub command: Vec<String>,
    pub cwd: String,
    pub roots: Vec<RootMeta>,
    /// The exclusion patterns in effect (defaults included).
    pub exclude: Vec<String>,
    /// Write grants that were not snapshotted, and why.
    pub skipped: Vec<String>,
    pub stats: Stats,
    /// Paths that changed while the snapshot was taken: it is not a
    /// consistent picture of them.
    pub inconsistent: Vec<Problem>,
    pub audit: Option<AuditLink>,
}

/// The header of the walk taken when the command ended: the state the run
/// left, to tell its changes from later ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AfterMeta {
    pub format: u32,
    pub id: String,
    pub ended_ns: i64,
    pub took_ms: u64,
    /// Entries that differ from the snapshot's by their metadata (added,
    /// removed or changed), not counting directories whose times alone moved.
    pub changed: u64,
}

/// The current format version.
pub const FORMAT: u32 = 1;

/// A manifest's bytes.
pub fn encode<M: Serialize>(meta: &M, entries: &[Entry]) -> Result<Vec<u8>, SnapshotError> {
    let header = serde_json::to_vec(meta).map_err(|e| SnapshotError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(64 + header.len() + entries.len() * 120);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for e in entries {
        out.push(e.kind as u8);
        out.push(u8::from(e.reusable) | (u8::from(e.hash.is_some()) << 1));
        out.extend_from_slice(&e.root.to_le_bytes());
        for v in [e.mode, e.uid, e.gid] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [e.size, e.dev, e.ino] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for (s, ns) in [e.mtime, e.ctime, e.atime] {
            out.extend_from_slice(&s.to_le_bytes());
            out.extend_from_slice(&ns.to_le_bytes());
        }
        for b in [&e.path, &e.text] {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        }
        if let Some(h) = &e.hash {
            out.extend_from_slice(h);
        }
    }
    out.extend_from_slice(TRAILER);
    let sum = openssl::sha::sha256(&out);
    out.extend_from_slice(&sum);
    Ok(out)
}

/// Bounds-checked little-endian reads.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }
    fn arr<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|s| s.try_into().ok())
    }
    fn u16(&mut self) -> Option<u16> {
        self.arr().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.arr().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.arr().map(u64::from_le_bytes)
    }
    fn ts(&mut self) -> Option<Ts> {
        Some((self.arr().map(i64::from_le_bytes)?, self.u32()?))
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = self.u32()? as usize;
        self.take(n).map(<[u8]>::to_vec)
    }
}

fn entry(r: &mut Reader<'_>) -> Option<Entry> {
    let kind = Kind::from_u8(r.u8()?)?;
    let flags = r.u8()?;
    let root = r.u16()?;
    let (mode, uid, gid) = (r.u32()?, r.u32()?, r.u32()?);
    let (size, dev, ino) = (r.u64()?, r.u64()?, r.u64()?);
    let (mtime, ctime, atime) = (r.ts()?, r.ts()?, r.ts()?);
    let path = r.bytes()?;
    let text = r.bytes()?;
    let hash = if flags & 2 != 0 { Some(r.arr::<32>()?) } else { None };
    Some(Entry { root, path, kind, reusable: flags & 1 != 0, mode, uid, gid, size, dev, ino, mtime, ctime, atime, hash, text })
}

/// Parses a whole manifest, refusing anything torn, cut short or altered.
pub fn decode<M: DeserializeOwned>(bytes: &[u8], path: &Path) -> Result<(M, Vec<Entry>), SnapshotError> {
    let corrupt = |why: &str| SnapshotError::Corrupt { path: path.to_path_buf(), why: why.to_owned() };
    if bytes.len() < MAGIC.len() + 4 + 8 + TRAILER.len() + 32 || &bytes[..8] != MAGIC {
        return Err(corrupt("not a nono snapshot manifest (bad magic or too short)"));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if !body.ends_with(TRAILER) || openssl::sha::sha256(body) != sum {
        return Err(corrupt("checksum mismatch: the file is incomplete or was altered"));
    }
    let body = &body[..body.len() - TRAILER.len()];
    let mut r = Reader { b: body, at: 8 };
    let meta = header(&mut r).ok_or_else(|| corrupt("bad header"))?;
    let meta: M = serde_json::from_slice(meta).map_err(|e| corrupt(&format!("bad header: {e}")))?;
    let count = r.u64().ok_or_else(|| corrupt("no entry count"))?;
    let mut entries = Vec::with_capacity(count.min(10_000_000) as usize);
    for _ in 0..count {
        entries.push(entry(&mut r).ok_or_else(|| corrupt("bad entry"))?);
    }
    if r.at != body.len() {
        return Err(corrupt("trailing bytes after the entries"));
    }
    Ok((meta, entries))
}

fn header<'a>(r: &mut Reader<'a>) -> Option<&'a [u8]> {
    let n = r.u32()? as usize;
    if n > MAX_HEADER {
        return None;
    }
    r.take(n)
}

/// Reads a manifest file whole.
pub fn read<M: DeserializeOwned>(path: &Path) -> Result<(M, Vec<Entry>), SnapshotError> {
    let bytes = std::fs::read(path).map_err(SnapshotError::io("read", path))?;
    decode(&bytes, path)
}

/// Reads only a manifest's header (for listings): the checksum is not
/// verified here; whatever restores or diffs reads the whole file.
pub fn read_meta<M: DeserializeOwned>(path: &Path) -> Result<M, SnapshotError> {
    let corrupt = |why: &str| SnapshotError::Corrupt { path: path.to_path_buf(), why: why.to_owned() };
    let mut f = std::fs::File::open(path).map_err(SnapshotError::io("open", path))?;
    let mut head = [0u8; 12];
    f.read_exact(&mut head).map_err(|_| corrupt("too short"))?;
    if &head[..8] != MAGIC {
        return Err(corrupt("not a nono snapshot manifest"));
    }
    let n = u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize;
    if n > MAX_HEADER {
        return Err(corrupt("bad header length"));
    }
    let mut meta = vec![0u8; n];
    f.read_exact(&mut meta).map_err(|_| corrupt("header cut short"))?;
    serde_json::from_slice(&meta).map_err(|e| corrupt(&format!("bad header: {e}")))
}
