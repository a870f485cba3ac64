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
//!
//! Metadata changes of those entries (a save that copies the original's
//! mode and times onto its temp file with `fchmod` and `utimensat`, a lock
//! kept fresh by touching it) become the rule's `metadata` op: under the
//! default `filesystem.metadata` policy the broker performs them on the
//! rule's entries, and nothing else is granted for them.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::event::Op;
use crate::profile::{BrokerOp, BrokeredRule};

use super::agg::{Entry, Watch};
use super::names::{temp_pattern, volatile_kind};
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
    /// Entry names (targets included) of rules with the `metadata` op:
    /// their metadata changes need no grant of their own.
    pub metadata: BTreeSet<String>,
}

fn has(e: &Entry, op: Op) -> bool {
    e.ops & (1 << op.code()) != 0
}

/// Finds the saves in directory `dir` (spelled `spelled` in the profile).
/// `sensitive(name)` says whether an entry name is itself sensitive: such
/// a name is never brokered. `glob_ok(glob)` says whether a name glob can
/// match no sensitive name: a temp pattern that could falls back to the
/// literal name, and a save whose names cannot all be kept so is dropped
/// (its needs are then placed, and refused, as any other).
pub(crate) fn split(
    dir: &str,
    spelled: &str,
    w: &Watch,
    pids: &HashSet<u32>,
    sensitive: &dyn Fn(&str) -> bool,
    glob_ok: &dyn Fn(&str) -> bool,
) -> Split {
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let pattern = |name: &str, target: &str| {
        let p = temp_pattern(name, target, pids);
        if glob_ok(&p) { p } else { name.to_owned() }
    };
    for (from, to) in &w.renames {
        let (Some(f), false) = (w.entries.get(from), sensitive(to) || sensitive(from)) else { continue };
        // A temp sibling: created by this run, named after the target or
        // with a name that changes every run.
        if !f.born || (!from.contains(to.as_str()) && volatile_kind(from, pids).is_none()) {
            continue;
        }
        let g = groups.entry(to.clone()).or_default();
        g.temps.insert(pattern(from, to));
        g.members.insert(from.clone());
        g.members.insert(to.clone());
        g.ops.insert(BrokerOp::Rename);
        if has(f, Op::Open) || has(f, Op::Create) {
            // `write` too: a temp reopened after it was created (`cat f >
            // t; echo x > t`) is an existing name, which the broker opens
            // only with `write`. It adds nothing a rename of a temp over
            // the target does not already allow.
            g.ops.extend([BrokerOp::Create, BrokerOp::Write]);
        }
        if has(f, Op::Unlink) {
            g.ops.insert(BrokerOp::Remove);
        }
        if has(f, Op::Metadata) {
            // `fchmod`/`utimensat` of the temp file: a mode-preserving save.
            g.ops.insert(BrokerOp::Metadata);
        }
    }
    for (name, e) in &w.entries {
        // Temps that were created and removed without a rename (a failed save).
        if let Some((target, g)) = groups.iter_mut().find(|(t, _)| name.starts_with(t.as_str()) && *name != **t)
            && e.born
            && !name.ends_with(".lock")
            && !sensitive(name)
        {
            let p = pattern(name, target);
            g.temps.insert(p);
            g.members.insert(name.clone());
            if has(e, Op::Unlink) {
                g.ops.insert(BrokerOp::Remove);
            }
            if has(e, Op::Open) {
                g.ops.insert(BrokerOp::Create);
            }
            if has(e, Op::Metadata) {
                g.ops.insert(BrokerOp::Metadata);
            }
        }
        let Some(target) = name.strip_suffix(".lock") else { continue };
        if target.is_empty()
            || sensitive(target)
            || sensitive(name)
            || !(groups.contains_key(target) || w.entries.contains_key(target))
        {
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
        if has(e, Op::Metadata) {
            g.ops.insert(BrokerOp::Metadata);
        }
    }
    let mut out = Split { rest: w.own, ..Split::default() };
    for (target, mut g) in groups {
        // The target's own metadata changed (an `fchmod` through a
        // descriptor that now names it, a `touch` after the save): the
        // rule covers it.
        if w.entries.get(&target).is_some_and(|e| has(e, Op::Metadata)) {
            g.ops.insert(BrokerOp::Metadata);
        }
        if g.ops.contains(&BrokerOp::Metadata) {
            out.metadata.extend(g.members.iter().cloned());
            out.metadata.insert(target.clone());
        }
        let mut names = vec![target.clone()];
        names.extend(g.temps.iter().cloned());
        names.extend(g.locks.iter().cloned());
        names.dedup();
        if !names.iter().all(|n| glob_ok(n)) {
            continue;
        }
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
