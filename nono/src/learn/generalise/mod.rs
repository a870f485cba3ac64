//! Second stage of synthesis: per-path rights (aggregated by
//! [`super::Synthesiser`]) become a short list of rules.
//!
//! Order of decisions for one path and its rights:
//! 1. inside a sensitive path (and not allowed): the rights that would
//!    expose it are refused and reported (a secret: all but listing; a
//!    persistence file: all but reading, see `sensitive`);
//! 2. `/dev/pts/<n>` -> `$TTY`; `/proc/...` reads -> `/proc`;
//! 3. under a collapse root (system tree for reads only, `/sys` for reads,
//!    the workdir, a tool cache, a temp dir): the root gets the rights;
//! 4. otherwise the exact path, moved up past a volatile component (pid,
//!    temp suffix, hash, version) and past anything created during the run;
//! 5. the chosen directory is narrowed back towards the path while a right
//!    it needs would expose a sensitive path it contains; a directory that
//!    itself contains one keeps only the rights that expose nothing (listing,
//!    and reading when only persistence files are beneath), the rest is
//!    refused and reported;
//! 6. rules made redundant by a broader rule on an ancestor are dropped;
//! 7. every rule is checked once more against the sensitive list (a
//!    violation is stripped and warned about: it would be a bug, and `nono
//!    run` would refuse the profile), and the shared `/tmp` is spelled
//!    `$TMPDIR`. The harmless devices and `$TTY` that every learned profile
//!    carries are added by `to_profile` ([`device_rules`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::event::Op;

mod finish;

pub(crate) use self::finish::device_rules;

use super::agg::PathAgg;
use super::layout::{Layout, RootKind};
pub(crate) use super::names::volatile_kind;
use super::paths::{child_toward, components, is_at_or_beneath, parent};
use super::rights::{Kind, Mask, metadata_rights};
use super::sensitive::{Class, Reach, Sensitive, class_mask};
use super::{Explanation, SensitiveHit};
use crate::profile::BrokeredRule;
use crate::profile::rights::{FsRight, FsRule};

/// Most example paths kept per explanation.
const MAX_EXAMPLES: usize = 8;

/// The command's own terminal, resolved by `nono run` at run time.
pub(crate) const TTY: &str = "$TTY";

struct ReasonAcc {
    label: &'static str,
    from: Vec<String>,
    count: usize,
}

struct RuleAcc {
    mask: Mask,
    file: bool,
    /// Keyed by the reason's text.
    reasons: BTreeMap<String, ReasonAcc>,
    /// Rights added for the steady state, not seen.
    anticipated: Mask,
}

/// What generalisation returns to the synthesiser.
pub(crate) struct Built {
    pub rules: Vec<FsRule>,
    pub brokered: Vec<BrokeredRule>,
    pub sensitive: Vec<SensitiveHit>,
    pub explanations: Vec<Explanation>,
    pub warnings: Vec<String>,
}

const CREATED: &str = "created or replaced during the run (temp file, editor save, lock file, \
rename over): Landlock binds a file rule to the inode that exists when the sandbox starts, \
so the parent directory gets the rights";
const PROC: &str = "per-process /proc entries change every run, and a rule on /proc/self \
would cover only the first process: reads collapse to /proc (Landlock's ptrace restriction \
still hides other processes' environ, mem and fds)";

struct Builder<'a> {
    layout: &'a Layout,
    paths: &'a HashMap<String, PathAgg>,
    pids: &'a HashSet<u32>,
    rules: BTreeMap<String, RuleAcc>,
    hits: BTreeMap<String, SensitiveHit>,
    warnings: Vec<String>,
    warned: BTreeSet<String>,
    /// `forbidden_above` answers per directory; most placements share a few.
    contains: HashMap<String, (Mask, Option<Sensitive>)>,
    /// Targets of brokered saves: kept as exact file rules, never moved up.
    brokered_targets: HashSet<String>,
    /// Entries of brokered rules with the `metadata` op.
    brokered_metadata: HashSet<String>,
}

pub(crate) fn build(layout: &Layout, paths: &HashMap<String, PathAgg>, pids: &HashSet<u32>, anticipate: bool) -> Built {
    let mut b = Builder {
        layout,
        paths,
        pids,
        rules: BTreeMap::new(),
        hits: BTreeMap::new(),
        warnings: Vec::new(),
        warned: BTreeSet::new(),
        contains: HashMap::new(),
        brokered_targets: HashSet::new(),
        brokered_metadata: HashSet::new(),
    };
    let (brokered, dir_masks, taken, explanations) = b.brokered();
    let mut keys: Vec<&String> = paths.keys().collect();
    keys.sort();
    for p in keys {
        let Some(agg) = paths.get(p) else { continue };
        if p == "/dev/ptmx" {
            b.warnings.push(
                "the command opened new pseudo-terminals (/dev/ptmx): profiles grant only the command's own terminal \
($TTY), so opening another one by its /dev/pts path is refused; glibc's openpty does not need that"
                    .to_owned(),
            );
        }
        let file_mask = if taken.contains(p.as_str()) { Mask::EMPTY } else { agg.file };
        let dir_mask = dir_masks.get(p).copied().unwrap_or(agg.dir);
        let (file_mask, dir_mask) = match agg.meta {
            Some(kind) if !b.brokered_metadata.contains(p.as_str()) => metadata_rights(kind, file_mask, dir_mask),
            _ => (file_mask, dir_mask),
        };
        if file_mask.is_empty() && dir_mask.is_empty() {
            continue;
        }
        b.note_workdir_dotenv(p);
        let forbid = layout.sensitive.forbidden_within(p);
        let refused = file_mask.union(dir_mask).intersect(forbid);
        if !refused.is_empty()
            && let Some(s) =
                layout.sensitive.all_inside(p).find(|s| !refused.intersect(class_mask(s.class, Reach::Within)).is_empty())
        {
            let why = match s.class {
                Class::Secret => {
                    format!("inside sensitive {} ({}); not granted unless listed in allow_sensitive", s.path, s.why)
                }
                Class::Persistence => format!("{}; modifying it runs code outside the sandbox", s.why),
            };
            let (matched, class) = (s.path.clone(), s.class);
            b.hit(p, &matched, class, refused, agg, why);
            // A lock or temp file of the run beside a persistence file:
            // what is left (reading it) would name a file that is gone.
            if agg.born && !is_at_or_beneath(p, &matched) {
                continue;
            }
        }
        let (file_mask, dir_mask) = (file_mask.minus(forbid), dir_mask.minus(forbid));
        if !file_mask.is_empty() {
            b.place(p, file_mask, Kind::File, agg);
        }
        if !dir_mask.is_empty() {
            b.place(p, dir_mask, Kind::Dir, agg);
        }
    }
    if anticipate {
        b.anticipate();
    }
    b.drop_covered();
    b.warn_workdir_git();
    b.verify();
    let mut built = b.finish();
    built.brokered = brokered;
    built.explanations.extend(explanations);
    built
}

impl Builder<'_> {
    /// Saves and locks in directories that cannot be granted become
    /// brokered rules (see `brokered`). Returns the rules, each such
    /// directory's remaining rights, the paths whose own needs the rules
    /// take over, and explanations.
    fn brokered(&mut self) -> (Vec<BrokeredRule>, HashMap<String, Mask>, HashSet<String>, Vec<Explanation>) {
        let (mut rules, mut masks, mut taken, mut explanations) = (Vec::new(), HashMap::new(), HashSet::new(), Vec::new());
        let layout = self.layout;
        for (dir, agg) in self.paths {
            let Some(w) = agg.watch.as_deref() else { continue };
            if w.entries.is_empty() || agg.dir.is_empty() || layout.sensitive.contained_in(dir).is_none() {
                continue;
            }
            let join = |name: &str| if dir == "/" { format!("/{name}") } else { format!("{dir}/{name}") };
            let sensitive = |name: &str| layout.sensitive.inside(&join(name)).is_some();
            // A generalised name must not be able to match a sensitive one.
            let glob_ok = |glob: &str| layout.sensitive.glob_hit(dir, glob).is_none();
            let found = super::brokered::split(dir, &layout.vars.express(dir), w, self.pids, &sensitive, &glob_ok);
            if found.rules.is_empty() {
                continue;
            }
            masks.insert(dir.clone(), found.rest);
            let targets: HashSet<&str> = found.rules.iter().map(|(t, _)| t.as_str()).collect();
            self.brokered_metadata.extend(found.metadata.iter().map(|m| join(m)));
            for m in &found.members {
                if targets.contains(m.as_str()) {
                    self.brokered_targets.insert(join(m));
                } else {
                    taken.insert(join(m));
                }
            }
            for (target, rule) in found.rules {
                explanations.push(Explanation {
                    rule_path: format!("brokered {}/{target}", rule.dir),
                    from: rule.names.clone(),
                    paths: rule.names.len(),
                    reason: rule.reason.clone().unwrap_or_default(),
                });
                rules.push(rule);
            }
        }
        rules.sort_by(|a: &BrokeredRule, b: &BrokeredRule| (&a.dir, &a.names).cmp(&(&b.dir, &b.names)));
        (rules, masks, taken, explanations)
    }

    fn place(&mut self, p: &str, mask: Mask, kind: Kind, agg: &PathAgg) {
        if let Some(n) = p.strip_prefix("/dev/pts/")
            && !n.is_empty()
            && n.bytes().all(|c| c.is_ascii_digit())
        {
            // Other terminals of the user are in /dev/pts too: only the
            // command's own is granted, resolved by `nono run` from fds 0-2.
            let text = "the command's terminal: pseudo-terminal numbers change every run, and /dev/pts holds the \
user's other terminals: granted as $TTY, the terminal the command runs in";
            self.add_rule(TTY, mask.intersect(Mask::file_rights()), true, "tty", text.to_owned(), p);
            return;
        }
        if is_at_or_beneath(p, "/proc") {
            self.place_proc(p, mask, kind, agg);
            return;
        }
        let layout = self.layout;
        let Some(root) = layout.root_for(p) else {
            self.place_exact(p, mask, kind, agg);
            return;
        };
        let root_path = root.path.as_str();
        let (label, text, collapse, rest) = match root.kind {
            RootKind::System => (
                "system-tree",
                format!(
                    "read-only system tree {root_path}: reads collapse to its root with the whole read \
bundle (exec also opens loaders and interpreters that are not all recorded)"
                ),
                // Widened to the whole read bundle in `place_at` when the
                // rule lands on a directory, see the text.
                Some(mask.intersect(Mask::read_class())),
                mask.minus(Mask::read_class()),
            ),
            RootKind::Sys => (
                "sysfs",
                "/sys is read-only kernel state: reads collapse to /sys".to_owned(),
                Some(mask.intersect(Mask::read_class())),
                mask.minus(Mask::read_class()),
            ),
            RootKind::Workdir => {
                ("workdir", "inside the workdir: everything collapses to the workdir".to_owned(), Some(mask), Mask::EMPTY)
            }
            RootKind::Cache => ("tool-cache", format!("tool cache {root_path}: collapses to its root"), Some(mask), Mask::EMPTY),
            RootKind::Temp => ("temp-dir", format!("temp dir {root_path}: collapses to its root"), Some(mask), Mask::EMPTY),
        };
        if let Some(m) = collapse.filter(|m| !m.is_empty()) {
            self.place_at(root_path, p, m, kind, label, text, agg, false);
        }
        if !rest.is_empty() {
            // Writes in a read-only tree: never widened.
            self.place_exact(p, rest, kind, agg);
        }
    }

    fn place_proc(&mut self, p: &str, mask: Mask, kind: Kind, agg: &PathAgg) {
        let read = mask.intersect(Mask::read_class());
        if !read.is_empty() {
            self.place_at("/proc", p, read, kind, "procfs", PROC.to_owned(), agg, false);
        }
        let rest = mask.minus(Mask::read_class());
        if rest.is_empty() {
            return;
        }
        let target = self.proc_self(p).unwrap_or_else(|| p.to_owned());
        let text = format!(
            "write under /proc kept exact ({target}); /proc/<traced pid> is spelled /proc/self, \
which covers only the process the sandbox starts"
        );
        self.add_rule(&target, rest, kind == Kind::File, "procfs-write", text, p);
        if self.warned.insert(target.clone()) {
            self.warnings
                .push(format!("write to {p} granted as {target}: it covers only the first sandboxed process, not its children"));
        }
    }

    /// `/proc/<traced pid>/rest` -> `/proc/self/rest`.
    fn proc_self(&self, p: &str) -> Option<String> {
        let rest = p.strip_prefix("/proc/")?;
        let (pid, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let pid: u32 = pid.parse().ok()?;
        if !self.pids.contains(&pid) {
            return None;
        }
        Some(if tail.is_empty() { "/proc/self".to_owned() } else { format!("/proc/self/{tail}") })
    }

    fn place_exact(&mut self, p: &str, mask: Mask, kind: Kind, agg: &PathAgg) {
        if kind == Kind::File && self.brokered_targets.contains(p) {
            let text = "the target of a brokered save: an exact file rule (the broker keeps its inode)".to_owned();
            self.place_at(p, p, mask, kind, "brokered-target", text, agg, false);
            return;
        }
        let mut anchor = p;
        let mut label = "observed";
        let mut text = "observed access".to_owned();
        // Components inside a variable prefix (a random `$TMPDIR`, say)
        // are spelled by the variable and do not count as volatile.
        let start = self.layout.vars.prefix_len(p);
        for (off, name) in components(p) {
            if off < start {
                continue;
            }
            if let Some(why) = volatile_kind(name, self.pids) {
                anchor = if off <= 1 { "/" } else { &p[..off - 1] };
                label = "volatile-name";
                text = format!("`{name}` looks like a {why}: it changes every run, so its parent directory gets the rights");
                break;
            }
        }
        while anchor != "/" && self.paths.get(anchor).is_some_and(|a| a.born) {
            anchor = parent(anchor).unwrap_or("/");
            label = "created-in-run";
            CREATED.clone_into(&mut text);
        }
        let moved = anchor != p;
        self.place_at(anchor, p, mask, kind, label, text, agg, moved);
    }

    /// Grants `mask` (needed by `p`) on `anchor` or, when `anchor` contains
    /// a sensitive path, on the first directory towards `p` that does not.
    #[expect(clippy::too_many_arguments, reason = "one private step of the placement pipeline")]
    fn place_at(
        &mut self,
        anchor: &str,
        p: &str,
        mask: Mask,
        kind: Kind,
        label: &'static str,
        text: String,
        agg: &PathAgg,
        warn_if_narrowed: bool,
    ) {
        let widen = label == "system-tree";
        let mut anchor = anchor.to_owned();
        let mut blocked: Option<(String, Sensitive)> = None;
        loop {
            if anchor == p && kind == Kind::File {
                break;
            }
            let (forbid, first) = self.forbidden_above(&anchor);
            // A system tree's directory rule gets the whole read bundle
            // (below): test that, not only what was seen.
            let granted = if widen { Mask::read_class() } else { mask };
            let Some(s) = first.filter(|_| !forbid.intersect(granted).is_empty()) else {
                break;
            };
            if anchor == p {
                // The directory itself holds a sensitive path: grant what
                // exposes none (listing shows names, never contents; reads
                // are fine beside persistence files), refuse the rest.
                let ok = if widen { Mask::read_class().minus(forbid) } else { mask.minus(forbid) };
                if !ok.is_empty() {
                    let (label, text) = if ok == Mask::of(FsRight::ReadDir) {
                        (
                            "listing-only",
                            format!(
                                "listed; only read_dir, which shows names beneath it and no contents: it contains sensitive \
{} ({})",
                                s.path, s.why
                            ),
                        )
                    } else {
                        (
                            "narrowed-sensitive",
                            format!(
                                "only {}, which exposes nothing sensitive beneath it: it contains {} ({})",
                                ok.label(),
                                s.path,
                                s.why
                            ),
                        )
                    };
                    self.add_rule(p, ok, false, label, text, p);
                }
                self.refuse_dir(p, mask.intersect(forbid), &s, agg);
                return;
            }
            let next = child_toward(&anchor, p).to_owned();
            blocked = Some((std::mem::replace(&mut anchor, next), s));
        }
        let (label, text) = match blocked {
            None => (label, text),
            Some((dir, s)) => {
                // Only when $TMPDIR itself holds $HOME is the advice right
                // (a file under /tmp beside a private TMPDIR is not a temp file).
                if label == "temp-dir"
                    && let Some(home) = self.layout.home.as_deref()
                    && is_at_or_beneath(home, &dir)
                    && self.layout.tmpdir.as_deref().is_some_and(|t| is_at_or_beneath(home, t))
                    && self.warned.insert(format!("temp holds home {dir}"))
                {
                    self.warnings.push(format!(
                        "the temp dir {dir} holds $HOME ({home}), so it cannot be granted (that would grant {}): temp \
files with random names will not match on the next run; set TMPDIR to a directory outside $HOME's parents \
(e.g. a private one) when learning and running",
                        s.path
                    ));
                }
                // A sensitive path itself gets an exact rule by design.
                if warn_if_narrowed && self.layout.sensitive.inside(p).is_none() && self.warned.insert(anchor.clone()) {
                    self.warnings.push(format!(
                        "could not generalise {p} above {anchor}: {dir} contains sensitive {}; \
the rule may not match on the next run",
                        s.path
                    ));
                }
                ("narrowed-sensitive", format!("{text}; stopped below {dir}: it contains sensitive {} ({})", s.path, s.why))
            }
        };
        let file = anchor == p && kind == Kind::File;
        let mask = if file {
            // Landlock rejects directory rights on a file rule.
            mask.intersect(Mask::file_rights())
        } else if widen {
            Mask::read_class()
        } else {
            mask
        };
        if !mask.is_empty() {
            self.add_rule(&anchor, mask, file, label, text, p);
        }
    }

    /// The rights a rule on directory `d` must not have (cached), and the
    /// entry that explains it.
    fn forbidden_above(&mut self, d: &str) -> (Mask, Option<Sensitive>) {
        if let Some(c) = self.contains.get(d) {
            return c.clone();
        }
        let (mask, first) = self.layout.sensitive.forbidden_above(d);
        let c = (mask, first.cloned());
        self.contains.insert(d.to_owned(), c.clone());
        c
    }

    /// Refuses `refused` on the directory `p`, which contains `s`. When the
    /// rights came from operations on entries that are themselves
    /// sensitive (a rename over `~/.gitconfig`, a lock file beside it), each
    /// such entry is reported as itself; the rest on `p`.
    fn refuse_dir(&mut self, p: &str, refused: Mask, s: &Sensitive, agg: &PathAgg) {
        let mut rest = refused;
        if let Some(w) = agg.watch.as_deref() {
            let mut own = w.own;
            let mut hits: Vec<(String, Sensitive, Mask, u32)> = Vec::new();
            for (name, e) in &w.entries {
                let child = if p == "/" { format!("/{name}") } else { format!("{p}/{name}") };
                let m = e.mask.intersect(refused);
                match self.layout.sensitive.inside(&child) {
                    Some(entry) if !m.is_empty() => hits.push((child, entry.clone(), m, e.ops)),
                    _ => own = own.union(e.mask),
                }
            }
            // What only the sensitive entries explain is reported on them;
            // the rest (the directory's own operations, its other entries,
            // and needs recorded without a watched entry, such as a
            // metadata change of the directory itself) on the directory.
            let only_entries = hits.iter().fold(Mask::EMPTY, |acc, h| acc.union(h.2)).minus(own);
            rest = refused.minus(only_entries);
            for (child, entry, m, ops) in hits {
                let why = match entry.class {
                    Class::Persistence => {
                        format!("{}; creating, replacing or removing it runs code outside the sandbox", entry.why)
                    }
                    Class::Secret => format!("would create, replace or remove sensitive {} ({}) in {p}", entry.path, entry.why),
                };
                // Who touched the entry itself, when it was watched; else who
                // touched the directory.
                let watch = self.paths.get(&child).and_then(|a| a.watch.clone()).or_else(|| agg.watch.clone());
                let child_agg = PathAgg { ops, watch, ..PathAgg::default() };
                self.hit(&child, &entry.path, entry.class, m, &child_agg, why);
            }
        }
        if rest.is_empty() {
            return;
        }
        let why = format!(
            "granting {} on this directory would also grant it on {} ({}): a Landlock rule covers everything \
beneath its directory",
            rest.label(),
            s.path,
            s.why
        );
        self.hit(p, &s.path, s.class, rest, agg, why);
    }

    fn add_rule(&mut self, anchor: &str, mask: Mask, file: bool, label: &'static str, text: String, from: &str) {
        let rule = self.rules.entry(anchor.to_owned()).or_insert_with(|| RuleAcc {
            mask: Mask::EMPTY,
            file,
            reasons: BTreeMap::new(),
            anticipated: Mask::EMPTY,
        });
        rule.mask = rule.mask.union(mask);
        rule.file &= file;
        let reason = rule.reasons.entry(text).or_insert_with(|| ReasonAcc { label, from: Vec::new(), count: 0 });
        if from != anchor && !reason.from.iter().any(|f| f == from) {
            reason.count += 1;
            if reason.from.len() < MAX_EXAMPLES {
                reason.from.push(from.to_owned());
            }
        }
    }

    fn hit(&mut self, p: &str, matched: &str, class: Class, mask: Mask, agg: &PathAgg, why: String) {
        let hit = self.hits.entry(p.to_owned()).or_insert_with(|| SensitiveHit {
            path: p.to_owned(),
            matched: matched.to_owned(),
            rights: BTreeSet::new(),
            ops: BTreeSet::new(),
            pids: Vec::new(),
            comms: Vec::new(),
            why,
            class,
            missing: false,
        });
        hit.rights.extend(mask.to_set());
        hit.ops.extend(Op::ALL.into_iter().filter(|op| agg.ops & (1 << op.code()) != 0));
        if let Some(w) = &agg.watch {
            for pid in &w.pids {
                if !hit.pids.contains(pid) {
                    hit.pids.push(*pid);
                }
            }
            for comm in &w.comms {
                if !hit.comms.contains(comm) {
                    hit.comms.push(comm.clone());
                }
            }
        }
    }

    /// Secrets in the workdir are granted with it (see `sensitive`): say so.
    fn note_workdir_dotenv(&mut self, p: &str) {
        let Some(cwd) = &self.layout.cwd else { return };
        let name = p.rsplit('/').next().unwrap_or_default();
        if is_at_or_beneath(p, cwd) && (name == ".env" || name.starts_with(".env.")) {
            self.warnings
                .push(format!("{p} was accessed: secrets in the workdir are granted with the workdir; keep them elsewhere"));
        }
    }
}
