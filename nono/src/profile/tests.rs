use std::collections::BTreeSet;

use super::rights::FsRight;
use super::*;

/// Variables for a user `u` working in `/work/p` (shared with other
/// modules' tests).
pub(crate) fn vars() -> Vars {
    Vars {
        home: "/home/u".into(),
        cwd: "/work/p".into(),
        tmpdir: "/tmp".into(),
        xdg_config_home: "/home/u/.config".into(),
        xdg_cache_home: "/home/u/.cache".into(),
        tty: None,
    }
}

#[test]
fn every_builtin_parses_and_resolves() {
    for (name, _) in BUILTINS {
        let r = load(name, &vars()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!r.grants.is_empty(), "{name} grants nothing");
        assert!(r.grants.iter().all(|g| g.path.is_absolute()));
    }
}

#[test]
fn unknown_keys_and_malformed_json_name_line_and_column() {
    let e = load_str("{\n  \"filesystem\": {\"alow\": [\"/x\"]}\n}", "p.json", &vars()).expect_err("unknown key");
    let msg = e.to_string();
    assert!(msg.starts_with("p.json:2:"), "{msg}");
    assert!(msg.contains("unknown field `alow`"), "{msg}");
    let e = load_str("{\"meta\": {\"name\": \"x\"},}", "q.json", &vars()).expect_err("trailing comma");
    assert!(e.to_string().starts_with("q.json:1:"), "{e}");
    let e = load_str("{\"filesystem\": {\"rules\": [{\"path\": \"/x\", \"access\": [\"read\"]}]}}", "r.json", &vars())
        .expect_err("bad right");
    assert!(e.to_string().contains("unknown variant `read`"), "{e}");
    let e = load_str("{\"network\": {\"open_port\": [70000]}}", "n.json", &vars()).expect_err("port");
    assert!(e.to_string().starts_with("n.json:1:"), "{e}");
}

#[test]
fn hostile_paths_are_refused() {
    for (path, why) in
        [("relative/dir", "not absolute"), ("/usr/../etc/shadow", "`..`"), ("$NOPE/x", "unknown variable"), ("", "empty")]
    {
        let text = format!("{{\"filesystem\": {{\"read\": [{path:?}]}}}}");
        let e = load_str(&text, "h.json", &vars()).expect_err(path);
        assert!(e.to_string().contains(why), "{path}: {e}");
    }
    let e = load_str(
        "{\"filesystem\": {\"rules\": [{\"path\": \"/x\", \"access\": [\"make_dir\"], \"file\": true}]}}",
        "f.json",
        &vars(),
    )
    .expect_err("dir right on a file");
    assert!(e.to_string().contains("directory-only"), "{e}");
}

#[test]
fn variables_expand_and_extends_adds_up() {
    let r = load_str(
        "{\"extends\": \"base\", \"filesystem\": {\"allow\": [\"$CWD\"], \"read_file\": [\"~/.gitconfig\"]}, \"network\": {\"open_port\": [443]}}",
        "v.json",
        &vars(),
    )
    .expect("resolves");
    assert_eq!(r.chain, vec!["builtin:base".to_owned(), "v.json".to_owned()]);
    let cwd = r.grants.iter().find(|g| g.path == std::path::Path::new("/work/p")).expect("$CWD");
    assert_eq!(cwd.rights.len(), FsRight::ALL.len());
    let git = r.grants.iter().find(|g| g.path == std::path::Path::new("/home/u/.gitconfig")).expect("~");
    assert!(git.file && git.rights.contains(&FsRight::ReadFile) && !git.rights.contains(&FsRight::WriteFile));
    assert_eq!(r.network.open_port, Some(BTreeSet::from([443])));
    assert!(r.grants.iter().any(|g| g.path == std::path::Path::new("/usr") && g.origin == "builtin:base"));
}

#[test]
fn extends_cycles_and_depth_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("a.json"), "{\"extends\": \"./b.json\"}").expect("a");
    std::fs::write(dir.path().join("b.json"), "{\"extends\": \"./a.json\"}").expect("b");
    let e = load(dir.path().join("a.json").to_str().expect("utf8"), &vars()).expect_err("cycle");
    assert!(matches!(e, ProfileError::Cycle(_)), "{e}");
    assert!(e.to_string().contains("a.json -> ") && e.to_string().contains("b.json"), "{e}");
    for i in 0..12 {
        std::fs::write(dir.path().join(format!("d{i}.json")), format!("{{\"extends\": \"./d{}.json\"}}", i + 1)).expect("d");
    }
    std::fs::write(dir.path().join("d12.json"), "{}").expect("d12");
    let e = load(dir.path().join("d0.json").to_str().expect("utf8"), &vars()).expect_err("depth");
    assert!(matches!(e, ProfileError::TooDeep(_)), "{e}");
    let e = load("no-such-builtin", &vars()).expect_err("builtin");
    assert!(e.to_string().contains("base"), "{e}");
}

/// Loads `path` and returns the error and how long it took.
fn load_err(path: &std::path::Path, vars: &Vars) -> (ProfileError, std::time::Duration) {
    let started = std::time::Instant::now();
    let e = load(path.to_str().expect("utf8"), vars).expect_err("hostile profile");
    (e, started.elapsed())
}

#[test]
fn special_files_are_refused_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo.json");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let (e, took) = load_err(&fifo, &vars());
    assert!(matches!(e, ProfileError::NotRegular { kind: "FIFO", .. }), "{e}");
    assert!(took < std::time::Duration::from_secs(1), "{took:?}");
    // As an `extends` target, too.
    let top = dir.path().join("top.json");
    std::fs::write(&top, "{\"extends\": \"./fifo.json\"}").expect("top");
    let (e, _) = load_err(&top, &vars());
    assert!(e.to_string().contains("fifo.json is a FIFO, not a regular file"), "{e}");
    // Devices are never opened: /dev/zero would be read forever.
    let (e, took) = load_err(std::path::Path::new("/dev/zero"), &vars());
    assert!(matches!(e, ProfileError::NotRegular { kind: "character device", .. }), "{e}");
    assert!(took < std::time::Duration::from_secs(1), "{took:?}");
    let (e, _) = load_err(dir.path(), &vars());
    assert!(matches!(e, ProfileError::NotRegular { kind: "directory", .. }), "{e}");
    let big = dir.path().join("big.json");
    std::fs::write(&big, vec![b' '; usize::try_from(MAX_PROFILE_BYTES).expect("usize") + 1]).expect("big");
    let (e, _) = load_err(&big, &vars());
    assert!(matches!(e, ProfileError::TooLarge { .. }), "{e}");
}

#[test]
fn a_diamond_fan_out_loads_each_file_once_and_too_many_files_are_an_error() {
    // 12 parents x 7 levels over 8 files: exponential without memoising.
    let dir = tempfile::tempdir().expect("tempdir");
    for level in 0..8 {
        let text = if level == 7 {
            "{\"filesystem\": {\"read\": [\"/usr\"]}}".to_owned()
        } else {
            let parents: Vec<String> = (0..12).map(|_| format!("\"./l{}.json\"", level + 1)).collect();
            format!("{{\"extends\": [{}], \"filesystem\": {{\"read\": [\"/l{level}\"]}}}}", parents.join(", "))
        };
        std::fs::write(dir.path().join(format!("l{level}.json")), text).expect("level");
    }
    let started = std::time::Instant::now();
    let r = load(dir.path().join("l0.json").to_str().expect("utf8"), &vars()).expect("fan-out loads");
    assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(r.chain.len(), 8, "{:?}", r.chain);
    assert_eq!(r.grants.len(), 8, "each file's grant once");
    assert_eq!(r.files.len(), 8);
    // A wide graph of distinct files stops at the cap.
    let parents: Vec<String> = (0..MAX_EXTENDS_FILES + 5).map(|i| format!("\"./w{i}.json\"")).collect();
    for i in 0..MAX_EXTENDS_FILES + 5 {
        std::fs::write(dir.path().join(format!("w{i}.json")), "{}").expect("w");
    }
    let wide = dir.path().join("wide.json");
    std::fs::write(&wide, format!("{{\"extends\": [{}]}}", parents.join(", "))).expect("wide");
    let (e, took) = load_err(&wide, &vars());
    assert!(matches!(e, ProfileError::TooManyFiles(_)), "{e}");
    assert!(took < std::time::Duration::from_secs(1), "{took:?}");
}

#[test]
fn a_name_is_a_path_then_a_user_profile_then_a_builtin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut v = vars();
    v.xdg_config_home = dir.path().to_path_buf();
    std::fs::create_dir_all(v.profiles_dir()).expect("dir");
    std::fs::write(v.profiles_dir().join("mine.json"), "{\"extends\": \"base\", \"filesystem\": {\"read\": [\"/srv\"]}}")
        .expect("mine");
    let r = load("mine", &v).expect("user profile");
    assert!(r.chain.last().is_some_and(|c| c.ends_with("nono/profiles/mine.json")), "{:?}", r.chain);
    assert_eq!(r.files, vec![v.profiles_dir().join("mine.json")]);
    // The user's profile shadows a built-in of the same name.
    std::fs::write(v.profiles_dir().join("codex.json"), "{}").expect("codex");
    assert!(load("codex", &v).expect("user codex").grants.is_empty());
    assert!(!load("codex", &vars()).expect("built-in codex").grants.is_empty());
    assert!(load("base", &v).expect("built-in").chain == vec!["builtin:base".to_owned()]);
}

#[test]
fn escaped_names_expand_to_their_bytes() {
    use std::os::unix::ffi::OsStrExt as _;
    let v = vars();
    let p = v.expand("$CWD/caf\\xe9/a\\\\b", "e.json").expect("escaped");
    assert_eq!(p.as_os_str().as_bytes(), b"/work/p/caf\xe9/a\\b");
    assert_eq!(crate::event::escape_path(&p), "/work/p/caf\\xe9/a\\\\b");
    assert_eq!(v.expand("/srv/\\xff", "e.json").expect("absolute").as_os_str().as_bytes(), b"/srv/\xff");
    for (bad, why) in [("/srv/a\\q", "bad escape"), ("/srv/\\x0", "bad escape"), ("$HOME/\\x00", "NUL")] {
        let e = v.expand(bad, "e.json").expect_err(bad);
        assert!(e.to_string().contains(why), "{bad}: {e}");
    }
}

#[test]
fn relative_command_line_paths_are_taken_from_the_current_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cwd = dir.path().canonicalize().expect("canonical").join("proj");
    std::fs::create_dir_all(cwd.join("src")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("shared")).expect("mkdir");
    let vars = Vars { cwd: cwd.clone(), ..vars() };
    let mut r = resolve(Profile::default(), "(no profile)", &vars).expect("resolves");
    let all: BTreeSet<FsRight> = FsRight::ALL.into_iter().collect();
    for spelled in [".", "src", "./src/", "../shared", "not-yet"] {
        r.add_cli(spelled, all.clone(), &vars).unwrap_or_else(|e| panic!("{spelled}: {e}"));
    }
    let added: Vec<&std::path::Path> = r.grants.iter().rev().take(5).rev().map(|g| g.path.as_path()).collect();
    let shared = cwd.parent().expect("parent").join("shared");
    assert_eq!(added, [&cwd, &cwd.join("src"), &cwd.join("src"), &shared, &cwd.join("not-yet")]);
    assert_eq!(r.grants.last().map(|g| g.spelled.as_str()), Some("not-yet"), "the spelling is kept for messages");
    let e = r.add_cli("../missing/x", all.clone(), &vars).expect_err("`..` that cannot be resolved");
    assert!(e.to_string().contains("`..`"), "{e}");
    // A profile's own paths stay absolute-only.
    let e = load_str(r#"{"filesystem": {"allow": ["src"]}}"#, "p.json", &vars).expect_err("relative in a profile");
    assert!(e.to_string().contains("not absolute"), "{e}");
}

#[test]
fn tty_is_the_commands_own_terminal_or_the_rule_is_skipped() {
    let text = r#"{"filesystem": {"rules": [{"path": "$TTY", "access": ["read_file", "write_file", "ioctl_dev"]}]}}"#;
    let with = Vars { tty: Some("/dev/pts/7".into()), ..vars() };
    let r = load_str(text, "p.json", &with).expect("resolves");
    assert_eq!(r.grants.len(), 1);
    assert_eq!(r.grants[0].path, std::path::PathBuf::from("/dev/pts/7"));
    assert!(r.skipped.is_empty());
    let r = load_str(text, "p.json", &vars()).expect("resolves without a terminal");
    assert!(r.grants.is_empty(), "{:?}", r.grants);
    assert_eq!(r.skipped.len(), 1);
    assert!(r.skipped[0].starts_with("$TTY (p.json): the command has no terminal"), "{:?}", r.skipped);
    // Built-ins skip it quietly, as they do missing paths.
    let r = load("base", &vars()).expect("base");
    assert!(r.skipped.is_empty() && r.grants.iter().all(|g| !g.path.starts_with("/dev/pts")), "{:?}", r.grants);
    // A bad tail is refused whether or not there is a terminal.
    assert!(load_str(r#"{"filesystem": {"read": ["$TTY/\\xZZ"]}}"#, "q.json", &vars()).is_err());
    let e = load_str(r#"{"filesystem": {"read": ["$TERMINAL"]}}"#, "q.json", &vars()).expect_err("unknown");
    assert!(e.to_string().contains("$TTY"), "{e}");
}
