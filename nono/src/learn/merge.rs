//! Merging the results of several sessions: the union of everything, with
//! rules seen in only some sessions marked `seen_in` so a reviewer can
//! drop what one odd session needed.

use std::collections::BTreeMap;

use crate::profile::rights::{FsRule, SeenIn};

use super::paths::rule_parent;
use super::rights::Mask;
use super::{Explanation, Learned, SensitiveHit};

/// Most example paths kept per merged explanation.
const MAX_EXAMPLES: usize = 8;

/// Union of several results. A rule seen in fewer sessions than all gets
/// `seen_in: Some(SeenIn { runs, of })`; inputs that are themselves merges
/// count with their own `stats.runs` and `seen_in`. Rights are unioned per
/// path, so `seen_in` is about the path, not about each right.
#[must_use]
pub fn merge(runs: &[Learned]) -> Learned {
    let total: u32 = runs.iter().map(|l| l.stats.runs.max(1)).sum();
    let mut rules: BTreeMap<String, (FsRule, u32)> = BTreeMap::new();
    let mut hits: BTreeMap<String, SensitiveHit> = BTreeMap::new();
    let mut explanations: BTreeMap<(String, String), Explanation> = BTreeMap::new();
    let mut out = Learned::default();
    for l in runs {
        let weight = l.stats.runs.max(1);
        for r in &l.rules {
            let seen = r.seen_in.map_or(weight, |s| s.runs);
            match rules.get_mut(&r.path) {
                Some((acc, n)) => {
                    // A right anticipated in one run but used in another was seen.
                    let used_here: Vec<_> = r.access.difference(&r.anticipated).copied().collect();
                    acc.anticipated.extend(r.anticipated.iter().copied().filter(|x| !acc.access.contains(x)));
                    for x in &used_here {
                        acc.anticipated.remove(x);
                    }
                    acc.access.extend(r.access.iter().copied());
                    acc.file &= r.file;
                    if let Some(reason) = &r.reason {
                        let mut labels: Vec<&str> = acc.reason.as_deref().map(|a| a.split(", ").collect()).unwrap_or_default();
                        for l in reason.split(", ") {
                            if !labels.contains(&l) {
                                labels.push(l);
                            }
                        }
                        acc.reason = Some(labels.join(", "));
                    }
                    *n += seen;
                }
                None => {
                    rules.insert(r.path.clone(), (r.clone(), seen));
                }
            }
        }
        out.connect_ports.extend(l.connect_ports.iter().copied());
        out.bind_ports.extend(l.bind_ports.iter().copied());
        if let Some(u) = &l.udp {
            let acc = out.udp.get_or_insert_with(crate::profile::Udp::default);
            acc.dns |= u.dns;
            acc.to.extend(u.to.iter().copied());
        }
        if let Some(i) = &l.icmp {
            out.icmp.get_or_insert_with(Default::default).extend(i.iter().copied());
        }
        out.unix_connect.extend(l.unix_connect.iter().cloned());
        for b in &l.brokered {
            match out.brokered.iter_mut().find(|o| o.dir == b.dir && o.names.first() == b.names.first()) {
                Some(o) => {
                    for n in &b.names {
                        if !o.names.contains(n) {
                            o.names.push(n.clone());
                        }
                    }
                    o.ops.extend(b.ops.iter().copied());
                }
                None => out.brokered.push(b.clone()),
            }
        }
        out.families.extend(l.families.iter().cloned());
        out.sandbox = out.sandbox.merge(&l.sandbox);
        for n in &l.notes {
            if !out.notes.contains(n) {
                out.notes.push(n.clone());
            }
        }
        for h in &l.sensitive {
            match hits.get_mut(&h.path) {
                Some(acc) => {
                    acc.rights.extend(h.rights.iter().copied());
                    acc.ops.extend(h.ops.iter().copied());
                    for p in &h.pids {
                        if !acc.pids.contains(p) {
                            acc.pids.push(*p);
                        }
                    }
                    for c in &h.comms {
                        if !acc.comms.contains(c) {
                            acc.comms.push(c.clone());
                        }
                    }
                }
                None => {
                    hits.insert(h.path.clone(), h.clone());
                }
            }
        }
        for x in &l.explanations {
            match explanations.get_mut(&(x.rule_path.clone(), x.reason.clone())) {
                Some(acc) => {
                    for f in &x.from {
                        if !acc.from.contains(f) {
                            acc.paths += 1;
                            if acc.from.len() < MAX_EXAMPLES {
                                acc.from.push(f.clone());
                            }
                        }
                    }
                    acc.paths = acc.paths.max(x.paths);
                }
                None => {
                    explanations.insert((x.rule_path.clone(), x.reason.clone()), x.clone());
                }
            }
        }
        for w in &l.warnings {
            if !out.warnings.contains(w) {
                out.warnings.push(w.clone());
            }
        }
        out.stats.events += l.stats.events;
        out.stats.used += l.stats.used;
        out.stats.distinct_paths = out.stats.distinct_paths.max(l.stats.distinct_paths);
        for (k, v) in &l.stats.ignored {
            *out.stats.ignored.entry(k.clone()).or_default() += v;
        }
    }
    out.stats.runs = total;
    let covered = covered_rules(&rules);
    out.rules = rules
        .into_iter()
        .filter(|(path, _)| !covered.contains(path))
        .map(|(_, (mut r, seen))| {
            r.seen_in = (seen < total).then_some(SeenIn { runs: seen, of: total, ..SeenIn::default() });
            r
        })
        .collect();
    out.sensitive = hits.into_values().collect();
    out.explanations = explanations.into_values().collect();
    out
}

/// Rules that a directory rule on an ancestor already grants, and that
/// were seen in no more sessions than it: dropping them loses nothing.
/// (A narrower rule seen more often is kept, so that removing a rarely
/// seen broad rule on review does not take it along.)
fn covered_rules(rules: &BTreeMap<String, (FsRule, u32)>) -> Vec<String> {
    let mut covered = Vec::new();
    for (path, (rule, seen)) in rules {
        let mask = Mask::from_set(&rule.access);
        let mut up = rule_parent(path);
        while let Some(a) = up {
            if let Some((ar, aseen)) = rules.get(a)
                && !ar.file
                && Mask::from_set(&ar.access).contains_all(mask)
                && aseen >= seen
            {
                covered.push(path.clone());
                break;
            }
            up = rule_parent(a);
        }
    }
    covered
}
