//! Rollback pieces several commands share: where the snapshot store is,
//! which write grants of a plan `nono run --rollback` snapshots, the
//! snapshot's life around the command (the hook in `cli/run`), and the
//! snapshot of an audit session (for `audit show` and the report).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::enforce::Plan;
use crate::enforce::broker::BrokerPlan;
use crate::event::{display_safe, escape_path};
use crate::profile::rights::FsRight;
use crate::record::spawn::Identity;
use crate::snapshot::{self, AuditLink, Excludes, Filter, Root, SnapStore, TakeOptions, Taken, human};

/// A snapshot covering more bytes of files than this is refused unless
/// the profile's `rollback.max_size` says otherwise.
pub const DEFAULT_MAX_BYTES: u64 = 10 << 30;
/// Older snapshots are pruned once the store holds more than this
/// (`rollback.store_max_size`).
pub const DEFAULT_STORE_MAX_BYTES: u64 = 20 << 30;

/// The snapshot store: `NONO_ROLLBACK_DIR`, else `$XDG_STATE_HOME/nono/rollback`,
/// else `~/.local/state/nono/rollback`; under sudo, in the invoking user's home.
pub fn store_dir(identity: Option<&Identity>) -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("NONO_ROLLBACK_DIR").map(PathBuf::from) {
        if !p.is_absolute() {
            bail!("NONO_ROLLBACK_DIR must be an absolute path, not {}", p.display());
        }
        return Ok(p);
    }
    if let Some(id) = identity {
        return Ok(id.home.join(".local/state/nono/rollback"));
    }
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        return Ok(state.join("nono/rollback"));
    }
    match std::env::var_os("HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        Some(home) => Ok(home.join(".local/state/nono/rollback")),
        None => bail!("cannot place the snapshot store: neither XDG_STATE_HOME nor HOME is set; set NONO_ROLLBACK_DIR"),
    }
}

const DEVICE: &str = ": a device or kernel filesystem";

/// Whether a grant with these rights can change what is beneath it.
fn writes(rights: &BTreeSet<FsRight>) -> bool {
    rights
        .iter()
        .any(|r| !matches!(r, FsRight::Execute | FsRight::ReadFile | FsRight::ReadDir | FsRight::IoctlDev | FsRight::Refer))
}

/// Temporary directories: what the command leaves there is not worth
/// keeping, and others' files live there.
fn ephemeral(path: &Path) -> bool {
    let mut tmp: Vec<PathBuf> = ["/tmp", "/var/tmp", "/dev/shm"].into_iter().map(PathBuf::from).collect();
    tmp.push(std::env::temp_dir());
    if let Some(t) = std::env::var_os("TMPDIR") {
        tmp.push(PathBuf::from(t));
    }
    tmp.iter().any(|t| t == path || t.canonicalize().is_ok_and(|c| c == path))
}

/// The roots a snapshot of `plan` covers: every write grant (a directory
/// tree, a single file, the entries of a brokered rule), nested ones
/// folded into the grant around them; and the write grants left out, with why.
#[must_use]
pub fn roots_of(plan: &Plan, broker: Option<&BrokerPlan>) -> (Vec<Root>, Vec<String>) {
    let mut roots = Vec::new();
    let mut skipped = Vec::new();
    for rule in plan.fs.iter().filter(|r| writes(&r.rights)) {
        let p = &rule.path;
        let origin = format!("{} ({})", escape_path(p), rule.origins.join(", "));
        if ["/dev", "/proc", "/sys", "/run"].iter().any(|k| p.starts_with(k)) {
            skipped.push(format!("{origin}{DEVICE}"));
            continue;
        }
        if ephemeral(p) {
            skipped.push(format!("{origin}: a temporary directory"));
            continue;
        }
        let real = match p.canonicalize() {
            Ok(r) => r,
            Err(e) => {
                skipped.push(format!("{origin}: {e}"));
                continue;
            }
        };
        if rule.file {
            match (std::fs::symlink_metadata(&real), real.parent(), real.file_name()) {
                (Ok(m), Some(dir), Some(name)) if m.is_file() => {
                    roots.push(Root { dir: dir.to_path_buf(), filter: Filter::One(name.as_bytes().to_vec()), origin });
                }
                _ => skipped.push(format!("{origin}: not a regular file")),
            }
        } else {
            roots.push(Root { dir: real, filter: Filter::All, origin });
        }
    }
    for b in broker.map(|b| b.brokered.as_slice()).unwrap_or_default() {
        let origin = format!("{} (brokered rule, {})", escape_path(&b.path), b.origin);
        match b.path.canonicalize() {
            Ok(dir) => roots.push(Root { dir, filter: Filter::Names(b.names.clone()), origin }),
            Err(e) => skipped.push(format!("{origin}: {e}")),
        }
    }
    // A root inside a whole tree that is snapshotted anyway goes.
    let trees: Vec<PathBuf> = roots.iter().filter(|r| r.filter == Filter::All).map(|r| r.dir.clone()).collect();
    let mut out: Vec<Root> = Vec::new();
    for r in roots {
        let inside = trees.iter().any(|t| r.dir.starts_with(t) && (r.dir != *t || r.filter != Filter::All));
        if !inside && !out.contains(&r) {
            out.push(r);
        }
    }
    (out, skipped)
}

/// A snapshot whose command is running. When dropped (after the command
/// has ended, on every way out of `nono run`), it walks the grants again
/// and records what the run left.
pub struct Guard {
    taken: Option<Taken>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let Some(taken) = self.taken.take() else { return };
        let id = taken.meta.id.clone();
        match taken.finish() {
            Ok(after) => eprintln!(
                "nono: rollback: the run changed {} path(s) under snapshot {id}; review: nono rollback diff {id}; undo: nono rollback restore {id}",
                after.changed
            ),
            Err(e) => eprintln!(
                "nono: warning: rollback: recording what the run left failed ({e}); snapshot {id} is intact, and a restore will ask before every change"
            ),
        }
    }
}

/// Everything the hook needs, besides the plan.
pub struct Request<'a> {
    /// `--rollback`, `--no-rollback`.
    pub flags: (bool, bool),
    pub command: &'a [OsString],
    pub identity: Option<&'a Identity>,
    /// The audit database and session of `run --audit`.
    pub audit: Option<(PathBuf, i64)>,
}

/// Takes the snapshot of `nono run --rollback` (or a profile with
/// `rollback.enabled`) before the command starts; `None` when rollback is
/// off. Fails (and the command does not run) when the snapshot cannot be
/// taken whole: the user asked for a way back.
pub fn begin(req: &Request<'_>, plan: &Plan, broker: Option<&BrokerPlan>) -> anyhow::Result<Option<Guard>> {
    let settings = plan.rollback.clone().unwrap_or_default();
    let enabled = match req.flags {
        (true, _) => true,
        (_, true) => false,
        _ => settings.enabled,
    };
    if !enabled {
        return Ok(None);
    }
    let dir = store_dir(req.identity)?;
    // The agent must not be able to alter its own undo.
    for rule in plan.fs.iter().filter(|r| writes(&r.rights)) {
        if dir.starts_with(&rule.path) || rule.path.canonicalize().is_ok_and(|p| dir.starts_with(p)) {
            bail!(
                "refusing --rollback: the snapshot store {} lies beneath the write grant {}, so the command could alter its own snapshots; set NONO_ROLLBACK_DIR to a directory outside the grants",
                dir.display(),
                rule.path.display()
            );
        }
    }
    let (roots, skipped) = roots_of(plan, broker);
    // Devices and kernel files are skipped silently (the manifest lists
    // them); a skipped directory of the user's is worth a line.
    for s in skipped.iter().filter(|s| !s.ends_with(DEVICE)) {
        eprintln!("nono: rollback: not snapshotted: {}", display_safe(s));
    }
    if roots.is_empty() {
        eprintln!("nono: rollback: the profile grants no writes worth a snapshot; nothing to roll back");
        return Ok(None);
    }
    let store = SnapStore::create(&dir)?;
    let excludes = Excludes::new(&settings.exclude, settings.default_excludes)?;
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let opts = TakeOptions {
        roots,
        skipped,
        excludes,
        max_bytes: settings.max_size.map_or(DEFAULT_MAX_BYTES, |s| s.0),
        command: req.command.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
        cwd: cwd.to_string_lossy().into_owned(),
        audit: req.audit.as_ref().map(|(db, session)| AuditLink {
            db: escape_path(&db.canonicalize().unwrap_or_else(|_| db.clone())),
            session: *session,
        }),
        threads: std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
    };
    let mut taken =
        killable(|| snapshot::take(&store, &opts)).context("taking the rollback snapshot (the command was not started)")?;
    // Here, with the forwarded signals blocked again: the thread must
    // never take one of them.
    taken.flush_in_background();
    report_taken(&store, &taken.meta);
    let limit = settings.store_max_size.map_or(DEFAULT_STORE_MAX_BYTES, |s| s.0);
    if let Ok(list) = store.list()
        && snapshot::prune::estimated_bytes(&store, &list) > limit
    {
        let policy = snapshot::prune::Policy { max_bytes: Some(limit), ..Default::default() };
        match snapshot::prune::prune(&store, &policy, true) {
            Ok(Some(p)) if !p.removed.is_empty() => eprintln!(
                "nono: rollback: the store held more than {}: pruned {} older snapshot(s) ({})",
                human(limit),
                p.removed.len(),
                human(p.bytes_freed)
            ),
            Ok(_) => {}
            Err(e) => eprintln!("nono: warning: rollback: pruning the store failed: {e}"),
        }
    }
    Ok(Some(Guard { taken: Some(taken) }))
}

/// Runs `f` with the signals `nono run` forwards unblocked on this thread:
/// until the command starts, Ctrl-C or SIGTERM ends nono, and a snapshot
/// of a large tree takes a while. Dying here leaves no snapshot (see
/// `snapshot::take`); signals already pending are delivered now.
fn killable<T>(f: impl FnOnce() -> T) -> T {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT] {
        set.add(s);
    }
    let mut old = SigSet::empty();
    let unblocked = pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&set), Some(&mut old)).is_ok();
    let out = f();
    if unblocked {
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
    out
}

/// What a new snapshot holds and leaves out, for the user.
fn report_taken(store: &SnapStore, m: &snapshot::SnapMeta) {
    let s = &m.stats;
    eprintln!(
        "nono: rollback: snapshot {} of {} grant(s): {} file(s), {} ({} read, {} unchanged since the last snapshot{}) in {:.1} s",
        m.id,
        m.roots.len(),
        s.files,
        human(s.bytes),
        s.copied_files,
        s.reused_files,
        if s.reflinked_files > 0 { format!(", {} cloned", s.reflinked_files) } else { String::new() },
        std::time::Duration::from_millis(m.took_ms).as_secs_f64()
    );
    let excluded = excluded_of(store, m);
    if !excluded.is_empty() {
        eprintln!("nono: rollback: left out of the snapshot (a restore will NOT bring these back):");
        for (path, why) in excluded.iter().take(10) {
            eprintln!("nono: rollback:   {} ({})", display_safe(path), display_safe(why));
        }
        if excluded.len() > 10 {
            eprintln!("nono: rollback:   ... and {} more (nono rollback diff {} lists them)", excluded.len() - 10, m.id);
        }
    }
    if !m.inconsistent.is_empty() {
        eprintln!("nono: warning: rollback: snapshot {} is INCONSISTENT: these changed while it was taken:", m.id);
        for p in m.inconsistent.iter().take(10) {
            eprintln!("nono: warning:   {} ({})", display_safe(&p.path), p.why);
        }
        if m.inconsistent.len() > 10 {
            eprintln!("nono: warning:   ... and {} more", m.inconsistent.len() - 10);
        }
    }
}

/// The paths a snapshot left out, with why (read from its manifest).
#[must_use]
pub fn excluded_of(store: &SnapStore, m: &snapshot::SnapMeta) -> Vec<(String, String)> {
    let Ok(snap) = store.load(&m.id) else { return Vec::new() };
    let roots: Vec<Root> = m.roots.iter().filter_map(|r| Root::from_meta(r).ok()).collect();
    snap.entries
        .iter()
        .filter(|e| !e.kind.is_tracked())
        .filter_map(|e| {
            let root = roots.get(usize::from(e.root))?;
            let why = format!("{}: {}", e.kind.name(), String::from_utf8_lossy(&e.text));
            Some((escape_path(&root.join(&e.path)), why))
        })
        .collect()
}

/// The snapshot taken for audit session `session` of database `db`, if
/// any (for `audit show` and the report).
#[must_use]
pub fn snapshot_of_session(db: &Path, session: i64) -> Option<String> {
    let dir = store_dir(crate::invoker::invoker()).ok()?;
    let store = SnapStore::existing(&dir).ok()??;
    let db = escape_path(&db.canonicalize().unwrap_or_else(|_| db.to_path_buf()));
    store
        .list()
        .ok()?
        .into_iter()
        .rev()
        .find(|l| l.meta.audit.as_ref().is_some_and(|a| a.session == session && a.db == db))
        .map(|l| l.meta.id)
}
