//! Second stage of synthesis: per-path rights (aggregated by
//! [`super::Synthesiser`]) become a short list of rules.
//!
//! Order of decisions for one path and its rights:
//! 1. inside a sensitive path (and not allowed): refused, reported;
//! 2. `/dev/pts/<n>` -> `/dev/pts`; `/proc/...` reads -> `/proc`;
//! 3. under a collapse root (system tree for reads only, `/sys` for reads,
//!    the workdir, a tool cache, a temp dir): the root gets the rights;
//! 4. otherwise the exact path, moved up past a volatile component (pid,
//!    temp suffix, hash, version) and past anything created during the run;
//! 5. the chosen directory is narrowed back towards the path while it
//!    contains a sensitive path; a directory that itself contains one and
//!    needs rights is refused and reported;
//! 6. rules made redundant by a broader rule on an ancestor are dropped.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::event::Op;

use super::agg::PathAgg;
use super::layout::{Layout, RootKind};
use super::paths::{child_toward, components, is_at_or_beneath, parent};
use super::rights::{Kind, Mask};
use super::sensitive::Sensitive;
use super::{Explanation, SensitiveHit};
use crate::profile::BrokeredRule;
use crate::profile::rights::{FsRight, FsRule};

/// Most example paths kept per explanation.
const MAX_EXAMPLES: usize = 8;

/// Why a name is expected to differ on the next run, if it is.
pub(crate) fn volatile_kind(name: &str, pids: &HashSet<u32>) -> Option<&'static str> {
    if has_traced_pid(name, pids) {
        return Some("process id");
    }
    if is_temp_name(name) {
        return Some("random temp-file name");
    }
    if has_version(name) {
        return Some("version number");
    }
    for tok in name.split(['.', '-', '_', '+', '@', ',', '~', '#']) {
        if is_hash(tok) {
            return Some("hash");
        }
        if is_random(tok) {
            return Some("random suffix");
        }
    }
    None
}

/// A maximal digit run (3+ digits, so `python3` never matches) that is a
/// pid or tid seen in this recording.
fn has_traced_pid(name: &str, pids: &HashSet<u32>) -> bool {
    name.split(|c: char| !c.is_ascii_digit())
        .filter(|run| run.len() >= 3)
        .any(|run| run.parse::<u32>().is_ok_and(|n| pids.contains(&n)))
}

/// `tmp.XXXXXX` (mktemp), `.tmpAbc123` (Rust tempfile), `tmpk2j3_x9a`
/// (Python): `tmp`, an optional separator, then 6+ word characters.
fn is_temp_name(name: &str) -> bool {
    let s = name.strip_prefix('.').unwrap_or(name);
    let Some(rest) = s.strip_prefix("tmp") else {
        return false;
    };
    let rest = rest.strip_prefix(['.', '-', '_']).unwrap_or(rest);
    let seg = rest.split('.').next().unwrap_or_default();
    seg.len() >= 6 && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `1.2`, `3.11`, `v18.17.0` anywhere in the name.
fn has_version(name: &str) -> bool {
    name.as_bytes().windows(3).any(|w| w[0].is_ascii_digit() && w[1] == b'.' && w[2].is_ascii_digit())
}

/// Eight or more hex digits in one case, at least one a digit (plain words
/// like `deadbeef` aside), which also catches timestamps.
fn is_hash(tok: &str) -> bool {
    tok.len() >= 8
        && tok.bytes().any(|b| b.is_ascii_digit())
        && (tok.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            || tok.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)))
}

/// Eight or more letters and digits that alternate at least three times
/// (`k2j3x9ab`), unlike names such as `ubuntu2204` or `sha256sums`.
fn is_random(tok: &str) -> bool {
    if tok.len() < 8 || !tok.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let b = tok.as_bytes();
    b.windows(2).filter(|w| w[0].is_ascii_digit() != w[1].is_ascii_digit()).count() >= 3
}

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
    /// `contained_in` answers per directory; most placements share a few.
    contains: HashMap<String, Option<Sensitive>>,
    /// Targets of brokered saves: kept as exact file rules, never moved up.
    brokered_targets: HashSet<String>,
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
    };
    let (brokered, dir_masks, taken, explanations) = b.brokered();
    let mut keys: Vec<&String> = paths.keys().collect();
    keys.sort();
    for p in keys {
        let Some(agg) = paths.get(p) else { continue };
        let file_mask = if taken.contains(p.as_str()) { Mask::EMPTY } else { agg.file };
        let dir_mask = dir_masks.get(p).copied().unwrap_or(agg.dir);
        if file_mask.is_empty() && dir_mask.is_empty() {
            continue;
        }
        b.note_workdir_dotenv(p);
        if let Some(s) = layout.sensitive.inside(p) {
            let why = format!("inside sensitive {} ({}); not granted unless listed in allow_sensitive", s.path, s.why);
            b.hit(p, &s.path, file_mask.union(dir_mask), agg, why);
            continue;
        }
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
            let found = super::brokered::split(dir, &layout.vars.express(dir), w, self.pids, &sensitive);
            if found.rules.is_empty() {
                continue;
            }
            masks.insert(dir.clone(), found.rest);
            let targets: HashSet<&str> = found.rules.iter().map(|(t, _)| t.as_str()).collect();
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
            let text = "pseudo-terminal numbers change every run: granted on /dev/pts";
            self.add_rule("/dev/pts", mask, false, "dev-pts", text.to_owned(), p);
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
            let Some(s) = self.contained_in(&anchor) else {
                break;
            };
            if anchor == p {
                // Listing a directory that holds a secret (`ls /etc`, a
                // walk of `$HOME`) shows names, never contents: granted,
                // unless the directory is itself the secret. The other
                // rights are not.
                let listing = mask.intersect(Mask::of(FsRight::ReadDir));
                if !listing.is_empty() && s.path != p {
                    let text = format!(
                        "listed; only read_dir, which shows names beneath it and no contents: it contains sensitive {} ({})",
                        s.path, s.why
                    );
                    self.add_rule(p, listing, false, "listing-only", text, p);
                }
                let mask = if s.path == p { mask } else { mask.minus(listing) };
                if mask.is_empty() {
                    return;
                }
                let why = format!(
                    "granting {} on this directory would also grant it on {} ({}): a Landlock rule \
covers everything beneath its directory",
                    mask.label(),
                    s.path,
                    s.why
                );
                self.hit(p, &s.path, mask, agg, why);
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
                if warn_if_narrowed && self.warned.insert(anchor.clone()) {
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

    fn contained_in(&mut self, d: &str) -> Option<Sensitive> {
        if let Some(c) = self.contains.get(d) {
            return c.clone();
        }
        let c = self.layout.sensitive.contained_in(d).cloned();
        self.contains.insert(d.to_owned(), c.clone());
        c
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

    fn hit(&mut self, p: &str, matched: &str, mask: Mask, agg: &PathAgg, why: String) {
        let hit = self.hits.entry(p.to_owned()).or_insert_with(|| SensitiveHit {
            path: p.to_owned(),
            matched: matched.to_owned(),
            rights: BTreeSet::new(),
            ops: BTreeSet::new(),
            pids: Vec::new(),
            comms: Vec::new(),
            why,
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

    /// Adds what a later run needs in directories the agent owns (see the
    /// module docs of `learn`): what this run created there, the next one
    /// reads, rewrites, renames and removes.
    fn anticipate(&mut self) {
        let makes = Mask::of(FsRight::MakeReg)
            .with(FsRight::MakeDir)
            .with(FsRight::MakeSym)
            .with(FsRight::MakeSock)
            .with(FsRight::MakeFifo);
        let mut adds: Vec<(String, Mask, String)> = Vec::new();
        for (path, rule) in &self.rules {
            if rule.file || rule.mask.intersect(makes).is_empty() {
                continue;
            }
            let Some(owner) = self.owned(path) else { continue };
            let has = |r: FsRight| rule.mask.contains_all(Mask::of(r));
            let mut want = Mask::of(FsRight::Refer);
            if has(FsRight::MakeReg) {
                want = want.with(FsRight::ReadFile).with(FsRight::WriteFile).with(FsRight::Truncate).with(FsRight::RemoveFile);
            }
            if has(FsRight::MakeDir) {
                want = want.with(FsRight::ReadDir).with(FsRight::RemoveDir);
            }
            if has(FsRight::MakeSym) || has(FsRight::MakeSock) || has(FsRight::MakeFifo) {
                want = want.with(FsRight::RemoveFile);
            }
            let add = want.minus(rule.mask);
            if !add.is_empty() {
                adds.push((path.clone(), add, owner));
            }
        }
        for (path, add, owner) in adds {
            let Some(rule) = self.rules.get_mut(&path) else { continue };
            rule.mask = rule.mask.union(add);
            rule.anticipated = rule.anticipated.union(add);
            let text = format!(
                "anticipated steady state: {owner} is the agent's, and a later run reads, rewrites, renames and removes \
what this run created here: +{}",
                add.label()
            );
            rule.reasons.insert(text, ReasonAcc { label: "anticipated", from: Vec::new(), count: 1 });
        }
    }

    /// Why the directory `path` belongs to the agent, if it does: the
    /// workdir, a temp dir, a tool cache, a directory this run created, or
    /// an application's own state directory (`~/.app`,
    /// `$XDG_CONFIG_HOME/app`, `~/.local/share/app`, `~/.local/state/app`).
    fn owned(&self, path: &str) -> Option<String> {
        if let Some(root) = self.layout.root_for(path) {
            return match root.kind {
                RootKind::Workdir => Some("the workdir".to_owned()),
                RootKind::Temp => Some(format!("temp dir {}", root.path)),
                RootKind::Cache => Some(format!("tool cache {}", root.path)),
                RootKind::System | RootKind::Sys => None,
            };
        }
        if self.paths.get(path).is_some_and(|a| a.born) {
            return Some(format!("{path}, which this run created,"));
        }
        self.layout.state_dir(path).map(|d| format!("its state directory {d}"))
    }

    /// Drops rules whose rights a directory rule on an ancestor already
    /// grants; the ancestor's explanation lists them.
    fn drop_covered(&mut self) {
        let mut covered: Vec<(String, String)> = Vec::new();
        for (path, rule) in &self.rules {
            let mut up = parent(path);
            while let Some(a) = up {
                if let Some(ar) = self.rules.get(a)
                    && !ar.file
                    && ar.mask.contains_all(rule.mask)
                {
                    covered.push((path.clone(), a.to_owned()));
                    break;
                }
                up = parent(a);
            }
        }
        for (path, by) in covered {
            self.rules.remove(&path);
            if let Some(r) = self.rules.get_mut(&by) {
                let reason = r
                    .reasons
                    .entry("covers narrower rules with no extra rights".to_owned())
                    .or_insert_with(|| ReasonAcc { label: "covers", from: Vec::new(), count: 0 });
                reason.count += 1;
                if reason.from.len() < MAX_EXAMPLES {
                    reason.from.push(path);
                }
            }
        }
    }

    fn finish(self) -> Built {
        let vars = &self.layout.vars;
        let mut rules = Vec::with_capacity(self.rules.len());
        let mut explanations = Vec::new();
        for (path, acc) in self.rules {
            let rule_path = vars.express(&path);
            let labels: BTreeSet<&str> = acc.reasons.values().map(|r| r.label).collect();
            for (text, r) in acc.reasons {
                if r.count > 0 {
                    explanations.push(Explanation { rule_path: rule_path.clone(), from: r.from, paths: r.count, reason: text });
                }
            }
            rules.push(FsRule {
                path: rule_path,
                access: acc.mask.to_set(),
                file: acc.file,
                reason: Some(labels.into_iter().collect::<Vec<_>>().join(", ")),
                seen_in: None,
                anticipated: acc.anticipated.to_set(),
            });
        }
        rules.sort_by(|a, b| a.path.cmp(&b.path));
        Built { rules, brokered: Vec::new(), sensitive: self.hits.into_values().collect(), explanations, warnings: self.warnings }
    }
}
