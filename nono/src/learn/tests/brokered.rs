//! Specification: an atomic save beside secrets is learned as a brokered
//! rule (issue 14), never as `$HOME` and never as a one-off temp name.

use super::*;
use crate::profile::BrokerOp;

/// What Claude Code does to save `~/.claude.json`: lock directory, random
/// temp sibling, rename over, unlock.
fn claude_save(pid: u32) -> Vec<Ev> {
    let tmp = format!("/home/u/.claude.json.tmp.{pid}.1732912345678");
    vec![
        open_r("/home/u/.claude.json").pid(pid),
        ev(Op::Mkdir, "/home/u/.claude.json.lock").pid(pid),
        ev(Op::Open, &tmp).write().create().pid(pid),
        ev(Op::Rename, &tmp).to("/home/u/.claude.json").ftype(libc::S_IFREG).pid(pid),
        ev(Op::Rmdir, "/home/u/.claude.json.lock").pid(pid),
    ]
}

#[test]
fn a_claude_like_save_in_home_becomes_one_brokered_rule() {
    let l = learn(claude_save(4242));
    assert_eq!(l.brokered.len(), 1, "{:#?}", l.brokered);
    let b = &l.brokered[0];
    assert_eq!(b.dir, "$HOME");
    assert_eq!(b.names, [".claude.json", ".claude.json.tmp.*", ".claude.json.lock"]);
    for op in [BrokerOp::Create, BrokerOp::Rename, BrokerOp::Mkdir, BrokerOp::Rmdir] {
        assert!(b.ops.contains(&op), "{op:?} missing: {b:#?}");
    }
    // The target keeps an exact file rule; nothing on $HOME; no one-off temp rule.
    assert_eq!(paths(&l), ["$HOME/.claude.json"], "{:#?}", l.rules);
    assert!(l.sensitive.is_empty(), "the save needs nothing sensitive: {:#?}", l.sensitive);
    assert!(!l.warnings.iter().any(|w| w.contains(".claude.json.tmp")), "{:?}", l.warnings);
    explanation(&l, "brokered $HOME/.claude.json", "performed by nono's supervisor");
    // The profile carries it, and it validates.
    let p = l.to_profile("c", crate::profile::Provenance::default());
    let json = p.to_json_pretty().expect("json");
    crate::profile::load_str(
        &json,
        "c.json",
        &crate::profile::Vars {
            home: "/home/u".into(),
            cwd: "/home/u/proj".into(),
            tmpdir: "/tmp".into(),
            xdg_config_home: "/home/u/.config".into(),
            xdg_cache_home: "/home/u/.cache".into(),
            tty: None,
        },
    )
    .expect("a learned brokered rule validates");
}

#[test]
fn other_needs_on_the_directory_are_still_refused() {
    let mut events = claude_save(4242);
    events.push(ev(Op::Open, "/home/u/notes.txt").write().create());
    let l = learn(events);
    assert_eq!(l.brokered.len(), 1);
    // Creating notes.txt needs make_reg on $HOME: refused, reported.
    assert!(l.sensitive.iter().any(|h| h.path == "/home/u" && h.rights.contains(&MakeReg)), "{:#?}", l.sensitive);
}

#[test]
fn a_save_over_a_secret_is_never_brokered() {
    let l = learn(vec![
        ev(Op::Open, "/home/u/.bashrc.tmp.k2j3x9ab4q").write().create(),
        ev(Op::Rename, "/home/u/.bashrc.tmp.k2j3x9ab4q").to("/home/u/.bashrc").ftype(libc::S_IFREG),
    ]);
    assert!(l.brokered.is_empty(), "{:#?}", l.brokered);
    assert!(!l.sensitive.is_empty());
}
