//! Atomic saves and locks beside secrets become brokered rules.
//!
//! An agent that saves `~/.app.json` atomically creates a temp sibling
//! with a random name, renames it over the file, and may take a lock
//! (`~/.app.json.lock`, a directory or a file). In Landlock terms that
//! needs `make_reg`, `remove_file` (and `make_dir`, `remove_dir`) on
//! `$HOME`, which cannot be granted: it holds `~/.ssh` and `~/.bashrc`.
//! Exact rules on the temp names would never match again. So, for a
//! directory the learner cannot grant, the entries that take part in such
//! a save (the target, its temp siblings, its lock) become one
//! `filesystem.brokered` rule: nono's supervisor performs exactly those
//! operations on exactly those names (see `enforce::broker`). Every other
//! need on the directory is placed (and refused) as before.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::event::Op;
use crate::profile::{BrokerOp, BrokeredRule};

use super::agg::{Entry, Watch};
use super::generalise::volatile_kind;
use super::rights::Mask;

/// One save: a target file and the names that serve it.
#[derive(Debug, Default)]
struct Group {
    temps: BTreeSet<String>,
    locks: BTreeSet<String>,
    ops: BTreeSet<BrokerOp>,
    /// Concrete entry names the group explains.
    members: BTreeSet<String>,
}

/// What a watched directory's entries yield.
#[derive(Debug, Default)]
pub(crate) struct Split {
    /// `(target name, rule)` for each save found.
    pub rules: Vec<(String, BrokeredRule)>,
    /// The directory's rights minus what the brokered rules take over.
    pub rest: Mask,
    /// Entry names whose own (file) needs the brokered rules take over.
    pub members: BTreeSet<String>,
}

fn has(e: &Entry, op: Op) -> bool {
    e.ops & (1 << op.code()) != 0
}

/// Finds the saves in directory `dir` (spelled `spelled` in the profile).
/// `sensitive(name)` says whether an entry name is itself sensitive: such
/// a name is never brokered.
pub(crate) fn split(dir: &str, spelled: &str, w: &Watch, pids: &HashSet<u32>, sensitive: &dyn Fn(&str) -> bool) -> Split {
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for (from, to) in &w.renames {
        let (Some(f), false) = (w.entries.get(from), sensitive(to)) else { continue };
        // A temp sibling: created by this run, named after the target or
        // with a name that changes every run.
        if !f.born || (!from.contains(to.as_str()) && volatile_kind(from, pids).is_none()) {
            continue;
        }
        let g = groups.entry(to.clone()).or_default();
        g.temps.insert(pattern(from, pids));
        g.members.insert(from.clone());
        g.members.insert(to.clone());
        g.ops.insert(BrokerOp::Rename);
        if has(f, Op::Open) || has(f, Op::Create) {
            g.ops.insert(BrokerOp::Create);
        }
        if has(f, Op::Unlink) {
            g.ops.insert(BrokerOp::Remove);
        }
    }
    for (name, e) in &w.entries {
        // Temps that were created and removed without a rename (a failed save).
        if let Some((target, g)) = groups.iter_mut().find(|(t, _)| name.starts_with(t.as_str()) && *name != **t)
            && e.born
            && !name.ends_with(".lock")
        {
            let _ = target;
            g.temps.insert(pattern(name, pids));
            g.members.insert(name.clone());
            if has(e, Op::Unlink) {
                g.ops.insert(BrokerOp::Remove);
            }
            if has(e, Op::Open) {
                g.ops.insert(BrokerOp::Create);
            }
        }
        let Some(target) = name.strip_suffix(".lock") else { continue };
        if target.is_empty() || sensitive(target) || !(groups.contains_key(target) || w.entries.contains_key(target)) {
            continue;
        }
        let g = groups.entry(target.to_owned()).or_default();
        g.locks.insert(name.clone());
        g.members.insert(name.clone());
        if has(e, Op::Mkdir) {
            // Lock directories are kept fresh by touching them.
            g.ops.extend([BrokerOp::Mkdir, BrokerOp::Metadata]);
        }
        if has(e, Op::Rmdir) {
            g.ops.insert(BrokerOp::Rmdir);
        }
        if has(e, Op::Open) {
            g.ops.insert(BrokerOp::Create);
        }
        if has(e, Op::Unlink) {
            g.ops.insert(BrokerOp::Remove);
        }
    }
    let mut out = Split { rest: w.own, ..Split::default() };
    for (target, g) in groups {
        let mut names = vec![target.clone()];
        names.extend(g.temps.iter().cloned());
        names.extend(g.locks.iter().cloned());
        names.dedup();
        let what = match (g.temps.is_empty(), g.locks.is_empty()) {
            (false, false) => "atomic save with a lock",
            (false, true) => "atomic save",
            _ => "lock",
        };
        let reason = format!("{what} of {target} beside secrets: performed by nono's supervisor (`{dir}` cannot be granted)");
        out.members.extend(g.members);
        out.rules.push((target, BrokeredRule { dir: spelled.to_owned(), names, ops: g.ops, reason: Some(reason) }));
    }
    for (name, e) in &w.entries {
        if !out.members.contains(name) {
            out.rest = out.rest.union(e.mask);
        }
    }
    out
}

/// A glob for a temp name: each component that changes every run (a pid,
/// a random or hex suffix, a timestamp) becomes `*`, runs of them one `*`.
/// `.app.json.tmp.4242.1732912345678` -> `.app.json.tmp.*`.
pub(crate) fn pattern(name: &str, pids: &HashSet<u32>) -> String {
    let mut out = String::new();
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        if token.is_empty() {
            return;
        }
        let volatile = volatile_kind(token, pids).is_some() || (token.len() >= 3 && token.bytes().all(|b| b.is_ascii_digit()));
        if volatile {
            // `x.*.*` says no more than `x.*`.
            let trimmed = out.trim_end_matches(['.', '-', '_', '+', '~']);
            if trimmed.ends_with('*') {
                out.truncate(trimmed.len());
            } else {
                out.push('*');
            }
        } else {
            out.push_str(token);
        }
        token.clear();
    };
    for c in name.chars() {
        if matches!(c, '.' | '-' | '_' | '+' | '~') {
            flush(&mut token, &mut out);
            out.push(c);
        } else {
            token.push(c);
        }
    }
    flush(&mut token, &mut out);
    // A trailing separator after a collapsed `*` says nothing either.
    if out.ends_with('*') {
        return out;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_become_globs() {
        let pids = HashSet::from([4242]);
        assert_eq!(pattern(".claude.json.tmp.4242.1732912345678", &pids), ".claude.json.tmp.*");
        assert_eq!(pattern(".app.json.k2j3x9ab4q", &pids), ".app.json.*");
        assert_eq!(pattern("config.json.tmp", &pids), "config.json.tmp");
    }
}
