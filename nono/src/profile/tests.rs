use std::collections::BTreeSet;

use super::rights::FsRight;
use super::*;

fn vars() -> Vars {
    Vars {
        home: "/home/u".into(),
        cwd: "/work/p".into(),
        tmpdir: "/tmp".into(),
        xdg_config_home: "/home/u/.config".into(),
        xdg_cache_home: "/home/u/.cache".into(),
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

#[test]
fn a_learned_profile_round_trips() {
    let mut learned = crate::learn::Learned::default();
    learned.rules.push(rights::FsRule {
        path: "$CWD".into(),
        access: [FsRight::ReadFile, FsRight::WriteFile].into(),
        file: false,
        reason: Some("workdir".into()),
        seen_in: None,
    });
    learned.connect_ports.insert(443);
    let prov = Provenance {
        sessions: vec![4],
        nono_version: "0.1.0".into(),
        backend: "tracepoint".into(),
        lost_events: 0,
        learned_at: String::new(),
    };
    let p = Profile::from_learned(&learned, "agent", prov);
    let text = p.to_json_pretty().expect("json");
    let back = Profile::parse(&text, "learned.json").expect("parses");
    assert_eq!(back, p);
    let r = resolve(back, "learned.json", &vars()).expect("resolves");
    assert_eq!(r.network.open_port, Some(BTreeSet::from([443])));
    assert_eq!(r.network.listen_port, Some(BTreeSet::new()));
}
