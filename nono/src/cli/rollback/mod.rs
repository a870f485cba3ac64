//! `nono rollback list|diff|restore|prune`: the snapshots `nono run
//! --rollback` took, what changed since, putting them back, and removing
//! old ones. The work is `crate::snapshot`'s; this module parses, asks and
//! prints.

mod diff;
mod restore;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use serde_json::json;

use crate::cli::common::{self, Format, rollback::store_dir};
use crate::event::{display_safe, escape_path};
use crate::record::spawn::Identity;
use crate::snapshot::diff::{Comparison, UntrackedState};
use crate::snapshot::{self, Kind, Listed, SnapStore, human};

/// Options every subcommand takes.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// The snapshot store (default: `~/.local/state/nono/rollback`, or under `$XDG_STATE_HOME`).
    #[arg(long, env = "NONO_ROLLBACK_DIR", value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Audit database, to find a snapshot by its audit session (`run --audit --rollback`).
    #[arg(long, env = "NONO_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, clap::Subcommand)]
pub enum RollbackCommand {
    /// List the snapshots: session, time, grants, files and bytes.
    List {
        #[command(flatten)]
        common: StoreArgs,
    },
    /// What changed since a snapshot: created, deleted, modified and renamed, with sizes.
    Diff {
        /// A snapshot id, `last` (the default), or an audit session number.
        session: Option<String>,
        /// Also list directories whose times alone changed.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        common: StoreArgs,
    },
    /// Put the tree back as the snapshot holds it; remove what the run created.
    Restore {
        /// A snapshot id, `last`, or an audit session number.
        session: Option<String>,
        /// Restore only these paths (and what is beneath them).
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Show what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Overwrite what changed after the run ended without asking.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Leave what changed after the run ended as it is; restore the rest.
        #[arg(long, conflicts_with = "yes")]
        skip_changed: bool,
        #[command(flatten)]
        common: StoreArgs,
    },
    /// Remove old snapshots and the content only they held. With no
    /// criterion, only what interrupted snapshots left behind goes.
    Prune {
        /// Remove these snapshots.
        ids: Vec<String>,
        /// Keep only the newest N.
        #[arg(long, value_name = "N")]
        keep: Option<usize>,
        /// Remove snapshots older than this (30m, 12h, 7d, 2w).
        #[arg(long, value_name = "AGE")]
        older_than: Option<String>,
        /// Remove the oldest until the store holds at most this (500M, 10G).
        #[arg(long, value_name = "SIZE", value_parser = snapshot::parse_size)]
        max_size: Option<u64>,
        /// Remove every snapshot.
        #[arg(long)]
        all: bool,
        /// Show what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        common: StoreArgs,
    },
}

pub fn run(cmd: RollbackCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RollbackCommand::List { common } => list(&common),
        RollbackCommand::Diff { session, all, common } => diff::show(&common, session.as_deref(), all),
        RollbackCommand::Restore { session, paths, dry_run, yes, skip_changed, common } => {
            restore::run(&common, session.as_deref(), &paths, dry_run, yes, skip_changed)
        }
        RollbackCommand::Prune { ids, keep, older_than, max_size, all, dry_run, common } => {
            let before_ns = older_than.as_deref().map(age_ns).transpose()?.map(|age| now_ns() - age);
            let policy = snapshot::prune::Policy { keep, before_ns, max_bytes: max_size, ids, all, dry_run };
            prune(&common, &policy)
        }
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

/// `30m`, `12h`, `7d`, `2w` as nanoseconds.
fn age_ns(s: &str) -> anyhow::Result<i64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 = num.parse().with_context(|| format!("bad age {s:?}: expected a number and a unit, like 12h or 7d"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => bail!("bad age {s:?}: the unit must be s, m, h, d or w"),
    };
    Ok(n.saturating_mul(secs).saturating_mul(1_000_000_000))
}

fn store_path(common: &StoreArgs) -> anyhow::Result<PathBuf> {
    match &common.store {
        Some(p) if !p.is_absolute() => bail!("--store must be an absolute path"),
        Some(p) => Ok(p.clone()),
        None => store_dir(Identity::from_sudo()?.as_ref()),
    }
}

fn open_store(common: &StoreArgs) -> anyhow::Result<Option<SnapStore>> {
    Ok(SnapStore::existing(&store_path(common)?)?)
}

fn when_text(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .map_or_else(|_| ns.to_string(), |t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
}

/// The snapshot `spec` names: an id, `last`, a unique id prefix, or the
/// number of the audit session it was taken for.
fn resolve(store: &SnapStore, common: &StoreArgs, spec: Option<&str>) -> anyhow::Result<Listed> {
    let list = store.list()?;
    let spec = spec.unwrap_or("last");
    if spec == "last" || spec == "latest" {
        return list.into_iter().next_back().context("there are no snapshots yet (take one with `nono run --rollback`)");
    }
    if !spec.is_empty() && spec.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = spec.parse().context("bad session number")?;
        let db = common::db_path(common.db.as_deref(), Identity::from_sudo()?.as_ref())?;
        let db = escape_path(&db.canonicalize().unwrap_or(db));
        return list
            .into_iter()
            .rev()
            .find(|l| l.meta.audit.as_ref().is_some_and(|a| a.session == n && a.db == db))
            .with_context(|| format!("no snapshot belongs to audit session {n} of {db} (was it run with --audit --rollback?)"));
    }
    let matching: Vec<Listed> = list.into_iter().filter(|l| l.meta.id.starts_with(spec)).collect();
    match matching.len() {
        1 => Ok(matching.into_iter().next().context("one")?),
        0 => Err(snapshot::SnapshotError::NotFound(spec.to_owned()).into()),
        n => bail!("{spec:?} matches {n} snapshots; give more of the id"),
    }
}

fn state_text(l: &Listed) -> String {
    let mut s = match (&l.after, l.in_use) {
        (Some(_), _) => "ended".to_owned(),
        (None, true) => "running".to_owned(),
        (None, false) => "end not recorded".to_owned(),
    };
    if !l.meta.inconsistent.is_empty() {
        let _ = write!(s, ", inconsistent ({})", l.meta.inconsistent.len());
    }
    s
}

fn list(common: &StoreArgs) -> anyhow::Result<ExitCode> {
    let list = match open_store(common)? {
        Some(store) => store.list()?,
        None => Vec::new(),
    };
    match common.format {
        Format::Json => {
            let rows: Vec<_> = list.iter().map(listed_json).collect();
            println!("{}", serde_json::to_string_pretty(&rows)?);
        }
        Format::Csv => {
            println!("id,taken,audit_session,grants,files,bytes,changed,state,command");
            for l in &list {
                println!(
                    "{},{},{},{},{},{},{},{},{}",
                    l.meta.id,
                    when_text(l.meta.created_ns),
                    l.meta.audit.as_ref().map_or(String::new(), |a| a.session.to_string()),
                    l.meta.roots.len(),
                    l.meta.stats.files,
                    l.meta.stats.bytes,
                    l.after.as_ref().map_or(String::new(), |a| a.changed.to_string()),
                    common::text::csv_field(&state_text(l)),
                    common::text::csv_field(&display_safe(&common::shell_words(&l.meta.command))),
                );
            }
        }
        Format::Table => {
            if list.is_empty() {
                println!("no snapshots (take one with `nono run --rollback ...`)");
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<22}  {:<19}  {:>7}  {:>6}  {:>8}  {:>10}  {:>7}  {:<16}  COMMAND",
                "ID", "TAKEN (UTC)", "SESSION", "GRANTS", "FILES", "SIZE", "CHANGED", "STATE"
            );
            for l in &list {
                println!(
                    "{:<22}  {:<19}  {:>7}  {:>6}  {:>8}  {:>10}  {:>7}  {:<16}  {}",
                    l.meta.id,
                    when_text(l.meta.created_ns),
                    l.meta.audit.as_ref().map_or_else(|| "-".to_owned(), |a| a.session.to_string()),
                    l.meta.roots.len(),
                    l.meta.stats.files,
                    human(l.meta.stats.bytes),
                    l.after.as_ref().map_or_else(|| "-".to_owned(), |a| a.changed.to_string()),
                    state_text(l),
                    display_safe(&common::shell_words(&l.meta.command)),
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn listed_json(l: &Listed) -> serde_json::Value {
    json!({
        "id": l.meta.id,
        "taken": when_text(l.meta.created_ns),
        "taken_ns": l.meta.created_ns,
        "audit": l.meta.audit,
        "command": l.meta.command,
        "cwd": l.meta.cwd,
        "roots": l.meta.roots,
        "exclude": l.meta.exclude,
        "skipped": l.meta.skipped,
        "stats": l.meta.stats,
        "inconsistent": l.meta.inconsistent,
        "ended": l.after.as_ref().map(|a| when_text(a.ended_ns)),
        "changed": l.after.as_ref().map(|a| a.changed),
        "running": l.in_use,
    })
}

fn size_of(e: Option<&snapshot::Entry>) -> String {
    match e {
        Some(e) if e.kind == Kind::File => human(e.size),
        Some(e) if e.kind == Kind::Symlink => format!("-> {}", crate::event::escape_bytes(&e.text)),
        Some(e) => e.kind.name().to_owned(),
        None => "-".to_owned(),
    }
}

fn print_header(l: &Listed, cmp: &Comparison) {
    let m = &l.meta;
    let session = m.audit.as_ref().map(|a| format!(", audit session {}", a.session)).unwrap_or_default();
    println!(
        "snapshot {} taken {} UTC before: {}{session}",
        m.id,
        when_text(m.created_ns),
        display_safe(&common::shell_words(&m.command))
    );
    for r in &cmp.roots {
        println!("  grant {}", display_safe(&r.origin));
    }
    match &l.after {
        Some(a) => println!("the run ended {} UTC; [after the run] marks what changed since", when_text(a.ended_ns)),
        None if l.in_use => println!("the run is still going"),
        None => println!("the end of the run was not recorded (nono was killed?): every change may be the run's or later"),
    }
    if !m.inconsistent.is_empty() {
        println!("INCONSISTENT: {} path(s) changed while the snapshot was taken:", m.inconsistent.len());
        for p in m.inconsistent.iter().take(20) {
            println!("  {} ({})", display_safe(&p.path), p.why);
        }
    }
}

fn print_untracked(cmp: &Comparison) {
    if cmp.untracked.is_empty() {
        return;
    }
    println!("not in the snapshot (never restored):");
    for u in &cmp.untracked {
        let path = escape_path(&cmp.roots[usize::from(u.root)].join(&u.entry.path));
        let state = match u.state {
            UntrackedState::Same => "unchanged itself; what is beneath it is not tracked",
            UntrackedState::Changed => "CHANGED since the snapshot",
            UntrackedState::Removed => "REMOVED since the snapshot; cannot be restored",
        };
        println!(
            "  {} ({}: {}): {state}",
            display_safe(&path),
            u.entry.kind.name(),
            display_safe(&String::from_utf8_lossy(&u.entry.text))
        );
    }
}

/// The store's own directory, never walked.
fn store_skip(store: &SnapStore) -> Vec<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(&store.dir).map(|m| vec![(m.dev(), m.ino())]).unwrap_or_default()
}

fn prune(common: &StoreArgs, policy: &snapshot::prune::Policy) -> anyhow::Result<ExitCode> {
    let Some(store) = open_store(common)? else {
        println!("no snapshots");
        return Ok(ExitCode::SUCCESS);
    };
    let p = snapshot::prune::prune(&store, policy, false)?.context("the store is busy")?;
    let verb = if policy.dry_run { "would remove" } else { "removed" };
    if common.format == Format::Json {
        let out = json!({
            "dry_run": policy.dry_run,
            "removed": p.removed.iter().map(|m| &m.id).collect::<Vec<_>>(),
            "busy": p.busy,
            "objects_removed": p.objects_removed,
            "bytes_freed": p.bytes_freed,
            "bytes_left": p.bytes_left,
            "partials_removed": p.partials_removed,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    for m in &p.removed {
        println!("{verb} {} (taken {} UTC: {})", m.id, when_text(m.created_ns), display_safe(&common::shell_words(&m.command)));
    }
    for id in &p.busy {
        println!("kept {id}: its run is still going");
    }
    println!(
        "{verb} {} snapshot(s) and {} object(s), {} freed; {} of objects left{}",
        p.removed.len(),
        p.objects_removed,
        human(p.bytes_freed),
        human(p.bytes_left),
        if p.partials_removed > 0 {
            format!("; {} interrupted snapshot(s) cleaned up", p.partials_removed)
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}
