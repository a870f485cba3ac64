//! Specification of the run-time sensitive checks, on real files (the
//! test runs as root, so permissions are computed for a made-up user).

use super::*;
use std::os::unix::fs::PermissionsExt as _;

fn rule(path: &Path, rights: &[FsRight]) -> PlanRule {
    PlanRule { path: path.to_path_buf(), rights: rights.iter().copied().collect(), file: false, origins: vec!["p.json".into()] }
}

fn ctx(home: &Path, cwd: &Path) -> LearnContext {
    LearnContext {
        home: home.to_path_buf(),
        cwd: cwd.to_path_buf(),
        tmpdir: PathBuf::from("/tmp"),
        xdg_config_home: home.join(".config"),
        xdg_cache_home: home.join(".cache"),
        allow_sensitive: Vec::new(),
        runtime_dir: None,
        ssh_auth_sock: None,
        nameservers: Vec::new(),
        anticipate: false,
        path_dirs: Vec::new(),
    }
}

/// An unprivileged stranger: mode bits decide (the test runs as root).
fn stranger() -> Who {
    Who { uid: 65534, gid: 65534, groups: vec![], is_self: false }
}

fn owner_of(p: &Path) -> Who {
    let m = std::fs::metadata(p).expect("meta");
    Who { uid: m.uid(), gid: m.gid(), groups: vec![], is_self: false }
}

#[test]
fn a_workdir_that_is_home_exposes_ssh_and_the_shell_rc() {
    let d = tempfile::tempdir().expect("tmp");
    let home = d.path().canonicalize().expect("c");
    std::fs::create_dir(home.join(".ssh")).expect("ssh");
    std::fs::write(home.join(".ssh/id_rsa"), "k").expect("key");
    let plan = Plan { fs: vec![rule(&home, &FsRight::ALL)], ..Plan::default() };
    let who = owner_of(&home);
    let found = exposures(&plan, &ctx(&home, &home), &who);
    let secrets: Vec<_> = found.iter().map(|e| e.secret.clone()).collect();
    assert!(secrets.contains(&home.join(".ssh")), "{found:#?}");
    assert!(secrets.contains(&home.join(".bashrc")), "a missing ~/.bashrc can be created: {found:#?}");
    let mut allow = ctx(&home, &home);
    allow.allow_sensitive = vec![home.join(".ssh")];
    assert!(!exposures(&plan, &allow, &who).iter().any(|e| e.secret == home.join(".ssh")));
}

#[test]
fn permissions_decide_what_a_grant_exposes() {
    let d = tempfile::tempdir().expect("tmp");
    let root = d.path().canonicalize().expect("c");
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let etc = root.join("etc");
    std::fs::create_dir(&etc).expect("etc");
    let shadow = etc.join("shadow");
    std::fs::write(&shadow, "hash").expect("shadow");
    std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let r = rule(&etc, &FsRight::read_set().into_iter().collect::<Vec<_>>());
    let who = stranger();
    let check = |r: &PlanRule, path: &Path, write_only: bool, who: &Who| {
        let class = if write_only { Class::Persistence } else { Class::Secret };
        exposed(r, &etc, &Entry::new(path.to_path_buf(), "test", class), who)
    };
    assert_eq!(check(&r, &shadow, false, &who), None, "an unreadable file is not exposed by a read grant");
    std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert_eq!(check(&r, &shadow, false, &who), Some("read"));
    assert_eq!(check(&r, &shadow, true, &who), None, "write-only entries ignore reads");
    // A missing file under a directory the user cannot write: nothing to create.
    let w = rule(&etc, &FsRight::ALL);
    assert_eq!(check(&w, &etc.join("gshadow"), false, &who), None);
    std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    assert_eq!(check(&w, &etc.join("gshadow"), false, &who), Some("create"));
    assert_eq!(check(&w, &etc.join("sub/deeper"), false, &who), Some("create"), "missing parents are made too");
    // The owner of a 0600 file may read it, and of a 0000 file too:
    // Landlock does not stop chmod.
    std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_eq!(check(&r, &shadow, false, &owner_of(&shadow)), Some("read"));
    std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let other = Who { uid: 4242, gid: 4242, groups: vec![], is_self: false };
    assert_eq!(check(&r, &shadow, false, &other), None, "0000 and not the owner");
    std::os::unix::fs::chown(&shadow, Some(4242), None).expect("chown");
    assert_eq!(check(&r, &shadow, false, &other), Some("read"), "0000 but the owner");
    // An ancestor without search permission hides everything.
    std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert_eq!(check(&r, &shadow, false, &who), None);
}

#[test]
fn a_profile_beneath_a_write_grant_is_found() {
    let d = tempfile::tempdir().expect("tmp");
    let root = d.path().canonicalize().expect("c");
    let work = root.join("work");
    std::fs::create_dir(&work).expect("work");
    std::fs::write(work.join("p.json"), "{}").expect("p");
    std::fs::write(root.join("q.json"), "{}").expect("q");
    let plan = Plan {
        fs: vec![rule(&work, &[FsRight::ReadFile, FsRight::MakeReg]), rule(&root, &[FsRight::ReadFile])],
        ..Plan::default()
    };
    let hits = writable_profiles(&plan, &[work.join("p.json"), root.join("q.json")]);
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert_eq!(hits[0].file, work.join("p.json"));
    assert_eq!(hits[0].rights, vec!["make_reg"]);
    // Through a symlink, the canonical path still lies beneath.
    std::os::unix::fs::symlink(&work, root.join("link")).expect("link");
    assert_eq!(writable_profiles(&plan, &[root.join("link/p.json")]).len(), 1);
    // `work/../q.json` is the file beside the grant, not one beneath it.
    assert!(writable_profiles(&plan, &[work.join("../q.json")]).is_empty());
    // A link in the grant to a profile outside: the command could replace
    // the link, so it counts.
    std::os::unix::fs::symlink(root.join("q.json"), work.join("q-link.json")).expect("link");
    assert_eq!(writable_profiles(&plan, &[work.join("q-link.json")]).len(), 1);
}

fn home_with_dotfiles() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().expect("tmp");
    let home = d.path().canonicalize().expect("c");
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::create_dir(home.join(".ssh")).expect("ssh");
    std::fs::write(home.join(".ssh/id_rsa"), "k").expect("key");
    std::fs::write(home.join(".netrc"), "machine x password y").expect("netrc");
    std::fs::write(home.join(".bashrc"), "# rc").expect("rc");
    std::fs::write(home.join(".gitconfig"), "[user]").expect("gitconfig");
    std::os::unix::fs::chown(&home, Some(4242), Some(4242)).expect("chown");
    for f in [".ssh", ".ssh/id_rsa", ".netrc", ".bashrc", ".gitconfig"] {
        std::os::unix::fs::chown(home.join(f), Some(4242), Some(4242)).expect("chown");
    }
    (d, home)
}

fn user() -> Who {
    Who { uid: 4242, gid: 4242, groups: vec![], is_self: false }
}

/// Issue 22 §1: `ls ~` learns `read_dir` on `$HOME`; run used to count
/// that as reading `~/.bashrc` and `~/.netrc` and refused the profile.
#[test]
fn listing_home_exposes_no_file_in_it() {
    let (_d, home) = home_with_dotfiles();
    let plan = Plan { fs: vec![rule(&home, &[FsRight::ReadDir])], ..Plan::default() };
    let found = exposures(&plan, &ctx(&home, &home.join("proj")), &user());
    assert!(found.is_empty(), "{found:#?}");
    // Reading files beneath it does expose the secrets, not the rc file.
    let plan = Plan { fs: vec![rule(&home, &[FsRight::ReadDir, FsRight::ReadFile])], ..Plan::default() };
    let found = exposures(&plan, &ctx(&home, &home.join("proj")), &user());
    let secrets: Vec<_> = found.iter().map(|e| e.secret.clone()).collect();
    assert!(secrets.contains(&home.join(".netrc")) && secrets.contains(&home.join(".ssh")), "{found:#?}");
    assert!(!secrets.contains(&home.join(".bashrc")), "persistence files are readable: {found:#?}");
}

#[test]
fn persistence_files_are_readable_but_never_modifiable() {
    let (_d, home) = home_with_dotfiles();
    let c = ctx(&home, &home.join("proj"));
    let file = |p: &Path, rights: &[FsRight]| PlanRule { file: true, ..rule(p, rights) };
    let read = Plan { fs: vec![file(&home.join(".bashrc"), &[FsRight::ReadFile])], ..Plan::default() };
    assert!(exposures(&read, &c, &user()).is_empty());
    let write = Plan { fs: vec![file(&home.join(".gitconfig"), &[FsRight::WriteFile])], ..Plan::default() };
    let found = exposures(&write, &c, &user());
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!((found[0].class, found[0].how), (Class::Persistence, "write"));
    // A rename over it needs entry rights on $HOME.
    let rename = Plan { fs: vec![rule(&home, &[FsRight::MakeReg, FsRight::RemoveFile])], ..Plan::default() };
    let found = exposures(&rename, &c, &user());
    assert!(found.iter().any(|e| e.secret == home.join(".gitconfig") && e.how == "replace or remove"), "{found:#?}");
    // With the user's consent it runs.
    let allowed = LearnContext { allow_sensitive: vec![home.join(".gitconfig")], ..c.clone() };
    assert!(exposures(&write, &allowed, &user()).is_empty());
}

#[test]
fn a_grant_inside_a_secret_or_a_companion_is_exposure() {
    let (_d, home) = home_with_dotfiles();
    let c = ctx(&home, &home.join("proj"));
    let key = PlanRule { file: true, ..rule(&home.join(".ssh/id_rsa"), &[FsRight::ReadFile]) };
    let found = exposures(&Plan { fs: vec![key], ..Plan::default() }, &c, &user());
    assert_eq!(found.iter().map(|e| (e.secret.clone(), e.how)).collect::<Vec<_>>(), [(home.join(".ssh"), "read")]);
    // ~/.bashrc.d is sourced by many ~/.bashrc files: it is the rc file's.
    std::fs::create_dir(home.join(".bashrc.d")).expect("d");
    std::os::unix::fs::chown(home.join(".bashrc.d"), Some(4242), Some(4242)).expect("chown");
    let d = rule(&home.join(".bashrc.d"), &[FsRight::MakeReg, FsRight::WriteFile]);
    let found = exposures(&Plan { fs: vec![d], ..Plan::default() }, &c, &user());
    assert!(found.iter().any(|e| e.secret == home.join(".bashrc")), "{found:#?}");
}

#[test]
fn a_symlinked_dotfile_is_checked_where_it_leads() {
    let (_d, home) = home_with_dotfiles();
    let dots = home.join("dotfiles");
    std::fs::create_dir(&dots).expect("dotfiles");
    std::fs::rename(home.join(".bashrc"), dots.join("bashrc")).expect("mv");
    std::os::unix::fs::symlink("dotfiles/bashrc", home.join(".bashrc")).expect("link");
    std::os::unix::fs::chown(&dots, Some(4242), Some(4242)).expect("chown");
    let plan = Plan { fs: vec![rule(&dots, &[FsRight::WriteFile])], ..Plan::default() };
    let found = exposures(&plan, &ctx(&home, &home.join("proj")), &user());
    assert!(found.iter().any(|e| e.secret == home.join(".bashrc") && e.how == "write"), "{found:#?}");
}

#[test]
fn brokered_globs_that_can_match_a_sensitive_name_are_refused() {
    let (_d, home) = home_with_dotfiles();
    let c = ctx(&home, &home.join("proj"));
    let b = |dir: &Path, names: &[&str]| (dir.to_path_buf(), names.iter().map(|n| (*n).to_owned()).collect::<Vec<String>>());
    let check = |rules: &[(PathBuf, Vec<String>)], c: &LearnContext| {
        brokered_exposures(rules.iter().map(|(d, n)| (d.as_path(), n.as_slice(), "p.json")), c)
    };
    for names in [&[".b?shrc"][..], &[".ssh.*"], &[".ssh*"], &[".gitconfig.lock"], &["*rc"]] {
        let found = check(&[b(&home, names)], &c);
        assert!(!found.is_empty(), "{names:?} was accepted");
    }
    assert!(!check(&[b(&home.join(".ssh"), &["known_hosts.*"])], &c).is_empty(), "a rule inside ~/.ssh");
    let ok = check(&[b(&home, &[".claude.json", ".claude.json.tmp.*", ".claude.json.lock"])], &c);
    assert!(ok.is_empty(), "{ok:#?}");
    let allowed = LearnContext { allow_sensitive: vec![home.join(".gitconfig")], ..c };
    assert!(check(&[b(&home, &[".gitconfig", ".gitconfig.lock"])], &allowed).is_empty());
}

/// Issue 22 §8: a learned profile run from the home directory says that
/// `$CWD` moved, not only which fifty paths it would expose.
#[test]
fn a_moved_workdir_is_named_first() {
    let (_d, home) = home_with_dotfiles();
    let plan = Plan { fs: vec![rule(&home, &FsRight::ALL)], ..Plan::default() };
    let found = exposures(&plan, &ctx(&home, &home), &user());
    let moved = CwdMoved { cwd: home.clone(), grants: vec![home.clone()], home: Some(home.clone()) };
    let text = refusal(&found, false, Some(&moved));
    assert!(text.starts_with(&format!("refusing to run: `$CWD` is now {} (your home directory)", home.display())), "{text}");
    assert!(text.contains("Run it from the project directory"), "{text}");
    assert!(text.contains(&format!("- {} (", home.join(".ssh").display())), "{text}");
    let plain = refusal(&found, false, None);
    assert!(plain.starts_with("refusing to run: ") && !plain.contains("$CWD"), "{plain}");
}
