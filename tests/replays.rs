//! Learned profiles hold on later runs (issue 13), the way real users work:
//! `sudo nono learn` on behalf of an ordinary user, the workdir reset, then
//! two replays with `sudo nono run --audit` (the command runs as the user):
//! each replay exits as the learning run did, with no sandbox denial.
//!
//! The same workloads, and a few that touch the home itself (listing `~`,
//! a shell glob there, a login shell reading its rc files, an atomic save
//! beside the dotfiles), in a lived-in home (issue 22 §1): `sudo nono
//! learn`, then `nono run` as the ordinary user, who must get the same exit
//! status and no refusal, with every dotfile byte for byte as it was.
//!
//! Also here: what is not a sandbox denial (file permissions, another
//! user's `/proc/N/environ`), and the repair loop (`nono profile amend`).

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{Sandbox, TestUser, is_root, output_text, skip};

struct Workload {
    name: &'static str,
    /// Puts the workdir in its starting state (before learn and each replay).
    seed: fn(&Path),
    script: &'static str,
    /// `nono learn --runs N`.
    runs: u32,
    needs: &'static [&'static str],
}

fn write_exec(p: &Path, text: &str) {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).expect("dir");
    }
    std::fs::write(p, text).expect("write");
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn seed_nothing(_: &Path) {}

fn seed_configure(w: &Path) {
    write_exec(
        &w.join("configure"),
        "#!/bin/sh\n# A configure script, run by path.\necho \"#define PREFIX \\\"$1\\\"\" > config.h\nprintf 'all:\\n\\t@echo built\\n' > Makefile\n",
    );
}

fn seed_npm(w: &Path) {
    write_exec(&w.join("node_modules/tool/cli.js"), "#!/usr/bin/env node\nconsole.log('tool ok ' + process.argv.length);\n");
    std::fs::create_dir_all(w.join("node_modules/.bin")).expect("bin");
    std::os::unix::fs::symlink("../tool/cli.js", w.join("node_modules/.bin/tool")).expect("symlink");
}

fn seed_env_chain(w: &Path) {
    write_exec(&w.join("hello.py"), "#!/usr/bin/env python3\nprint('hello from an env chain')\n");
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "a ./configure script",
        seed: seed_configure,
        script: "./configure /usr && make",
        runs: 1,
        needs: &["make"],
    },
    Workload {
        name: "an npm package's bin script",
        seed: seed_npm,
        script: "node_modules/.bin/tool a b",
        runs: 1,
        needs: &["node"],
    },
    Workload {
        name: "a venv's pip",
        seed: seed_nothing,
        script: "/usr/bin/python3 -m venv venv && venv/bin/pip --version --disable-pip-version-check",
        runs: 1,
        needs: &[],
    },
    Workload { name: "a #!/usr/bin/env chain", seed: seed_env_chain, script: "./hello.py", runs: 1, needs: &[] },
    Workload {
        name: "a state directory cleaned on the next start",
        seed: seed_nothing,
        // Like Codex: a random directory per run under its state dir, and
        // what an earlier run left is renamed away and removed.
        script: r#"S="$HOME/.agentstate/tmp/arg0"
mkdir -p "$S"
for old in "$S"/run-*; do [ -e "$old" ] || continue; mv "$old" "$S/.trash-$$" && rm -r "$S/.trash-$$"; done
d="$S/run-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
mkdir "$d" && ln -s /usr/bin/true "$d/apply_patch" && "$d/apply_patch"
"#,
        runs: 2,
        needs: &["od"],
    },
    Workload {
        name: "a lock directory and an atomic replace inside a granted directory",
        seed: seed_nothing,
        script: r#"C="$HOME/.config/app"
mkdir -p "$C"
[ -f "$C/settings.json" ] || echo '{}' > "$C/settings.json"
mkdir "$C/settings.json.lock"
t="$C/settings.json.tmp.$$"
cat "$C/settings.json" > "$t" && echo '{"saved": true}' > "$t" && mv "$t" "$C/settings.json"
rmdir "$C/settings.json.lock"
"#,
        runs: 1,
        needs: &[],
    },
];

/// Workloads that use the home itself, for the lived-in replay.
const HOME_WORKLOADS: &[Workload] = &[
    Workload { name: "a listing of ~", seed: seed_nothing, script: "ls -a \"$HOME\" > listing.txt", runs: 1, needs: &[] },
    Workload {
        name: "a shell glob in $HOME (an atomic save finished by mv)",
        seed: seed_nothing,
        script: r#"t="$HOME/.app.json.tmp.$$"
echo '{"saved": true}' > "$t"
mv "$HOME"/.app.json.tmp.* "$HOME/.app.json"
cat "$HOME/.app.json"
"#,
        runs: 1,
        needs: &[],
    },
    Workload {
        name: "a login shell that reads ~/.profile and ~/.bashrc",
        seed: seed_nothing,
        script: "bash -l -c 'echo login ok' && bash -i -c 'echo interactive ok' < /dev/null",
        runs: 1,
        needs: &["bash"],
    },
    Workload {
        name: "a Claude-like save of ~/.agent.json (lock directory, random temp, rename)",
        seed: seed_nothing,
        script: r#"f="$HOME/.agent.json"
[ -f "$f" ] || echo '{}' > "$f"
mkdir "$f.lock"
t="$f.tmp.$$.$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')"
echo '{"n": 1}' > "$t" && mv "$t" "$f"
rmdir "$f.lock"
"#,
        runs: 1,
        needs: &["od"],
    },
];

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .env("PATH", support::USER_PATH)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn reset(sb: &Sandbox, user: &TestUser, seed: fn(&Path)) {
    let w = sb.work();
    for e in std::fs::read_dir(&w).expect("workdir") {
        let p = e.expect("entry").path();
        if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir_all(&p).expect("clear");
        } else {
            std::fs::remove_file(&p).expect("clear");
        }
    }
    seed(&w);
    user.chown_tree(&w);
}

/// Sandbox denials of the latest session (lines of `audit query`'s JSON).
fn sandbox_denials(sb: &Sandbox, user: &TestUser) -> Vec<serde_json::Value> {
    let out = user
        .sudo_nono(sb)
        .args(["audit", "query", "--session", "last", "--result", "denied", "--format", "json"])
        .output()
        .expect("audit query");
    assert!(out.status.success(), "{}", output_text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    match v {
        serde_json::Value::Array(a) => a,
        serde_json::Value::Object(o) => o.get("events").and_then(|e| e.as_array().cloned()).unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn ready(test: &str) -> bool {
    if !is_root() {
        return skip(test, "needs root: a test user and `sudo nono learn`");
    }
    true
}

#[test]
fn learned_profiles_hold_on_two_replays_by_an_ordinary_user() {
    let test = "learned_profiles_hold_on_two_replays_by_an_ordinary_user";
    if !ready(test) {
        return;
    }
    let mut failures = Vec::new();
    for wl in WORKLOADS {
        if let Some(missing) = wl.needs.iter().find(|p| !have(p)) {
            skip(wl.name, &format!("{missing} is not on the user's PATH"));
            continue;
        }
        eprintln!("--- {}", wl.name);
        let sb = Sandbox::new();
        let Some(user) = TestUser::create(test, &sb) else { return };
        std::fs::create_dir(sb.home().join(".ssh")).expect("ssh");
        std::fs::write(sb.home().join(".ssh/id_rsa"), "secret\n").expect("key");
        user.chown_tree(&sb.home());
        reset(&sb, &user, wl.seed);
        // `nono learn` writes the profile as the user, like their editor would.
        let profiles = sb.root().join("profiles");
        std::fs::create_dir(&profiles).expect("profiles");
        user.chown_tree(&profiles);
        let profile = profiles.join("learned.json");
        let learned = user
            .sudo_nono(&sb)
            .args(["learn", "--no-progress", "--force", "--runs", &wl.runs.to_string(), "--output"])
            .arg(&profile)
            .args(["--", "sh", "-c", wl.script])
            .output()
            .expect("learn");
        if !learned.status.success() {
            failures.push(format!("{}: the learning run failed: {}", wl.name, output_text(&learned)));
            continue;
        }
        for replay in 1..=2 {
            reset(&sb, &user, wl.seed);
            let out = user
                .sudo_nono(&sb)
                .args(["run", "--audit", "--profile"])
                .arg(&profile)
                .args(["--", "sh", "-c", wl.script])
                .output()
                .expect("run");
            let denials = sandbox_denials(&sb, &user);
            if out.status.code() != learned.status.code() || !denials.is_empty() {
                failures.push(format!(
                    "{}: replay {replay}: exit {:?} (learning: {:?}), {} sandbox denial(s): {denials:#?}\n{}\nprofile:\n{}",
                    wl.name,
                    out.status.code(),
                    learned.status.code(),
                    denials.len(),
                    output_text(&out),
                    std::fs::read_to_string(&profile).unwrap_or_default()
                ));
                break;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Workloads that only the enforcer's own model gets right: an atomic save
/// beside secrets (brokered), and a UDP query to the nameserver (the
/// broker's `udp.dns`; a UDP connect sends nothing on the network).
const CHECK_ONLY: &[Workload] = &[
    Workload {
        name: "an atomic save of ~/.app.json beside ~/.ssh (brokered)",
        seed: seed_nothing,
        script: r#"T="$HOME/.app.json"
mkdir "$T.lock" && t="$T.tmp.$$.$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')" && cat "$T" > "$t" && echo '{"n": 1}' > "$t" && mv "$t" "$T" && rmdir "$T.lock"
"#,
        runs: 1,
        needs: &["od"],
    },
    Workload {
        name: "a DNS socket to the nameserver (udp.dns)",
        seed: seed_nothing,
        script: r#"/usr/bin/python3 -c 'import socket
ns = [l.split()[1] for l in open("/etc/resolv.conf") if l.startswith("nameserver")][0]
s = socket.socket(socket.AF_INET6 if ":" in ns else socket.AF_INET, socket.SOCK_DGRAM)
s.connect((ns, 53))
print("connected")'
"#,
        runs: 1,
        needs: &[],
    },
];

/// Whether a UDP connect to the first nameserver of /etc/resolv.conf
/// works here (it sends nothing; it needs a route).
fn nameserver_routable() -> bool {
    let Ok(conf) = std::fs::read_to_string("/etc/resolv.conf") else { return false };
    let Some(ns) = conf.lines().find_map(|l| l.strip_prefix("nameserver")).map(str::trim) else { return false };
    let Ok(ip) = ns.parse::<std::net::IpAddr>() else { return false };
    let bind = if ip.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
    std::net::UdpSocket::bind(bind).and_then(|s| s.connect((ip, 53))).is_ok()
}

/// A path in a directory of the user's (where `nono learn` writes as them).
fn user_file(sb: &Sandbox, user: &TestUser, name: &str) -> PathBuf {
    let dir = sb.root().join("profiles");
    if !dir.exists() {
        std::fs::create_dir(&dir).expect("profiles");
        user.chown_tree(&dir);
    }
    dir.join(name)
}

/// `nono audit check --format json` as the user: exit code, the number of
/// denials (`None`: no JSON), and the output for messages.
fn check(sb: &Sandbox, user: &TestUser, profile: &Path, session: i64) -> (Option<i32>, Option<usize>, String) {
    let out = user
        .nono(sb)
        .args(["audit", "check", "--profile"])
        .arg(profile)
        .args(["--session", &session.to_string(), "--format", "json"])
        .output()
        .expect("audit check");
    let denials =
        serde_json::from_slice::<serde_json::Value>(&out.stdout).ok().and_then(|v| v["denials"].as_array().map(Vec::len));
    (out.status.code(), denials, output_text(&out))
}

/// The ids of the learning sessions in the sandbox's database.
fn learn_sessions(sb: &Sandbox, user: &TestUser) -> Vec<i64> {
    let out = user.nono(sb).args(["audit", "sessions", "--format", "json"]).output().expect("sessions");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v.as_array().map(|a| a.iter().filter(|s| s["kind"] == "learn").filter_map(|s| s["id"].as_i64()).collect()).unwrap_or_default()
}

#[test]
fn audit_check_of_the_learning_session_finds_nothing_and_a_narrowed_profile_is_caught() {
    let test = "audit_check_of_the_learning_session_finds_nothing_and_a_narrowed_profile_is_caught";
    if !ready(test) {
        return;
    }
    let mut failures = Vec::new();
    for wl in WORKLOADS.iter().chain(CHECK_ONLY) {
        if let Some(missing) = wl.needs.iter().find(|p| !have(p)) {
            skip(wl.name, &format!("{missing} is not on the user's PATH"));
            continue;
        }
        if wl.name.contains("udp.dns") && !nameserver_routable() {
            // Not a kernel capability: the QEMU guests have no network, so
            // the connect fails (ENETUNREACH) with or without nono.
            eprintln!("SKIP {}: the nameserver in /etc/resolv.conf has no route from here", wl.name);
            continue;
        }
        eprintln!("--- {}", wl.name);
        let sb = Sandbox::new();
        sb.lived_in_home();
        std::fs::write(sb.home().join(".app.json"), "{\"n\": 0}\n").expect("app config");
        let Some(user) = TestUser::create(test, &sb) else { return };
        reset(&sb, &user, wl.seed);
        let profile = user_file(&sb, &user, "learned.json");
        let learned = user
            .sudo_nono(&sb)
            .args(["learn", "--no-progress", "--force", "--runs", &wl.runs.to_string(), "--output"])
            .arg(&profile)
            .args(["--", "sh", "-c", wl.script])
            .output()
            .expect("learn");
        if !learned.status.success() {
            failures.push(format!("{}: the learning run failed: {}", wl.name, output_text(&learned)));
            continue;
        }
        let sessions = learn_sessions(&sb, &user);
        if sessions.len() != wl.runs as usize {
            failures.push(format!("{}: {} learning session(s), want {}", wl.name, sessions.len(), wl.runs));
        }
        for id in &sessions {
            let (code, denials, text) = check(&sb, &user, &profile, *id);
            if code != Some(0) || denials != Some(0) {
                failures.push(format!(
                    "{}: checking session {id} against the profile learned from it: exit {code:?}, {denials:?} denial(s)\n{text}\nprofile:\n{}",
                    wl.name,
                    std::fs::read_to_string(&profile).unwrap_or_default()
                ));
            }
        }
        // Control: without its workdir, home and brokered rules the same
        // session is denied, and the check says so.
        let mut narrowed: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&profile).expect("profile")).expect("profile json");
        if let Some(fs) = narrowed["filesystem"].as_object_mut() {
            fs.remove("brokered");
            if let Some(rules) = fs.get_mut("rules").and_then(|r| r.as_array_mut()) {
                rules.retain(|r| {
                    r["path"]
                        .as_str()
                        .is_some_and(|p| !p.starts_with("$CWD") && !p.starts_with("$HOME") && !p.starts_with("$XDG"))
                });
            }
        }
        if let Some(net) = narrowed["network"].as_object_mut() {
            net.remove("udp");
        }
        let narrow = user_file(&sb, &user, "narrowed.json");
        std::fs::write(&narrow, serde_json::to_string_pretty(&narrowed).expect("json")).expect("narrowed");
        let Some(last) = sessions.last() else { continue };
        let (code, denials, text) = check(&sb, &user, &narrow, *last);
        if code != Some(1) || denials.is_none_or(|n| n == 0) {
            failures.push(format!("{}: the narrowed profile was not caught (exit {code:?}):\n{text}", wl.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn an_access_file_permissions_refuse_is_never_a_sandbox_denial() {
    let test = "an_access_file_permissions_refuse_is_never_a_sandbox_denial";
    if !ready(test) {
        return;
    }
    let sb = Sandbox::new();
    let Some(user) = TestUser::create(test, &sb) else { return };
    // Inside the granted workdir: a mode-000 file of another user (root).
    let locked = sb.work().join("locked.txt");
    std::fs::write(&locked, "root's\n").expect("locked");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let profile = sb.root().join("p.json");
    std::fs::write(&profile, r#"{"extends": "base", "filesystem": {"allow": ["$CWD"]}}"#).expect("profile");
    // `ps`-like: read every process's environ (root's and others' fail on
    // file permissions); then the locked file.
    let script = "for f in /proc/[0-9]*/environ; do cat \"$f\" > /dev/null 2>&1; done; cat locked.txt; exit 0";
    let out = user
        .sudo_nono(&sb)
        .args(["run", "--audit", "--profile"])
        .arg(&profile)
        .args(["--", "sh", "-c", script])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"), "cat was refused: {}", output_text(&out));
    let denials = sandbox_denials(&sb, &user);
    assert!(denials.is_empty(), "file permissions were counted as sandbox denials: {denials:#?}");
    // Control: something the profile does not grant is a denial.
    let secret = sb.root().join("outside.txt");
    std::fs::write(&secret, "x").expect("outside");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = user
        .sudo_nono(&sb)
        .args(["run", "--audit", "--profile"])
        .arg(&profile)
        .args(["--", "cat"])
        .arg(&secret)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let denials = sandbox_denials(&sb, &user);
    assert_eq!(denials.len(), 1, "the sandbox's own refusal: {denials:#?}\n{}", output_text(&out));
}

#[test]
fn amend_turns_a_denied_run_into_a_clean_one_and_never_grants_a_secret_silently() {
    let test = "amend_turns_a_denied_run_into_a_clean_one_and_never_grants_a_secret_silently";
    if !ready(test) {
        return;
    }
    let sb = Sandbox::new();
    let Some(user) = TestUser::create(test, &sb) else { return };
    std::fs::create_dir(sb.home().join(".ssh")).expect("ssh");
    std::fs::write(sb.home().join(".ssh/id_rsa"), "secret\n").expect("key");
    let data = sb.root().join("data");
    std::fs::create_dir(&data).expect("data");
    std::fs::write(data.join("ref.txt"), "reference\n").expect("ref");
    user.chown_tree(sb.root());
    let profile = sb.root().join("p.json");
    std::fs::write(&profile, r#"{"extends": "base", "filesystem": {"allow": ["$CWD"]}}"#).expect("profile");
    user.chown_tree(&profile);
    let script = format!("cat {}/ref.txt > copy.txt; cat \"$HOME/.ssh/id_rsa\" > /dev/null 2>&1; exit 0", data.display());
    let run = |args: &[&str]| -> Output {
        user.sudo_nono(&sb)
            .args(["run", "--audit"])
            .args(args)
            .arg("--profile")
            .arg(&profile)
            .args(["--", "sh", "-c", &script])
            .output()
            .expect("run")
    };
    let out = run(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains("nono profile amend"), "the run names the amend command: {}", output_text(&out));
    assert_eq!(sandbox_denials(&sb, &user).len(), 2, "ref.txt and the key: {}", output_text(&out));
    // Dry run, for scripts: the data file is proposed, the key is not.
    let dry = user
        .sudo_nono(&sb)
        .args(["profile", "amend"])
        .arg(&profile)
        .args(["--session", "last", "--dry-run", "--format", "json"])
        .output()
        .expect("amend");
    assert!(dry.status.success(), "{}", output_text(&dry));
    let plan: serde_json::Value = serde_json::from_slice(&dry.stdout).expect("json");
    let paths: Vec<String> = plan["proposals"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["title"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    assert!(paths.iter().any(|p| p.contains("ref.txt") || p.contains(&data.display().to_string())), "{plan:#}");
    assert!(!paths.iter().any(|p| p.contains(".ssh")), "a secret was proposed: {plan:#}");
    assert!(plan["refused_sensitive"].to_string().contains(".ssh/id_rsa"), "{plan:#}");
    // Accept everything: the profile changes, atomically, and validates.
    let before = std::fs::read_to_string(&profile).expect("profile");
    let yes = user
        .sudo_nono(&sb)
        .args(["profile", "amend"])
        .arg(&profile)
        .args(["--session", "last", "--yes"])
        .output()
        .expect("amend");
    assert!(yes.status.success(), "{}", output_text(&yes));
    let after = std::fs::read_to_string(&profile).expect("profile");
    assert_ne!(before, after);
    assert!(!after.contains(".ssh"), "{after}");
    // The round trip: the next run is denied only the key.
    let out = run(&[]);
    let denials = sandbox_denials(&sb, &user);
    assert_eq!(denials.len(), 1, "{denials:#?}\n{}", output_text(&out));
    assert!(denials[0].to_string().contains("id_rsa"), "{denials:#?}");
    assert!(sb.work().join("copy.txt").metadata().is_ok_and(|m| m.len() > 0));
    let _: PathBuf = profile;
}

#[test]
fn amend_in_a_lived_in_home_makes_new_files_work_on_the_next_run() {
    let test = "amend_in_a_lived_in_home_makes_new_files_work_on_the_next_run";
    if !ready(test) {
        return;
    }
    if nono::kernel::seccomp_notify().is_err() {
        skip(test, "seccomp user notification is unavailable: no broker for a new file beside secrets");
        return;
    }
    let sb = Sandbox::new();
    let untouchable = sb.lived_in_home();
    let Some(user) = TestUser::create(test, &sb) else { return };
    let profile = user_file(&sb, &user, "agent.json");
    // Learned from a run that only wrote in its workdir.
    let learned = user
        .sudo_nono(&sb)
        .args(["learn", "--no-progress", "--force", "--output"])
        .arg(&profile)
        .args(["--", "sh", "-c", "echo hi > out.txt"])
        .output()
        .expect("learn");
    assert!(learned.status.success(), "{}", output_text(&learned));
    // The next run also writes a new note in an existing directory, and a
    // new file beside the secrets of $HOME.
    let script = "echo hi > out.txt; echo note > \"$HOME/notes/new.txt\"; echo top > \"$HOME/new.txt\"; cat \"$HOME/.ssh/id_ed25519\" > /dev/null 2>&1; exit 0";
    let run = || -> Output {
        user.sudo_nono(&sb)
            .args(["run", "--audit", "--profile"])
            .arg(&profile)
            .args(["--", "sh", "-c", script])
            .output()
            .expect("run")
    };
    let out = run();
    let denials = sandbox_denials(&sb, &user);
    assert!(denials.len() >= 3, "both new files and the key: {denials:#?}\n{}", output_text(&out));
    assert!(!sb.home().join("notes/new.txt").exists() && !sb.home().join("new.txt").exists());
    // Dry run: every proposal has a reason, none names a path that does not exist.
    let dry = user
        .nono(&sb)
        .args(["profile", "amend"])
        .arg(&profile)
        .args(["--session", "last", "--dry-run", "--format", "json"])
        .output()
        .expect("amend");
    assert!(dry.status.success(), "{}", output_text(&dry));
    let plan: serde_json::Value = serde_json::from_slice(&dry.stdout).expect("json");
    let proposals = plan["proposals"].as_array().cloned().unwrap_or_default();
    assert!(!proposals.is_empty(), "{plan:#}");
    for p in &proposals {
        assert!(p["reason"].as_str().is_some_and(|r| !r.is_empty()), "a proposal without a reason: {p:#}");
        let title = p["title"].as_str().unwrap_or_default();
        assert!(
            !title.contains("new.txt (file)") && !title.starts_with("$HOME/notes/new.txt"),
            "a rule on a missing path: {p:#}"
        );
        assert!(!title.contains(".ssh"), "a secret was proposed: {p:#}");
    }
    assert!(
        proposals
            .iter()
            .any(|p| p["change"]["kind"] == "brokered" && p["change"]["rule"]["names"].to_string().contains("new.txt")),
        "the new file beside ~/.ssh is brokered: {plan:#}"
    );
    // Amending the wrong profile warns.
    let other = user_file(&sb, &user, "other.json");
    std::fs::copy(&profile, &other).expect("copy");
    user.chown_tree(&other);
    let warned =
        user.nono(&sb).args(["profile", "amend"]).arg(&other).args(["--session", "last", "--dry-run"]).output().expect("amend");
    assert!(String::from_utf8_lossy(&warned.stderr).contains("WARNING: session"), "{}", output_text(&warned));
    // Accept everything; the next run is denied only the key.
    let yes =
        user.nono(&sb).args(["profile", "amend"]).arg(&profile).args(["--session", "last", "--yes"]).output().expect("amend");
    assert!(yes.status.success(), "{}", output_text(&yes));
    let out = run();
    let denials = sandbox_denials(&sb, &user);
    assert_eq!(
        denials.len(),
        1,
        "only the key: {denials:#?}\n{}\nprofile:\n{}",
        output_text(&out),
        std::fs::read_to_string(&profile).unwrap_or_default()
    );
    assert!(denials[0].to_string().contains("id_ed25519"), "{denials:#?}");
    assert_eq!(std::fs::read_to_string(sb.home().join("notes/new.txt")).ok().as_deref(), Some("note\n"));
    assert_eq!(std::fs::read_to_string(sb.home().join("new.txt")).ok().as_deref(), Some("top\n"));
    for (path, bytes) in &untouchable {
        assert_eq!(std::fs::read(path).ok().as_ref(), Some(bytes), "{} changed", path.display());
    }
}

/// Issue 22 §1: `learn` must never write what `run` refuses. Each workload
/// is learned with `sudo nono learn` in a home like a real user's, then run
/// by the user with plain `nono run` (no root at all).
#[test]
fn learned_profiles_run_in_a_lived_in_home() {
    let test = "learned_profiles_run_in_a_lived_in_home";
    if !ready(test) {
        return;
    }
    let mut failures = Vec::new();
    for wl in WORKLOADS.iter().chain(HOME_WORKLOADS) {
        if let Some(missing) = wl.needs.iter().find(|p| !have(p)) {
            skip(wl.name, &format!("{missing} is not on the user's PATH"));
            continue;
        }
        eprintln!("--- {}", wl.name);
        let sb = Sandbox::new();
        let dotfiles = sb.lived_in_home();
        let Some(user) = TestUser::create(test, &sb) else { return };
        reset(&sb, &user, wl.seed);
        let learned = user
            .sudo_nono(&sb)
            .args(["learn", "--no-progress", "--name", "lived", "--runs", &wl.runs.to_string(), "--", "sh", "-c", wl.script])
            .output()
            .expect("learn");
        let profile = sb.home().join(".config/nono/profiles/lived.json");
        if !learned.status.success() || !profile.exists() {
            failures.push(format!("{}: the learning run failed: {}", wl.name, output_text(&learned)));
            continue;
        }
        for replay in 1..=2 {
            reset(&sb, &user, wl.seed);
            let out = user.nono(&sb).args(["run", "--profile", "lived", "--", "sh", "-c", wl.script]).output().expect("run");
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.code() != learned.status.code() || stderr.contains("refusing to run") {
                failures.push(format!(
                    "{}: replay {replay}: exit {:?} (learning: {:?})\n{}\nlearn:\n{}\nprofile:\n{}",
                    wl.name,
                    out.status.code(),
                    learned.status.code(),
                    output_text(&out),
                    String::from_utf8_lossy(&learned.stderr),
                    std::fs::read_to_string(&profile).unwrap_or_default()
                ));
                break;
            }
        }
        for (path, bytes) in &dotfiles {
            if std::fs::read(path).ok().as_ref() != Some(bytes) {
                failures.push(format!("{}: {} changed", wl.name, path.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
