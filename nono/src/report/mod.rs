//! The HTML report: what a session touched (or what a profile grants),
//! aggregated on the Rust side into a bounded document and rendered as one
//! self-contained page ([`html`]).
//!
//! This module owns the aggregation (events -> per-path, per-process,
//! per-destination ([`network`]) and per-second counts, with caps), the
//! matching of paths to a profile's rules, and the page's fixed colours
//! ([`palette`]). It reads no database and writes no file: the CLI streams
//! events in (from the local store or the fleet) and writes the page out.
//!
//! Threat model: every path, argv word, comm and reason comes from the
//! audited agent and is hostile. Nothing here interprets it; [`html`]
//! embeds it as escaped JSON and the page's script only ever assigns it
//! through `textContent`.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::event::{Event, Op, escape_path};
use crate::learn::LearnContext;
use crate::profile::{Profile, Resolved};

pub mod html;
pub mod network;
pub mod palette;
pub mod synthetic;
mod tree;

pub use network::{MAX_DESTINATIONS, NetDest};
pub use palette::op_color;
pub use tree::{MAX_NODES, TreeNode};

/// Distinct paths tracked exactly; beyond this an event is counted on the
/// parent directory of its path (memory stays bounded on 10M events).
const MAX_PATHS: usize = 200_000;
/// Timeline bars at most; a longer session gets wider buckets.
const MAX_BUCKETS: u64 = 600;
/// Processes listed at most (the rest are summed into one line).
const MAX_PROCS: usize = 5_000;
/// Per-path process breakdown entries kept (for the per-process filter).
const PROCS_PER_PATH: usize = 16;

/// A failure building a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The report data could not be encoded as JSON.
    #[error("encoding the report data: {0}")]
    Json(#[from] serde_json::Error),
}

/// One rule of a profile, as the page shows it.
#[derive(Clone, Debug, Serialize)]
pub struct RuleView {
    /// As written in the profile (`$CWD/src`).
    pub spelled: String,
    /// Expanded, in the audit trail's escaped form.
    pub path: String,
    pub rights: Vec<String>,
    pub file: bool,
    pub reason: Option<String>,
    /// Rights the learner anticipated (no run used them).
    pub anticipated: Vec<String>,
    /// "seen in N of M sessions", when the profile records it.
    pub seen_in: Option<String>,
    /// Events of the compared session this rule covered (`--against`, or
    /// the session report).
    pub used: u64,
}

/// The rules of a profile, expanded for matching.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    pub views: Vec<RuleView>,
}

impl Rules {
    /// Every filesystem grant of a resolved profile (its `extends` chain
    /// folded in), with the learner's reason where the top profile's
    /// `rules` give one.
    #[must_use]
    pub fn from_resolved(r: &Resolved) -> Rules {
        let top = r.chain.last().cloned().unwrap_or_default();
        let detailed: HashMap<(&str, bool), &crate::profile::rights::FsRule> =
            r.profile.filesystem.rules.iter().map(|x| ((x.path.as_str(), x.file), x)).collect();
        let views = r
            .grants
            .iter()
            .map(|g| {
                let rule = detailed.get(&(g.spelled.as_str(), g.file));
                let inherited = (g.origin != top && !top.is_empty()).then(|| format!("inherited from {}", g.origin));
                RuleView {
                    spelled: g.spelled.clone(),
                    path: escape_path(&g.path),
                    rights: g.rights.iter().map(|x| x.name().to_owned()).collect(),
                    file: g.file,
                    reason: rule.and_then(|x| x.reason.clone()).or(inherited),
                    anticipated: rule.map(|x| x.anticipated.iter().map(|a| a.name().to_owned()).collect()).unwrap_or_default(),
                    seen_in: rule.and_then(|x| x.seen_in.as_ref()).map(|x| format!("{} of {} sessions", x.runs, x.of)),
                    used: 0,
                }
            })
            .collect();
        Rules { views }
    }

    /// The most specific rule covering `path`: a file rule on exactly it,
    /// else the directory rule nearest above it.
    #[must_use]
    pub fn covering(&self, path: &str) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        for (i, r) in self.views.iter().enumerate() {
            if r.path.is_empty() {
                continue;
            }
            let hit = if r.file { r.path == path } else { at_or_beneath(path, &r.path) };
            if hit && best.is_none_or(|(_, len)| r.path.len() > len) {
                best = Some((i, r.path.len()));
            }
        }
        best.map(|(i, _)| i)
    }
}

/// `p` is `dir` or lies beneath it.
fn at_or_beneath(p: &str, dir: &str) -> bool {
    dir == "/" || p == dir || (p.starts_with(dir) && p.as_bytes().get(dir.len()) == Some(&b'/'))
}

/// The sensitive list of the session's context, for flagging nodes.
#[derive(Clone, Debug, Default)]
pub struct Sensitive {
    entries: Vec<(String, &'static str)>,
}

impl Sensitive {
    #[must_use]
    pub fn new(ctx: &LearnContext) -> Sensitive {
        Sensitive { entries: crate::learn::sensitive_entries(ctx).into_iter().map(|e| (escape_path(&e.path), e.why)).collect() }
    }

    /// Why `path` is sensitive, if it is at or beneath a sensitive entry.
    #[must_use]
    pub fn why(&self, path: &str) -> Option<&'static str> {
        self.entries.iter().find(|(p, _)| at_or_beneath(path, p)).map(|(_, w)| *w)
    }
}

/// Counts for one path (or one folded directory).
#[derive(Clone, Debug, Default)]
pub(crate) struct PathAgg {
    pub ops: BTreeMap<&'static str, u64>,
    pub denied: u64,
    pub errors: u64,
    /// Events folded in from paths beyond [`MAX_PATHS`].
    pub folded: u64,
    /// pid -> events; at most [`PROCS_PER_PATH`], the rest in `other_procs`.
    pub procs: BTreeMap<u32, u64>,
    pub other_procs: u64,
}

impl PathAgg {
    fn add(&mut self, e: &Event, folded: bool) {
        *self.ops.entry(e.op.name()).or_default() += 1;
        match e.outcome.class() {
            "denied" => self.denied += 1,
            "error" => self.errors += 1,
            _ => {}
        }
        if folded {
            self.folded += 1;
        }
        if let Some(n) = self.procs.get_mut(&e.pid) {
            *n += 1;
        } else if self.procs.len() < PROCS_PER_PATH {
            self.procs.insert(e.pid, 1);
        } else {
            self.other_procs += 1;
        }
    }
}

/// One process of the session.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProcView {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    pub exe: Option<String>,
    /// The session's command line for its root process; the recorder
    /// does not capture the argv of later execs.
    pub argv: Option<Vec<String>>,
    pub events: u64,
    pub denied: u64,
}

/// The timeline: per bucket, counts per op and denials.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Timeline {
    /// Milliseconds per bucket: 1000 (events per second) for a session of
    /// a minute or more, finer for a short one, coarser (sampled) for a
    /// long one, so there are at most [`MAX_BUCKETS`] bars.
    pub bucket_ms: u64,
    pub ops: Vec<String>,
    /// The colour of each op ([`palette::op_color`]: fixed per op).
    pub colors: Vec<String>,
    /// The denial overlay's colour.
    pub denied_color: &'static str,
    /// `counts[bucket][op index]`.
    pub counts: Vec<Vec<u64>>,
    pub denied: Vec<u64>,
    /// Events outside the session's time range (clock skew), not drawn.
    pub outside: u64,
}

/// Bucket width for a session of `duration_ns`.
fn bucket_ms(duration_ns: i64) -> u64 {
    let ms = u64::try_from(duration_ns.max(0) / 1_000_000).unwrap_or(0);
    if ms >= 60_000 {
        return (ms / 1000 + 1).div_ceil(MAX_BUCKETS).max(1) * 1000;
    }
    [10, 20, 50, 100, 200, 500, 1000].into_iter().find(|b| ms / b < 200).unwrap_or(1000)
}

/// Streams a session's events into bounded aggregates.
#[derive(Debug)]
pub struct Aggregator {
    start_ns: i64,
    bucket_ns: i64,
    buckets: u64,
    paths: HashMap<String, PathAgg>,
    folded_paths: u64,
    procs: HashMap<u32, ProcView>,
    proc_order: Vec<u32>,
    other_proc_events: u64,
    timeline: Vec<BTreeMap<&'static str, u64>>,
    denied_per_bucket: Vec<u64>,
    outside: u64,
    events: u64,
    denied: u64,
    no_path: BTreeMap<&'static str, u64>,
    net: network::NetAgg,
}

impl Aggregator {
    /// An aggregator for a session that ran from `start_ns` for `duration_ns`.
    #[must_use]
    pub fn new(start_ns: i64, duration_ns: i64) -> Aggregator {
        let bucket_ms = bucket_ms(duration_ns);
        let buckets = u64::try_from(duration_ns.max(0) / 1_000_000).unwrap_or(0) / bucket_ms + 1;
        Aggregator {
            start_ns,
            bucket_ns: i64::try_from(bucket_ms).unwrap_or(1000).saturating_mul(1_000_000),
            buckets,
            paths: HashMap::new(),
            folded_paths: 0,
            procs: HashMap::new(),
            proc_order: Vec::new(),
            other_proc_events: 0,
            timeline: vec![BTreeMap::new(); usize::try_from(buckets).unwrap_or(1)],
            denied_per_bucket: vec![0; usize::try_from(buckets).unwrap_or(1)],
            outside: 0,
            events: 0,
            denied: 0,
            no_path: BTreeMap::new(),
            net: network::NetAgg::default(),
        }
    }

    /// Counts one event.
    pub fn add(&mut self, e: &Event) {
        self.events += 1;
        let denied = e.outcome.class() == "denied";
        self.denied += u64::from(denied);
        self.net.add(e);
        // Timeline.
        let offset = e.time_ns.saturating_sub(self.start_ns);
        let bucket = if offset < 0 { None } else { usize::try_from(offset / self.bucket_ns).ok() };
        match bucket.filter(|b| *b < self.timeline.len()) {
            Some(b) => {
                *self.timeline[b].entry(e.op.name()).or_default() += 1;
                if denied {
                    self.denied_per_bucket[b] += 1;
                }
            }
            None => self.outside += 1,
        }
        // Processes.
        if let Some(p) = self.procs.get_mut(&e.pid) {
            p.events += 1;
            p.denied += u64::from(denied);
            if p.exe.is_none() && e.exe.is_some() {
                p.exe.clone_from(&e.exe);
            }
            if e.op == Op::Exec {
                p.comm.clone_from(&e.comm);
            }
        } else if self.procs.len() < MAX_PROCS {
            self.proc_order.push(e.pid);
            self.procs.insert(
                e.pid,
                ProcView {
                    pid: e.pid,
                    ppid: e.ppid,
                    comm: e.comm.clone(),
                    exe: e.exe.clone(),
                    argv: None,
                    events: 1,
                    denied: u64::from(denied),
                },
            );
        } else {
            self.other_proc_events += 1;
        }
        // Paths.
        let Some(path) = e.path.as_deref().filter(|p| p.starts_with('/')) else {
            // Sockets are in the network section.
            if !e.op.is_network() {
                *self.no_path.entry(e.op.name()).or_default() += 1;
            }
            return;
        };
        if let Some(agg) = self.paths.get_mut(path) {
            agg.add(e, false);
        } else if self.paths.len() < MAX_PATHS {
            self.paths.entry(path.to_owned()).or_default().add(e, false);
        } else {
            // Fold into the nearest tracked ancestor (or the top directory).
            self.folded_paths += 1;
            let mut p = path;
            loop {
                p = match p.rfind('/') {
                    Some(0) | None => "/",
                    Some(i) => &p[..i],
                };
                if p == "/" || self.paths.contains_key(p) {
                    break;
                }
            }
            self.paths.entry(p.to_owned()).or_default().add(e, true);
        }
    }

    /// Counts a name reached through nono's proxy (see
    /// [`network::NetAgg::add_named`]): the network section lists it with
    /// its domain, and a refusal counts as a denial in the header.
    pub fn add_named(&mut self, domain: &str, port: u16, addr: Option<&str>, refused: bool, error: bool) {
        self.denied += u64::from(refused);
        self.net.add_named(domain, port, addr, refused, error);
    }

    /// The report data. `rules` get their `used` counts from the paths.
    #[must_use]
    pub fn finish(self, mut header: Header, mut rules: Rules, sensitive: &Sensitive, root_argv: &[String]) -> SessionReport {
        let Aggregator { paths, procs, proc_order, timeline, denied_per_bucket, bucket_ns, net, .. } = self;
        header.denied = self.denied;
        let (other_net_events, other_net_denied) = (net.other_events, net.other_denied);
        let network = net.finish();
        let mut procs = procs;
        let root_pid = proc_order.first().copied();
        let proc_index: HashMap<u32, usize> = proc_order.iter().enumerate().map(|(i, p)| (*p, i)).collect();
        for (path, agg) in &paths {
            if let Some(r) = rules.covering(path) {
                rules.views[r].used += agg.ops.values().sum::<u64>();
            }
        }
        let (nodes, capped) = tree::build(paths, MAX_NODES, &proc_index, &|p| rules.covering(p), &|p| sensitive.why(p));
        if let Some(p) = root_pid.and_then(|pid| procs.get_mut(&pid)) {
            p.argv = Some(root_argv.to_vec());
        }
        let processes: Vec<ProcView> = proc_order.iter().filter_map(|p| procs.remove(p)).collect();
        let ops: Vec<&'static str> = {
            let mut totals: BTreeMap<&'static str, u64> = BTreeMap::new();
            for b in &timeline {
                for (op, n) in b {
                    *totals.entry(op).or_default() += n;
                }
            }
            let mut v: Vec<_> = totals.into_iter().collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            v.into_iter().map(|(op, _)| op).collect()
        };
        let counts = timeline.iter().map(|b| ops.iter().map(|op| b.get(op).copied().unwrap_or(0)).collect()).collect();
        SessionReport {
            kind: "session",
            header,
            events: self.events,
            nodes,
            capped_nodes: capped,
            folded_paths: self.folded_paths,
            max_paths: MAX_PATHS,
            no_path: self.no_path.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            processes,
            other_process_events: self.other_proc_events,
            max_processes: MAX_PROCS,
            network,
            other_network_events: other_net_events,
            other_network_denied: other_net_denied,
            max_destinations: MAX_DESTINATIONS,
            timeline: Timeline {
                bucket_ms: u64::try_from(bucket_ns / 1_000_000).unwrap_or(1000),
                colors: ops.iter().map(|op| palette::op_color_by_name(op).to_owned()).collect(),
                denied_color: palette::DENIED,
                ops: ops.into_iter().map(str::to_owned).collect(),
                counts,
                denied: denied_per_bucket,
                outside: self.outside,
            },
            buckets: self.buckets,
            rules: rules.views,
        }
    }
}

/// The page header's facts about a session.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Header {
    pub id: i64,
    pub command: Vec<String>,
    pub cwd: String,
    pub backend: String,
    pub kernel: String,
    pub state: String,
    pub complete: bool,
    pub started: String,
    pub duration_ms: Option<i64>,
    pub exit: String,
    pub events: u64,
    /// Sandbox denials among them.
    pub denied: u64,
    pub lost: u64,
    /// Loss and failure counters by name.
    pub counters: BTreeMap<String, u64>,
    pub note: Option<String>,
    pub profile: Option<String>,
    /// Why the profile's rules are not shown (unreadable, none learned).
    pub profile_note: Option<String>,
    /// The host that recorded it (`NAME#ID-PREFIX`).
    pub host: Option<String>,
    /// The rollback snapshot taken before the session's command (`run --audit --rollback`).
    pub snapshot: Option<String>,
}

/// Everything the session page shows.
#[derive(Clone, Debug, Serialize)]
pub struct SessionReport {
    pub kind: &'static str,
    pub header: Header,
    /// Events aggregated (what the store returned).
    pub events: u64,
    pub nodes: Vec<TreeNode>,
    /// Nodes folded into their ancestors because the tree hit [`MAX_NODES`].
    pub capped_nodes: u64,
    /// Distinct paths counted on an ancestor beyond `max_paths`.
    pub folded_paths: u64,
    pub max_paths: usize,
    /// Events without a path (fork, exit, signals, syscalls), by op;
    /// sockets are in `network`.
    pub no_path: BTreeMap<String, u64>,
    /// Socket destinations, denied ones first.
    pub network: Vec<NetDest>,
    /// Events (and denials) on destinations beyond `max_destinations`.
    pub other_network_events: u64,
    pub other_network_denied: u64,
    pub max_destinations: usize,
    pub processes: Vec<ProcView>,
    pub other_process_events: u64,
    pub max_processes: usize,
    pub timeline: Timeline,
    pub buckets: u64,
    pub rules: Vec<RuleView>,
}

/// Everything the profile page shows.
#[derive(Clone, Debug, Serialize)]
pub struct ProfileReport {
    pub kind: &'static str,
    pub name: String,
    pub description: Option<String>,
    pub sessions: Vec<i64>,
    /// The compared session (`--against`), if any.
    pub against: Option<Header>,
    pub nodes: Vec<TreeNode>,
    pub capped_nodes: u64,
    pub rules: Vec<RuleView>,
    pub network: String,
}

impl ProfileReport {
    /// The tree of a profile's rules; with `against`, each rule's `used`
    /// count comes from that session's paths (already in `rules`).
    #[must_use]
    pub fn new(profile: &Profile, rules: Rules, against: Option<Header>, network: String) -> ProfileReport {
        let mut paths: HashMap<String, PathAgg> = HashMap::new();
        for r in &rules.views {
            if !r.path.is_empty() {
                paths.entry(r.path.clone()).or_default();
            }
        }
        let (nodes, capped) =
            tree::build(paths, MAX_NODES, &HashMap::new(), &|p| rules.views.iter().position(|r| r.path == p), &|_| None);
        ProfileReport {
            kind: "profile",
            name: profile.display_name().to_owned(),
            description: profile.meta.description.clone(),
            sessions: profile.meta.provenance.as_ref().map(|p| p.sessions.clone()).unwrap_or_default(),
            against,
            nodes,
            capped_nodes: capped,
            rules: rules.views,
            network,
        }
    }
}

/// Counts a session's events against a profile's rules one at a time (a
/// stream), remembering which rule covers each path seen (up to
/// [`MAX_PATHS`] of them).
#[derive(Debug, Default)]
pub struct Usage {
    cache: HashMap<String, Option<usize>>,
}

impl Usage {
    /// Adds one to the `used` count of the rule that covers `e`'s path.
    pub fn add(&mut self, rules: &mut Rules, e: &Event) {
        let Some(path) = e.path.as_deref().filter(|p| p.starts_with('/')) else { return };
        let hit = if let Some(h) = self.cache.get(path) {
            *h
        } else {
            let h = rules.covering(path);
            if self.cache.len() < MAX_PATHS {
                self.cache.insert(path.to_owned(), h);
            }
            h
        };
        if let Some(i) = hit {
            rules.views[i].used += 1;
        }
    }
}

#[cfg(test)]
mod tests;
