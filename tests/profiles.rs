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
    assert_eq!(code, Some(1), "they differ: exit 1, as diff(1) does: {err}");
    assert!(out.contains("+ /usr: ") && out.contains("write_file"), "{out}");
    assert!(out.contains("- /tmp: "), "{out}");
    assert!(out.contains("~ network") && out.contains("22"), "{out}");
    let (code, out, _) = nono(&["profile", "diff", "--format", "json", a.to_str().expect("utf8"), b.to_str().expect("utf8")]);
    assert_eq!(code, Some(1));
    let j: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(j["filesystem"].as_array().is_some_and(|a| a.len() == 2), "{j}");
    assert_eq!(j["differ"], true);
    let (code, out, _) = nono(&["profile", "diff", "--format", "csv", a.to_str().expect("utf8"), b.to_str().expect("utf8")]);
    assert_eq!(code, Some(1));
    assert!(out.starts_with("what,path,file,granted,removed\n") && out.contains("filesystem,/usr,false,"), "{out}");
    // The same profile twice: no difference, exit 0.
    let (code, out, _) = nono(&["profile", "diff", a.to_str().expect("utf8"), a.to_str().expect("utf8")]);
    assert_eq!((code, out.trim()), (Some(0), "no difference"));
    // Trouble is nono's own error, never taken for "they differ".
    let (code, _, err) = nono(&["profile", "diff", a.to_str().expect("utf8"), "/nonexistent/x.json"]);
    assert_eq!(code, Some(125), "{err}");
}

#[test]
fn show_lists_brokered_rules_with_reasons_in_every_format() {
    let d = tempfile::tempdir().expect("tmp");
    let home = d.path().display().to_string();
    let p = d.path().join("p.json");
    std::fs::write(
        &p,
        format!(
            r#"{{"extends": "base", "filesystem": {{"rules": [{{"path": "{home}/proj", "access": ["read_file", "write_file"], "reason": "workdir"}}],
                "brokered": [{{"dir": "{home}", "names": [".app.json", ".app.json.tmp.*"], "ops": ["create", "write", "rename"], "reason": "atomic save beside secrets"}}]}}}}"#
        ),
    )
    .expect("profile");
    let spec = p.to_str().expect("utf8");
    let (code, table, err) = nono(&["profile", "show", spec]);
    assert_eq!(code, Some(0), "{err}");
    assert!(table.contains("/proj") && table.contains("(workdir)"), "{table}");
    assert!(
        table.contains("brokered") && table.contains(".app.json.tmp.*") && table.contains("atomic save beside secrets"),
        "{table}"
    );
    assert!(table.contains("/usr") && table.contains("from builtin:base"), "inherited rules say where from: {table}");
    let (code, out, _) = nono(&["profile", "show", spec, "--format", "json"]);
    assert_eq!(code, Some(0));
    let j: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(j["brokered"][0]["names"][1], ".app.json.tmp.*");
    assert_eq!(j["brokered"][0]["ops"], serde_json::json!(["create", "write", "rename"]));
    assert_eq!(j["brokered"][0]["reason"], "atomic save beside secrets");
    assert!(j["filesystem"].as_array().is_some_and(|a| a.iter().any(|r| r["reason"] == "workdir")), "{j}");
    let (code, csv, _) = nono(&["profile", "show", spec, "--format", "csv"]);
    assert_eq!(code, Some(0));
    assert!(csv.starts_with("kind,path,file,access,reason\n"), "{csv}");
    assert!(csv.lines().any(|l| l.starts_with("brokered,") && l.contains("atomic save beside secrets")), "{csv}");
    assert!(csv.lines().any(|l| l.starts_with("grant,") && l.ends_with(",workdir")), "{csv}");
}

#[test]
fn every_format_flag_is_honoured_or_refused() {
    let d = tempfile::tempdir().expect("tmp");
    let db = d.path().join("none.db");
    let db = db.to_str().expect("utf8");
    // learn and amend have no CSV: a clear error, before anything runs.
    let (code, _, err) = nono(&["learn", "--format", "csv", "--", "true"]);
    assert_eq!(code, Some(125), "{err}");
    assert!(err.contains("no CSV"), "{err}");
    let (code, _, err) = nono(&["profile", "amend", "x.json", "--session", "1", "--db", db, "--format", "csv"]);
    assert_eq!(code, Some(125), "{err}");
    assert!(err.contains("no CSV"), "{err}");
    let (code, _, err) = nono(&["profile", "amend", "x.json", "--session", "1", "--db", db, "--format", "json"]);
    assert_eq!(code, Some(125), "{err}");
    assert!(err.contains("--dry-run"), "{err}");
    let (code, _, err) = nono(&["profile", "show", "base", "--format", "xml"]);
    assert_eq!(code, Some(125), "a usage error: {err}");
}

#[test]
fn builtin_prefix_reaches_a_builtin_that_a_user_profile_shadows() {
    let d = tempfile::tempdir().expect("tmp");
    let dir = d.path().join("cfg/nono/profiles");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("base.json"), r#"{"meta": {"description": "my base"}, "filesystem": {"read": ["/srv"]}}"#)
        .expect("mine");
    let nono = |args: &[&str]| {
        let out = Command::new(NONO)
            .args(args)
            .env("HOME", d.path())
            .env("XDG_CONFIG_HOME", d.path().join("cfg"))
            .output()
            .expect("nono");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (_, mine, _) = nono(&["profile", "show", "base"]);
    assert!(mine.contains("/srv") && !mine.contains("/usr"), "the user's own base: {mine}");
    let (code, builtin, err) = nono(&["profile", "show", "builtin:base"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(builtin.contains("/usr") && !builtin.contains("/srv"), "the built-in: {builtin}");
    let (_, list, _) = nono(&["profile", "list"]);
    assert!(list.lines().any(|l| l.starts_with("base ") && l.contains("builtin:base")), "the list says how to reach it: {list}");
    let (code, _, err) = nono(&["profile", "show", "builtin:nonexistent"]);
    assert_eq!(code, Some(125), "{err}");
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

#[test]
fn user_profiles_are_found_by_name_and_listed() {
    let d = tempfile::tempdir().expect("tmp");
    let dir = d.path().join("cfg/nono/profiles");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("mine.json"),
        r#"{"meta": {"description": "my agent"}, "extends": "base", "filesystem": {"read": ["/srv"]}}"#,
    )
    .expect("mine");
    let nono = |args: &[&str]| {
        let out = Command::new(NONO)
            .args(args)
            .env("HOME", d.path())
            .env("XDG_CONFIG_HOME", d.path().join("cfg"))
            .output()
            .expect("nono");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, list, err) = nono(&["profile", "list"]);
    assert_eq!(code, Some(0), "{err}");
    let mine = list.lines().find(|l| l.starts_with("mine ")).unwrap_or_else(|| panic!("{list}"));
    assert!(mine.contains("my agent") && mine.contains("mine.json"), "{mine}");
    assert!(list.lines().any(|l| l.starts_with("base ") && l.contains("[built-in]")), "{list}");
    let (code, show, err) = nono(&["profile", "show", "mine"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(show.contains("/srv") && show.contains("builtin:base"), "{show}");
}

#[test]
fn a_bad_learn_output_fails_before_anything_is_recorded() {
    let d = tempfile::tempdir().expect("tmp");
    let marker = d.path().join("ran");
    let db = d.path().join("audit.db");
    let dir = d.path().join("a-directory");
    std::fs::create_dir(&dir).expect("dir");
    let unwritable = std::path::PathBuf::from("/proc/nono-learned.json");
    for (output, force) in [(&dir, false), (&dir, true), (&unwritable, false)] {
        let mut c = Command::new(NONO);
        c.arg("learn").arg("--db").arg(&db).arg("--output").arg(output);
        if force {
            c.arg("--force");
        }
        let out = c.arg("--").arg("touch").arg(&marker).env("HOME", d.path()).output().expect("nono");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{} (force {force}): {err}", output.display());
        assert!(err.contains("cannot write the profile"), "{err}");
        assert!(!marker.exists(), "the command ran");
        assert!(!db.exists(), "a session was recorded");
    }
}
