//! Issue 21 §4: files that run code outside the sandbox. A world of its
//! own, in a lived-in home (`~/.gitconfig`, `~/.bashrc`, `~/.ssh`, ...): a
//! profile learned with `sudo nono learn -- git config --global x.y z`,
//! which rewrites `~/.gitconfig` atomically (a lock file renamed over it).
//! Learn must say it did not grant that, in one grouped warning; under the
//! profile the agent must not be able to set `core.fsmonitor` or a `!`
//! alias (so the user's next `git status` outside runs nothing), nor reach
//! `~/.bashrc` by any route; a hand-written brokered rule whose names can
//! match a sensitive name is refused before anything runs. Controls: with
//! `--allow-sensitive` the same attacks work, so each check can fail.

use super::*;

struct Home {
    sb: Sandbox,
    user: TestUser,
    dotfiles: Vec<(PathBuf, Vec<u8>)>,
    learn_stderr: String,
    /// A repository of the user's, outside any sandbox.
    repo: PathBuf,
}

static HOME: OnceLock<Result<Home, String>> = OnceLock::new();

/// The cases share one home, and the controls change dotfiles (and put
/// them back): one case at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn home(test: &str) -> Option<(&'static Home, std::sync::MutexGuard<'static, ()>)> {
    let guard = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match HOME.get_or_init(build_home) {
        Ok(h) => Some((h, guard)),
        Err(why) => {
            skip(test, why);
            None
        }
    }
}

extern "C" fn cleanup_home() {
    if let Some(Ok(h)) = HOME.get() {
        let _ = Command::new("pkill").args(["-KILL", "-U", &h.user.uid.to_string()]).status();
        let _ = Command::new("userdel").arg(&h.user.name).output();
        let _ = std::fs::remove_dir_all(h.sb.root());
    }
}

fn have_git() -> bool {
    Command::new("sh").args(["-c", "command -v git"]).env("PATH", support::USER_PATH).output().is_ok_and(|o| o.status.success())
}

fn build_home() -> Result<Home, String> {
    if !is_root() {
        return Err("needs root: a test user, and `sudo nono learn`".into());
    }
    if abi() < 1 {
        return Err("Landlock is not available on this kernel".into());
    }
    if !have_git() || !Path::new(PY).exists() {
        return Err("git or python3 is missing from the user's PATH".into());
    }
    let sb = Sandbox::new();
    let dotfiles = sb.lived_in_home();
    let user = TestUser::create("escapes-persistence", &sb).ok_or("no test user")?;
    // SAFETY: registering a plain extern "C" function.
    unsafe { libc::atexit(cleanup_home) };
    // The user's own repository, where their `git status` will run.
    let repo = sb.root().join("repo");
    std::fs::create_dir(&repo).map_err(|e| e.to_string())?;
    user.chown_tree(&repo);
    let init = user.run(&sb, "git").current_dir(&repo).args(["init", "-q", "."]).output().map_err(|e| e.to_string())?;
    if !init.status.success() {
        return Err(format!("git init: {}", String::from_utf8_lossy(&init.stderr)));
    }
    let out = user
        .sudo_nono(&sb)
        .args(["learn", "--no-progress", "--name", "gitcfg", "--backend"])
        .arg(std::env::var("NONO_TEST_BACKEND").unwrap_or_else(|_| "auto".to_owned()))
        .args(["--", "git", "config", "--global", "x.y", "z"])
        .output()
        .map_err(|e| e.to_string())?;
    let learn_stderr = text(&out.stderr);
    if !out.status.success() {
        return Err(format!("nono learn failed ({}):\n{learn_stderr}", out.status));
    }
    // The learning run itself changed ~/.gitconfig (outside any sandbox):
    // that is the baseline from here on.
    let dotfiles = dotfiles
        .into_iter()
        .map(|(p, _)| std::fs::read(&p).map(|b| (p, b)))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    Ok(Home { sb, user, dotfiles, learn_stderr, repo })
}

impl Home {
    fn profile(&self) -> PathBuf {
        self.sb.home().join(".config/nono/profiles/gitcfg.json")
    }

    fn gitconfig(&self) -> PathBuf {
        self.sb.home().join(".gitconfig")
    }

    fn bashrc(&self) -> PathBuf {
        self.sb.home().join(".bashrc")
    }

    /// `nono run EXTRA --profile PROFILE -- ARGV`, as the user.
    fn run(&self, profile: &str, extra: &[&str], argv: &[&str]) -> Output {
        let mut c = self.user.nono(&self.sb);
        c.arg("run").args(extra).args(["--profile", profile, "--"]).args(argv);
        c.output().expect("nono run")
    }

    /// The learned profile plus `base` and the workdir, for probes (Python
    /// runs, files can be staged in the workdir), with `brokered` rules;
    /// written outside the workdir.
    fn extended(&self, file: &str, brokered: &str) -> String {
        let p = self.sb.root().join(file);
        let text = format!(r#"{{"extends": ["gitcfg", "base"], "filesystem": {{"allow": ["$CWD"], "brokered": {brokered}}}}}"#);
        std::fs::write(&p, text).expect("profile");
        self.user.chown_tree(&p);
        p.display().to_string()
    }

    /// [`Home::extended`] without brokered rules.
    fn probe(&self) -> String {
        self.extended("probe.json", "[]")
    }

    /// The user's `git status` and `git st` in their repository, outside
    /// any sandbox; whether `marker` appeared (a hook or alias ran).
    fn outside_git_runs(&self, marker: &Path) -> bool {
        for args in [&["status", "--short"][..], &["st"]] {
            let _ = self.user.run(&self.sb, "git").current_dir(&self.repo).args(args).output().expect("git");
        }
        marker.exists()
    }

    /// Every dotfile is byte for byte what it was.
    fn unchanged(&self) -> Vec<String> {
        self.dotfiles
            .iter()
            .filter(|(p, b)| std::fs::read(p).ok().as_ref() != Some(b))
            .map(|(p, _)| p.display().to_string())
            .collect()
    }
}

#[test]
fn learn_warns_once_and_the_profile_cannot_write_gitconfig() {
    let Some((h, _serial)) = home("learn_warns_once_and_the_profile_cannot_write_gitconfig") else { return };
    let mut c = Cases::default();
    let warnings: Vec<&str> = h.learn_stderr.lines().filter(|l| l.contains("PERSISTENCE")).collect();
    c.check(&format!("one grouped PERSISTENCE warning ({})", h.learn_stderr), warnings.len() == 1);
    let listed: Vec<&str> = h.learn_stderr.lines().filter(|l| l.starts_with("nono:   ")).collect();
    c.check(
        &format!("it names ~/.gitconfig and why ({listed:?})"),
        listed.iter().any(|l| l.contains(&h.gitconfig().display().to_string()) && l.contains("core.fsmonitor")),
    );
    let profile: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(h.profile()).expect("profile")).expect("json");
    let brokered = profile["filesystem"]["brokered"].as_array().cloned().unwrap_or_default();
    c.check(
        &format!("no brokered rule names .gitconfig ({brokered:?})"),
        !brokered.iter().any(|b| b["names"].to_string().contains(".gitconfig")),
    );
    for r in profile["filesystem"]["rules"].as_array().cloned().unwrap_or_default() {
        let path = r["path"].as_str().unwrap_or_default();
        let access = r["access"].to_string();
        let modifies = ["write_file", "truncate", "make_", "remove_", "refer"].iter().any(|w| access.contains(w));
        c.check(
            &format!("no modifying rule on $HOME or ~/.gitconfig: {path} {access}"),
            !(modifies && (path == "$HOME" || path.contains(".gitconfig"))),
        );
    }
    // It runs, and a second `git config --global` under it fails.
    let out = h.run("gitcfg", &[], &["git", "config", "--global", "x.y", "w"]);
    c.check(&format!("under the profile, git config --global fails ({})", text(&out.stderr)), !out.status.success());
    c.check("no refusal before running", !text(&out.stderr).contains("refusing to run"));
    c.check(&format!("dotfiles unchanged: {:?}", h.unchanged()), h.unchanged().is_empty());
    c.done();
}

#[test]
fn the_agent_cannot_make_the_users_next_git_status_run_code() {
    let Some((h, _serial)) = home("the_agent_cannot_make_the_users_next_git_status_run_code") else { return };
    let mut c = Cases::default();
    let marker = h.sb.root().join("tmp/pwned");
    let _ = std::fs::remove_file(&marker);
    let hook = format!("touch {}; false", marker.display());
    let alias = format!("!touch {}", marker.display());
    for (key, value) in [("core.fsmonitor", hook.as_str()), ("alias.st", alias.as_str()), ("core.hooksPath", "/tmp")] {
        let out = h.run(&h.probe(), &[], &["git", "config", "--global", key, value]);
        c.check(&format!("git config --global {key} fails under the profile"), !out.status.success());
    }
    // The same through Python: append, truncate, replace from the workdir.
    let code = r#"import os
g = sys.argv[1]
print(attempt(lambda: open(g, "a").write("[core]\n\tfsmonitor = x\n")))
print(attempt(lambda: os.truncate(g, 0)))
open("evil", "w").write("[alias]\n\tst = !x\n")
print(attempt(lambda: os.replace("evil", g)))
print(attempt(lambda: os.chmod(g, 0o666)))
"#;
    let out = h.run(&h.probe(), &[], &[PY, "-c", &format!("{PRELUDE}{code}"), &h.gitconfig().display().to_string()]);
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    c.expect("append to ~/.gitconfig", lines.first(), &["EACCES"]);
    c.expect("truncate ~/.gitconfig", lines.get(1), &["EACCES"]);
    c.expect("rename a file over ~/.gitconfig", lines.get(2), &["EACCES", "EXDEV"]);
    c.expect("chmod ~/.gitconfig", lines.get(3), &["EACCES", "EPERM"]);
    c.check("the user's git status and git st ran nothing", !h.outside_git_runs(&marker));
    c.check(&format!("dotfiles unchanged: {:?}", h.unchanged()), h.unchanged().is_empty());
    c.done();
}

#[test]
fn with_allow_sensitive_the_same_change_goes_through() {
    let Some((h, _serial)) = home("with_allow_sensitive_the_same_change_goes_through") else { return };
    // The control: the user allows ~/.gitconfig, with a brokered save like
    // the one learn refused (git chmods its lock file, hence `metadata`).
    let marker = h.sb.root().join("tmp/allowed-alias-ran");
    let _ = std::fs::remove_file(&marker);
    let p = h.extended(
        "allow-gitconfig.json",
        r#"[{"dir": "$HOME", "names": [".gitconfig", ".gitconfig.lock"], "ops": ["create", "rename", "metadata"]}]"#,
    );
    let gitconfig = h.gitconfig().display().to_string();
    let before = std::fs::read(h.gitconfig()).expect("gitconfig");
    let refused = h.run(&p, &[], &["true"]);
    let alias = format!("!touch {}", marker.display());
    let out = h.run(&p, &["--allow-sensitive", &gitconfig], &["git", "config", "--global", "alias.st", &alias]);
    let ran = h.outside_git_runs(&marker);
    let written = String::from_utf8_lossy(&std::fs::read(h.gitconfig()).unwrap_or_default()).into_owned();
    // Put the baseline back for the other cases.
    std::fs::write(h.gitconfig(), &before).expect("restore");
    let mut c = Cases::default();
    c.check(
        &format!("without --allow-sensitive the brokered rule is refused ({})", text(&refused.stderr)),
        refused.status.code() == Some(125) && text(&refused.stderr).contains(".gitconfig"),
    );
    c.check(&format!("with it, git config --global works ({})", text(&out.stderr)), out.status.success());
    c.check(&format!("and the user's git st then runs the alias (~/.gitconfig:\n{written})"), ran);
    c.done();
}

#[test]
fn a_brokered_rule_that_can_match_a_sensitive_name_is_refused_at_run_time() {
    let Some((h, _serial)) = home("a_brokered_rule_that_can_match_a_sensitive_name_is_refused_at_run_time") else { return };
    let mut c = Cases::default();
    let append = format!("echo 'touch {}/x' >> \"$HOME/.bashrc\"", h.sb.root().display());
    for (file, names) in [
        ("b1.json", r#"[".b?shrc"]"#),
        ("b2.json", r#"[".ssh.*"]"#),
        ("b3.json", r#"[".ssh*", ".app.json"]"#),
        ("b4.json", r#"[".bashrc.d"]"#),
    ] {
        let p = h.extended(
            file,
            &format!(r#"[{{"dir": "$HOME", "names": {names}, "ops": ["create", "write", "rename", "remove"]}}]"#),
        );
        let out = h.run(&p, &[], &["sh", "-c", &append]);
        c.check(
            &format!("brokered names {names}: refused before running, exit 125 ({})", text(&out.stderr)),
            out.status.code() == Some(125) && text(&out.stderr).contains("broker"),
        );
    }
    c.check(&format!("dotfiles unchanged: {:?}", h.unchanged()), h.unchanged().is_empty());
    // Control: allowed by the user, the broker does write ~/.bashrc.
    let p = h.extended("b-allowed.json", r#"[{"dir": "$HOME", "names": [".b?shrc"], "ops": ["create", "write"]}]"#);
    let bashrc = h.bashrc().display().to_string();
    let before = std::fs::read(h.bashrc()).expect("bashrc");
    let out = h.run(&p, &["--allow-sensitive", &bashrc], &["sh", "-c", &append]);
    let after = std::fs::read(h.bashrc()).expect("bashrc");
    std::fs::write(h.bashrc(), &before).expect("restore");
    c.check(
        &format!("--allow-sensitive ~/.bashrc: the append goes through the broker ({})", text(&out.stderr)),
        out.status.success() && after != before,
    );
    c.done();
}

#[test]
fn appending_to_bashrc_fails_by_every_route() {
    let Some((h, _serial)) = home("appending_to_bashrc_fails_by_every_route") else { return };
    let code = r##"import os
rc = sys.argv[1]
home = os.path.dirname(rc)
print(attempt(lambda: open(rc, "a").write("touch pwned\n")))
print(attempt(lambda: os.truncate(rc, 0)))
open("rc", "w").write("touch pwned\n")
print(attempt(lambda: os.replace("rc", rc)))
print(attempt(lambda: os.link(rc, "hard")))
print(attempt(lambda: os.symlink(rc, "soft") or open("soft", "a").write("touch pwned\n")))
print(attempt(lambda: open(os.path.join(home, ".bashrc.tmp"), "w")))
print(attempt(lambda: os.makedirs(os.path.join(home, ".bashrc.d"))))
print(attempt(lambda: os.chmod(rc, 0o666)))
print(attempt(lambda: os.unlink(rc)))
print(attempt(lambda: open(os.path.join(home, ".profile"), "a").write("touch pwned\n")))
print(attempt(lambda: open(os.path.join(home, ".local/bin/git"), "w").write("#!/bin/sh\n")))
print(attempt(lambda: open(os.path.join(home, ".config/autostart/x.desktop"), "w")))
"##;
    let out = h.run(&h.probe(), &[], &[PY, "-c", &format!("{PRELUDE}{code}"), &h.bashrc().display().to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    let mut c = Cases::default();
    c.expect("append to ~/.bashrc", lines.first(), &["EACCES"]);
    c.expect("truncate ~/.bashrc", lines.get(1), &["EACCES"]);
    c.expect("rename over ~/.bashrc from the workdir", lines.get(2), &["EACCES", "EXDEV"]);
    c.expect("hard link to ~/.bashrc in the workdir", lines.get(3), &["EACCES", "EXDEV"]);
    c.expect("append through a symlink in the workdir", lines.get(4), &["EACCES"]);
    c.expect("a temp file beside ~/.bashrc", lines.get(5), &["EACCES"]);
    c.expect("~/.bashrc.d", lines.get(6), &["EACCES"]);
    c.expect("chmod ~/.bashrc", lines.get(7), &["EACCES", "EPERM"]);
    c.expect("unlink ~/.bashrc", lines.get(8), &["EACCES"]);
    c.expect("append to ~/.profile", lines.get(9), &["EACCES"]);
    c.expect("a program in ~/.local/bin", lines.get(10), &["EACCES"]);
    c.expect("an autostart entry", lines.get(11), &["EACCES"]);
    c.check(&format!("dotfiles unchanged: {:?}", h.unchanged()), h.unchanged().is_empty());
    // Reading them is fine: they are not secrets.
    let out = h.run("gitcfg", &[], &["cat", &h.gitconfig().display().to_string()]);
    c.check(&format!("~/.gitconfig is readable ({})", text(&out.stderr)), out.status.success());
    // Control: the user's consent makes the same append work.
    let bashrc = h.bashrc().display().to_string();
    let before = std::fs::read(h.bashrc()).expect("bashrc");
    let out =
        h.run(&h.probe(), &["--allow-sensitive", &bashrc, "--write", &bashrc], &["sh", "-c", &format!("echo x >> {bashrc}")]);
    let changed = std::fs::read(h.bashrc()).expect("bashrc") != before;
    std::fs::write(h.bashrc(), &before).expect("restore");
    c.check(&format!("control: --write with --allow-sensitive appends ({})", text(&out.stderr)), out.status.success() && changed);
    c.done();
}
