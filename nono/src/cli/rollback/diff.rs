//! `nono rollback diff`: a snapshot against the tree of today, with the
//! recorded writes of its audit session under each change.

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::json;

use super::{StoreArgs, listed_json, open_store, print_header, print_untracked, resolve, size_of, store_skip};
use crate::cli::common::Format;
use crate::cli::common::text::csv_line;
use crate::event::{Op, display_safe, escape_path};
use crate::snapshot::diff::{self, Change, Comparison, What, When};
use crate::snapshot::{self, Kind, Listed};

/// What the audit session recorded writing, by escaped absolute path:
/// `(command name, pid, op)`.
type Recorded = HashMap<String, Vec<(String, u32, Op)>>;

/// The recorded writes of the snapshot's audit session, if it has one and
/// its database can be read.
fn recorded(l: &Listed) -> Option<(i64, Recorded)> {
    let link = l.meta.audit.as_ref()?;
    let db = crate::event::unescape_path(&link.db).ok()?;
    let store = crate::store::Store::open_read_only(&db).ok()?;
    let mut out: Recorded = HashMap::new();
    store
        .events(link.session, |e| {
            let writes = matches!(
                e.op,
                Op::Create
                    | Op::Unlink
                    | Op::Rmdir
                    | Op::Mkdir
                    | Op::Rename
                    | Op::Link
                    | Op::Symlink
                    | Op::Truncate
                    | Op::Mknod
                    | Op::Metadata
            ) || (e.op == Op::Open && (e.access.write || e.access.create || e.access.truncate));
            if writes && e.outcome == crate::event::Outcome::Ok {
                for p in [&e.path, &e.path2].into_iter().flatten() {
                    let v = out.entry(p.clone()).or_default();
                    if v.len() < 4 && !v.iter().any(|(c, pid, op)| *c == e.comm && *pid == e.pid && *op == e.op) {
                        v.push((e.comm.clone(), e.pid, e.op));
                    }
                }
            }
            Ok(())
        })
        .ok()?;
    Some((link.session, out))
}

/// One change for people: what, the path, sizes, and what else.
fn change_line(cmp: &Comparison, c: &Change, renamed_from: Option<&Change>) -> (String, String, String) {
    let root = &cmp.roots[usize::from(c.root)];
    let path = escape_path(&root.join(&c.path));
    let (what, detail) = match (c.what, renamed_from) {
        (What::Created, Some(from)) => {
            let old = escape_path(&cmp.roots[usize::from(from.root)].join(&from.path));
            (
                "renamed",
                format!(
                    "from {}{}",
                    old,
                    if c.now.as_ref().map(|n| n.size) == from.before.as_ref().map(|b| b.size) {
                        String::new()
                    } else {
                        format!(", {} -> {}", size_of(from.before.as_ref()), size_of(c.now.as_ref()))
                    }
                ),
            )
        }
        (What::Created, None) => {
            let excluded = c.now.as_ref().is_some_and(|n| n.kind == Kind::Excluded);
            ("created", if excluded { "a tree matching an exclusion (not walked)".to_owned() } else { size_of(c.now.as_ref()) })
        }
        (What::Deleted, _) => ("deleted", size_of(c.before.as_ref())),
        (What::TypeChanged, _) => {
            ("type changed", format!("was {}, now {}", size_of(c.before.as_ref()), size_of(c.now.as_ref())))
        }
        (What::Modified, _) => {
            let mut parts = Vec::new();
            let link = c.before.as_ref().is_some_and(|b| b.kind == Kind::Symlink);
            if c.content && link {
                let target = |e: Option<&snapshot::Entry>| e.map_or_else(String::new, |e| crate::event::escape_bytes(&e.text));
                parts.push(format!("target {} -> {}", target(c.before.as_ref()), target(c.now.as_ref())));
            } else if c.content {
                parts.push(format!("{} -> {}", size_of(c.before.as_ref()), size_of(c.now.as_ref())));
            }
            if c.mode {
                let (b, n) =
                    (c.before.as_ref().map_or(0, snapshot::Entry::perm), c.now.as_ref().map_or(0, snapshot::Entry::perm));
                parts.push(format!("mode {b:o} -> {n:o}"));
            }
            if c.times && !c.content {
                parts.push("times".to_owned());
            }
            ("modified", parts.join(", "))
        }
    };
    (what.to_owned(), path, detail)
}

pub(super) fn show(common: &StoreArgs, spec: Option<&str>, all: bool) -> anyhow::Result<ExitCode> {
    let store = open_store(common)?.context("there are no snapshots yet (take one with `nono run --rollback`)")?;
    let listed = resolve(&store, common, spec)?;
    let snap = store.load(&listed.meta.id)?;
    let cmp = diff::compare(&snap, store_skip(&store))?;
    let renames = diff::renames(&cmp.changes);
    let from_of: HashMap<usize, usize> = renames.pairs.iter().copied().collect();
    let paired: HashSet<usize> = renames.pairs.iter().map(|(_, d)| *d).collect();
    let rec = recorded(&listed);
    let shown: Vec<usize> = (0..cmp.changes.len())
        .filter(|i| !paired.contains(i) && !renames.hidden.contains(i) && (all || !cmp.changes[*i].is_dir_times_only()))
        .collect();
    let by = |path: &str| -> Vec<String> {
        rec.as_ref()
            .and_then(|(_, r)| r.get(path))
            .map(|v| v.iter().map(|(c, pid, op)| format!("{}[{pid}] {op}", display_safe(c))).collect())
            .unwrap_or_default()
    };
    if common.format == Format::Json {
        let changes: Vec<_> = shown
            .iter()
            .map(|&i| {
                let c = &cmp.changes[i];
                let from = from_of.get(&i).map(|&d| &cmp.changes[d]);
                let (what, path, detail) = change_line(&cmp, c, from);
                json!({
                    "what": what.replace(' ', "_"),
                    "path": path,
                    "renamed_from": from.map(|f| escape_path(&cmp.roots[usize::from(f.root)].join(&f.path))),
                    "before": c.before.as_ref().map(|e| json!({"kind": e.kind, "size": e.size, "mode": format!("{:o}", e.perm())})),
                    "now": c.now.as_ref().map(|e| json!({"kind": e.kind, "size": e.size, "mode": format!("{:o}", e.perm())})),
                    "content": c.content,
                    "mode": c.mode,
                    "times": c.times,
                    "when": c.when,
                    "detail": detail,
                    "recorded": by(&path),
                })
            })
            .collect();
        let untracked: Vec<_> = cmp
            .untracked
            .iter()
            .map(|u| {
                json!({
                    "path": escape_path(&cmp.roots[usize::from(u.root)].join(&u.entry.path)),
                    "kind": u.entry.kind,
                    "why": String::from_utf8_lossy(&u.entry.text),
                    "state": u.state,
                })
            })
            .collect();
        let out = json!({
            "snapshot": listed_json(&listed),
            "changes": changes,
            "not_in_snapshot": untracked,
            "audit_session": rec.as_ref().map(|(s, _)| s),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    if common.format == Format::Csv {
        println!("what,path,detail,when,recorded");
        for &i in &shown {
            let c = &cmp.changes[i];
            let (what, path, detail) = change_line(&cmp, c, from_of.get(&i).map(|&d| &cmp.changes[d]));
            let when = match c.when {
                When::Run => "run",
                When::Later => "after the run",
                When::Unknown => "unknown",
            };
            let fields = [what, path.clone(), detail, when.to_owned(), by(&path).join("; ")];
            println!("{}", csv_line(&fields.map(|f| display_safe(&f).into_owned())));
        }
        return Ok(ExitCode::SUCCESS);
    }
    print_header(&listed, &cmp);
    if shown.is_empty() {
        println!("no changes");
    }
    let mut unexplained = 0;
    for &i in &shown {
        let c = &cmp.changes[i];
        let (what, path, detail) = change_line(&cmp, c, from_of.get(&i).map(|&d| &cmp.changes[d]));
        let later = match c.when {
            When::Later => "  [after the run]",
            _ => "",
        };
        println!("  {what:<12} {}  {}{later}", display_safe(&path), display_safe(&detail));
        if rec.is_some() {
            let who = by(&path);
            if who.is_empty() {
                unexplained += u64::from(c.what != What::Modified || c.content || c.mode);
            } else {
                println!("  {:<12}   recorded: {}", "", who.join(", "));
            }
        }
    }
    let hidden = cmp.changes.iter().filter(|c| c.is_dir_times_only()).count();
    if !all && hidden > 0 {
        println!("  ({hidden} director(ies) whose times alone changed are not shown; --all shows them)");
    }
    if let Some((session, _)) = &rec {
        println!("recorded writes from audit session {session} are shown under each change");
        if unexplained > 0 {
            println!(
                "{unexplained} change(s) have no recorded write: made after the run, by something outside it, or lost by the recorder"
            );
        }
    }
    print_untracked(&cmp);
    Ok(ExitCode::SUCCESS)
}
