//! Learning across a fleet: the merge of many hosts' sessions, with every
//! rule marked by how many sessions and hosts used it, and the rules fewer
//! than `min_hosts` hosts used dropped, so one odd machine does not widen
//! everyone's profile. Pure: no I/O, no SQL.

use std::collections::{BTreeMap, BTreeSet};

use crate::profile::rights::SeenIn;

use super::Learned;

/// What the fleet merge kept and dropped.
#[derive(Clone, Debug, Default)]
pub struct FleetMerge {
    pub learned: Learned,
    /// Distinct hosts among the inputs.
    pub hosts: u32,
    /// Rules dropped because fewer than `min_hosts` hosts used them.
    pub dropped: Vec<String>,
}

/// Merges `(host, learned session)` pairs (see [`super::merge`]); each
/// resulting rule gets `seen_in: {runs, of, hosts, of_hosts}`.
#[must_use]
pub fn merge_fleet(runs: &[(String, Learned)], min_hosts: u32) -> FleetMerge {
    let all: Vec<Learned> = runs.iter().map(|(_, l)| l.clone()).collect();
    let mut learned = super::merge(&all);
    let hosts: BTreeSet<&str> = runs.iter().map(|(h, _)| h.as_str()).collect();
    let mut seen: BTreeMap<&str, (u32, BTreeSet<&str>)> = BTreeMap::new();
    for (host, l) in runs {
        for r in &l.rules {
            let entry = seen.entry(r.path.as_str()).or_default();
            entry.0 += 1;
            entry.1.insert(host.as_str());
        }
    }
    let of = u32::try_from(runs.len()).unwrap_or(u32::MAX);
    let of_hosts = u32::try_from(hosts.len()).unwrap_or(u32::MAX);
    let mut dropped = Vec::new();
    learned.rules.retain_mut(|r| {
        let (sessions, on) = seen.get(r.path.as_str()).map_or((0, 0), |(n, h)| (*n, u32::try_from(h.len()).unwrap_or(u32::MAX)));
        r.seen_in = Some(SeenIn { runs: sessions, of, hosts: Some(on), of_hosts: Some(of_hosts) });
        let keep = on >= min_hosts;
        if !keep {
            dropped.push(r.path.clone());
        }
        keep
    });
    FleetMerge { learned, hosts: of_hosts, dropped }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::rights::{FsRight, FsRule};

    fn learned(paths: &[&str]) -> Learned {
        Learned {
            rules: paths
                .iter()
                .map(|p| FsRule {
                    path: (*p).to_owned(),
                    access: [FsRight::ReadFile].into(),
                    file: true,
                    reason: None,
                    seen_in: None,
                    anticipated: BTreeSet::new(),
                })
                .collect(),
            ..Learned::default()
        }
    }

    #[test]
    fn rules_count_sessions_and_hosts_and_min_hosts_drops_one_hosts_rules() {
        let runs = vec![
            ("a".to_owned(), learned(&["/srv/shared", "/srv/a"])),
            ("a".to_owned(), learned(&["/srv/shared", "/srv/a"])),
            ("b".to_owned(), learned(&["/srv/shared"])),
        ];
        let m = merge_fleet(&runs, 1);
        let seen = |p: &str| m.learned.rules.iter().find(|r| r.path == p).and_then(|r| r.seen_in);
        assert_eq!(seen("/srv/shared"), Some(SeenIn { runs: 3, of: 3, hosts: Some(2), of_hosts: Some(2) }));
        // Two sessions, but one host: --min-hosts 2 drops it.
        assert_eq!(seen("/srv/a"), Some(SeenIn { runs: 2, of: 3, hosts: Some(1), of_hosts: Some(2) }));
        let m2 = merge_fleet(&runs, 2);
        assert_eq!(m2.learned.rules.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/srv/shared"]);
        assert_eq!(m2.dropped, ["/srv/a"]);
    }
}
