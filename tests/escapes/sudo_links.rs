//! Issue 21 item 1: nono under sudo must not follow the links the user (or
//! the agent, in its workdir) planted where nono writes. Each path-taking
//! option gets a link, dangling into a root-only directory and to an
//! existing root-only file; each run must fail with a clear error, and the
//! root-only files stay byte-identical and root's.
//!
//! A fresh user per test: the links would disturb the shared world.

use super::*;

/// A test user with a lived-in home, and a root-only directory holding a
/// text file and a `SQLite` database of root's.
struct Planted {
    sb: Sandbox,
    user: TestUser,
    root_only: PathBuf,
    victims: Vec<(PathBuf, Vec<u8>)>,
}

impl Planted {
    fn new(test: &str) -> Option<Planted> {
        if !is_root() {
            skip(test, "needs root: a test user and `sudo nono`");
            return None;
        }
        let sb = Sandbox::new();
        sb.lived_in_home();
        let user = TestUser::create(test, &sb)?;
        let root_only = sb.root().join("root-only");
        std::fs::create_dir(&root_only).expect("mkdir");
        chmod(&root_only, 0o700);
        let txt = root_only.join("victim.txt");
        std::fs::write(&txt, "root's secret\n").expect("victim");
        chmod(&txt, 0o600);
        let db = root_only.join("victim.db");
        drop(nono::store::Store::open(&db).expect("root's database"));
        let victims = [txt, db].into_iter().map(|p| (p.clone(), std::fs::read(&p).expect("read"))).collect();
        Some(Planted { sb, user, root_only, victims })
    }

    /// `sudo nono ARGS` on the user's behalf, with the default database
    /// location (no `NONO_DB`).
    fn sudo(&self, args: &[&str]) -> Output {
        self.user.sudo_nono(&self.sb).env_remove("NONO_DB").args(args).output().expect("run nono")
    }

    /// Plants `at -> to`, replacing whatever is at `at`; the link is the
    /// user's, as if they made it.
    fn plant(&self, at: &Path, to: &Path) {
        std::fs::create_dir_all(at.parent().expect("parent")).expect("mkdir");
        let _ = std::fs::remove_file(at);
        std::os::unix::fs::symlink(to, at).expect("symlink");
        let _ = std::os::unix::fs::lchown(at, Some(self.user.uid), Some(self.user.gid));
        self.user.chown_tree(at.parent().expect("parent"));
    }

    /// The checks every case ends with: refused with a clear error, and
    /// the root-only directory exactly as it was.
    fn refused(&self, c: &mut Cases, what: &str, out: &Output) {
        let err = text(&out.stderr);
        c.check(&format!("{what}: exit 125 (got {:?}): {err}", out.status.code()), out.status.code() == Some(125));
        c.check(&format!("{what}: a clear error: {err}"), err.contains("symbolic link") || err.contains("Permission denied"));
        for (p, bytes) in &self.victims {
            let now = std::fs::read(p).unwrap_or_default();
            c.check(&format!("{what}: {} byte-identical", p.display()), &now == bytes);
            let owner = std::fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap_or(1);
            c.check(&format!("{what}: {} still root's", p.display()), owner == 0);
        }
        let names: Vec<String> = std::fs::read_dir(&self.root_only)
            .expect("ls")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        c.check(&format!("{what}: nothing new in the root-only dir ({names:?})"), names.len() == 2);
    }

    fn state_dir(&self) -> PathBuf {
        self.sb.home().join(".local/state/nono")
    }
}

#[test]
fn learn_never_writes_its_database_or_profile_through_a_planted_link() {
    let Some(p) = Planted::new("sudo_links_learn") else { return };
    let mut c = Cases::default();
    let db = p.state_dir().join("audit.db");
    let new_in_root = p.root_only.join("new");
    let victim_db = p.root_only.join("victim.db");
    let victim_txt = p.root_only.join("victim.txt");

    // The default database location, a link dangling into root's
    // directory, then one to root's own database.
    for (kind, target) in [("dangling", &new_in_root), ("existing", &victim_db)] {
        p.plant(&db, target);
        // A good --output, so the database is what fails.
        let out_path = p.sb.work().join("p.json");
        let out = p.sudo(&["learn", "--no-progress", "--force", "--output", out_path.to_str().expect("utf8"), "--", "true"]);
        p.refused(&mut c, &format!("default database, {kind} link"), &out);
    }
    // The same through --db.
    let explicit = p.sb.work().join("my.db");
    for (kind, target) in [("dangling", &new_in_root), ("existing", &victim_db)] {
        p.plant(&explicit, target);
        let out = p.sudo(&["learn", "--no-progress", "--db", explicit.to_str().expect("utf8"), "--", "true"]);
        p.refused(&mut c, &format!("--db, {kind} link"), &out);
    }
    // The state directory itself pointed at root's directory.
    std::fs::remove_dir_all(p.state_dir()).expect("rm state");
    p.plant(&p.state_dir(), &p.root_only);
    let out = p.sudo(&["learn", "--no-progress", "--", "true"]);
    p.refused(&mut c, "state directory linked to root's", &out);
    std::fs::remove_file(p.state_dir()).expect("rm link");

    // The profile: --output, and the default location with --force.
    let output = p.sb.work().join("learned.json");
    for (kind, target) in [("dangling", &new_in_root), ("existing", &victim_txt)] {
        p.plant(&output, target);
        let out = p.sudo(&["learn", "--no-progress", "--force", "--output", output.to_str().expect("utf8"), "--", "true"]);
        p.refused(&mut c, &format!("--output, {kind} link"), &out);
        let default = p.sb.home().join(".config/nono/profiles/true.json");
        p.plant(&default, target);
        let out = p.sudo(&["learn", "--no-progress", "--force", "--", "true"]);
        p.refused(&mut c, &format!("default profile, {kind} link"), &out);
        std::fs::remove_file(&default).expect("rm");
    }
    c.done();
}

#[test]
fn sqlite_side_files_and_reports_never_follow_a_planted_link() {
    let Some(p) = Planted::new("sudo_links_side") else { return };
    let Some(backend) = support::require_recorder("sudo_links_side") else { return };
    let mut c = Cases::default();
    // A real session first, recorded as the user, so there is a report to
    // write and a database whose side files can be replaced by links.
    // Outside the workdir: run refuses a profile the command could rewrite.
    let learned = p.sb.home().join(".config/nono/profiles/side.json");
    let out = p.sudo(&["learn", "--no-progress", "--backend", &backend, "--name", "side", "--", "sh", "-c", "echo hi > f"]);
    assert!(out.status.success(), "a plain sudo learn works:\n{}", text(&out.stderr));
    let db = p.state_dir().join("audit.db");
    let meta = std::fs::metadata(&db).expect("the database exists");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), p.user.uid, "the database is the user's without a chown");

    for side in ["-wal", "-shm"] {
        let link = PathBuf::from(format!("{}{side}", db.display()));
        p.plant(&link, &p.root_only.join("victim.txt"));
        let out = p.sudo(&["learn", "--no-progress", "--force", "--output", learned.to_str().expect("utf8"), "--", "true"]);
        p.refused(&mut c, &format!("{side} linked to root's file"), &out);
        std::fs::remove_file(&link).expect("rm");
    }

    // The agent plants report.html in its workdir; a reviewer later runs
    // `sudo nono audit report` there.
    let html = p.sb.work().join("report.html");
    for (kind, target) in [("dangling", p.root_only.join("new")), ("existing", p.root_only.join("victim.txt"))] {
        p.plant(&html, &target);
        let out = p.sudo(&["audit", "report", "last", "--html", "report.html"]);
        p.refused(&mut c, &format!("audit report --html, {kind} link"), &out);
        let out = p.sudo(&["profile", "report", learned.to_str().expect("utf8"), "--html", "report.html"]);
        p.refused(&mut c, &format!("profile report --html, {kind} link"), &out);
    }
    // Controls: without the link both reports are written, as the user.
    std::fs::remove_file(&html).expect("rm");
    let out = p.sudo(&["audit", "report", "last", "--html", "report.html"]);
    c.check(&format!("control: the report is written: {}", text(&out.stderr)), out.status.success());
    let owner = std::fs::metadata(&html).map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap_or(0);
    c.check("control: the report is the user's", owner == p.user.uid);

    // `run --audit --db` with a planted link never starts the command.
    let marker = p.sb.work().join("ran");
    let explicit = p.sb.work().join("run.db");
    p.plant(&explicit, &p.root_only.join("victim.db"));
    let out = p.sudo(&[
        "run",
        "--audit",
        "--db",
        explicit.to_str().expect("utf8"),
        "--profile",
        learned.to_str().expect("utf8"),
        "--",
        "touch",
        marker.to_str().expect("utf8"),
    ]);
    p.refused(&mut c, "run --audit --db, link to root's database", &out);
    c.check("run --audit --db link: the command never ran", !marker.exists());
    c.done();
}
