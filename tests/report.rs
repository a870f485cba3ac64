//! End-to-end specification of the HTML report and of a terminal left to
//! the agent: a real session recorded by the real binary, its report
//! loaded in a real (headless) Chromium, and `nono learn` under a real pty.
//!
//! The browser part needs `chromium` (installed by `cargo xtask setup`),
//! the pty part `script` (util-linux). Without them, or without root for
//! recording, the tests skip with a reason; with `CI=true` or
//! `NONO_REQUIRE_KERNEL=1` that is a failure.

#[path = "support/png.rs"]
mod png;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Sandbox, output_text, require_recorder, skip};

/// File names an attacker would choose: markup, a way out of a script
/// element (`</script>` across a directory boundary), quotes, a newline.
const HOSTILE: [&str; 5] =
    ["<img src=x onerror=\"window.pwned=1\">", "q\"uo'te", "new\nline", "<script>window.pwned=1<", "tag&amp;"];

/// A workload that touches the hostile names, runs a child process, and
/// leaves a path inside `a<` named `script>` (the path reads `a</script>`).
const WORKLOAD: &str = r#"
set -eu
mkdir -p 'a<' src
: > 'a</script>'
for n in "$@"; do printf x > "src/$n"; done
cat src/* > /dev/null
sh -c 'ls src > listing.txt'
"#;

fn chromium(test: &str) -> Option<PathBuf> {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        for name in ["chromium", "chromium-browser"] {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    skip(test, "chromium is not installed (cargo xtask setup installs it)");
    None
}

/// Loads `page#selftest` headless, with every host unresolvable, and
/// returns the page's self-check (a JSON object) and Chromium's log.
fn selftest(browser: &Path, page: &Path) -> (serde_json::Value, String) {
    selftest_in(browser, page, &[])
}

/// The window the layout test and its screenshot share: the same size and
/// one device pixel per CSS pixel, so a rectangle the page measures is the
/// same rectangle in the screenshot.
const WINDOW: [&str; 3] = ["--window-size=900,1500", "--force-device-scale-factor=1", "--hide-scrollbars"];

/// [`selftest`] with more Chromium flags (a window size).
fn selftest_in(browser: &Path, page: &Path, flags: &[&str]) -> (serde_json::Value, String) {
    let profile = tempfile::tempdir().expect("browser profile dir");
    let out = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"])
        .args(flags)
        .arg("--host-resolver-rules=MAP * ~NOTFOUND")
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}#selftest", page.display()))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let start = dom.find("<pre id=\"selftest\">").unwrap_or_else(|| panic!("no self-check in the DOM:\n{}", output_text(&out)));
    let text = &dom[start + "<pre id=\"selftest\">".len()..];
    let text = &text[..text.find("</pre>").expect("end of the self-check")];
    // --dump-dom serialises text with &, <, > escaped.
    let text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
    let result = serde_json::from_str(&text).unwrap_or_else(|e| panic!("self-check {text:?}: {e}"));
    (result, log)
}

/// The data document of a report page (the JSON in its data element).
fn page_data(html: &str) -> serde_json::Value {
    let open = "<script type=\"application/json\" id=\"data\">";
    let start = html.find(open).expect("data element") + open.len();
    let end = start + html[start..].find("</script>").expect("end of the data element");
    serde_json::from_str(&html[start..end]).expect("data is JSON")
}

/// What a page must never contain: a fetch of anything outside it.
fn assert_self_contained(html: &str) {
    assert!(html.contains("content=\"default-src 'none'"), "strict CSP first");
    let lower = html.to_ascii_lowercase();
    for needle in ["src=\"http", "src=\"//", "href=\"http", "href=\"//", "@import", "url(", "<link", "<iframe", "<img"] {
        assert!(!lower.contains(needle), "the page references {needle:?}");
    }
    assert_eq!(lower.matches("<script").count(), 2, "only the data element and the page's own script");
}

#[test]
fn session_report_loads_in_chromium_and_never_executes_a_file_name() {
    let test = "session_report_loads_in_chromium_and_never_executes_a_file_name";
    let Some(backend) = require_recorder(test) else { return };
    let Some(browser) = chromium(test) else { return };
    let sb = Sandbox::new();
    let mut argv = vec!["sh", "-c", WORKLOAD, "workload"];
    argv.extend(HOSTILE);
    let learned = sb.learn(&backend, &argv);
    assert_eq!(learned.code, Some(0), "{}", learned.stderr);
    let page = sb.root().join("report.html");
    let printed = sb.nono(&["audit", "report", "last", "--html", page.to_str().expect("utf-8")]);
    assert_eq!(printed.trim(), page.display().to_string(), "prints the report's path");

    let html = std::fs::read_to_string(&page).expect("report written");
    assert!(html.len() < 10 << 20);
    assert_self_contained(&html);
    for name in HOSTILE {
        assert!(!html.contains(name) || !name.contains(['<', '>', '&']), "{name:?} is in the page unescaped");
    }
    assert!(!html.contains("a</script>"), "a path cannot close the data element");
    let data = page_data(&html);
    assert_eq!(data["kind"], "session");
    assert!(data["header"]["complete"].as_bool().expect("complete flag"), "{}", data["header"]);
    assert!(!data["rules"].as_array().expect("rules").is_empty(), "the learned profile's rules are shown");

    let (check, log) = selftest(&browser, &page);
    assert_eq!(check["errors"], serde_json::json!([]), "script errors: {check}\n{log}");
    assert_eq!(check["expanded"], true, "expanding a node shows its children: {check}");
    assert_eq!(check["collapsed"], true, "collapsing hides them: {check}");
    assert_eq!(check["resources"], 0, "no request left the page: {check}");
    assert_eq!(check["scripts"], 2, "no file name became a script element: {check}");
    assert_eq!(check["pwned"], false, "a file name executed: {check}");
    assert_eq!(check["incomplete_banner"], false);
    assert!(check["timeline_rects"].as_u64().unwrap_or(0) > 0, "the timeline is drawn: {check}");
    assert!(check["processes"].as_u64().unwrap_or(0) >= 2, "the workload and its child: {check}");
    let names: Vec<&str> = check["names"].as_array().expect("names").iter().filter_map(|n| n.as_str()).collect();
    for expected in ["src", "a<", "script>", "listing.txt", "<img src=x onerror=\"window.pwned=1\">", "q\"uo'te", "new\\nline"] {
        assert!(names.contains(&expected), "the tree shows {expected:?} as text: {names:?}");
    }
    assert_eq!(check["filter_narrows"], true, "the process filter narrows the tree: {check}");
    assert_eq!(check["filter_restored"], true, "and 'all processes' restores it: {check}");
    for bad in ["Uncaught", "Refused to", "Content Security Policy"] {
        assert!(!log.contains(bad), "chromium logged {bad:?}:\n{log}");
    }
}

/// A 1M-event session (built through the library, as `audit report`
/// does) stays under 10 MB and renders in Chromium, and an incomplete one
/// says so at the top. How fast it renders is the bench's to measure
/// (`cargo xtask bench --only report`), not a timed test's.
#[test]
fn a_million_event_incomplete_session_renders_with_a_warning() {
    let test = "a_million_event_incomplete_session_renders_with_a_warning";
    let Some(browser) = chromium(test) else { return };
    let header =
        nono::report::Header { id: 1, complete: false, state: "incomplete".to_owned(), lost: 4_096, ..Default::default() };
    let data = nono::report::synthetic::session(1_000_000, 1_200, header);
    let html = nono::report::html::render(&data).expect("render");
    assert!(html.len() < 10 << 20, "{} bytes", html.len());
    let dir = tempfile::tempdir().expect("tempdir");
    let page = dir.path().join("big.html");
    std::fs::write(&page, &html).expect("write");
    let (check, log) = selftest(&browser, &page);
    assert_eq!(check["errors"], serde_json::json!([]), "{check}\n{log}");
    assert_eq!(check["incomplete_banner"], true, "an incomplete session says so: {check}");
    assert_eq!(check["nodes"], nono::report::MAX_NODES, "the tree is capped: {check}");
    let ms = check["render_ms"].as_u64().expect("render time");
    eprintln!("{test}: 1M events, {} bytes, rendered in {ms} ms", html.len());
}

/// The README's screenshot: the demo's replay (learn, then `run --audit`
/// under the learned profile, with the SSH key read denied) rendered by
/// Chromium. Written to docs/report.png with `NONO_UPDATE_SCREENSHOT=1`.
#[test]
fn demo_session_report_screenshot() {
    let test = "demo_session_report_screenshot";
    let Some(backend) = require_recorder(test) else { return };
    let Some(browser) = chromium(test) else { return };
    let sb = Sandbox::new();
    let agent = Path::new(env!("CARGO_MANIFEST_DIR")).join("../xtask/demo/agent.sh");
    let agent = agent.to_str().expect("utf-8 path");
    std::fs::create_dir_all(sb.home().join(".ssh")).expect("ssh dir");
    std::fs::write(sb.home().join(".ssh/id_rsa"), "-----BEGIN OPENSSH PRIVATE KEY----- (demo)\n").expect("key");
    // As the demo runs it: the system's tools only (a PATH into /root
    // would be denied as sensitive, and is not what the demo shows).
    let system_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    let mut learn = sb.learn_command(&backend, &[], &["sh", agent]);
    let out = learn.env("PATH", system_path).env_remove("LD_LIBRARY_PATH").output().expect("nono learn");
    assert!(out.status.success(), "{}", output_text(&out));
    let profile = sb.profile();
    let profile = profile.to_str().expect("utf-8");
    std::fs::remove_dir_all(sb.work().join("src")).ok();
    std::fs::remove_dir_all(sb.work().join("build")).ok();
    let out = sb
        .cmd()
        .env("PATH", system_path)
        .env_remove("LD_LIBRARY_PATH")
        .args(["run", "--audit", "--profile", profile, "--", "sh", agent])
        .output()
        .expect("nono run");
    assert!(out.status.success(), "{}", output_text(&out));
    let page = sb.root().join("demo.html");
    sb.nono(&["audit", "report", "last", "--profile", profile, "--html", page.to_str().expect("utf-8")]);
    let data = page_data(&std::fs::read_to_string(&page).expect("report"));
    let denied: u64 = data["nodes"].as_array().expect("nodes").iter().filter_map(|n| n["d"].as_u64()).sum();
    assert!(denied >= 1, "the replay's denial of the key is in the tree");

    let update = std::env::var("NONO_UPDATE_SCREENSHOT").is_ok_and(|v| v == "1");
    let shot =
        if update { Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/report.png") } else { sb.root().join("report.png") };
    std::fs::create_dir_all(shot.parent().expect("parent")).expect("docs dir");
    let browser_dir = tempfile::tempdir().expect("browser profile dir");
    let out = Command::new(&browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,900"])
        .arg("--host-resolver-rules=MAP * ~NOTFOUND")
        .arg(format!("--user-data-dir={}", browser_dir.path().display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot ({e}):\n{}", output_text(&out)));
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
}

/// Screenshots `page` (not in self-test mode) in the [`WINDOW`].
fn screenshot(browser: &Path, page: &Path, png: &Path) -> png::Image {
    let profile = tempfile::tempdir().expect("browser profile dir");
    let out = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu"])
        .args(WINDOW)
        .arg("--host-resolver-rules=MAP * ~NOTFOUND")
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    let bytes = std::fs::read(png).unwrap_or_else(|e| panic!("no screenshot ({e}):\n{}", output_text(&out)));
    png::decode(&bytes)
}

/// `#rrggbb` as RGB.
fn rgb(hex: &str) -> [u8; 3] {
    let v = u32::from_str_radix(hex.trim_start_matches('#'), 16).expect("hex colour");
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

fn near(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 6)
}

/// A session report built through the library, as `audit report` builds
/// one: `ops` (each `count` times, one in `deny_every` denied) and a
/// header with long values that must wrap at spaces and slashes, never
/// inside a word.
fn made_up_report(ops: &[(nono::event::Op, u32)], deny_every: u32) -> nono::report::SessionReport {
    use nono::event::{Access, DenyBy, Event, NetAddr, Outcome};
    let header = nono::report::Header {
        id: 7,
        command: "claude --dangerously-skip-permissions --append-system-prompt review-the-session(s)-timeout.json carefully"
            .split(' ')
            .map(str::to_owned)
            .collect(),
        cwd: "/home/reviewer/src/github.com/example-organisation/a-rather-long-repository-name/sub/directory".to_owned(),
        backend: "tracepoint".to_owned(),
        kernel: "6.18.44-fc-v1272".to_owned(),
        state: "complete".to_owned(),
        complete: true,
        started: "2026-12-08T04:15:37.123456789Z".to_owned(),
        duration_ms: Some(4_200),
        exit: "exit 0".to_owned(),
        profile: Some("/home/reviewer/.config/nono/profiles/claude-code-with-a-long-name.json (as enforced, sha256 0123456789ab)".to_owned()),
        profile_note: Some(
            "the session stored no profile (recorded before nono stored them): shown as the file is now, which may differ from what the session(s) ran under; see timeout.json and the amend loop"
                .to_owned(),
        ),
        host: Some("build-server-07#3f2a9c1e".to_owned()),
        ..Default::default()
    };
    let mut agg = nono::report::Aggregator::new(0, 4_000_000_000);
    let mut i = 0u32;
    for (op, count) in ops {
        for _ in 0..*count {
            i += 1;
            let net = op.is_network().then(|| NetAddr {
                family: libc::AF_INET as u16,
                addr: Some(std::net::IpAddr::from([93, 184, 216, (i % 3) as u8])),
                port: 443,
                sock_type: libc::SOCK_STREAM as u16,
                protocol: 0,
            });
            agg.add(&Event {
                time_ns: i64::from(i) * 1_000_000,
                pid: 100 + i % 3,
                tid: 100 + i % 3,
                ppid: 1,
                uid: 1000,
                comm: "agent".to_owned(),
                exe: Some("/usr/bin/agent".to_owned()),
                op: *op,
                path: (!op.is_network()).then(|| format!("/home/reviewer/src/project/file{}.rs", i % 17)),
                path2: None,
                access: Access { read: true, ..Access::default() },
                arg: 0,
                file_type: 0o100_000,
                outcome: if i.is_multiple_of(deny_every) {
                    Outcome::Denied { errno: 13, by: DenyBy::Computed }
                } else {
                    Outcome::Ok
                },
                net,
                incomplete: false,
            });
        }
    }
    agg.finish(header, nono::report::Rules::default(), &nono::report::Sensitive::default(), &["claude".to_owned()])
}

/// The page as a reviewer sees it (issue 26): every operation of the
/// legend has its own colour, the same in every report (the screenshot's
/// swatches are compared with nono's palette), the header states the
/// denial count in red, and no word of the header, the legend or the
/// network and process tables is broken across two lines ("sessi on(s)",
/// "timeo ut.json").
#[test]
fn legend_colours_and_header_text_hold_in_a_screenshot() {
    use nono::event::Op;
    let test = "legend_colours_and_header_text_hold_in_a_screenshot";
    let Some(browser) = chromium(test) else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    // Twelve ops (more than the old ten-colour cycle), and then the same
    // ops in another order of frequency.
    let first: Vec<(Op, u32)> = [
        Op::Open,
        Op::Exec,
        Op::Unlink,
        Op::Rename,
        Op::Mkdir,
        Op::Create,
        Op::Fork,
        Op::Exit,
        Op::Connect,
        Op::Send,
        Op::Symlink,
        Op::Metadata,
    ]
    .iter()
    .enumerate()
    .map(|(i, op)| (*op, 40 - 3 * i as u32))
    .collect();
    let second: Vec<(Op, u32)> = first.iter().rev().enumerate().map(|(i, (op, _))| (*op, 40 - 3 * i as u32)).collect();
    let mut colour_of: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for (n, ops) in [first, second].iter().enumerate() {
        let data = made_up_report(ops, 7);
        let page = dir.path().join(format!("r{n}.html"));
        std::fs::write(&page, nono::report::html::render(&data).expect("render")).expect("write");
        let (check, log) = selftest_in(&browser, &page, &WINDOW);
        assert_eq!(check["errors"], serde_json::json!([]), "{check}\n{log}");
        let layout = &check["layout"];
        assert_eq!(layout["broken"], serde_json::json!([]), "words broken across lines in the header or legend: {layout:#}");
        assert_eq!(check["tables_broken"], serde_json::json!([]), "words broken in the tables: {check:#}");
        assert!(layout["width"].as_u64().unwrap_or(0) > 800, "the window: {layout}");

        let shot = screenshot(&browser, &page, &dir.path().join(format!("r{n}.png")));
        let legend = layout["legend"].as_array().expect("legend items");
        assert_eq!(legend.len(), ops.len() + 1, "every op and 'denied': {legend:#?}");
        let mut seen: std::collections::HashMap<[u8; 3], String> = std::collections::HashMap::new();
        for item in legend {
            let op = item["op"].as_str().expect("op");
            let want = if op == "denied" {
                nono::report::palette::DENIED.to_owned()
            } else {
                let op = Op::ALL.into_iter().find(|o| o.name() == op).expect("a known op");
                nono::report::op_color(op).to_owned()
            };
            assert_eq!(item["color"], want, "{op}'s colour is nono's fixed one");
            let r = &item["swatch"];
            let (x, y) = (
                (r["x"].as_f64().expect("x") + r["w"].as_f64().expect("w") / 2.0) as usize,
                (r["y"].as_f64().expect("y") + r["h"].as_f64().expect("h") / 2.0) as usize,
            );
            assert!(x < shot.width && y < shot.height, "the swatch of {op} is off the screenshot: {r}");
            let px = shot.at(x, y);
            assert!(near(px, rgb(&want)), "{op}: the screenshot shows {px:?} at ({x}, {y}), not {want}");
            if let Some(other) = seen.insert(px, op.to_owned()) {
                panic!("{op} and {other} look the same in the screenshot: {px:?}");
            }
            if let Some(before) = colour_of.insert(op.to_owned(), want.clone()) {
                assert_eq!(before, want, "{op} changed colour between reports");
            }
        }

        // The header states the denials, in the warning red.
        let denied = data.header.denied;
        assert!(denied > 0);
        assert_eq!(layout["denied"]["text"], denied.to_string(), "{layout:#}");
        assert!(layout["header"].as_str().is_some_and(|h| h.contains("denied")), "{layout}");
        let rect = &layout["denied"]["rect"];
        let at = |k: &str| rect[k].as_f64().unwrap_or_else(|| panic!("{k} of {rect}")) as usize;
        let (left, top, width, height) = (at("x"), at("y"), at("w"), at("h"));
        let red = (top..top + height).any(|y| {
            (left..left + width).any(|x| {
                let [r, g, b] = shot.at(x, y);
                r > 120 && g < 90 && b < 90
            })
        });
        assert!(red, "the denial count is drawn in red in the screenshot");
        // The network section lists the destinations, denials marked.
        assert!(check["network"].as_array().is_some_and(|n| n.iter().any(|d| d["denied"] == true)), "{:#}", check["network"]);
    }
}

#[test]
fn profile_report_marks_rules_the_session_never_used() {
    let test = "profile_report_marks_rules_the_session_never_used";
    let Some(backend) = require_recorder(test) else { return };
    let sb = Sandbox::new();
    std::fs::write(sb.work().join("kept.txt"), "a").expect("seed");
    std::fs::write(sb.home().join("dropped.txt"), "b").expect("seed");
    let learned = sb.learn(&backend, &["sh", "-c", "cat kept.txt \"$HOME/dropped.txt\" > /dev/null"]);
    assert_eq!(learned.code, Some(0), "{}", learned.stderr);
    let profile = sb.root().join("first.json");
    std::fs::rename(sb.profile(), &profile).expect("keep the first profile");
    let second = sb.learn(&backend, &["sh", "-c", "cat kept.txt > /dev/null"]);
    assert_eq!(second.code, Some(0), "{}", second.stderr);

    let page = sb.root().join("profile.html");
    let args =
        ["profile", "report", profile.to_str().expect("utf-8"), "--against", "last", "--html", page.to_str().expect("utf-8")];
    sb.nono(&args);
    let html = std::fs::read_to_string(&page).expect("report written");
    assert_self_contained(&html);
    let data = page_data(&html);
    assert_eq!(data["kind"], "profile");
    assert_eq!(data["against"]["id"], second.session_id);
    let rules = data["rules"].as_array().expect("rules");
    let used = |prefix: &str| {
        let r = rules
            .iter()
            .find(|r| r["spelled"].as_str().is_some_and(|p| p.starts_with(prefix)))
            .unwrap_or_else(|| panic!("no rule for {prefix}: {rules:?}"));
        r["used"].as_u64().expect("used count")
    };
    assert!(used("$CWD") > 0, "the second session used the workdir rule: {rules:?}");
    assert_eq!(used("$HOME"), 0, "and never touched the home file: a candidate for removal: {rules:?}");
    assert!(rules.iter().all(|r| r["reason"].is_string()), "every learned rule says why: {rules:?}");

    // In the browser, the tree counts what the session used of each rule
    // (it showed "0" on every node).
    let Some(browser) = chromium(test) else { return };
    let (check, log) = selftest(&browser, &page);
    assert_eq!(check["errors"], serde_json::json!([]), "{check}\n{log}");
    let counts: Vec<&str> = check["counts"].as_array().expect("counts").iter().filter_map(|c| c.as_str()).collect();
    assert!(!counts.is_empty() && counts.iter().all(|c| *c != "0" && c.ends_with(" used")), "the tree's counts: {counts:?}");
}

/// Removes what only the terminal's title shows (OSC 2 and the xterm
/// title stack): no screen content.
fn strip_title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    loop {
        let osc = rest.find("\x1b]2;");
        let push = rest.find("\x1b[22;0t");
        let pop = rest.find("\x1b[23;0t");
        let next = [osc, push, pop].into_iter().flatten().min();
        let Some(at) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        rest = if rest.starts_with("\x1b]2;") {
            rest.find('\x07').map_or("", |end| &rest[end + 1..])
        } else {
            &rest["\x1b[22;0t".len()..]
        };
    }
}

/// The recorder backend and a sandbox whose workdir holds `agent.sh`
/// (`script_text`), for a pty test; `None` after saying why it skips.
fn pty_agent(test: &str, script_text: &str) -> Option<(String, Sandbox)> {
    let backend = require_recorder(test)?;
    if !Path::new("/usr/bin/script").exists() {
        skip(test, "`script` (util-linux) is not installed");
        return None;
    }
    let sb = Sandbox::new();
    std::fs::write(sb.work().join("agent.sh"), script_text).expect("agent");
    Some((backend, sb))
}

/// What `cmd` (a shell command) writes to a pty (`script`), run in the
/// sandbox's workdir with its home, temp dir and database; it must succeed.
fn under_pty(sb: &Sandbox, cmd: &str) -> String {
    let out = Command::new("script")
        .current_dir(sb.work())
        .env("HOME", sb.home())
        .env("TMPDIR", sb.root().join("tmp"))
        .env("NONO_DB", sb.db())
        .env("TERM", "xterm")
        .args(["-qfec", cmd, "/dev/null"])
        .output()
        .expect("run script");
    assert!(out.status.success(), "{cmd}: {}", output_text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The agent's screen under `nono learn --progress auto` is exactly its
/// screen without nono: nono writes before the command starts and after it
/// exits, never while it holds the terminal (regression: the spinner drew
/// `nono: recording 2s · 532 events` over Claude Code's TUI).
#[test]
fn learn_leaves_the_terminal_to_the_command() {
    // Slow enough (1.5 s) that a spinner would have ticked many times.
    let agent = "for i in 1 2 3 4 5 6; do printf 'agent line %s\\n' \"$i\"; sleep 0.25; done\nprintf 'agent: done\\n'\n";
    let Some((backend, sb)) = pty_agent("learn_leaves_the_terminal_to_the_command", agent) else { return };
    let native = under_pty(&sb, "sh agent.sh");
    assert!(native.contains("agent line 6"), "{native:?}");
    let with_nono = under_pty(
        &sb,
        &format!(
            "{} learn --backend {backend} --progress auto --output {} --force -- sh agent.sh",
            support::NONO,
            sb.profile().display()
        ),
    );
    let screen = strip_title(&with_nono);
    let at =
        screen.find(&native).unwrap_or_else(|| panic!("the agent's output was interrupted:\n{screen:?}\nnative:\n{native:?}"));
    let (before, after) = (&screen[..at], &screen[at + native.len()..]);
    for line in before.lines().chain(after.lines()) {
        assert!(line.is_empty() || line.starts_with("nono: "), "a line that is neither the agent's nor nono's: {line:?}");
    }
    assert!(after.contains("nono: session"), "the summary follows the command: {after:?}");
    let redraws = screen.replace("\r\n", "\n");
    assert!(!redraws.contains('\r') && !redraws.contains("\x1b["), "no line was redrawn on the screen: {screen:?}");
    assert!(with_nono.contains("\x1b]2;nono: recording"), "progress went to the title: {with_nono:?}");
}

/// A title the agent sets stays until the agent ends (issue 26: `--progress
/// auto` replaced "AGENT-TITLE" with its own counts within 1.5 s). nono
/// sets its title once before the command starts and restores the user's
/// after; nothing in between.
#[test]
fn a_title_the_agent_sets_is_left_alone() {
    let agent = "printf '\\033]2;AGENT-TITLE\\007'\nsleep 2.5\nprintf 'agent: done\\n'\n";
    let Some((backend, sb)) = pty_agent("a_title_the_agent_sets_is_left_alone", agent) else { return };
    let cmd = format!(
        "{} learn --backend {backend} --progress auto --output {} --force -- sh agent.sh",
        support::NONO,
        sb.profile().display()
    );
    let screen = under_pty(&sb, &cmd);
    let agent_title = screen.find("\x1b]2;AGENT-TITLE\x07").unwrap_or_else(|| panic!("the agent set its title: {screen:?}"));
    let nono_title = screen.find("\x1b]2;nono: recording").unwrap_or_else(|| panic!("nono set its title: {screen:?}"));
    assert!(nono_title < agent_title, "nono's title came first, before the command ran: {screen:?}");
    let done = screen.find("agent: done").expect("the agent finished");
    let between = &screen[agent_title + "\x1b]2;AGENT-TITLE\x07".len()..done];
    assert!(!between.contains("\x1b]2;"), "no title was written while the agent ran: {between:?}");
    assert!(screen[done..].contains("\x1b[23;0t"), "the user's title is restored at the end: {screen:?}");
}

/// Ctrl-C typed at the terminal reaches the command exactly once, as it
/// does without nono (the terminal signals the whole foreground group;
/// nono forwards only signals sent to it directly).
#[test]
fn ctrl_c_reaches_the_command_once() {
    use std::io::{Read as _, Write as _};
    use std::process::Stdio;
    let test = "ctrl_c_reaches_the_command_once";
    let Some(backend) = require_recorder(test) else { return };
    if !Path::new("/usr/bin/script").exists() {
        skip(test, "`script` (util-linux) is not installed");
        return;
    }
    let sb = Sandbox::new();
    let agent = "trap 'echo got-int' INT; echo ready; sleep 3; echo end";
    let typed_ctrl_c = |cmd: String| -> String {
        let mut child = Command::new("script")
            .current_dir(sb.work())
            .env("HOME", sb.home())
            .env("NONO_DB", sb.db())
            .args(["-qfec", &cmd, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run script");
        let mut out = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&all).contains("ready") {
                    let _ = tx.send(());
                }
            }
            String::from_utf8_lossy(&all).into_owned()
        });
        rx.recv_timeout(std::time::Duration::from_secs(20)).expect("the command started");
        std::thread::sleep(std::time::Duration::from_millis(300));
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"\x03").expect("type Ctrl-C");
        let _ = child.wait();
        drop(stdin);
        reader.join().expect("reader")
    };
    // The command's own lines (nono's summary quotes the command line).
    let traps =
        |screen: &str| strip_title(screen).lines().filter(|l| !l.contains("nono") && l.trim_end().ends_with("got-int")).count();
    let native = typed_ctrl_c(format!("sh -c \"{agent}\""));
    assert_eq!(traps(&native), 1, "without nono: {native:?}");
    let with_nono = typed_ctrl_c(format!(
        "{} learn --backend {backend} --output {} --force -- sh -c \"{agent}\"",
        support::NONO,
        sb.profile().display()
    ));
    assert_eq!(traps(&with_nono), 1, "under nono learn: {with_nono:?}");
    assert!(with_nono.contains("end"), "the command went on after its trap: {with_nono:?}");
}
