//! The learner's output as a profile: what a session (or several merged)
//! produced, written in the profile format with its provenance. Lives in
//! `learn` because the profile layer knows nothing of learning.

use crate::profile::rights::FsRule;
use crate::profile::{Extends, Filesystem, Meta, Network, Profile, Provenance, Security};

use super::Learned;

impl Learned {
    /// The profile a learning session produced.
    #[must_use]
    pub fn to_profile(&self, name: &str, provenance: Provenance) -> Profile {
        let learned = self;
        let sessions = provenance.sessions.clone();
        Profile {
            meta: Meta {
                name: Some(name.to_owned()),
                version: Some("1".to_owned()),
                description: Some(format!(
                    "Learned by nono {} from session(s) {sessions:?} ({} backend, {} lost events)",
                    provenance.nono_version, provenance.backend, provenance.lost_events
                )),
                provenance: Some(provenance),
            },
            extends: Extends::None,
            filesystem: Filesystem {
                rules: with_devices(&learned.rules),
                brokered: learned.brokered.clone(),
                ..Filesystem::default()
            },
            network: Network {
                block: false,
                open_port: Some(learned.connect_ports.clone()),
                listen_port: Some(learned.bind_ports.clone()),
                udp: learned.udp.clone(),
                icmp: learned.icmp.clone(),
                unix_connect: (!learned.unix_connect.is_empty()).then(|| learned.unix_connect.iter().cloned().collect()),
                families: learned.families.iter().cloned().collect(),
                allow_domains: None,
                credentials: Vec::new(),
            },
            sandbox: learned.sandbox.clone(),
            security: Security::default(),
            rollback: None,
        }
    }
}

/// `rules` plus the harmless devices and the command's terminal, which
/// every learned profile carries (see `generalise::device_rules`): a
/// learned rule on one of them keeps its own rights and gains these.
fn with_devices(rules: &[FsRule]) -> Vec<FsRule> {
    let mut out = rules.to_vec();
    for d in super::generalise::device_rules() {
        match out.iter_mut().find(|r| r.path == d.path) {
            Some(r) => r.access.extend(d.access),
            None => out.push(d),
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::profile::resolve;
    use crate::profile::rights::{self, FsRight};
    use crate::profile::tests::vars;

    #[test]
    fn a_learned_profile_round_trips() {
        let mut learned = Learned::default();
        learned.rules.push(rights::FsRule {
            path: "$CWD".into(),
            access: [FsRight::ReadFile, FsRight::WriteFile].into(),
            file: false,
            reason: Some("workdir".into()),
            seen_in: None,
            anticipated: [FsRight::RemoveFile].into(),
        });
        learned.connect_ports.insert(443);
        let prov = Provenance {
            sessions: vec![4],
            nono_version: "0.1.0".into(),
            backend: "tracepoint".into(),
            lost_events: 0,
            learned_at: String::new(),
            chain_roots: Vec::new(),
        };
        let p = learned.to_profile("agent", prov);
        let text = p.to_json_pretty().expect("json");
        let back = Profile::parse(&text, "learned.json").expect("parses");
        assert_eq!(back, p);
        let r = resolve(back, "learned.json", &vars()).expect("resolves");
        assert_eq!(r.network.open_port, Some(BTreeSet::from([443])));
        assert_eq!(r.network.listen_port, Some(BTreeSet::new()));
    }
}
