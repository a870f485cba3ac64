//! Specification: files that run code outside the sandbox (issue 21 §4)
//! are read, never written; temp names from one session generalise
//! without reaching a sensitive name (issue 22 §3); the learn report
//! stays readable (issue 22 §4).

use super::*;
use crate::learn::Class;
use crate::profile::BrokerOp;

/// What `git config --global x.y z` does: read the file, take the lock
/// (`O_CREAT|O_EXCL`), write it, rename it over the file.
fn git_config_global() -> Vec<Ev> {
    vec![
        open_r("/home/u/.gitconfig").comm("git"),
        ev(Op::Open, "/home/u/.gitconfig.lock").write().create().comm("git"),
        ev(Op::Rename, "/home/u/.gitconfig.lock").to("/home/u/.gitconfig").ftype(libc::S_IFREG).comm("git"),
    ]
}

#[test]
fn a_login_shell_reads_the_rc_files_and_that_is_granted() {
    // `bash -l` (Codex starts one for every command) reads both.
    let l = learn(vec![open_r("/home/u/.profile").comm("bash"), open_r("/home/u/.bashrc").comm("bash")]);
    assert_eq!(paths(&l), ["$HOME/.bashrc", "$HOME/.profile"], "{:#?}", l.sensitive);
    assert_eq!(rule(&l, "$HOME/.bashrc").access, set(&[ReadFile]));
    assert!(rule(&l, "$HOME/.bashrc").file);
    assert!(l.sensitive.is_empty(), "{:#?}", l.sensitive);
}

#[test]
fn git_config_global_is_refused_and_reported_as_persistence() {
    let l = learn(git_config_global());
    assert!(l.brokered.is_empty(), "{:#?}", l.brokered);
    for r in &l.rules {
        assert!(
            r.access.iter().all(|a| matches!(a, ReadFile | ReadDir | Execute)),
            "only reads may be granted near ~/.gitconfig: {r:#?}"
        );
    }
    assert_eq!(rule(&l, "$HOME/.gitconfig").access, set(&[ReadFile]));
    let hits: Vec<&SensitiveHit> = l.sensitive.iter().filter(|h| h.matched == "/home/u/.gitconfig").collect();
    assert!(hits.iter().any(|h| h.path == "/home/u/.gitconfig.lock"), "{:#?}", l.sensitive);
    assert!(hits.iter().all(|h| h.class == Class::Persistence && !h.missing), "{hits:#?}");
    assert!(hits.iter().any(|h| h.why.contains("core.fsmonitor")), "the reason says what git runs: {hits:#?}");
    assert!(hits.iter().all(|h| h.comms == ["git"]), "{hits:#?}");
    // Nothing else in $HOME is blamed for it.
    assert!(!l.sensitive.iter().any(|h| h.path == "/home/u"), "{:#?}", l.sensitive);
}

#[test]
fn with_the_users_consent_the_save_is_brokered() {
    let c = LearnContext { allow_sensitive: vec!["/home/u/.gitconfig".into()], ..ctx() };
    let l = learn_with(&c, git_config_global());
    assert_eq!(l.brokered.len(), 1, "{l:#?}");
    assert_eq!(l.brokered[0].names, [".gitconfig", ".gitconfig.lock"]);
    assert!(l.brokered[0].ops.contains(&BrokerOp::Rename));
}

#[test]
fn every_route_to_modify_an_rc_file_is_refused() {
    let l = learn(vec![
        ev(Op::Open, "/home/u/.bashrc").write().comm("sh"),
        ev(Op::Truncate, "/home/u/.zshrc"),
        ev(Op::Unlink, "/home/u/.profile"),
        ev(Op::Mkdir, "/home/u/.bashrc.d"),
        ev(Op::Open, "/home/u/.config/fish/conf.d/x.fish").write().create(),
        ev(Op::Open, "/home/u/.local/bin/git").write().create(),
        ev(Op::Open, "/home/u/.config/autostart/x.desktop").write().create(),
        ev(Op::Rename, "/home/u/proj/evil").to("/home/u/.claude/settings.json").ftype(libc::S_IFREG),
    ]);
    for r in &l.rules {
        assert!(!r.path.starts_with("$HOME") || r.path.starts_with("$CWD"), "{r:#?}");
    }
    for p in [
        "/home/u/.bashrc",
        "/home/u/.zshrc",
        "/home/u/.bashrc.d",
        "/home/u/.config/fish/conf.d/x.fish",
        "/home/u/.local/bin/git",
        "/home/u/.config/autostart/x.desktop",
    ] {
        assert!(l.sensitive.iter().any(|h| h.path == p && h.class == Class::Persistence), "{p}: {:#?}", l.sensitive);
    }
}

#[test]
fn path_directories_of_the_session_are_persistence() {
    let c = LearnContext { path_dirs: vec!["/home/u/.nvm/versions/node/v20/bin".into()], ..ctx() };
    let l = learn_with(
        &c,
        vec![
            open_r("/home/u/.nvm/versions/node/v20/bin/node"),
            ev(Op::Symlink, "/home/u/.nvm/versions/node/v20/bin/evil").comm("npm"),
        ],
    );
    // The link needs make_sym on the directory on $PATH.
    let hit = l.sensitive.iter().find(|h| h.path == "/home/u/.nvm/versions/node/v20/bin").expect("refused");
    assert_eq!((hit.class, hit.rights.clone()), (Class::Persistence, set(&[MakeSym])));
    assert_eq!(rule(&l, "$HOME/.nvm").access, set(&[ReadFile]), "reading it is fine, with the tool cache");
    for r in &l.rules {
        assert!(!r.access.contains(&MakeSym), "{r:#?}");
    }
}

#[test]
fn a_random_suffix_from_one_session_becomes_a_pattern() {
    let save = |dir: &str, target: &str, temp: &str| {
        vec![
            ev(Op::Open, &format!("{dir}/{temp}")).write().create(),
            ev(Op::Rename, &format!("{dir}/{temp}")).to(&format!("{dir}/{target}")).ftype(libc::S_IFREG),
        ]
    };
    let l = learn(save("/home/u", ".app.json", ".app.json.tmp.dzfyfv8h"));
    assert_eq!(l.brokered.len(), 1, "{:#?}", l.brokered);
    assert_eq!(l.brokered[0].names, [".app.json", ".app.json.tmp.*"]);
    // The issue's own case, with the user's consent for ~/.gitconfig.
    let c = LearnContext { allow_sensitive: vec!["/home/u/.gitconfig".into()], ..ctx() };
    let l = learn_with(&c, save("/home/u", ".gitconfig", ".gitconfig.tmp.dzfyfv8h"));
    assert_eq!(l.brokered[0].names, [".gitconfig", ".gitconfig.tmp.*"]);
    // A pattern that could match a sensitive name falls back to the
    // literal name: `settings.*` would match ~/.claude/settings.json.
    let l = learn(save("/home/u/.claude", "settings", "settings.k2j3x9ab"));
    assert_eq!(l.brokered.len(), 1, "{l:#?}");
    assert_eq!(l.brokered[0].names, ["settings", "settings.k2j3x9ab"]);
}

#[test]
fn a_missing_sensitive_file_is_a_note_not_an_alarm() {
    let l = learn(vec![open_r("/home/u/.netrc").err(libc::ENOENT).comm("curl"), open_r("/etc/shadow").err(libc::EACCES)]);
    let netrc = l.sensitive.iter().find(|h| h.path == "/home/u/.netrc").expect("reported");
    assert!(netrc.missing, "{netrc:#?}");
    let shadow = l.sensitive.iter().find(|h| h.path == "/etc/shadow").expect("reported");
    assert!(!shadow.missing, "a refused read is an alarm: {shadow:#?}");
    // Reading a persistence file that is not there is nothing at all.
    let l = learn(vec![open_r("/home/u/.bash_login").err(libc::ENOENT)]);
    assert!(l.sensitive.is_empty(), "{:#?}", l.sensitive);
}

#[test]
fn refusals_are_grouped_by_operation_errno_and_pattern() {
    // `claude -p` read every /proc/N/environ: 140 lines before.
    let mut events: Vec<Ev> =
        (1000..1140).map(|n| open_r(&format!("/proc/{n}/environ")).err(libc::EACCES).comm("claude")).collect();
    events.push(open_r("/root/secret.txt").err(libc::EACCES).comm("cat"));
    let l = learn(events);
    let lines: Vec<&String> = l.warnings.iter().filter(|w| w.starts_with("refused while learning")).collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let proc = lines.iter().find(|w| w.contains("/proc/*/environ")).expect("one line for all of /proc");
    assert!(proc.contains("140 path(s), 140 time(s)") && proc.contains("EACCES") && proc.contains("claude"), "{proc}");
    assert!(proc.contains("e.g. /proc/1000/environ"), "{proc}");
    assert!(lines.iter().any(|w| w.ends_with("open /root/secret.txt by cat (EACCES)")), "{lines:#?}");
}

#[test]
fn the_shared_tmp_is_spelled_tmpdir() {
    let c = LearnContext { tmpdir: "/run/user/1000/t".into(), ..ctx() };
    let l = learn_with(&c, vec![ev(Op::Open, "/tmp/claude-1000/x.log").write().create()]);
    assert_eq!(paths(&l), ["$TMPDIR"], "{:#?}", l.rules);
}

#[test]
fn writing_a_repository_in_the_workdir_warns_about_its_git_config() {
    let l = learn(vec![ev(Op::Open, "/home/u/proj/.git/config").write(), ev(Op::Open, "/home/u/proj/a").write().create()]);
    assert_eq!(paths(&l), ["$CWD"]);
    assert!(
        l.warnings.iter().any(|w| w.contains("/home/u/proj/.git/config") && w.contains("core.fsmonitor")),
        "{:?}",
        l.warnings
    );
    let quiet = learn(vec![ev(Op::Open, "/home/u/proj/a").write().create()]);
    assert!(quiet.warnings.is_empty(), "not a repository: {:?}", quiet.warnings);
}

#[test]
fn learned_profiles_carry_the_harmless_devices_and_the_terminal() {
    let l = learn(vec![ev(Op::Open, "/home/u/proj/f").write().create()]);
    let p = l.to_profile("echo", crate::profile::Provenance::default());
    let rules: Vec<(&str, bool)> = p.filesystem.rules.iter().map(|r| (r.path.as_str(), r.file)).collect();
    for dev in ["$TTY", "/dev/full", "/dev/null", "/dev/random", "/dev/urandom", "/dev/zero"] {
        assert!(rules.contains(&(dev, true)), "{dev}: {rules:?}");
    }
    assert!(!rules.iter().any(|(p, _)| p.starts_with("/dev/pts")), "{rules:?}");
}

#[test]
fn the_final_check_finds_nothing_to_strip_in_a_system_tree_beside_secrets() {
    // The read bundle a system tree gets must stop where /etc holds /etc/shadow.
    let l = learn(vec![open_r("/etc").dir(), open_r("/etc/ssl/certs/ca.pem"), open_r("/etc/passwd"), open_r("/usr/lib/x.so")]);
    assert!(!l.warnings.iter().any(|w| w.contains("it would expose")), "{:?}", l.warnings);
    assert_eq!(rule(&l, "/etc").access, set(&[ReadDir]));
    assert_eq!(rule(&l, "/etc/ssl/certs").access, set(&[ReadFile, ReadDir, Execute]));
}
