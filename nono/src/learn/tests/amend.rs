//! Specification of `profile amend`: the smallest addition for each
//! sandbox denial, never a sensitive path, nothing already granted.

use std::path::PathBuf;

use super::*;
use crate::event::DenyBy;
use crate::learn::amend::{self, Change, Granted};
use crate::learn::{Grant, Grants};

fn denied(e: Ev) -> Ev {
    let mut e = e;
    e.0.outcome = Outcome::Denied { errno: libc::EACCES, by: DenyBy::Computed };
    e
}

fn grants(fs: Vec<Grant>) -> Grants {
    Grants {
        fs,
        handled: FsRight::ALL.into_iter().collect(),
        connect_ports: Some([443].into()),
        bind_ports: Some([].into()),
        block_net: false,
    }
}

fn propose(ctx: &LearnContext, g: &Grants, events: Vec<Ev>) -> amend::Amendment {
    let events: Vec<Event> = events.into_iter().map(|e| e.0).collect();
    let none = std::collections::BTreeSet::new();
    let c = ctx.clone();
    let expand = move |p: &str| amend::expand_with(&c, p);
    let granted = Granted {
        grants: g,
        profile_udp: None,
        icmp: None,
        unix_connect: &[],
        families: &[],
        facilities: &none,
        signal_outside: false,
        abstract_unix_outside: false,
        expand: &expand,
        exists: &|_| true,
        exposes: &|_, _| None,
    };
    amend::propose(&events, ctx, &granted)
}

/// `propose` where only `existing` paths exist and a directory rule on
/// one of `sensitive_dirs` would expose a secret.
fn propose_in(ctx: &LearnContext, g: &Grants, events: Vec<Ev>, existing: &[&str], sensitive_dirs: &[&str]) -> amend::Amendment {
    let events: Vec<Event> = events.into_iter().map(|e| e.0).collect();
    let none = std::collections::BTreeSet::new();
    let c = ctx.clone();
    let expand = move |p: &str| amend::expand_with(&c, p);
    let exists = |p: &std::path::Path| existing.iter().any(|e| std::path::Path::new(e) == p);
    let exposes = |p: &std::path::Path, _: &std::collections::BTreeSet<FsRight>| {
        sensitive_dirs.iter().any(|d| std::path::Path::new(d) == p).then(|| format!("{}/.ssh", p.display()))
    };
    let granted = Granted {
        grants: g,
        profile_udp: None,
        icmp: None,
        unix_connect: &[],
        families: &[],
        facilities: &none,
        signal_outside: false,
        abstract_unix_outside: false,
        expand: &expand,
        exists: &exists,
        exposes: &exposes,
    };
    amend::propose(&events, ctx, &granted)
}

#[test]
fn a_new_file_gets_its_directory_never_a_rule_on_a_missing_path() {
    // ~/notes exists, ~/notes/new.txt does not: a file rule would be
    // skipped by the next run and the denial would repeat forever.
    let existing = ["/", "/home", "/home/u", "/home/u/notes"];
    let a = propose_in(
        &ctx(),
        &grants(vec![]),
        vec![denied(ev(Op::Open, "/home/u/notes/new.txt").write().create())],
        &existing,
        &["/home/u"],
    );
    assert_eq!(a.proposals.len(), 1, "{:#?}", a.proposals);
    let Change::Fs { rule } = &a.proposals[0].change else { panic!("{:?}", a.proposals) };
    assert_eq!((rule.path.as_str(), rule.file), ("$HOME/notes", false));
    assert!(rule.access.contains(&MakeReg) && rule.access.contains(&WriteFile), "{rule:?}");
    assert!(a.proposals[0].reason.as_deref().is_some_and(|r| !r.is_empty()), "each proposal says why: {:?}", a.proposals[0]);
    // A file rule on a path that does not exist (here: a write of a file
    // the run then removed) moves to its directory.
    let a = propose_in(
        &ctx(),
        &grants(vec![]),
        vec![denied(ev(Op::Open, "/home/u/notes/gone.txt").write())],
        &existing,
        &["/home/u"],
    );
    let Change::Fs { rule } = &a.proposals[0].change else { panic!("{:?}", a.proposals) };
    assert_eq!((rule.path.as_str(), rule.file), ("$HOME/notes", false), "{:#?}", a.proposals);
    assert!(a.proposals[0].reason.as_deref().is_some_and(|r| r.contains("does not exist yet")), "{:?}", a.proposals[0]);
}

#[test]
fn a_new_file_beside_secrets_becomes_a_brokered_rule() {
    let existing = ["/", "/home", "/home/u"];
    let a = propose_in(
        &ctx(),
        &grants(vec![]),
        vec![denied(ev(Op::Open, "/home/u/new.txt").write().create())],
        &existing,
        &["/home/u"],
    );
    assert_eq!(a.proposals.len(), 1, "{:#?}", a.proposals);
    let Change::Brokered { rule } = &a.proposals[0].change else { panic!("{:?}", a.proposals) };
    assert_eq!(rule.dir, "$HOME");
    assert_eq!(rule.names, ["new.txt"]);
    assert!(rule.ops.contains(&crate::profile::BrokerOp::Create) && rule.ops.contains(&crate::profile::BrokerOp::Write));
    assert!(a.proposals[0].reason.as_deref().is_some_and(|r| r.contains("/home/u/.ssh")), "{:?}", a.proposals[0]);
    // Applied, it joins an existing brokered rule of the same directory.
    let mut p = crate::profile::Profile::default();
    amend::apply(&mut p, &[a.proposals[0].change.clone(), a.proposals[0].change.clone()]);
    assert_eq!(p.filesystem.brokered.len(), 1);
    assert_eq!(p.filesystem.brokered[0].names, ["new.txt"]);
}

#[test]
fn a_denial_becomes_exactly_the_missing_rights() {
    let g = grants(vec![Grant { path: "/home/u/.cache".into(), rights: [ReadFile, ReadDir].into(), file: false }]);
    let a = propose(
        &ctx(),
        &g,
        vec![
            denied(ev(Op::Open, "/home/u/.cache/app/db").write()),
            // Errors the sandbox did not cause need nothing.
            open_r("/home/u/.cache/app/x").err(libc::EACCES),
        ],
    );
    assert_eq!(a.denials, 1);
    assert_eq!(a.proposals.len(), 1, "{:#?}", a.proposals);
    let Change::Fs { rule } = &a.proposals[0].change else { panic!("{:?}", a.proposals[0]) };
    assert_eq!(rule.path, "$XDG_CACHE_HOME");
    assert_eq!(rule.access, set(&[WriteFile]), "read_file is already granted");
}

#[test]
fn one_file_in_home_is_never_all_of_home() {
    // Upstream nono #1505: a suggestion offered all of `~` for one file.
    let a = propose(&ctx(), &grants(vec![]), vec![denied(open_r("/home/u/notes.txt"))]);
    let Change::Fs { rule } = &a.proposals[0].change else { panic!("{:?}", a.proposals) };
    assert_eq!((rule.path.as_str(), rule.file), ("$HOME/notes.txt", true));
}

#[test]
fn sensitive_paths_are_refused_unless_allowed() {
    let a = propose(&ctx(), &grants(vec![]), vec![denied(open_r("/home/u/.ssh/id_rsa"))]);
    assert!(a.proposals.is_empty(), "{:#?}", a.proposals);
    assert!(a.refused_sensitive.iter().any(|h| h.path == "/home/u/.ssh/id_rsa"));
    let allowed = LearnContext { allow_sensitive: vec![PathBuf::from("/home/u/.ssh/id_rsa")], ..ctx() };
    let a = propose(&allowed, &grants(vec![]), vec![denied(open_r("/home/u/.ssh/id_rsa"))]);
    assert_eq!(a.proposals.len(), 1, "{:#?}", a);
}

#[test]
fn network_denials_become_ports_and_apply_merges_into_the_profile() {
    let mut c = net(Op::Connect, libc::AF_INET, 8443);
    c.0.net.as_mut().expect("net").addr = Some("192.0.2.1".parse().expect("ip"));
    let a = propose(&ctx(), &grants(vec![]), vec![denied(c), denied(ev(Op::Open, "/home/u/proj/out").write().create())]);
    assert!(a.proposals.iter().any(|p| p.change == Change::ConnectPort { port: 8443 }), "{:#?}", a.proposals);
    let mut profile = crate::profile::Profile::default();
    profile.network.open_port = Some([443].into());
    profile.filesystem.rules.push(FsRule {
        path: "$CWD".into(),
        access: [ReadFile].into(),
        file: false,
        reason: None,
        seen_in: None,
        anticipated: Default::default(),
    });
    let changes: Vec<Change> = a.proposals.iter().map(|p| p.change.clone()).collect();
    amend::apply(&mut profile, &changes);
    assert_eq!(profile.network.open_port, Some([443, 8443].into()));
    assert_eq!(profile.filesystem.rules.len(), 1, "merged into the existing $CWD rule");
    assert!(profile.filesystem.rules[0].access.contains(&MakeReg));
}
