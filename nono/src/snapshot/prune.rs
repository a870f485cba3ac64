//! Removing snapshots, and the objects no snapshot holds any more.
//!
//! A prune holds the store's exclusive lock, so no snapshot is being
//! taken or restored meanwhile: every `.partial-` directory and every temp
//! file it finds was left by a nono that died, and every object no
//! committed manifest names is garbage. A snapshot whose `nono run` is
//! still going (its manifest is locked) is never removed.

use std::collections::{HashMap, HashSet};
use std::os::fd::AsFd as _;

use super::manifest::{Kind, SnapMeta};
use super::object::hex;
use super::store::{Listed, SnapStore, valid_id};
use super::{SnapshotError, sys};

/// Which snapshots to remove. Criteria add up: a snapshot goes when any
/// of them selects it.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Keep only the newest N.
    pub keep: Option<usize>,
    /// Remove those taken before this time (ns since the epoch).
    pub before_ns: Option<i64>,
    /// Remove the oldest until the objects fit in this many bytes.
    pub max_bytes: Option<u64>,
    /// These ids.
    pub ids: Vec<String>,
    pub all: bool,
    pub dry_run: bool,
}

/// What a prune did (or would do).
#[derive(Clone, Debug, Default)]
pub struct Pruned {
    pub removed: Vec<SnapMeta>,
    /// Selected but left: a `nono run` still holds them.
    pub busy: Vec<String>,
    pub objects_removed: u64,
    pub bytes_freed: u64,
    /// Bytes of objects left.
    pub bytes_left: u64,
    /// Leftovers of interrupted snapshots removed.
    pub partials_removed: u64,
}

/// Bytes of objects each snapshot names, and the set of objects of each.
struct Usage {
    by_object: HashMap<[u8; 32], (u64, u32)>,
    of_snapshot: HashMap<String, HashSet<[u8; 32]>>,
}

fn usage(store: &SnapStore, list: &[Listed]) -> Result<Usage, SnapshotError> {
    let mut u = Usage { by_object: HashMap::new(), of_snapshot: HashMap::new() };
    for l in list {
        let snap = store.load(&l.meta.id)?;
        let mut mine = HashSet::new();
        for e in snap.entries.iter().filter(|e| e.kind == Kind::File) {
            if let Some(h) = e.hash
                && mine.insert(h)
            {
                let slot = u.by_object.entry(h).or_insert((e.size, 0));
                slot.1 += 1;
            }
        }
        u.of_snapshot.insert(l.meta.id.clone(), mine);
    }
    Ok(u)
}

/// Removes what `policy` selects, then the garbage. `nonblocking`: give up
/// (`Ok(None)`) rather than wait for a running snapshot or restore.
pub fn prune(store: &SnapStore, policy: &Policy, nonblocking: bool) -> Result<Option<Pruned>, SnapshotError> {
    let Some(_lock) = store.lock(true, nonblocking)? else { return Ok(None) };
    let list = store.list()?;
    for id in &policy.ids {
        if !list.iter().any(|l| &l.meta.id == id) {
            return Err(SnapshotError::NotFound(id.clone()));
        }
    }
    let mut u = usage(store, &list)?;
    let mut total: u64 = u.by_object.values().map(|(size, _)| size).sum();
    let mut out = Pruned::default();
    let n = list.len();
    let mut chosen: Vec<&Listed> = Vec::new();
    for (i, l) in list.iter().enumerate() {
        let newer = n - 1 - i;
        let select = policy.all
            || policy.ids.contains(&l.meta.id)
            || policy.keep.is_some_and(|k| newer >= k)
            || policy.before_ns.is_some_and(|t| l.meta.created_ns < t);
        if select {
            chosen.push(l);
        }
    }
    // The size limit takes the oldest of the rest until it is met.
    let remove_one = |l: &Listed, u: &mut Usage, total: &mut u64| {
        for h in u.of_snapshot.remove(&l.meta.id).unwrap_or_default() {
            if let Some(slot) = u.by_object.get_mut(&h) {
                slot.1 -= 1;
                if slot.1 == 0 {
                    *total -= slot.0;
                }
            }
        }
    };
    let mut removed_ids: HashSet<String> = HashSet::new();
    for l in &chosen {
        if l.in_use {
            out.busy.push(l.meta.id.clone());
            continue;
        }
        remove_one(l, &mut u, &mut total);
        removed_ids.insert(l.meta.id.clone());
    }
    if let Some(max) = policy.max_bytes {
        for l in &list {
            if total <= max {
                break;
            }
            if removed_ids.contains(&l.meta.id) || l.in_use {
                continue;
            }
            remove_one(l, &mut u, &mut total);
            removed_ids.insert(l.meta.id.clone());
        }
    }
    let before: u64 = u.by_object.values().filter(|(_, refs)| *refs == 0).map(|(size, _)| size).sum();
    out.bytes_left = total;
    if policy.dry_run {
        out.removed = list.iter().filter(|l| removed_ids.contains(&l.meta.id)).map(|l| l.meta.clone()).collect();
        out.bytes_freed = before;
        out.objects_removed = u.by_object.values().filter(|(_, refs)| *refs == 0).count() as u64;
        return Ok(Some(out));
    }
    let snapshots = store.dir.join("snapshots");
    for l in list.iter().filter(|l| removed_ids.contains(&l.meta.id)) {
        let dir = store.snapshot_dir(&l.meta.id);
        // Gone from listings at once; its files follow.
        let doomed = snapshots.join(format!(".deleting-{}", l.meta.id));
        std::fs::rename(&dir, &doomed).map_err(SnapshotError::io("remove", &dir))?;
        std::fs::remove_dir_all(&doomed).map_err(SnapshotError::io("remove", &doomed))?;
        out.removed.push(l.meta.clone());
    }
    // Leftovers of snapshots that never committed, and of removals cut short.
    for ent in std::fs::read_dir(&snapshots).map_err(SnapshotError::io("list", &snapshots))?.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        if name.starts_with(".partial-")
            || name.starts_with(".deleting-")
            || (!valid_id(&name) && ent.path().is_dir() && !ent.path().join("manifest").exists())
        {
            std::fs::remove_dir_all(ent.path()).map_err(SnapshotError::io("remove", &ent.path()))?;
            out.partials_removed += u64::from(name.starts_with(".partial-"));
        }
    }
    let tmp = store.dir.join("tmp");
    for ent in std::fs::read_dir(&tmp).map_err(SnapshotError::io("list", &tmp))?.flatten() {
        std::fs::remove_file(ent.path()).map_err(SnapshotError::io("remove", &ent.path()))?;
    }
    let keep: HashSet<String> = u.by_object.iter().filter(|(_, (_, refs))| *refs > 0).map(|(h, _)| hex(h)).collect();
    let (removed, freed, left) = sweep(store, &keep)?;
    out.objects_removed = removed;
    out.bytes_freed = freed;
    out.bytes_left = left;
    let objects = sys::open_dir_path(&store.dir.join("objects")).map_err(SnapshotError::io("open", &store.dir))?;
    sys::syncfs(objects.as_fd()).map_err(SnapshotError::io("flush", &store.dir))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
    let size_file = store.dir.join("objects.size");
    crate::invoker::fs::write_atomic(&size_file, format!("{left} {now}\n").as_bytes(), 0o600)
        .map_err(|e| SnapshotError::Store { path: size_file, why: e.to_string() })?;
    Ok(Some(out))
}

/// Removes every object not in `keep`: `(objects removed, bytes freed,
/// bytes left)`.
fn sweep(store: &SnapStore, keep: &HashSet<String>) -> Result<(u64, u64, u64), SnapshotError> {
    let objects = store.dir.join("objects");
    let (mut removed, mut freed, mut left) = (0, 0, 0);
    for sub in std::fs::read_dir(&objects).map_err(SnapshotError::io("list", &objects))?.flatten() {
        let prefix = sub.file_name().to_string_lossy().into_owned();
        for obj in std::fs::read_dir(sub.path()).map_err(SnapshotError::io("list", &sub.path()))?.flatten() {
            let name = format!("{prefix}{}", obj.file_name().to_string_lossy());
            let size = obj.metadata().map_or(0, |m| m.len());
            if keep.contains(&name) {
                left += size;
            } else {
                std::fs::remove_file(obj.path()).map_err(SnapshotError::io("remove", &obj.path()))?;
                removed += 1;
                freed += size;
            }
        }
        if std::fs::read_dir(sub.path()).is_ok_and(|mut d| d.next().is_none()) {
            let _ = std::fs::remove_dir(sub.path());
        }
    }
    Ok((removed, freed, left))
}

/// The bytes of objects the store holds, estimated without reading
/// manifests: the last prune's count plus what each later snapshot added.
#[must_use]
pub fn estimated_bytes(store: &SnapStore, list: &[Listed]) -> u64 {
    let (base, at) = store.counted_object_bytes().unwrap_or((0, 0));
    base + list.iter().filter(|l| l.meta.created_ns >= at).map(|l| l.meta.stats.added_bytes).sum::<u64>()
}
