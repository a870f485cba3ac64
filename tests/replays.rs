//! Learned profiles hold on later runs (issue 13), the way real users work:
//! `sudo nono learn` on behalf of an ordinary user, the workdir reset, then
//! two replays with `sudo nono run --audit` (the command runs as the user):
//! each replay exits as the learning run did, with no sandbox denial.
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
