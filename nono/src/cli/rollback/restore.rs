//! `nono rollback restore`: the steps that put a snapshot back, the
//! question before overwriting what changed after the run, and the work.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};

use super::{StoreArgs, open_store, print_header, print_untracked, resolve, size_of, store_skip};
use crate::cli::common::Format;
use crate::event::{display_safe, escape_path};
use crate::snapshot::diff::{self, Comparison, When};
use crate::snapshot::restore::{self, Step};
use crate::snapshot::{self, human};

/// `p` made absolute against the current directory, `.` and `..` folded
/// lexically.
fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    let joined = if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir()?.join(p) };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Ok(out)
}

fn step_line(cmp: &Comparison, s: &Step) -> String {
    let path = escape_path(&cmp.roots[usize::from(s.root)].join(&s.path));
    let what = match s.op {
        restore::Op::Remove => "remove",
        restore::Op::MakeDir => "mkdir",
        restore::Op::Write => "write",
        restore::Op::Link => "link",
        restore::Op::Fifo => "mkfifo",
        restore::Op::Meta => "set mode/times",
    };
    let detail = match s.op {
        restore::Op::Write | restore::Op::Link => size_of(s.entry.as_ref()),
        restore::Op::Remove => size_of(s.now.as_ref()),
        _ => String::new(),
    };
    let later = if s.needs_consent() {
        if s.when == When::Later { "  [changed after the run]" } else { "  [end of run unknown]" }
    } else {
        ""
    };
    format!("  {what:<15} {}  {}{later}", display_safe(&path), display_safe(&detail))
}

pub(super) fn run(
    common: &StoreArgs,
    spec: Option<&str>,
    paths: &[PathBuf],
    dry_run: bool,
    yes: bool,
    skip_changed: bool,
) -> anyhow::Result<ExitCode> {
    let store = open_store(common)?.context("there are no snapshots yet (take one with `nono run --rollback`)")?;
    let listed = resolve(&store, common, spec)?;
    let id = listed.meta.id.clone();
    if listed.in_use {
        bail!("the run of snapshot {id} is still going: restore it once the command has ended");
    }
    let me = crate::invoker::thread_identity().map_or_else(|_| nix::unistd::geteuid().as_raw(), |t| t.fsuid);
    if listed.meta.uid != me {
        bail!("snapshot {id} was taken by uid {}, not uid {me}", listed.meta.uid);
    }
    let _lock = store.lock(false, false)?;
    let snap = store.load(&id)?;
    let mut cmp = diff::compare(&snap, store_skip(&store))?;
    let only: Vec<PathBuf> = paths.iter().map(|p| absolute(p)).collect::<anyhow::Result<_>>()?;
    for p in &only {
        if !cmp.roots.iter().any(|r| p.starts_with(&r.dir) || r.dir.starts_with(p)) {
            bail!("{} is not beneath any grant of snapshot {id}", p.display());
        }
    }
    let mut steps = restore::plan(&cmp, &only);
    let later: Vec<&Step> = steps.iter().filter(|s| s.needs_consent()).collect();
    if dry_run && common.format == Format::Json {
        let rows: Vec<_> = steps
            .iter()
            .map(|s| {
                serde_json::json!({
                    "op": s.op,
                    "path": escape_path(&cmp.roots[usize::from(s.root)].join(&s.path)),
                    "when": s.when,
                    "needs_consent": s.needs_consent(),
                    "size": s.entry.as_ref().map(|e| e.size),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_header(&listed, &cmp);
    if dry_run {
        println!("would restore ({} step(s)):", steps.len());
        for s in &steps {
            println!("{}", step_line(&cmp, s));
        }
        print_untracked(&cmp);
        return Ok(ExitCode::SUCCESS);
    }
    if steps.is_empty() {
        println!("nothing to restore: the tree is as snapshot {id} holds it");
        print_untracked(&cmp);
        return Ok(ExitCode::SUCCESS);
    }
    if !later.is_empty() && !yes {
        let why = if cmp.has_after {
            "changed after the run ended"
        } else {
            "may have changed after the run (its end was not recorded)"
        };
        println!("{} path(s) {why}; restoring would overwrite or remove them:", later.len());
        for s in later.iter().take(50) {
            println!("{}", step_line(&cmp, s));
        }
        if later.len() > 50 {
            println!("  ... and {} more", later.len() - 50);
        }
        if skip_changed {
            println!("leaving them as they are (--skip-changed)");
            steps.retain(|s| !s.needs_consent());
        } else if std::io::stdin().is_terminal() {
            print!("overwrite them? [y/N] ");
            std::io::stdout().flush()?;
            let mut answer = String::new();
            std::io::stdin().lock().read_line(&mut answer)?;
            if !matches!(answer.trim(), "y" | "Y" | "yes") {
                println!("nothing was changed");
                return Ok(ExitCode::from(1));
            }
        } else {
            bail!(
                "refusing to overwrite {} path(s) {why} without confirmation; nothing was changed (pass --yes to overwrite them, --skip-changed to restore the rest, or name PATHs)",
                later.len()
            );
        }
    }
    if !listed.meta.inconsistent.is_empty() {
        eprintln!(
            "nono: warning: snapshot {id} is inconsistent ({} path(s) changed while it was taken): they are restored as it holds them",
            listed.meta.inconsistent.len()
        );
    }
    let objects = snapshot::object::Objects::open(&store.dir)?;
    let rep = restore::execute(&mut cmp, &steps, &objects)?;
    println!(
        "restored snapshot {id}: {} file(s) written ({}{}), {} removed, {} director(ies) made, {} link(s), {} metadata fix(es)",
        rep.written,
        human(rep.written_bytes),
        if rep.reflinked > 0 { format!(", {} cloned", rep.reflinked) } else { String::new() },
        rep.removed,
        rep.dirs_made,
        rep.links,
        rep.meta
    );
    print_untracked(&cmp);
    if rep.failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("nono: error: {} path(s) could not be restored:", rep.failed.len());
    for f in &rep.failed {
        eprintln!("nono:   {}: {}", display_safe(&escape_path(&f.path)), display_safe(&f.why));
    }
    Ok(ExitCode::from(crate::cli::EXIT_NONO_ERROR))
}
