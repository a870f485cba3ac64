//! First stage of synthesis: a streaming pass that folds each event into
//! per-path rights, ports and notes. Nothing is generalised here, so the
//! cost per event is one or two hash lookups; [`Synthesiser::finish`]
//! generalises once at the end.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::event::{Event, Op, Outcome};

use super::agg::PathAgg;
use super::generalise;
use super::layout::Layout;
use super::net::{NetLearner, Verdict};
use super::rights::{Kind, Mask, fails_before_landlock, metadata_need, visit_needs};
use super::{LearnContext, LearnStats, Learned, SensitiveHit};

/// Ignore reasons, as counted in [`LearnStats::ignored`].
pub(crate) mod reason {
    pub const LIFECYCLE: &str = "process lifecycle (fork/exit): no rights";
    pub const INCOMPLETE: &str = "incomplete path";
    pub const NO_PATH: &str = "no path recorded";
    pub const ANONYMOUS: &str = "anonymous or relative path (pipe:, socket:, anon_inode:)";
    pub const FD_REOPEN: &str = "re-open through /proc/<pid>/fd or /dev/fd (not path-restricted)";
    pub const DENIED: &str = "denied while learning";
    pub const REFUSED: &str = "refused by file permissions or the kernel while learning (EACCES/EPERM)";
    pub const FAILED_EARLY: &str = "failed before any Landlock check (ENOENT, EEXIST, ...)";
    pub const FAILED_LATE: &str = "failed after the permission check";
    pub const NO_RIGHTS: &str = "no Landlock right involved (O_PATH, ioctl on a non-device)";
    /// A DNS message: its name is learned as a domain (`learn::domains`),
    /// its socket's send or connect is learned as UDP/TCP port 53.
    pub const DNS: &str = "DNS message (names are learned as domains)";
}

/// How many distinct examples each kind of note keeps.
const MAX_NOTES: usize = 50;

#[derive(Debug, Default)]
struct Notes {
    /// Refusals while learning, grouped by operation, errno and path
    /// pattern (`/proc/*/environ`): one line each, with counts.
    denied: BTreeMap<(Op, i32, String), DenialGroup>,
    denied_more: u64,
    late: BTreeMap<i32, (u64, String)>,
    incomplete: Option<String>,
    incomplete_count: u64,
    unclassified: BTreeSet<String>,
    /// Failed or denied accesses to sensitive paths, by path.
    attempts: BTreeMap<String, SensitiveHit>,
}

/// Refusals of one operation, errno and path pattern.
#[derive(Debug, Default)]
struct DenialGroup {
    count: u64,
    /// Distinct paths, capped at [`MAX_GROUP_PATHS`] (`more` says so).
    paths: HashSet<String>,
    more: bool,
    examples: Vec<String>,
    comms: Vec<String>,
}

/// Distinct paths a denial group counts exactly.
const MAX_GROUP_PATHS: usize = 4096;

/// The pattern refusals are grouped by: path components that change from
/// process to process or run to run (pids, random names) become `*`.
fn denial_pattern(what: &str, pids: &HashSet<u32>) -> String {
    if !what.starts_with('/') {
        return what.to_owned();
    }
    let generalised: Vec<&str> = what
        .split('/')
        .map(|c| {
            let numeric = !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit());
            if numeric || (!c.is_empty() && super::names::is_random_token(c, pids)) { "*" } else { c }
        })
        .collect();
    generalised.join("/")
}

/// Streaming profile synthesis: [`add`](Self::add) each event, then
/// [`finish`](Self::finish).
#[derive(Debug)]
pub struct Synthesiser {
    layout: Layout,
    paths: HashMap<String, PathAgg>,
    pids: HashSet<u32>,
    net: NetLearner,
    nameservers: Vec<std::net::IpAddr>,
    anticipate: bool,
    stats: LearnStats,
    notes: Notes,
}

impl Synthesiser {
    #[must_use]
    pub fn new(ctx: &LearnContext) -> Synthesiser {
        Synthesiser {
            layout: Layout::new(ctx),
            paths: HashMap::new(),
            pids: HashSet::new(),
            net: NetLearner::default(),
            nameservers: ctx.nameservers.clone(),
            anticipate: ctx.anticipate,
            stats: LearnStats { runs: 1, ..LearnStats::default() },
            notes: Notes::default(),
        }
    }

    /// Folds one event in.
    pub fn add(&mut self, e: &Event) {
        self.stats.events += 1;
        self.pids.insert(e.pid);
        self.pids.insert(e.tid);
        match e.op {
            Op::Fork => {
                self.pids.insert(e.arg as u32);
                return self.ignore(reason::LIFECYCLE);
            }
            Op::Exit => return self.ignore(reason::LIFECYCLE),
            Op::Dns => return self.ignore(reason::DNS),
            Op::Connect | Op::Send | Op::Socket | Op::Signal | Op::Syscall => return self.add_net(e),
            // A pathname Unix bind creates a socket file: a filesystem need.
            Op::Bind if !(is_unix(e) && e.path.as_deref().is_some_and(|p| p.starts_with('/'))) => return self.add_net(e),
            _ => {}
        }
        if e.incomplete {
            self.notes.incomplete_count += 1;
            if self.notes.incomplete.is_none() {
                self.notes.incomplete.clone_from(&e.path);
            }
            return self.ignore(reason::INCOMPLETE);
        }
        let Some(path) = e.path.as_deref() else {
            return self.ignore(reason::NO_PATH);
        };
        if !path.starts_with('/') {
            if !is_anonymous(path) && self.notes.unclassified.len() < MAX_NOTES {
                self.notes.unclassified.insert(path.to_owned());
            }
            return self.ignore(reason::ANONYMOUS);
        }
        if is_fd_reopen(path) {
            return self.ignore(reason::FD_REOPEN);
        }
        if e.outcome != Outcome::Ok {
            self.note_sensitive_attempt(e, path);
        }
        // Without a controlling terminal, opening /dev/tty fails with ENXIO
        // after Landlock's check; without a rule the sandboxed run would get
        // EACCES instead, which programs do not expect. Grant it.
        let tty_probe = path == "/dev/tty" && e.outcome == Outcome::Error(libc::ENXIO);
        match e.outcome {
            _ if tty_probe => {}
            Outcome::Ok => {}
            Outcome::Denied { errno, .. } => {
                self.note_denied(e, path, errno);
                return self.ignore(reason::DENIED);
            }
            Outcome::Error(errno @ (libc::EACCES | libc::EPERM)) => {
                self.note_denied(e, path, errno);
                return self.ignore(reason::REFUSED);
            }
            Outcome::Error(errno) if fails_before_landlock(errno) => {
                return self.ignore(reason::FAILED_EARLY);
            }
            Outcome::Error(errno) => {
                let slot = self.notes.late.entry(errno).or_insert_with(|| (0, format!("{} {path}", e.op)));
                slot.0 += 1;
                return self.ignore(reason::FAILED_LATE);
            }
        }
        if e.op == Op::Metadata {
            return self.add_metadata(e);
        }
        let op_bit = 1u32 << e.op.code();
        let mut used = false;
        let Synthesiser { layout, paths, .. } = self;
        visit_needs(e, |p, m, kind| {
            used = true;
            with_entry(paths, layout, p, |agg| {
                match kind {
                    Kind::File => agg.file = agg.file.union(m),
                    Kind::Dir => agg.dir = agg.dir.union(m),
                }
                agg.ops |= op_bit;
                if let Some(w) = &mut agg.watch {
                    note_who(w, e);
                    if kind == Kind::Dir {
                        note_entry(w, e, p, m);
                    }
                }
            });
        });
        // A file this run created with O_TRUNC exists on the next run, when
        // the same open truncates it: grant that now, or the profile would
        // only work once.
        if e.op == Op::Open && e.access.create && e.access.truncate && !e.access.directory {
            with_entry(paths, layout, path, |agg| agg.file = agg.file.union(Mask::of(crate::profile::rights::FsRight::Truncate)));
        }
        if let Some(b) = born_path(e) {
            with_entry(paths, layout, b, |agg| agg.born = true);
        }
        if used {
            self.stats.used += 1;
        } else {
            self.ignore(reason::NO_RIGHTS);
        }
    }

    /// A successful metadata change: marked on its object (placed by
    /// `generalise`, see `rights::metadata_need`) and, as an entry's op, on
    /// its directory, so that a change of an atomic save's temp file or
    /// lock becomes the `metadata` op of its brokered rule.
    fn add_metadata(&mut self, e: &Event) {
        let Some((path, kind)) = metadata_need(e) else {
            return self.ignore(reason::NO_PATH);
        };
        let bit = 1u32 << Op::Metadata.code();
        let Synthesiser { layout, paths, .. } = self;
        with_entry(paths, layout, path, |agg| {
            // A directory (or unknown type) wins: its placement is the careful one.
            agg.meta = Some(if agg.meta == Some(Kind::Dir) { Kind::Dir } else { kind });
            agg.ops |= bit;
            if let Some(w) = &mut agg.watch {
                note_who(w, e);
            }
        });
        if let Some(dir) = super::paths::parent(path) {
            with_entry(paths, layout, dir, |agg| {
                if let Some(w) = &mut agg.watch {
                    note_entry(w, e, dir, Mask::EMPTY);
                }
            });
        }
        self.stats.used += 1;
    }

    fn add_net(&mut self, e: &Event) {
        match self.net.add(e, &self.layout, &self.nameservers, &self.pids) {
            Verdict::Used => self.stats.used += 1,
            Verdict::Ignored(why) => self.ignore(why),
            Verdict::Refused(errno) => {
                let what = match (&e.net, e.path.as_deref()) {
                    (_, Some(p)) => p.to_owned(),
                    (Some(n), None) if n.addr.is_some() => {
                        format!("{}:{}", n.addr.map(|a| a.to_string()).unwrap_or_default(), n.port)
                    }
                    (Some(n), None) => format!("{} socket", crate::event::family_name(i32::from(n.family))),
                    (None, None) => e.op.to_string(),
                };
                self.note_denied(e, &what, errno);
                self.ignore(super::net::reason::REFUSED);
            }
        }
    }

    fn note_denied(&mut self, e: &Event, what: &str, errno: i32) {
        let key = (e.op, errno, denial_pattern(what, &self.pids));
        if !self.notes.denied.contains_key(&key) && self.notes.denied.len() >= MAX_NOTES {
            self.notes.denied_more += 1;
            return;
        }
        let group = self.notes.denied.entry(key).or_default();
        group.count += 1;
        if !group.paths.contains(what) {
            if group.paths.len() < MAX_GROUP_PATHS {
                group.paths.insert(what.to_owned());
            } else {
                group.more = true;
            }
            if group.examples.len() < 2 {
                group.examples.push(what.to_owned());
            }
        }
        if !group.comms.contains(&e.comm) && group.comms.len() < 4 {
            group.comms.push(e.comm.clone());
        }
    }

    /// A failed or denied access to a sensitive path grants nothing, but
    /// the attempt belongs in the report.
    fn note_sensitive_attempt(&mut self, e: &Event, path: &str) {
        // What it would have needed had it succeeded; reading a
        // persistence file is allowed, so only what it forbids counts.
        let as_ok = Event { outcome: Outcome::Ok, ..e.clone() };
        let mut need = Mask::EMPTY;
        visit_needs(&as_ok, |_, m, _| need = need.union(m));
        // A metadata change (chmod, chown, utimes, xattrs) needs write_file.
        if metadata_need(&as_ok).is_some() {
            need = need.with(crate::profile::rights::FsRight::WriteFile);
        }
        let sensitive = &self.layout.sensitive;
        let forbid = sensitive.forbidden_within(path);
        let Some(s) = sensitive.inside(path).filter(|s| s.class == super::Class::Secret || !need.intersect(forbid).is_empty())
        else {
            return;
        };
        // A lookup of a path that is not there exposed nothing.
        let missing = matches!(e.outcome.errno(), libc::ENOENT | libc::ENOTDIR);
        if let Some(hit) = self.notes.attempts.get_mut(path) {
            if !hit.pids.contains(&e.pid) && hit.pids.len() < 16 {
                hit.pids.push(e.pid);
            }
            if !hit.comms.contains(&e.comm) && hit.comms.len() < 16 {
                hit.comms.push(e.comm.clone());
            }
            hit.ops.insert(e.op);
            hit.missing &= missing;
            return;
        }
        if self.notes.attempts.len() >= MAX_NOTES {
            return;
        }
        let why = format!("attempted, failed with {}: inside sensitive {} ({})", errno_name(e.outcome.errno()), s.path, s.why);
        let hit = SensitiveHit {
            path: path.to_owned(),
            matched: s.path.clone(),
            rights: need.to_set(),
            ops: [e.op].into(),
            pids: vec![e.pid],
            comms: vec![e.comm.clone()],
            why,
            class: s.class,
            missing,
        };
        self.notes.attempts.insert(path.to_owned(), hit);
    }

    fn ignore(&mut self, why: &'static str) {
        match self.stats.ignored.get_mut(why) {
            Some(n) => *n += 1,
            None => {
                self.stats.ignored.insert(why.to_owned(), 1);
            }
        }
    }

    /// Generalises what was seen into rules.
    #[must_use]
    pub fn finish(mut self) -> Learned {
        let built = generalise::build(&self.layout, &self.paths, &self.pids, self.anticipate);
        let mut warnings = self.notes.render();
        warnings.extend(built.warnings);
        let (notes, net_warnings) = self.net.take_notes();
        warnings.extend(net_warnings);
        let mut sensitive = built.sensitive;
        sensitive.extend(std::mem::take(&mut self.net.hits).into_values());
        // A path both used and attempted is already reported as used.
        for (path, hit) in self.notes.attempts {
            if !sensitive.iter().any(|h| h.path == path) {
                sensitive.push(hit);
            }
        }
        sensitive.sort_by(|a, b| a.path.cmp(&b.path));
        let mut stats = self.stats;
        stats.distinct_paths = self.paths.len() as u64;
        let net = self.net;
        Learned {
            rules: built.rules,
            brokered: built.brokered,
            connect_ports: net.connect_ports,
            bind_ports: net.bind_ports,
            udp: net.udp,
            icmp: net.icmp,
            unix_connect: net.unix_connect.iter().map(|p| self.layout.vars.express(p)).collect(),
            families: net.families,
            sandbox: net.sandbox,
            notes,
            sensitive,
            explanations: built.explanations,
            warnings,
            stats,
        }
    }
}

impl Notes {
    fn render(&self) -> Vec<String> {
        let mut out = Vec::new();
        for ((op, errno, pattern), g) in &self.denied {
            let by = g.comms.join(", ");
            let head = format!(
                "refused while learning (by file permissions or the kernel, not by nono), not granted: {op} {pattern} by {by} ({})",
                errno_name(*errno)
            );
            let n = g.paths.len();
            if n <= 1 && g.count == 1 {
                out.push(head);
                continue;
            }
            let paths = if g.more { format!("more than {n} paths") } else { format!("{n} path(s)") };
            let shown = n > 1 || g.examples.first().is_some_and(|x| x != pattern);
            let examples = if shown { format!(", e.g. {}", g.examples.join(", ")) } else { String::new() };
            out.push(format!("{head}: {paths}, {} time(s){examples}", g.count));
        }
        if self.denied_more > 0 {
            out.push(format!("... and {} more denied accesses of other kinds", self.denied_more));
        }
        for (errno, (count, example)) in &self.late {
            out.push(format!(
                "{count} accesses failed with {} after the permission check (e.g. {example}); not granted, \
so under the sandbox they fail with EACCES instead",
                errno_name(*errno)
            ));
        }
        if self.incomplete_count > 0 {
            out.push(format!(
                "{} events had incomplete paths (the kernel could not read the whole path) and were ignored{}",
                self.incomplete_count,
                self.incomplete.as_ref().map(|p| format!(", e.g. {p}")).unwrap_or_default()
            ));
        }
        for p in &self.unclassified {
            out.push(format!("path could not be classified (not absolute): {p}"));
        }
        out
    }
}

/// Runs `f` on the entry for `p`, creating it without allocating a key
/// for paths already seen (the common case).
fn with_entry(paths: &mut HashMap<String, PathAgg>, layout: &Layout, p: &str, f: impl FnOnce(&mut PathAgg)) {
    if let Some(agg) = paths.get_mut(p) {
        f(agg);
        return;
    }
    let mut agg = PathAgg::default();
    if layout.watch(p) {
        agg.watch = Some(Box::default());
    }
    f(&mut agg);
    paths.insert(p.to_owned(), agg);
}

/// Remembers (a few of) the processes behind a watched path's needs.
fn note_who(w: &mut super::agg::Watch, e: &Event) {
    if !w.pids.contains(&e.pid) && w.pids.len() < 16 {
        w.pids.push(e.pid);
    }
    if !w.comms.contains(&e.comm) && w.comms.len() < 16 {
        w.comms.push(e.comm.clone());
    }
}

/// Attributes a right needed on the watched directory `dir` to the entry
/// of it that the event touched (its `path`, or a rename's `path2`), or to
/// the directory itself.
fn note_entry(w: &mut super::agg::Watch, e: &Event, dir: &str, m: Mask) {
    use super::paths::parent;
    let name_in = |p: Option<&str>| p.filter(|p| parent(p) == Some(dir)).and_then(|p| p.rsplit('/').next()).map(str::to_owned);
    let first = name_in(e.path.as_deref());
    let second = if matches!(e.op, Op::Rename | Op::Link) { name_in(e.path2.as_deref()) } else { None };
    if first.is_none() && second.is_none() {
        w.own = w.own.union(m);
        return;
    }
    if let (Op::Rename, Some(from), Some(to)) = (e.op, &first, &second)
        && w.renames.len() < super::agg::MAX_ENTRIES
    {
        w.renames.push((from.clone(), to.clone()));
    }
    for (name, born) in [(first, born_path(e).is_some_and(|b| Some(b) == e.path.as_deref())), (second, true)] {
        let Some(name) = name else { continue };
        if !w.entries.contains_key(&name) && w.entries.len() >= super::agg::MAX_ENTRIES {
            w.own = w.own.union(m);
            continue;
        }
        let entry = w.entries.entry(name).or_default();
        entry.mask = entry.mask.union(m);
        entry.ops |= 1 << e.op.code();
        entry.born |= born;
    }
}

/// The path a successful event brought into existence, if any.
fn born_path(e: &Event) -> Option<&str> {
    match e.op {
        Op::Open if e.access.create => e.path.as_deref(),
        Op::Create | Op::Mkdir | Op::Mknod => e.path.as_deref(),
        Op::Bind if is_unix(e) => e.path.as_deref(),
        // The new name of a link or rename; a symlink's `path` is the link.
        Op::Symlink => e.path.as_deref(),
        Op::Link | Op::Rename => e.path2.as_deref(),
        _ => None,
    }
}

fn is_unix(e: &Event) -> bool {
    e.net.as_ref().is_some_and(|n| i32::from(n.family) == libc::AF_UNIX)
}

/// Kernel names for objects without a path (`pipe:[123]`, `anon_inode:[eventfd]`).
fn is_anonymous(p: &str) -> bool {
    p.contains(":[") || p.starts_with("anon_inode:")
}

/// Opening `/proc/<pid>/fd/<n>` or `/dev/fd/<n>` re-opens an object through
/// a magic link; Landlock checks the object itself, which the recorded path
/// does not name (pipes and sockets are not path-restricted at all).
fn is_fd_reopen(p: &str) -> bool {
    if p.starts_with("/dev/fd/") || matches!(p, "/dev/stdin" | "/dev/stdout" | "/dev/stderr") {
        return true;
    }
    let Some(rest) = p.strip_prefix("/proc/") else {
        return false;
    };
    let mut parts = rest.split('/');
    let _pid = parts.next();
    parts.next() == Some("fd") && parts.next().is_some()
}

fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EEXIST => "EEXIST",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ENXIO => "ENXIO",
        libc::EBUSY => "EBUSY",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ECONNREFUSED => "ECONNREFUSED",
        _ => return format!("errno {errno}"),
    };
    name.to_owned()
}
