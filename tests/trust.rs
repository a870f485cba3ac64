//! Issue 25: signed profiles and an audit trail that shows tampering.
//!
//! Every nono command runs as an ordinary user in a lived-in home (or as
//! `sudo nono` on their behalf), with real keys made by the real
//! `ssh-keygen`, which also checks nono's signatures and makes signatures
//! nono checks. Policy, signer and profile files are written as the user
//! through `invoker::fs`, as nono itself writes. Tampering is done the way
//! an attacker would: SQL straight into the `SQLite` file (and the fleet's
//! `PostgreSQL` tables).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[path = "support/pg.rs"]
mod pg;
mod support;
use support::{Sandbox, TestUser, is_root, output_text, skip};

/// A test user with a lived-in home.
struct World {
    sb: Sandbox,
    user: TestUser,
    id: nono::invoker::Identity,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl World {
    fn new(test: &str) -> Option<World> {
        if !is_root() {
            skip(test, "needs root: a test user and `sudo nono`");
            return None;
        }
        let sb = Sandbox::new();
        sb.lived_in_home();
        let user = TestUser::create(test, &sb)?;
        let id = nono::invoker::Identity {
            uid: user.uid,
            gid: user.gid,
            groups: vec![user.gid],
            name: user.name.clone(),
            home: sb.home(),
        };
        Some(World { sb, user, id })
    }

    fn home(&self) -> PathBuf {
        self.sb.home()
    }

    fn profiles(&self) -> PathBuf {
        self.home().join(".config/nono/profiles")
    }

    /// Writes `path` as the user, the way nono writes files for them.
    fn write(&self, path: &Path, text: &str) {
        nono::invoker::with_identity(&self.id, || {
            nono::invoker::fs::make_private_dirs(path.parent().expect("parent")).expect("mkdir as the user");
            nono::invoker::fs::write_atomic(path, text.as_bytes(), 0o644).expect("write as the user");
        })
        .expect("the user's identity");
    }

    /// `nono ARGS` as the user.
    fn nono(&self, args: &[&str]) -> Output {
        self.user.nono(&self.sb).args(args).stdin(Stdio::null()).output().expect("run nono")
    }

    /// Any program as the user.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        self.user.run(&self.sb, program).args(args).stdin(Stdio::null()).output().expect("run")
    }

    /// Makes a key pair as the user (no passphrase unless given); returns
    /// the public key line without its comment.
    fn keygen(&self, path: &Path, kind: &str, pass: &str) -> String {
        let _ = std::fs::remove_file(path);
        let _ = std::fs::remove_file(path.with_extension("pub"));
        let p = path.to_str().expect("utf-8");
        let o = self.run("ssh-keygen", &["-q", "-t", kind, "-N", pass, "-C", "test key", "-f", p]);
        ok(&o, "ssh-keygen");
        let public = std::fs::read_to_string(format!("{p}.pub")).expect("public key");
        public.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
    }

    /// `nono run --profile P -- true` as the user.
    fn run_profile(&self, profile: &str) -> Output {
        self.nono(&["run", "--profile", profile, "--", "true"])
    }

    /// The user's trust policy: `require` and the signers file.
    fn policy(&self, body: &str) {
        self.write(&self.home().join(".config/nono/trust.toml"), body);
    }

    /// A profile in the user's profiles directory, not in canonical form.
    fn profile(&self, name: &str, extends: &str) -> PathBuf {
        let p = self.profiles().join(format!("{name}.json"));
        self.write(
            &p,
            &format!("{{\"meta\":{{\"name\":\"{name}\"}},\"extends\":{extends},\"filesystem\":{{\"read\":[\"/srv/{name}\"]}}}}"),
        );
        p
    }
}

fn ok(o: &Output, what: &str) -> String {
    assert!(o.status.success(), "{what}: {}", output_text(o));
    text(&o.stdout)
}

fn refused_with(o: &Output, needle: &str) {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(125), "expected a refusal: {}", output_text(o));
    assert!(err.contains("refusing profile") && err.contains(needle), "expected {needle:?} in: {err}");
}

#[test]
fn signatures_made_by_nono_verify_with_ssh_keygen_and_the_reverse() {
    let Some(w) = World::new("signatures_made_by_nono_verify_with_ssh_keygen_and_the_reverse") else { return };
    let allowed = w.home().join(".ssh/allowed_signers");
    for kind in ["ed25519", "ecdsa", "rsa"] {
        let key = w.home().join(format!(".ssh/id_{kind}"));
        let public = w.keygen(&key, kind, "");
        w.write(&allowed, &format!("alice@example.com {public}\n"));
        let profile = w.profile("team", "\"base\"");
        let before = std::fs::read_to_string(&profile).expect("read");
        let out = w.nono(&["profile", "sign", "team", "--key", key.to_str().expect("utf-8")]);
        ok(&out, "nono profile sign");
        let after = std::fs::read_to_string(&profile).expect("read");
        assert_ne!(before, after, "{kind}: the profile is rewritten in canonical form");
        assert_eq!(after, nono::profile::Profile::parse(&after, "x").expect("parses").to_json_pretty().expect("json"));
        let sig = w.profiles().join("team.json.sig");
        let meta = std::fs::metadata(&sig).expect("the signature beside the profile");
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), w.user.uid, "the signature is the user's");
        // ssh-keygen checks the file as it lies on disk.
        let o = w
            .user
            .run(&w.sb, "sh")
            .arg("-c")
            .arg(format!(
                "ssh-keygen -Y verify -f {} -I alice@example.com -n nono-profile -s {} < {}",
                allowed.display(),
                sig.display(),
                profile.display()
            ))
            .output()
            .expect("ssh-keygen -Y verify");
        assert!(o.status.success(), "{kind}: ssh-keygen -Y verify: {}", output_text(&o));
        let o = w.nono(&[
            "profile",
            "verify",
            "team",
            "--allowed-signers",
            allowed.to_str().expect("utf-8"),
            "--principal",
            "alice@example.com",
        ]);
        assert!(ok(&o, "nono profile verify").contains("signed by alice@example.com"));

        // The reverse: ssh-keygen signs a profile, nono checks it.
        let other = w.profiles().join("other.json");
        w.write(
            &other,
            &nono::profile::Profile::parse("{\"extends\": \"base\"}", "x").expect("p").to_json_pretty().expect("json"),
        );
        let _ = std::fs::remove_file(w.profiles().join("other.json.sig"));
        let o = w.run(
            "ssh-keygen",
            &["-q", "-Y", "sign", "-n", "nono-profile", "-f", key.to_str().expect("utf-8"), other.to_str().expect("utf-8")],
        );
        ok(&o, "ssh-keygen -Y sign");
        let o = w.nono(&["profile", "verify", "other", "--allowed-signers", allowed.to_str().expect("utf-8")]);
        assert!(ok(&o, "nono profile verify (ssh-keygen's signature)").contains("signed by alice@example.com"), "{kind}");
    }
}

#[test]
fn tampered_misnamed_expired_revoked_and_misplaced_signatures_are_refused() {
    let Some(w) = World::new("tampered_misnamed_expired_revoked_and_misplaced_signatures_are_refused") else { return };
    let key = w.home().join(".ssh/id_ed25519");
    let public = w.keygen(&key, "ed25519", "");
    let key_arg = key.to_str().expect("utf-8");
    let allowed = w.home().join(".config/nono/allowed_signers");
    let signers_arg = allowed.to_str().expect("utf-8");
    let good_signers = format!("alice@example.com {public}\n");
    w.write(&allowed, &good_signers);
    w.policy("[profiles]\nrequire = \"all\"\nallowed_signers = \"allowed_signers\"\n");
    let profile = w.profile("team", "\"base\"");
    let sig = w.profiles().join("team.json.sig");
    let sign = || ok(&w.nono(&["profile", "sign", "team", "--key", key_arg]), "sign");
    // ssh-keygen's own verdict on the same files, for comparison.
    let keygen_accepts = |extra: &str| {
        let o = w
            .user
            .run(&w.sb, "sh")
            .arg("-c")
            .arg(format!(
                "ssh-keygen -Y verify -f {signers_arg} -I alice@example.com -n nono-profile -s {} {extra} < {}",
                sig.display(),
                profile.display()
            ))
            .output()
            .expect("ssh-keygen");
        o.status.success()
    };

    sign();
    let o = w.run_profile("team");
    assert!(o.status.success(), "control: signers_arg signed profile runs: {}", output_text(&o));
    assert!(keygen_accepts(""));

    // Unsigned.
    std::fs::remove_file(&sig).expect("rm sig");
    refused_with(&w.run_profile("team"), "unsigned");

    // Tampered after signing: one grant more.
    sign();
    let tampered = std::fs::read_to_string(&profile).expect("read").replace("/srv/team", "/home");
    w.write(&profile, &tampered);
    refused_with(&w.run_profile("team"), "does not match the file");
    assert!(!keygen_accepts(""));

    // Signed in another namespace.
    w.profile("team", "\"base\"");
    sign();
    std::fs::remove_file(&sig).expect("rm sig");
    ok(
        &w.run("ssh-keygen", &["-q", "-Y", "sign", "-n", "file", "-f", key_arg, profile.to_str().expect("utf-8")]),
        "sign -n file",
    );
    refused_with(&w.run_profile("team"), "namespace \"file\"");
    assert!(!keygen_accepts(""));

    // An expired key (valid-before in the past).
    sign();
    w.write(&allowed, &format!("alice@example.com valid-before=\"20200101Z\" {public}\n"));
    refused_with(&w.run_profile("team"), "expired");
    assert!(!keygen_accepts(""));
    w.write(&allowed, &good_signers);

    // A revoked key.
    let revoked = w.home().join(".config/nono/revoked_keys");
    w.write(&revoked, &format!("{public}\n"));
    w.policy("[profiles]\nrequire = \"all\"\nallowed_signers = \"allowed_signers\"\nrevoked = \"revoked_keys\"\n");
    refused_with(&w.run_profile("team"), "revoked");
    assert!(!keygen_accepts(&format!("-r {}", revoked.display())));
    w.policy("[profiles]\nrequire = \"all\"\nallowed_signers = \"allowed_signers\"\n");

    // A good signature, of another file.
    let other = w.profile("other", "\"base\"");
    ok(&w.nono(&["profile", "sign", "other", "--key", key_arg]), "sign other");
    std::fs::copy(sig_of(&other), &sig).expect("copy the other signature");
    refused_with(&w.run_profile("team"), "does not match the file");
    assert!(!keygen_accepts(""));

    // A key nobody allowed, and signers_arg principal the policy does not accept.
    let mallory = w.home().join(".ssh/mallory");
    w.keygen(&mallory, "ed25519", "");
    ok(&w.nono(&["profile", "sign", "team", "--key", mallory.to_str().expect("utf-8")]), "sign by mallory");
    refused_with(&w.run_profile("team"), "the key is not listed");
    sign();
    w.policy("[profiles]\nrequire = \"all\"\nallowed_signers = \"allowed_signers\"\nprincipals = [\"bob@example.com\"]\n");
    refused_with(&w.run_profile("team"), "does not accept");
    w.policy("[profiles]\nrequire = \"all\"\nallowed_signers = \"allowed_signers\"\nprincipals = [\"alice@example.com\"]\n");
    assert!(w.run_profile("team").status.success(), "the right principal runs");

    // `profile verify` says the same, with exit 1.
    w.write(&profile, &std::fs::read_to_string(&profile).expect("read").replace("/srv/team", "/srv/team2"));
    let o = w.nono(&["profile", "verify", "team"]);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    assert!(text(&o.stdout).contains("REFUSED"), "{}", output_text(&o));
}

fn sig_of(p: &Path) -> PathBuf {
    nono::trust::sig_path(p)
}

#[test]
fn extends_chains_are_verified_link_by_link() {
    let Some(w) = World::new("extends_chains_are_verified_link_by_link") else { return };
    let key = w.home().join(".ssh/id_ed25519");
    let public = w.keygen(&key, "ed25519", "");
    let k = key.to_str().expect("utf-8");
    w.write(&w.home().join(".config/nono/allowed_signers"), &format!("alice@example.com {public}\n"));
    w.policy("[profiles]\nrequire = [\"team\"]\nallowed_signers = \"allowed_signers\"\n");
    let parent = w.profile("parent", "\"base\"");
    w.profile("team", "[\"./parent.json\", \"base\"]");
    ok(&w.nono(&["profile", "sign", "team", "--key", k]), "sign team");
    let o = w.run_profile("team");
    refused_with(&o, "parent.json: unsigned");
    ok(&w.nono(&["profile", "sign", "parent", "--key", k]), "sign parent");
    let o = w.run_profile("team");
    assert!(o.status.success(), "every link signed: {}", output_text(&o));
    // The parent changes: the child's signature does not cover it.
    w.write(&parent, &std::fs::read_to_string(&parent).expect("read").replace("/srv/parent", "/home"));
    refused_with(&w.run_profile("team"), "parent.json");
    ok(&w.nono(&["profile", "sign", "parent", "--key", k]), "sign parent again");
    // An unsigned child of a required profile cannot run it with more.
    w.profile("child", "\"team\"");
    refused_with(&w.run_profile("child"), "child.json: unsigned");
    // Built-ins are trusted unless a policy refuses them.
    assert!(w.run_profile("team").status.success());
    w.policy("[profiles]\nrequire = [\"team\"]\nallowed_signers = \"allowed_signers\"\nbuiltins = \"refuse\"\n");
    refused_with(&w.run_profile("team"), "built-in base");
    // The signatures and the policy join the files the sandbox may not
    // rewrite: a run granting write to the profiles directory is refused.
    w.policy("[profiles]\nrequire = [\"team\"]\nallowed_signers = \"allowed_signers\"\n");
    let cfg = w.home().join(".config/nono");
    let c = cfg.to_str().expect("utf-8");
    let o = w.nono(&["run", "--profile", "team", "--write", c, "--allow-sensitive", c, "--", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", output_text(&o));
    assert!(text(&o.stderr).contains("trust.toml") && text(&o.stderr).contains("team.json.sig"), "{}", output_text(&o));
}

/// `nono ARGS` as the user, inside a mount namespace where `/etc/nono` is `dir`.
fn with_system_policy(w: &World, dir: &Path, args: &[&str]) -> Output {
    std::fs::create_dir_all("/etc/nono").expect("the /etc/nono mount point");
    let inner = w.user.nono(&w.sb);
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "--", "sh", "-c", "mount --bind \"$0\" /etc/nono && exec \"$@\""]);
    c.arg(dir).arg(inner.get_program()).args(inner.get_args()).args(args);
    c.env_clear();
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    c.current_dir(inner.get_current_dir().expect("cwd")).stdin(Stdio::null()).output().expect("unshare")
}

#[test]
fn the_system_policy_binds_and_the_user_can_only_add_to_it() {
    let Some(w) = World::new("the_system_policy_binds_and_the_user_can_only_add_to_it") else { return };
    let alice = w.home().join(".ssh/id_ed25519");
    let alice_pub = w.keygen(&alice, "ed25519", "");
    let bob = w.home().join(".ssh/bob");
    let bob_pub = w.keygen(&bob, "ed25519", "");
    // Root's policy: every profile signed by bob.
    let etc = w.sb.root().join("etc-nono");
    std::fs::create_dir(&etc).expect("mkdir");
    std::fs::set_permissions(&etc, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    std::fs::write(etc.join("trust.toml"), "[profiles]\nrequire = \"all\"\nallowed_signers = \"/etc/nono/allowed_signers\"\n")
        .expect("w");
    std::fs::write(etc.join("allowed_signers"), format!("bob@example.com {bob_pub}\n")).expect("w");
    // The user's tries to relax it: nothing required, alice allowed.
    w.write(&w.home().join(".config/nono/allowed_signers"), &format!("alice@example.com {alice_pub}\n"));
    w.policy("[profiles]\nrequire = \"none\"\nallowed_signers = \"allowed_signers\"\n");
    w.profile("team", "\"base\"");
    ok(&w.nono(&["profile", "sign", "team", "--key", alice.to_str().expect("utf-8")]), "alice signs");
    let o = with_system_policy(&w, &etc, &["run", "--profile", "team", "--", "true"]);
    refused_with(&o, "/etc/nono/trust.toml");
    ok(&w.nono(&["profile", "sign", "team", "--key", bob.to_str().expect("utf-8")]), "bob signs");
    let o = with_system_policy(&w, &etc, &["run", "--profile", "team", "--", "true"]);
    assert!(o.status.success(), "bob's signature satisfies the system: {}", output_text(&o));
    // The user adds a requirement of their own: now both must accept it.
    w.policy("[profiles]\nrequire = \"all\"\nallowed_signers = \"allowed_signers\"\n");
    refused_with(&with_system_policy(&w, &etc, &["run", "--profile", "team", "--", "true"]), "not accepted");
    let o = with_system_policy(&w, &etc, &["profile", "trust"]);
    let shown = ok(&o, "profile trust");
    assert!(shown.contains("/etc/nono/trust.toml (system)") && shown.contains("trust.toml (user)"), "{shown}");
    // A system policy anyone could have written is an error, not ignored.
    std::fs::set_permissions(etc.join("trust.toml"), std::os::unix::fs::PermissionsExt::from_mode(0o666)).expect("chmod");
    let o = with_system_policy(&w, &etc, &["run", "--profile", "team", "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(text(&o.stderr).contains("writable by its group or others"), "{}", output_text(&o));
}

#[test]
fn sudo_signs_as_the_user_and_never_through_a_link() {
    let Some(w) = World::new("sudo_signs_as_the_user_and_never_through_a_link") else { return };
    let key = w.home().join(".ssh/id_ed25519");
    w.keygen(&key, "ed25519", "");
    let profile = w.profile("team", "\"base\"");
    let o = w
        .user
        .sudo_nono(&w.sb)
        .args(["profile", "sign", "team", "--key", key.to_str().expect("utf-8")])
        .output()
        .expect("sudo nono");
    ok(&o, "sudo nono profile sign");
    for p in [profile.clone(), sig_of(&profile)] {
        let m = std::fs::metadata(&p).expect("stat");
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&m), w.user.uid, "{} is the user's", p.display());
    }
    let victim = w.sb.root().join("root-only.txt");
    std::fs::write(&victim, "root's\n").expect("victim");
    std::fs::remove_file(sig_of(&profile)).expect("rm");
    std::os::unix::fs::symlink(&victim, sig_of(&profile)).expect("plant");
    let o = w
        .user
        .sudo_nono(&w.sb)
        .args(["profile", "sign", "team", "--key", key.to_str().expect("utf-8")])
        .output()
        .expect("sudo nono");
    assert_eq!(o.status.code(), Some(125), "{}", output_text(&o));
    assert!(text(&o.stderr).contains("symbolic link"), "{}", output_text(&o));
    assert_eq!(std::fs::read_to_string(&victim).expect("read"), "root's\n");
}

#[test]
fn encrypted_keys_ask_on_the_terminal_and_agent_keys_sign_through_ssh_keygen() {
    let Some(w) = World::new("encrypted_keys_ask_on_the_terminal_and_agent_keys_sign_through_ssh_keygen") else { return };
    let key = w.home().join(".ssh/id_ed25519");
    w.keygen(&key, "ed25519", "correct horse");
    let key_arg = key.to_str().expect("utf-8");
    w.profile("team", "\"base\"");
    // No terminal at all (agent_arg new session): agent_arg clear error that says how.
    let o = w
        .user
        .run(&w.sb, "setsid")
        .args([support::NONO, "profile", "sign", "team", "--key", key_arg])
        .stdin(Stdio::null())
        .output()
        .expect("setsid");
    assert_eq!(o.status.code(), Some(125), "{}", output_text(&o));
    let err = text(&o.stderr);
    assert!(err.contains("encrypted") && err.contains("ssh-agent"), "{err}");
    // On agent_arg terminal (script's pty), the passphrase is read without echo:
    // typed once the prompt shows, as agent_arg person would.
    let mut cmd = w.user.run(&w.sb, "script");
    cmd.args(["-qec", &format!("{} profile sign team --key {key_arg}", support::NONO), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("script");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut screen = Vec::new();
    let mut byte = [0u8; 1];
    while !text(&screen).contains("Enter passphrase") {
        let n = std::io::Read::read(&mut stdout, &mut byte).expect("read the pty");
        assert!(n == 1, "no prompt: {}", text(&screen));
        screen.push(byte[0]);
    }
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), b"correct horse\n").expect("type");
    std::io::Read::read_to_end(&mut stdout, &mut screen).expect("read the rest");
    let o = child.wait_with_output().expect("script");
    assert!(o.status.success(), "{}\n{}", text(&screen), output_text(&o));
    assert!(!text(&screen).contains("correct horse"), "the passphrase is not echoed: {}", text(&screen));
    assert!(text(&screen).contains("signed"), "{}", text(&screen));
    // A key held by ssh-agent: nono gets the signature from ssh-keygen.
    let agent = w.home().join(".ssh/agent_key");
    let public = w.keygen(&agent, "ed25519", "");
    let agent_arg = agent.to_str().expect("utf-8");
    let o = w.run(
        "ssh-agent",
        &[
            "sh",
            "-c",
            &format!("ssh-add -q {agent_arg} && rm {agent_arg} && {} profile sign team --key {agent_arg}.pub", support::NONO),
        ],
    );
    ok(&o, "sign through the agent");
    w.write(&w.home().join(".ssh/allowed_signers"), &format!("agent@example.com {public}\n"));
    let allowed = w.home().join(".ssh/allowed_signers");
    let o = w.nono(&["profile", "verify", "team", "--allowed-signers", allowed.to_str().expect("utf-8")]);
    assert!(ok(&o, "verify").contains("agent@example.com"));
}

/// A recorded session in the user's database; returns its event ids.
fn recorded(w: &World) -> Option<Vec<i64>> {
    support::require_recorder("recorded")?;
    let o = w
        .user
        .sudo_nono(&w.sb)
        .args(["learn", "--output"])
        .arg(w.sb.work().join("learned.json"))
        .args(["--", "sh", "-c", "for i in 1 2 3 4 5 6; do cat /etc/hostname > /dev/null; ls / > /dev/null; done"])
        .output()
        .expect("sudo nono learn");
    assert!(o.status.success(), "{}", output_text(&o));
    let conn = rusqlite::Connection::open(w.sb.db()).expect("open");
    let ids = conn
        .prepare("SELECT id FROM events WHERE session_id = 1 ORDER BY id")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect::<Result<Vec<i64>, _>>())
        .expect("ids");
    assert!(ids.len() > 20, "a session of some size: {}", ids.len());
    Some(ids)
}

/// A whole copy of a database (its WAL included).
fn copy_db(from: &Path, to: &Path) {
    let conn = rusqlite::Connection::open(from).expect("open");
    conn.execute("VACUUM INTO ?1", [to.to_str().expect("utf-8")]).expect("VACUUM INTO");
}

/// `nono audit verify` as the user on a copy of the database with `sql`
/// applied: the exit code and stdout.
fn verify_tampered(w: &World, name: &str, sql: &str, extra: &[&str]) -> (Option<i32>, String) {
    let copy = w.sb.root().join("state").join(format!("{name}.db"));
    copy_db(&w.sb.db(), &copy);
    let conn = rusqlite::Connection::open(&copy).expect("open the copy");
    conn.execute_batch(sql).expect(sql);
    drop(conn);
    w.user.chown_tree(&w.sb.root().join("state"));
    let mut args = vec!["audit", "verify", "--db", copy.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    let o = w.nono(&args);
    (o.status.code(), format!("{}{}", text(&o.stdout), text(&o.stderr)))
}

#[test]
fn audit_verify_names_the_first_edited_deleted_inserted_or_moved_event() {
    let Some(w) = World::new("audit_verify_names_the_first_edited_deleted_inserted_or_moved_event") else { return };
    let Some(ids) = recorded(&w) else { return };
    let o = w.nono(&["audit", "verify"]);
    assert!(ok(&o, "verify").contains("session 1 (sh -c"), "{}", output_text(&o));
    let n = ids.len();
    let at = |i: usize| ids[i];
    let cases: Vec<(&str, String, String)> = vec![
        ("edited", format!("UPDATE events SET path_id = comm_id WHERE id = {}", at(7)), format!("first bad event: id {} (event 8 ", at(7))),
        ("deleted", format!("DELETE FROM events WHERE id = {}", at(7)), format!("first bad event: id {} (event 8 ", at(8))),
        (
            "inserted",
            format!(
                "UPDATE events SET id = id * 2 + 1000000 WHERE session_id = 1; UPDATE events SET id = id - 1000000 WHERE session_id = 1; \
                 UPDATE sessions SET first_event = first_event * 2, last_event = last_event * 2 WHERE id = 1; \
                 INSERT INTO events (id, session_id, time_ns, pid, tid, ppid, uid, comm_id, op, access, arg, file_type, chain) \
                 SELECT id + 1, session_id, time_ns, pid, tid, ppid, uid, comm_id, op, access, arg, file_type, chain FROM events WHERE id = {};",
                at(3) * 2
            ),
            format!("first bad event: id {} (event 5 ", at(3) * 2 + 1),
        ),
        (
            "reordered",
            format!("UPDATE events SET id = -1 WHERE id = {a}; UPDATE events SET id = {a} WHERE id = {b}; UPDATE events SET id = {b} WHERE id = -1;", a = at(4), b = at(9)),
            format!("first bad event: id {} (event 5 ", at(4)),
        ),
        ("header", "UPDATE sessions SET command = '[\"true\"]' WHERE id = 1".to_owned(), "session header".to_owned()),
        ("truncated", format!("DELETE FROM events WHERE id > {}", at(n - 4)), format!("{} are left; the last one is id {}", n - 3, at(n - 4))),
        ("end", "UPDATE sessions SET exit_code = 0, signal = NULL, state = 'complete', note = NULL, ringbuf_drops = 0, events = events - 1 WHERE id = 1".to_owned(), "end record".to_owned()),
    ];
    for (name, sql, needle) in cases {
        let (code, out) = verify_tampered(&w, name, &sql, &[]);
        assert_eq!(code, Some(1), "{name}: {out}");
        assert!(out.contains("FAILED") && out.contains(&needle), "{name}: expected {needle:?} in:\n{out}");
    }
}

#[test]
fn a_consistent_forgery_is_caught_by_the_seal_and_only_by_it() {
    let Some(w) = World::new("a_consistent_forgery_is_caught_by_the_seal_and_only_by_it") else { return };
    let Some(ids) = recorded(&w) else { return };
    let key = w.home().join(".ssh/id_ed25519");
    let public = w.keygen(&key, "ed25519", "");
    let allowed = w.home().join(".config/nono/allowed_signers");
    w.write(&allowed, &format!("auditor@example.com namespaces=\"nono-audit\" {public}\n"));
    let out = w.sb.root().join("tmp/seal.txt");
    ok(&w.nono(&["audit", "seal", "1", "--key", key.to_str().expect("utf-8"), "--output", out.to_str().expect("utf-8")]), "seal");
    let a = allowed.to_str().expect("utf-8");
    let o = w.nono(&["audit", "verify", "1", "--allowed-signers", a]);
    assert!(ok(&o, "verify").contains("sealed by auditor@example.com"), "{}", output_text(&o));
    // The exported seal checks with ssh-keygen alone.
    let o = w
        .user
        .run(&w.sb, "sh")
        .arg("-c")
        .arg(format!("ssh-keygen -Y verify -f {a} -I auditor@example.com -n nono-audit -s {0}.sig < {0}", out.display()))
        .output()
        .expect("sh");
    assert!(o.status.success(), "{}", output_text(&o));
    let sealed = std::fs::read_to_string(&out).expect("seal");

    // The attacker edits an event and recomputes the whole chain.
    let copy = w.sb.root().join("state/forged.db");
    copy_db(&w.sb.db(), &copy);
    forge(&copy, ids[5]);
    w.user.chown_tree(&w.sb.root().join("state"));
    let c = copy.to_str().expect("utf-8");
    let o = w.nono(&["audit", "verify", "--db", c, "--allowed-signers", a]);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    assert!(text(&o.stdout).contains("changed after it was sealed"), "{}", output_text(&o));
    // Without its seal the forgery is consistent: the chain alone proves
    // nothing against someone who can rewrite the file...
    let conn = rusqlite::Connection::open(&copy).expect("open");
    conn.execute_batch("DELETE FROM session_seals").expect("drop the seal");
    drop(conn);
    w.user.chown_tree(&w.sb.root().join("state"));
    let o = w.nono(&["audit", "verify", "--db", c]);
    let shown = ok(&o, "a consistent forgery");
    assert!(shown.contains("verified") && shown.contains("not sealed"), "{shown}");
    // ...but its root is not the sealed one kept elsewhere, and a policy
    // (or --require-seal) that wants seals refuses it.
    let root = shown.split("root ").nth(1).and_then(|r| r.split_whitespace().next()).expect("root").trim_end_matches(',');
    assert!(!sealed.contains(root), "the forged root differs from the sealed one");
    let o = w.nono(&["audit", "verify", "--db", c, "--require-seal", "--allowed-signers", a]);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
}

/// What an attacker with write access does: edit event `id`'s path, then
/// recompute every link, the chain state and the root from the documented
/// format, so the file is consistent again.
fn forge(db: &Path, id: i64) {
    use nono::store::chain;
    {
        let conn = rusqlite::Connection::open(db).expect("open");
        conn.execute("UPDATE events SET path_id = comm_id WHERE id = ?1", [id]).expect("edit");
    }
    let store = nono::store::Store::open_existing(db).expect("open");
    let session = store.session_by_id(1).expect("session");
    let meta = store.chain_meta(1).expect("meta");
    let mut c = chain::Chain::resume(meta.head.expect("head"), 0);
    let mut links = Vec::new();
    store
        .chained_events(1, 0, usize::MAX, |eid, _, e| {
            links.push((eid, c.push(&e)));
            Ok(())
        })
        .expect("events");
    let root = chain::root(&c.state(), c.count(), &session);
    drop(store);
    let conn = rusqlite::Connection::open(db).expect("open");
    for (eid, link) in links {
        conn.execute("UPDATE events SET chain = ?2 WHERE id = ?1", rusqlite::params![eid, link]).expect("link");
    }
    conn.execute(
        "UPDATE sessions SET chain_state = ?1, chain_root = ?2 WHERE id = 1",
        rusqlite::params![c.state().as_slice(), root.as_slice()],
    )
    .expect("state");
}

#[test]
fn push_carries_the_chain_and_seals_and_verify_checks_the_servers_copy() {
    let Some(w) = World::new("push_carries_the_chain_and_seals_and_verify_checks_the_servers_copy") else { return };
    let Some(pg) = pg::PgServer::start("push_carries_the_chain_and_seals_and_verify_checks_the_servers_copy", false) else {
        return;
    };
    let Some(ids) = recorded(&w) else { return };
    let key = w.home().join(".ssh/id_ed25519");
    let public = w.keygen(&key, "ed25519", "");
    let allowed = w.home().join(".config/nono/allowed_signers");
    w.write(&allowed, &format!("auditor@example.com {public}\n"));
    ok(&w.nono(&["audit", "seal", "last", "--key", key.to_str().expect("utf-8")]), "seal");
    let url = pg.url("nono", "disable");
    ok(&w.nono(&["audit", "push", "--migrate", "--to", &url]), "push");
    let a = allowed.to_str().expect("utf-8");
    let o = w.nono(&["audit", "verify", "--db", &url, "--allowed-signers", a, "--require-seal"]);
    let shown = ok(&o, "verify the fleet copy");
    assert!(shown.contains("verified") && shown.contains("sealed by auditor@example.com"), "{shown}");
    // Edited on the server: named by the host's event id.
    pg.psql(&format!("UPDATE nono.events SET path = '/etc/shadow' WHERE local_id = {}", ids[6]));
    let o = w.nono(&["audit", "verify", "--db", &url]);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    assert!(text(&o.stdout).contains(&format!("first bad event: id {} (event 7 ", ids[6])), "{}", output_text(&o));
    // Rows deleted on the server as well: the truncation is reported too.
    let n = ids.len();
    pg.psql(&format!("DELETE FROM nono.events WHERE local_id > {}", ids[n - 3]));
    let o = w.nono(&["audit", "verify", "--db", &url]);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    assert!(text(&o.stdout).contains("truncated"), "{}", output_text(&o));
}
