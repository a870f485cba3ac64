//! `cargo xtask demo`: the README's first command. Sets the machine up,
//! builds nono, learns a profile for the built-in scripted agent
//! (`xtask/demo/agent.sh`), replays the agent under the learned profile
//! with `run --audit` (only its read of the SSH key may be denied), and
//! shows a prompt-injected step being denied, and ends by writing the
//! replay's HTML report (`nono audit report`) and printing its path.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

use crate::setup::{self, sh};
use crate::{target_dir, workspace_root};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Where to put the demo's workdir, home, database and profile.
    #[arg(long, default_value = "target/demo")]
    pub dir: PathBuf,
}

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    setup::run(&setup::SetupArgs { check: false })?;
    let root = workspace_root()?;
    sh(Command::new("cargo").args(["build", "--release", "--locked", "-p", "nono"]).current_dir(&root))?;
    let nono = target_dir(&root).join("release/nono");
    let dir = root.join(&args.dir);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let work = dir.join("project");
    let home = dir.join("home");
    // A private temp dir beside (not above) the home: with TMPDIR=/tmp and
    // a clone under /tmp, the temp dir would hold ~/.ssh and could not be
    // granted, and the agent's `mktemp` would be denied on the replay.
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    std::fs::create_dir_all(&work)?;
    std::fs::create_dir_all(home.join(".ssh"))?;
    std::fs::write(home.join(".ssh/id_rsa"), "-----BEGIN OPENSSH PRIVATE KEY----- (demo)\n")?;
    let agent = root.join("xtask/demo/agent.sh");
    let db = dir.join("audit.db");
    let profile = dir.join("learned.json");
    let nono_cmd = |sub: &[&str]| {
        let mut c = Command::new(&nono);
        // cargo sets LD_LIBRARY_PATH for xtask; the agent should not see it.
        // The system's tools only: a PATH with the developer's own installs
        // (pyenv under /root) would be refused as sensitive on the replay.
        c.args(sub)
            .current_dir(&work)
            .env("HOME", &home)
            .env("TMPDIR", &tmp)
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .env_remove("LD_LIBRARY_PATH");
        c
    };

    banner("1. learn: record the agent's process tree and write a least-privilege profile");
    sh(nono_cmd(&["learn", "--db"]).arg(&db).arg("--output").arg(&profile).arg("--").arg("sh").arg(&agent))?;

    banner("2. audit: what did it touch?");
    sh(nono_cmd(&["audit", "summary", "latest", "--top", "8", "--db"]).arg(&db))?;

    banner(
        "3. run --audit: the same agent under the learned profile (Landlock, seccomp, broker), expecting no sandbox denial but its read of the SSH key",
    );
    // A fresh workdir state, as on a second run of the agent.
    std::fs::remove_dir_all(work.join("src")).ok();
    std::fs::remove_dir_all(work.join("build")).ok();
    sh(nono_cmd(&["run", "--audit", "--db"]).arg(&db).arg("--profile").arg(&profile).arg("--").arg("sh").arg(&agent))?;

    let denied = nono_cmd(&["audit", "query", "--session", "last", "--result", "denied", "--format", "json", "--db"])
        .arg(&db)
        .output()
        .context("nono audit query")?;
    let text = String::from_utf8_lossy(&denied.stdout);
    let rows: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("audit query printed {text:?}"))?;
    // The agent's own attempt on the key is the one denial expected.
    let unexpected: Vec<&serde_json::Value> = rows
        .as_array()
        .map(|a| a.iter().filter(|r| !r["path"].as_str().is_some_and(|p| p.ends_with("/.ssh/id_rsa"))).collect())
        .unwrap_or_default();
    if !denied.status.success() || rows.as_array().is_none() || !unexpected.is_empty() {
        anyhow::bail!("the replay under the learned profile was denied more than the SSH key: {text}");
    }
    eprintln!("demo: the replay was denied only the agent's read of ~/.ssh/id_rsa");
    // The replay's report: its tree, processes and timeline, with the
    // learned profile's rules and the one denial.
    let report = dir.join("report.html");
    let replay = nono_cmd(&["audit", "sessions", "--format", "json", "--db"]).arg(&db).output().context("nono audit sessions")?;
    let replay_id = serde_json::from_slice::<serde_json::Value>(&replay.stdout)
        .ok()
        .and_then(|v| v.as_array().and_then(|a| a.iter().filter_map(|s| s["id"].as_i64()).max()))
        .context("no session to report")?;

    banner("4. run: a prompt-injected step under the same profile");
    let status = nono_cmd(&["run", "--audit", "--db"])
        .arg(&db)
        .arg("--profile")
        .arg(&profile)
        .arg("--")
        .arg("cat")
        .arg(home.join(".ssh/id_rsa"))
        .status()?;
    if status.success() {
        anyhow::bail!("the learned profile let the agent read ~/.ssh/id_rsa");
    }
    eprintln!("demo: reading ~/.ssh/id_rsa was denied, as it should be");

    banner("5. report: the replay as one HTML page (open it in a browser)");
    sh(nono_cmd(&["audit", "report", &replay_id.to_string(), "--db"])
        .arg(&db)
        .arg("--profile")
        .arg(&profile)
        .arg("--html")
        .arg(&report))?;
    banner(&format!("profile: {}", display(&profile)));
    banner(&format!("report: {}", display(&report)));
    Ok(())
}

fn banner(text: &str) {
    eprintln!("\n=== {text}");
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
