//! Built-in profiles and the `nono profile` commands, through the binary.

mod support;

use std::process::Command;

use support::NONO;

fn nono(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(NONO).args(args).env("HOME", "/nonexistent-home").output().expect("nono");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn every_builtin_profile_validates() {
    let (code, list, _) = nono(&["profile", "list"]);
    assert_eq!(code, Some(0));
    let names: Vec<&str> = list.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(names.contains(&"base") && names.contains(&"claude-code") && names.contains(&"codex"), "{list}");
    for name in &names {
        let (code, out, err) = nono(&["profile", "validate", name]);
        assert_eq!(code, Some(0), "{name}: {out}{err}");
    }
    // Every file in profiles/ is a built-in.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles");
    for entry in std::fs::read_dir(dir).expect("profiles/") {
        let name = entry.expect("entry").path().file_stem().expect("stem").to_string_lossy().into_owned();
        assert!(names.contains(&name.as_str()), "profiles/{name}.json is not embedded as a built-in");
    }
}

#[test]
fn diff_shows_what_a_change_grants_and_removes() {
    let d = tempfile::tempdir().expect("tmp");
    let a = d.path().join("a.json");
    let b = d.path().join("b.json");
    std::fs::write(&a, r#"{"filesystem": {"read": ["/usr"], "allow": ["/tmp"]}, "network": {"open_port": [443]}}"#).expect("a");
    std::fs::write(&b, r#"{"filesystem": {"allow": ["/usr"]}, "network": {"open_port": [443, 22]}}"#).expect("b");
    let (code, out, err) = nono(&["profile", "diff", a.to_str().expect("utf8"), b.to_str().expect("utf8")]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("+ /usr: ") && out.contains("write_file"), "{out}");
    assert!(out.contains("- /tmp: "), "{out}");
    assert!(out.contains("~ network") && out.contains("22"), "{out}");
    let (code, out, _) = nono(&["profile", "diff", "--format", "json", a.to_str().expect("utf8"), b.to_str().expect("utf8")]);
    assert_eq!(code, Some(0));
    let j: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(j["filesystem"].as_array().is_some_and(|a| a.len() == 2), "{j}");
}

#[test]
fn a_bad_profile_fails_validation_with_its_location() {
    let d = tempfile::tempdir().expect("tmp");
    let p = d.path().join("bad.json");
    std::fs::write(&p, "{\n  \"network\": {\"open_port\": [443],\n  \"nope\": true}\n}").expect("bad");
    let (code, _, err) = nono(&["profile", "validate", p.to_str().expect("utf8")]);
    assert_eq!(code, Some(1));
    assert!(err.contains("bad.json:3:") && err.contains("unknown field `nope`"), "{err}");
}
