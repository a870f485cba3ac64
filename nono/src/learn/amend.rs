//! `nono profile amend`: the smallest additions to a profile that would
//! have allowed what a sandboxed run was denied. Pure, like the rest of
//! `learn`: denied events and the profile's grants in, proposals out.
//!
//! The denials are learned as if they had succeeded, with the same
//! generalisation and sensitive-path rules as `nono learn`, so an
//! amendment is never wider than what learning the run would have
//! granted: a denied read of `~/.ssh/id_rsa` is refused again (reported,
//! not proposed) unless the user allows that path; one file in `~` never
//! becomes all of `~`. What the profile already grants is subtracted, so
//! each proposal is exactly what is missing.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::event::{Event, Facility, Outcome};
use crate::profile::rights::{FsRight, FsRule};
use crate::profile::{BrokerOp, BrokeredRule, Profile, Udp};

use super::check::Grants;
use super::{LearnContext, SensitiveHit, Synthesiser};

/// One addition to the profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// Add these rights to the rule for this path (created if missing).
    Fs {
        rule: FsRule,
    },
    ConnectPort {
        port: u16,
    },
    ListenPort {
        port: u16,
    },
    Dns,
    UdpTo {
        to: SocketAddr,
    },
    Icmp {
        to: IpAddr,
    },
    UnixConnect {
        path: String,
    },
    Family {
        name: String,
    },
    Facility {
        facility: Facility,
    },
    SignalOutside,
    AbstractUnixOutside,
    /// Add a brokered rule (names and ops join an existing rule for the
    /// same directory).
    Brokered {
        rule: BrokeredRule,
    },
    /// Add an `allow_domains` entry (`name`, `*.parent`, `name:PORT`) for
    /// names nono's proxy refused (`amend_domains`).
    Domain {
        domain: String,
    },
}

/// A change with what it is for, for the user to decide on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Proposal {
    /// One line for people: `$XDG_CACHE_HOME/app: + write_file, make_reg`.
    pub title: String,
    pub change: Change,
    /// Why: the generalisation that produced it, when there was one.
    pub reason: Option<String>,
}

/// What an amendment would add, and what it will not.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Amendment {
    pub proposals: Vec<Proposal>,
    /// Denied accesses to sensitive paths: never proposed unless allowed
    /// (`--allow-sensitive`).
    pub refused_sensitive: Vec<SensitiveHit>,
    /// Denials that need no profile change (already granted: the denial
    /// came from elsewhere) or that a profile cannot express.
    pub unexplained: Vec<String>,
    /// Denied events considered.
    pub denials: u64,
}

/// What the profile grants, in the terms the proposals are compared with.
pub struct Granted<'a> {
    pub grants: &'a Grants,
    pub profile_udp: Option<&'a Udp>,
    pub icmp: Option<&'a BTreeSet<IpAddr>>,
    /// Expanded `network.unix_connect`.
    pub unix_connect: &'a [PathBuf],
    pub families: &'a [String],
    pub facilities: &'a BTreeSet<Facility>,
    pub signal_outside: bool,
    pub abstract_unix_outside: bool,
    /// Expands a rule path (`$HOME/x`) the way the profile's paths were.
    pub expand: &'a dyn Fn(&str) -> Option<PathBuf>,
    /// Whether a path exists now (a Landlock rule needs an existing file:
    /// `nono run` skips the others).
    pub exists: &'a dyn Fn(&Path) -> bool,
    /// A sensitive path a directory rule with these rights would expose
    /// (the run-time check of `nono run`), if any.
    pub exposes: &'a dyn Fn(&Path, &BTreeSet<FsRight>) -> Option<String>,
}

/// One filesystem addition being worked out.
struct FsNeed {
    spelled: String,
    abs: PathBuf,
    rights: BTreeSet<FsRight>,
    file: bool,
    anticipated: BTreeSet<FsRight>,
    reason: String,
    /// Entries beneath that do not exist yet, whose rights this need
    /// carries (`(name, rights)`): a brokered rule for them is the
    /// fallback when the directory cannot be granted.
    lifted: Vec<(String, BTreeSet<FsRight>)>,
}

/// Rights a file's own rule carries (as opposed to its directory's).
fn entry_ops(rights: &BTreeSet<FsRight>) -> BTreeSet<BrokerOp> {
    let mut ops = BTreeSet::new();
    for r in rights {
        match r {
            FsRight::MakeReg => {
                ops.insert(BrokerOp::Create);
            }
            FsRight::WriteFile | FsRight::Truncate => {
                ops.insert(BrokerOp::Write);
            }
            FsRight::RemoveFile => {
                ops.insert(BrokerOp::Remove);
            }
            FsRight::MakeDir => {
                ops.insert(BrokerOp::Mkdir);
            }
            FsRight::RemoveDir => {
                ops.insert(BrokerOp::Rmdir);
            }
            _ => {}
        }
    }
    ops
}

/// The filesystem proposals: each learned rule's missing rights, placed
/// where Landlock can enforce them. A rule on a path that does not exist
/// would be skipped by the next run (the denial would repeat forever), so
/// its rights move to the nearest existing directory, with the right to
/// create it; when a rule there would expose a sensitive path, the new
/// names become a brokered rule instead (the supervisor creates exactly
/// them). A proposal `nono run` would refuse is never made.
fn fs_proposals(learned: &super::Learned, granted: &Granted<'_>, out: &mut Amendment) {
    use std::collections::BTreeMap;
    let mut needs: BTreeMap<(String, bool), FsNeed> = BTreeMap::new();
    for rule in &learned.rules {
        let Some(abs) = (granted.expand)(&rule.path) else { continue };
        let have = granted.grants.granted(&abs);
        let missing: BTreeSet<FsRight> =
            rule.access.iter().copied().filter(|r| granted.grants.handled.contains(r) && !have.contains(r)).collect();
        if missing.is_empty() {
            continue;
        }
        let reason = learned.explanations.iter().find(|x| x.rule_path == rule.path).map_or_else(
            || format!("the run was denied {} here", names(&missing)),
            |x| format!("{} (as `nono learn` generalises)", x.reason),
        );
        let mut need = FsNeed {
            spelled: rule.path.clone(),
            abs,
            rights: missing,
            file: rule.file,
            anticipated: rule.anticipated.clone(),
            reason,
            lifted: Vec::new(),
        };
        // Up to the nearest existing directory.
        let mut made = if need.file { FsRight::MakeReg } else { FsRight::MakeDir };
        while !(granted.exists)(&need.abs) {
            let (Some(parent), Some(up)) =
                (super::paths::rule_parent(&need.spelled).map(str::to_owned), need.abs.parent().map(Path::to_path_buf))
            else {
                break;
            };
            let name = need.spelled[parent.len()..].trim_start_matches('/').to_owned();
            // A file's own rights hold on its directory as well; a
            // directory's (what is made inside it) too.
            let mut rights: BTreeSet<FsRight> =
                need.rights.iter().copied().filter(|r| !need.file || FsRight::FILE_RIGHTS.contains(r)).collect();
            rights.insert(made);
            made = FsRight::MakeDir;
            need.lifted = vec![(name, need.rights.clone())];
            need.reason = format!(
                "{} does not exist yet, and a Landlock rule needs an existing file (`nono run` would skip it): granted on its directory instead",
                need.spelled
            );
            let have = granted.grants.granted(&up);
            need.spelled = parent;
            need.abs = up;
            need.rights = rights.into_iter().filter(|r| !have.contains(r)).collect();
            need.file = false;
            need.anticipated.clear();
        }
        match needs.get_mut(&(need.spelled.clone(), need.file)) {
            Some(n) => {
                n.rights.extend(need.rights.iter().copied());
                if !need.lifted.is_empty() {
                    n.reason = need.reason;
                }
                n.lifted.extend(need.lifted);
            }
            None => {
                needs.insert((need.spelled.clone(), need.file), need);
            }
        }
    }
    for need in needs.into_values() {
        let exposed = if need.file { None } else { (granted.exposes)(&need.abs, &need.rights) };
        let Some(example) = exposed else {
            if need.rights.is_empty() {
                continue;
            }
            out.proposals.push(Proposal {
                title: format!("{}{}: + {}", need.spelled, if need.file { " (file)" } else { "" }, names(&need.rights)),
                change: Change::Fs {
                    rule: FsRule {
                        path: need.spelled.clone(),
                        access: need.rights.clone(),
                        file: need.file,
                        reason: Some("amended".to_owned()),
                        seen_in: None,
                        anticipated: need.anticipated.clone(),
                    },
                },
                reason: Some(need.reason),
            });
            continue;
        };
        if need.lifted.is_empty() {
            out.unexplained.push(format!(
                "{}: + {} would expose {example} (nono run refuses such a grant): not proposed",
                need.spelled,
                names(&need.rights)
            ));
            continue;
        }
        let mut ops = BTreeSet::new();
        for (_, rights) in &need.lifted {
            ops.extend(entry_ops(rights));
        }
        ops.insert(BrokerOp::Create);
        let entries: Vec<String> = need.lifted.iter().map(|(n, _)| n.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let ops_text: Vec<String> = ops.iter().map(|o| format!("{o:?}").to_lowercase()).collect();
        out.proposals.push(Proposal {
            title: format!("{}: brokered {} ({})", need.spelled, entries.join(", "), ops_text.join(", ")),
            change: Change::Brokered {
                rule: BrokeredRule {
                    dir: need.spelled.clone(),
                    names: entries.clone(),
                    ops,
                    reason: Some("amended: a new file beside sensitive paths".to_owned()),
                },
            },
            reason: Some(format!(
                "{} does not exist yet, and a rule on its directory {} would expose {example}: nono's supervisor creates just {}",
                entries.join(", "),
                need.spelled,
                if entries.len() == 1 { "that name" } else { "those names" }
            )),
        });
    }
}

fn names(rights: &BTreeSet<FsRight>) -> String {
    rights.iter().map(|r| r.name()).collect::<Vec<_>>().join(", ")
}

/// Proposals for the sandbox denials among `events` (anything else is
/// ignored: errors the sandbox did not cause need no rule), each with the
/// reason it is proposed.
#[must_use]
pub fn propose<'a>(events: impl IntoIterator<Item = &'a Event>, ctx: &LearnContext, granted: &Granted<'_>) -> Amendment {
    let mut synth = Synthesiser::new(ctx);
    let mut denials = 0u64;
    let mut samples: Vec<String> = Vec::new();
    for e in events {
        let Outcome::Denied { .. } = e.outcome else { continue };
        denials += 1;
        if samples.len() < 20 {
            samples.push(format!("{} {} by {}", e.op, e.path.as_deref().unwrap_or("-"), e.comm));
        }
        synth.add(&Event { outcome: Outcome::Ok, ..e.clone() });
    }
    let learned = synth.finish();
    let mut out = Amendment { denials, refused_sensitive: learned.sensitive.clone(), ..Amendment::default() };
    fs_proposals(&learned, granted, &mut out);
    let g = granted.grants;
    for port in &learned.connect_ports {
        if g.connect_ports.as_ref().is_some_and(|p| !p.contains(port)) {
            out.proposals.push(simple(format!("network.open_port += {port}"), Change::ConnectPort { port: *port }));
        }
    }
    for port in &learned.bind_ports {
        if g.bind_ports.as_ref().is_some_and(|p| !p.contains(port)) {
            out.proposals.push(simple(format!("network.listen_port += {port}"), Change::ListenPort { port: *port }));
        }
    }
    if let Some(u) = &learned.udp {
        if u.dns && !granted.profile_udp.is_some_and(|p| p.dns) {
            out.proposals.push(simple("network.udp.dns = true".to_owned(), Change::Dns));
        }
        for to in &u.to {
            if !granted.profile_udp.is_some_and(|p| p.to.contains(to)) {
                out.proposals.push(simple(format!("network.udp.to += {to}"), Change::UdpTo { to: *to }));
            }
        }
    }
    for to in learned.icmp.iter().flatten() {
        if !granted.icmp.is_some_and(|i| i.contains(to)) {
            out.proposals.push(simple(format!("network.icmp += {to}"), Change::Icmp { to: *to }));
        }
    }
    for path in &learned.unix_connect {
        let abs = (granted.expand)(path);
        if abs.is_none_or(|a| !granted.unix_connect.contains(&a)) {
            out.proposals.push(simple(format!("network.unix_connect += {path}"), Change::UnixConnect { path: path.clone() }));
        }
    }
    for name in &learned.families {
        if !granted.families.contains(name) {
            out.proposals.push(simple(format!("network.families += {name}"), Change::Family { name: name.clone() }));
        }
    }
    for f in &learned.sandbox.allow {
        if !granted.facilities.contains(f) {
            out.proposals.push(simple(format!("sandbox.allow += {f}"), Change::Facility { facility: *f }));
        }
    }
    if learned.sandbox.signal_outside && !granted.signal_outside {
        out.proposals.push(simple("sandbox.signal_outside = true".to_owned(), Change::SignalOutside));
    }
    if learned.sandbox.abstract_unix_outside && !granted.abstract_unix_outside {
        out.proposals.push(simple("sandbox.abstract_unix_outside = true".to_owned(), Change::AbstractUnixOutside));
    }
    if out.proposals.is_empty() && out.refused_sensitive.is_empty() && denials > 0 {
        out.unexplained = samples;
    }
    out
}

fn simple(title: String, change: Change) -> Proposal {
    Proposal { title, change, reason: None }
}

/// Applies accepted changes to `profile` (the file's own content, not its
/// `extends` parents): rights join an existing rule for the same path and
/// kind, lists grow, keys are set.
pub fn apply(profile: &mut Profile, accepted: &[Change]) {
    let net = &mut profile.network;
    for c in accepted {
        match c {
            Change::Fs { rule } => {
                let rules = &mut profile.filesystem.rules;
                match rules.iter_mut().find(|r| r.path == rule.path && r.file == rule.file) {
                    Some(r) => {
                        r.access.extend(rule.access.iter().copied());
                        r.anticipated.extend(rule.anticipated.iter().copied());
                    }
                    None => rules.push(rule.clone()),
                }
                rules.sort_by(|a, b| a.path.cmp(&b.path));
            }
            Change::ConnectPort { port } => {
                net.open_port.get_or_insert_with(BTreeSet::new).insert(*port);
            }
            Change::ListenPort { port } => {
                net.listen_port.get_or_insert_with(BTreeSet::new).insert(*port);
            }
            Change::Dns => net.udp.get_or_insert_with(Udp::default).dns = true,
            Change::UdpTo { to } => {
                net.udp.get_or_insert_with(Udp::default).to.insert(*to);
            }
            Change::Icmp { to } => {
                net.icmp.get_or_insert_with(BTreeSet::new).insert(*to);
            }
            Change::UnixConnect { path } => {
                let list = net.unix_connect.get_or_insert_with(Vec::new);
                if !list.contains(path) {
                    list.push(path.clone());
                }
            }
            Change::Family { name } => {
                if !net.families.contains(name) {
                    net.families.push(name.clone());
                }
            }
            Change::Facility { facility } => {
                profile.sandbox.allow.insert(*facility);
            }
            Change::Brokered { rule } => {
                let list = &mut profile.filesystem.brokered;
                match list.iter_mut().find(|b| b.dir == rule.dir) {
                    Some(b) => {
                        for n in &rule.names {
                            if !b.names.contains(n) {
                                b.names.push(n.clone());
                            }
                        }
                        b.ops.extend(rule.ops.iter().copied());
                    }
                    None => list.push(rule.clone()),
                }
            }
            Change::Domain { domain } => {
                let list = net.allow_domains.get_or_insert_with(Vec::new);
                if !list.iter().any(|d| d.domain() == domain) {
                    list.push(crate::profile::network::DomainEntry::Rule(crate::profile::network::DomainRule {
                        domain: domain.clone(),
                        private: false,
                        reason: Some("amended: refused by nono's proxy".to_owned()),
                        count: None,
                    }));
                }
            }
            Change::SignalOutside => profile.sandbox.signal_outside = true,
            Change::AbstractUnixOutside => profile.sandbox.abstract_unix_outside = true,
        }
    }
}

/// Expands a learned rule path (`$CWD/x`, `$HOME/x`, absolute) with the
/// session's context.
#[must_use]
pub fn expand_with(ctx: &LearnContext, path: &str) -> Option<PathBuf> {
    let join = |base: &Path, rest: &str| -> Option<PathBuf> {
        let rest = rest.trim_start_matches('/');
        Some(if rest.is_empty() { base.to_path_buf() } else { base.join(crate::event::unescape_path(rest).ok()?) })
    };
    let vars: [(&str, &Path); 5] = [
        ("$CWD", &ctx.cwd),
        ("$TMPDIR", &ctx.tmpdir),
        ("$XDG_CACHE_HOME", &ctx.xdg_cache_home),
        ("$XDG_CONFIG_HOME", &ctx.xdg_config_home),
        ("$HOME", &ctx.home),
    ];
    for (name, value) in vars {
        if let Some(rest) = path.strip_prefix(name)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return join(value, rest);
        }
    }
    path.starts_with('/').then(|| crate::event::unescape_path(path).ok()).flatten()
}
