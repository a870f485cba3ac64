//! Specification: metadata changes (`chmod`, `chown`, times, xattrs,
//! issue 22) become what nono's broker needs to allow them under the
//! default `filesystem.metadata` policy (`write_grants`): nothing more
//! beneath a write grant, the `metadata` op on a brokered save's entries,
//! otherwise `write_file` on the object, and never a sensitive path.

use super::*;
use crate::profile::BrokerOp;

fn meta(path: &str, nr: i64) -> Ev {
    ev(Op::Metadata, path).arg(nr as u64)
}

/// A descriptor-based change: the recorder knows the object's type.
fn fmeta(path: &str, nr: i64) -> Ev {
    meta(path, nr).ftype(libc::S_IFREG)
}

/// A mode-preserving atomic save of `~/.toolrc`: read the original, write
/// a temp sibling, copy the original's mode and times onto it through the
/// descriptor, rename it over.
fn mode_preserving_save() -> Vec<Ev> {
    let tmp = "/home/u/.toolrc.tmp";
    vec![
        open_r("/home/u/.toolrc"),
        ev(Op::Open, tmp).write().create().trunc(),
        fmeta(tmp, libc::SYS_fchmod),
        fmeta(tmp, libc::SYS_utimensat),
        ev(Op::Rename, tmp).to("/home/u/.toolrc").ftype(libc::S_IFREG),
    ]
}

#[test]
fn metadata_changes_are_not_landlock_needs() {
    assert!(meta("/a/f", libc::SYS_chmod).rights().is_empty(), "Landlock never checks chmod");
}

#[test]
fn a_mode_preserving_save_beside_secrets_gets_the_metadata_op_and_no_write_grant() {
    let l = learn(mode_preserving_save());
    assert_eq!(l.brokered.len(), 1, "{:#?}", l.brokered);
    let b = &l.brokered[0];
    assert_eq!(b.names, [".toolrc", ".toolrc.tmp"]);
    for op in [BrokerOp::Create, BrokerOp::Rename, BrokerOp::Metadata] {
        assert!(b.ops.contains(&op), "{op:?} missing: {b:#?}");
    }
    // The target is read only; the temp file's chmod is the broker's.
    assert_eq!(paths(&l), ["$HOME/.toolrc"], "{:#?}", l.rules);
    assert_eq!(rule(&l, "$HOME/.toolrc").access, set(&[ReadFile]));
    assert!(l.sensitive.is_empty(), "{:#?}", l.sensitive);
}

#[test]
fn a_change_of_the_target_after_the_save_is_the_rules_too() {
    let mut events = mode_preserving_save();
    events.push(meta("/home/u/.toolrc", libc::SYS_chmod));
    let l = learn(events);
    assert!(l.brokered[0].ops.contains(&BrokerOp::Metadata), "{:#?}", l.brokered);
    assert_eq!(rule(&l, "$HOME/.toolrc").access, set(&[ReadFile]), "{:#?}", l.rules);
}

#[test]
fn a_save_without_metadata_changes_gets_no_metadata_op() {
    let mut events = mode_preserving_save();
    events.retain(|e| e.0.op != Op::Metadata);
    let l = learn(events);
    assert!(!l.brokered[0].ops.contains(&BrokerOp::Metadata), "{:#?}", l.brokered);
}

#[test]
fn beneath_a_write_grant_a_change_needs_nothing_more() {
    let l = learn(vec![
        ev(Op::Open, "/home/u/proj/run.sh").write().create(),
        meta("/home/u/proj/run.sh", libc::SYS_chmod),
        fmeta("/home/u/proj/run.sh", libc::SYS_fsetxattr),
    ]);
    assert_eq!(paths(&l), ["$CWD"], "{:#?}", l.rules);
    assert!(rule(&l, "$CWD").access.contains(&WriteFile));
}

#[test]
fn elsewhere_a_change_becomes_write_file_on_the_object_alone() {
    let l = learn(vec![
        // By path: the type is unknown, so a (careful) directory placement.
        meta("/home/u/notes/todo.txt", libc::SYS_utimensat),
        // By descriptor: a regular file, a file rule.
        fmeta("/home/u/notes/done.txt", libc::SYS_fchmod),
    ]);
    assert_eq!(paths(&l), ["$HOME/notes/done.txt", "$HOME/notes/todo.txt"], "{:#?}", l.rules);
    let done = rule(&l, "$HOME/notes/done.txt");
    assert_eq!((done.access.clone(), done.file), (set(&[WriteFile]), true));
    assert_eq!(rule(&l, "$HOME/notes/todo.txt").access, set(&[WriteFile]));
}

#[test]
fn a_change_of_a_sensitive_path_is_reported_never_granted() {
    let l = learn(vec![
        meta("/home/u/.bashrc", libc::SYS_chmod),
        fmeta("/home/u/.ssh/id_rsa", libc::SYS_fchmod),
        // $HOME itself (a directory): a rule there would cover ~/.ssh.
        meta("/home/u", libc::SYS_chmod).ftype(libc::S_IFDIR),
        // A path of unknown type is treated as a directory: never over a secret.
        meta("/home/u/.config", libc::SYS_utimes),
    ]);
    assert!(l.rules.is_empty(), "{:#?}", l.rules);
    for p in ["/home/u/.bashrc", "/home/u/.ssh/id_rsa", "/home/u", "/home/u/.config"] {
        let hit = l.sensitive.iter().find(|h| h.path == p).unwrap_or_else(|| panic!("{p} not reported: {:#?}", l.sensitive));
        assert!(hit.rights.contains(&WriteFile) && hit.ops.contains(&Op::Metadata), "{hit:#?}");
    }
}

#[test]
fn a_refused_change_is_warned_about_not_granted() {
    let l = learn(vec![
        meta("/home/u/proj/f", libc::SYS_chown).err(libc::EPERM),
        meta("/home/u/.ssh/id_rsa", libc::SYS_chmod).err(libc::EACCES),
        meta("/home/u/gone", libc::SYS_chmod).err(libc::ENOENT),
    ]);
    assert!(l.rules.is_empty(), "{:#?}", l.rules);
    assert!(l.warnings.iter().any(|w| w.contains("metadata /home/u/proj/f") && w.contains("EPERM")), "{:?}", l.warnings);
    let hit = l.sensitive.iter().find(|h| h.path == "/home/u/.ssh/id_rsa").expect("attempt reported");
    assert!(hit.rights.contains(&WriteFile), "{hit:#?}");
}
