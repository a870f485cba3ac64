//! Issue 21 §5: a hostile file name and process name never reach the
//! reviewer's terminal as control characters, in any output format:
//! tables, JSON, CSV, the OCSF export, `audit check`, `profile show` and
//! the learn report. The names come from a real recording: a process that
//! renames itself (`PR_SET_NAME`) to an escape sequence and writes files
//! whose names carry an OSC 52 clipboard write, a BEL, a C1 CSI and a
//! right-to-left override, in its workdir and in `~/.ssh` (so the learn
//! report names it as a sensitive access).

use super::support::{Sandbox, TestUser, output_text};
use super::{PY, skip};

/// `\x1b]52;c;...\x07`: a terminal that honours it sets the clipboard.
const NAME: &str = "\u{1b}]52;c;cHduZWQ=\u{7}x\u{9b}1m\u{202e}txt.sh";

const AGENT: &str = r#"import ctypes, os, sys
ctypes.CDLL(None).prctl(15, b"\x1b[2J\x07\xc2\x9bpwn", 0, 0, 0)
name = sys.argv[1]
open(name, "w").write("x")
open(os.path.join(os.environ["HOME"], ".ssh", name), "w").write("x")
"#;

/// What no output may contain: C0 controls but newline and tab, DEL, C1
/// controls, and the bidi overrides and isolates.
fn raw_control(text: &str) -> Option<char> {
    text.chars().find(|&c| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
    })
}

#[test]
fn no_output_format_lets_a_hostile_name_through() {
    let test = "no_output_format_lets_a_hostile_name_through";
    if !super::support::is_root() {
        skip(test, "needs root: a test user and `sudo nono learn`");
        return;
    }
    let sb = Sandbox::new();
    sb.lived_in_home();
    let Some(user) = TestUser::create(test, &sb) else { return };
    let profiles = sb.root().join("profiles");
    std::fs::create_dir(&profiles).expect("profiles");
    user.chown_tree(&profiles);
    let profile = profiles.join("hostile.json");
    let learn = user
        .sudo_nono(&sb)
        .args(["learn", "--no-progress", "--explain", "--force", "--output"])
        .arg(&profile)
        .args(["--", PY, "-c", AGENT, NAME])
        .output()
        .expect("learn");
    assert!(learn.status.success(), "{}", output_text(&learn));
    assert!(sb.work().join(NAME).exists(), "the agent wrote its file");
    let p = profile.to_str().expect("utf-8");
    let mut outputs = vec![("learn report".to_owned(), learn)];
    let mut run = |args: &[&str]| {
        let out = user.nono(&sb).args(args).output().expect("nono");
        outputs.push((args.join(" "), out));
    };
    for format in ["table", "json", "csv"] {
        run(&["audit", "sessions", "--format", format]);
        run(&["audit", "show", "last", "--format", format]);
        run(&["audit", "query", "--session", "last", "--format", format]);
        run(&["audit", "summary", "last", "--format", format]);
        run(&["audit", "check", "--profile", p, "--session", "last", "--format", format]);
        run(&["profile", "show", p, "--format", format]);
    }
    run(&["audit", "export", "--format", "ocsf", "--session", "last"]);
    let mut failures = Vec::new();
    let mut seen_name = false;
    for (what, out) in &outputs {
        for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            let text = String::from_utf8_lossy(bytes);
            if let Some(c) = raw_control(&text) {
                failures.push(format!("{what} ({stream}) prints {c:?} raw:\n{text}"));
            }
            seen_name |= text.contains("cHduZWQ=");
        }
    }
    assert!(seen_name, "the hostile name was in the outputs at all");
    // JSON keeps the name itself (as escapes), so tools still get the truth.
    let query = user.nono(&sb).args(["audit", "query", "--session", "last", "--format", "json"]).output().expect("query");
    let rows: serde_json::Value = serde_json::from_slice(&query.stdout).expect("json");
    let found = rows.as_array().is_some_and(|a| a.iter().any(|r| r["path"].as_str().is_some_and(|p| p.ends_with(NAME))));
    assert!(found, "the exact name survives in JSON");
    let export = outputs.iter().find(|(w, _)| w.contains("ocsf")).map(|(_, o)| String::from_utf8_lossy(&o.stdout).into_owned());
    for line in export.unwrap_or_default().lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("an OCSF line is not JSON ({e}): {line}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
