//! Run-time checks of a plan before anything runs (`nono run`, `nono wrap`):
//! - a grant that equals or contains a sensitive path (`learn`'s list, plus
//!   nono's own profiles and audit trail) is refused when the sandboxed
//!   user could actually use the grant's rights on it;
//! - a profile file (or any `extends` file) beneath a grant that allows
//!   modifying it is refused: the command could rewrite its own next
//!   sandbox.
//!
//! # Exactness
//! Landlock cannot carve a subpath out of a directory rule, so a grant on
//! `$HOME` grants `~/.ssh`. But a grant on `/etc` does not expose
//! `/etc/shadow` to a user who cannot read it anyway. So a sensitive path
//! counts as exposed only if file permissions let the sandboxed user use
//! one of the grant's rights on it:
//! - an existing file: readable (read rights), writable (`write_file`,
//!   `truncate`); an existing directory: searchable or listable (read
//!   rights), searchable (write rights on files inside), writable and
//!   searchable (rights that create or remove entries);
//! - the entry itself in its parent (creating a missing `~/.bashrc`,
//!   replacing or removing an existing one): rights that create, remove or
//!   move entries, on a writable and searchable parent (for a missing path,
//!   its nearest existing ancestor).
//!
//! Permissions are computed for every component of the path (search
//! permission on each ancestor) from mode bits, owner and groups. Anything
//! the user owns counts as accessible whatever its mode: Landlock does not
//! restrict `chmod`, so the command could make a `000` file of its own
//! readable. A file with a POSIX ACL counts as accessible (conservative),
//! and when nono itself runs as the sandboxed user, the kernel's answer
//! (`faccessat(AT_EACCESS)`: ACLs and capabilities included) can only add
//! access. A sandboxed root can use everything, so everything covered is
//! exposed.
//!
//! All comparisons use canonical paths (Landlock follows symlinks when the
//! rule is built), plus the path as spelled for the entry checks.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use super::{Plan, PlanRule};
use crate::learn::{LearnContext, sensitive_entries};
use crate::profile::rights::FsRight;

/// The user the command will run as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Who {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// nono itself runs with these credentials: ask the kernel.
    pub is_self: bool,
}

impl Who {
    /// This process's effective credentials.
    #[must_use]
    pub fn current() -> Who {
        let groups = nix::unistd::getgroups().map(|g| g.into_iter().map(nix::unistd::Gid::as_raw).collect()).unwrap_or_default();
        Who { uid: nix::unistd::geteuid().as_raw(), gid: nix::unistd::getegid().as_raw(), groups, is_self: true }
    }
}

/// A sensitive path one grant exposes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exposure {
    /// The rule's path and the profiles (or command line) that grant it.
    pub grant: PathBuf,
    pub origins: Vec<String>,
    /// The sensitive path (as the list spells it).
    pub secret: PathBuf,
    pub why: &'static str,
    /// What the user could do: "read", "write", ...
    pub how: &'static str,
}

impl std::fmt::Display for Exposure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the grant on {} (from {}) covers {} ({}): the sandboxed user could {} it",
            self.grant.display(),
            self.origins.join(", "),
            self.secret.display(),
            self.why,
            self.how,
        )
    }
}

/// A profile file beneath a grant that lets the command modify it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WritableProfile {
    pub file: PathBuf,
    pub grant: PathBuf,
    pub origins: Vec<String>,
    pub rights: Vec<&'static str>,
}

impl std::fmt::Display for WritableProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the profile file {} lies beneath the grant on {} (from {}; {}): the command could rewrite its own profile for the next run; move the profile out of the granted tree (e.g. to ~/.config/nono/profiles/)",
            self.file.display(),
            self.grant.display(),
            self.origins.join(", "),
            self.rights.join(",")
        )
    }
}

/// Paths nono protects at run time besides `learn`'s list: only writing
/// them is harmful.
fn nono_own(ctx: &LearnContext) -> Vec<(PathBuf, &'static str)> {
    let mut v = vec![
        (ctx.xdg_config_home.join("nono"), "nono's profiles: writing them widens the next sandbox"),
        (ctx.home.join(".config/nono"), "nono's profiles: writing them widens the next sandbox"),
        (ctx.home.join(".local/state/nono"), "nono's audit trail"),
    ];
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        v.push((state.join("nono"), "nono's audit trail"));
    }
    v.dedup_by(|a, b| a.0 == b.0);
    v
}

const READ: [FsRight; 3] = [FsRight::ReadFile, FsRight::ReadDir, FsRight::Execute];
const WRITE_FILES: [FsRight; 2] = [FsRight::WriteFile, FsRight::Truncate];

fn is_entry_right(r: FsRight) -> bool {
    !READ.contains(&r) && !WRITE_FILES.contains(&r) && r != FsRight::IoctlDev
}

/// A sensitive path, resolved once.
struct Secret {
    path: PathBuf,
    why: &'static str,
    /// Only modifying it is harmful (nono's own files).
    write_only: bool,
    /// What it resolves to, when it exists (symlinks followed).
    target: Option<(PathBuf, std::fs::Metadata)>,
    exists: bool,
    /// Its nearest existing ancestor, canonical: where it would be created,
    /// replaced or removed.
    anchor: Option<PathBuf>,
}

impl Secret {
    fn new(path: PathBuf, why: &'static str, write_only: bool) -> Secret {
        let target = path.canonicalize().ok().and_then(|t| std::fs::metadata(&t).ok().map(|m| (t, m)));
        let exists = std::fs::symlink_metadata(&path).is_ok();
        let mut anchor = path.parent();
        while let Some(a) = anchor {
            if std::fs::metadata(a).is_ok() {
                break;
            }
            anchor = a.parent();
        }
        let anchor = anchor.and_then(|a| a.canonicalize().ok());
        Secret { path, why, write_only, target, exists, anchor }
    }
}

/// Every sensitive path a rule of `plan` exposes to `who`. `ctx` gives
/// the list's variables and the user's `--allow-sensitive` exceptions.
#[must_use]
pub fn exposures(plan: &Plan, ctx: &LearnContext, who: &Who) -> Vec<Exposure> {
    let allowed: Vec<PathBuf> = ctx.allow_sensitive.iter().map(|p| canonical_or_lexical(p)).collect();
    let is_allowed = |p: &Path| allowed.iter().any(|a| p.starts_with(a) || canonical_or_lexical(p).starts_with(a));
    // Sockets (Docker's, the ssh-agent's) are sensitive to connect to, which
    // the broker rules; a filesystem grant holding them exposes nothing.
    let mut secrets: Vec<Secret> = sensitive_entries(ctx)
        .into_iter()
        .filter(|e| !e.socket && !is_allowed(&e.path))
        .map(|e| Secret::new(e.path, e.why, false))
        .collect();
    secrets.extend(nono_own(ctx).into_iter().filter(|(p, _)| !is_allowed(p)).map(|(p, why)| Secret::new(p, why, true)));
    let mut out = Vec::new();
    for rule in &plan.fs {
        let grant = canonical_or_lexical(&rule.path);
        for secret in &secrets {
            if let Some(how) = exposed(rule, &grant, secret, who) {
                let e = Exposure {
                    grant: rule.path.clone(),
                    origins: rule.origins.clone(),
                    secret: secret.path.clone(),
                    why: secret.why,
                    how,
                };
                if !out.contains(&e) {
                    out.push(e);
                }
            }
        }
    }
    out
}

/// The profile files (`files`: as spelled and canonical) that a rule with
/// modifying rights covers.
#[must_use]
pub fn writable_profiles(plan: &Plan, files: &[PathBuf]) -> Vec<WritableProfile> {
    let mut out = Vec::new();
    for file in files {
        let canonical = canonical_or_lexical(file);
        for rule in &plan.fs {
            let modifying: Vec<&'static str> =
                rule.rights.iter().filter(|r| !READ.contains(r) && **r != FsRight::IoctlDev).map(|r| r.name()).collect();
            if modifying.is_empty() {
                continue;
            }
            let grant = canonical_or_lexical(&rule.path);
            let hit =
                [file.as_path(), canonical.as_path()].iter().any(|f| covers(rule, &grant, f) || covers(rule, &rule.path, f));
            if hit {
                out.push(WritableProfile {
                    file: file.clone(),
                    grant: rule.path.clone(),
                    origins: rule.origins.clone(),
                    rights: modifying,
                });
            }
        }
    }
    out
}

/// `p` is the rule's path, or beneath it for a directory rule.
fn covers(rule: &PlanRule, grant: &Path, p: &Path) -> bool {
    if rule.file { p == grant } else { p.starts_with(grant) }
}

fn canonical_or_lexical(p: &Path) -> PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    // The nearest existing ancestor, canonical, plus the missing rest.
    let mut rest = Vec::new();
    let mut cur = p;
    while let Some(parent) = cur.parent() {
        if let Some(name) = cur.file_name() {
            rest.push(name.to_owned());
        }
        if let Ok(c) = parent.canonicalize() {
            let mut out = c;
            for n in rest.iter().rev() {
                out.push(n);
            }
            return out;
        }
        cur = parent;
    }
    p.to_path_buf()
}

/// How `rule` (whose canonical path is `grant`) exposes `secret` to
/// `who`, if it does.
fn exposed(rule: &PlanRule, grant: &Path, secret: &Secret, who: &Who) -> Option<&'static str> {
    let rights = &rule.rights;
    let any = |set: &[FsRight]| set.iter().any(|r| rights.contains(r));
    let entry_rights = rights.iter().any(|r| is_entry_right(*r));
    // The object itself (following symlinks, as the kernel does).
    if let Some((target, meta)) = &secret.target
        && covers(rule, grant, target)
    {
        let read = !secret.write_only && any(&READ);
        if meta.is_dir() {
            // Listing alone (read_dir) shows names, not contents.
            let contents = !secret.write_only && any(&[FsRight::ReadFile, FsRight::Execute]);
            if contents && (may(who, target, X) || may(who, target, R)) {
                return Some("read");
            }
            if any(&WRITE_FILES) && may(who, target, X) {
                return Some("write files in");
            }
            if entry_rights && may(who, target, W | X) {
                return Some("create or remove entries in");
            }
        } else {
            if read && may(who, target, R) {
                return Some("read");
            }
            if any(&WRITE_FILES) && may(who, target, W) {
                return Some("write");
            }
        }
    }
    // The entry in its parent: create it, or replace, move or remove it.
    if rule.file || !entry_rights {
        return None;
    }
    let anchor = secret.anchor.as_deref()?;
    if covers(rule, grant, anchor) && may(who, anchor, W | X) {
        return Some(if secret.exists { "replace or remove" } else { "create" });
    }
    None
}

use super::dac::{R, W, X, mode_allows};

/// Whether `who` may access `path` with `mode` (R/W/X bits), including
/// search permission on every ancestor.
fn may(who: &Who, path: &Path, mode: u32) -> bool {
    if who.uid == 0 {
        return true;
    }
    path.ancestors().skip(1).all(|a| allows(who, a, X)) && allows(who, path, mode)
}

/// One component: owned by `who` (who could `chmod` it), the mode bits (or
/// an ACL), or the kernel's own answer when nono runs as `who`.
fn allows(who: &Who, path: &Path, mode: u32) -> bool {
    let Ok(meta) = std::fs::metadata(path) else { return true };
    if meta.uid() == who.uid || mode_allows(who, &meta, path, mode) {
        return true;
    }
    if !who.is_self {
        return false;
    }
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else { return true };
    let amode = (if mode & R != 0 { libc::R_OK } else { 0 })
        | (if mode & W != 0 { libc::W_OK } else { 0 })
        | (if mode & X != 0 { libc::X_OK } else { 0 });
    // SAFETY: a valid NUL-terminated path; no memory is written.
    unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), amode, libc::AT_EACCESS) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn rule(path: &Path, rights: &[FsRight]) -> PlanRule {
        PlanRule {
            path: path.to_path_buf(),
            rights: rights.iter().copied().collect(),
            file: false,
            origins: vec!["p.json".into()],
        }
    }

    fn ctx(home: &Path, cwd: &Path) -> LearnContext {
        LearnContext {
            home: home.to_path_buf(),
            cwd: cwd.to_path_buf(),
            tmpdir: PathBuf::from("/tmp"),
            xdg_config_home: home.join(".config"),
            xdg_cache_home: home.join(".cache"),
            allow_sensitive: Vec::new(),
            runtime_dir: None,
            ssh_auth_sock: None,
            nameservers: Vec::new(),
            anticipate: false,
        }
    }

    /// An unprivileged stranger: mode bits decide (the test runs as root).
    fn stranger() -> Who {
        Who { uid: 65534, gid: 65534, groups: vec![], is_self: false }
    }

    fn owner_of(p: &Path) -> Who {
        let m = std::fs::metadata(p).expect("meta");
        Who { uid: m.uid(), gid: m.gid(), groups: vec![], is_self: false }
    }

    #[test]
    fn a_workdir_that_is_home_exposes_ssh_and_the_shell_rc() {
        let d = tempfile::tempdir().expect("tmp");
        let home = d.path().canonicalize().expect("c");
        std::fs::create_dir(home.join(".ssh")).expect("ssh");
        std::fs::write(home.join(".ssh/id_rsa"), "k").expect("key");
        let plan = Plan { fs: vec![rule(&home, &FsRight::ALL)], ..Plan::default() };
        let who = owner_of(&home);
        let found = exposures(&plan, &ctx(&home, &home), &who);
        let secrets: Vec<_> = found.iter().map(|e| e.secret.clone()).collect();
        assert!(secrets.contains(&home.join(".ssh")), "{found:#?}");
        assert!(secrets.contains(&home.join(".bashrc")), "a missing ~/.bashrc can be created: {found:#?}");
        let mut allow = ctx(&home, &home);
        allow.allow_sensitive = vec![home.join(".ssh")];
        assert!(!exposures(&plan, &allow, &who).iter().any(|e| e.secret == home.join(".ssh")));
    }

    #[test]
    fn permissions_decide_what_a_grant_exposes() {
        let d = tempfile::tempdir().expect("tmp");
        let root = d.path().canonicalize().expect("c");
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let etc = root.join("etc");
        std::fs::create_dir(&etc).expect("etc");
        let shadow = etc.join("shadow");
        std::fs::write(&shadow, "hash").expect("shadow");
        std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let r = rule(&etc, &FsRight::read_set().into_iter().collect::<Vec<_>>());
        let who = stranger();
        let check = |r: &PlanRule, path: &Path, write_only: bool, who: &Who| {
            exposed(r, &etc, &Secret::new(path.to_path_buf(), "test", write_only), who)
        };
        assert_eq!(check(&r, &shadow, false, &who), None, "an unreadable file is not exposed by a read grant");
        std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(check(&r, &shadow, false, &who), Some("read"));
        assert_eq!(check(&r, &shadow, true, &who), None, "write-only entries ignore reads");
        // A missing file under a directory the user cannot write: nothing to create.
        let w = rule(&etc, &FsRight::ALL);
        assert_eq!(check(&w, &etc.join("gshadow"), false, &who), None);
        std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        assert_eq!(check(&w, &etc.join("gshadow"), false, &who), Some("create"));
        assert_eq!(check(&w, &etc.join("sub/deeper"), false, &who), Some("create"), "missing parents are made too");
        // The owner of a 0600 file may read it, and of a 0000 file too:
        // Landlock does not stop chmod.
        std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(check(&r, &shadow, false, &owner_of(&shadow)), Some("read"));
        std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o000)).expect("chmod");
        let other = Who { uid: 4242, gid: 4242, groups: vec![], is_self: false };
        assert_eq!(check(&r, &shadow, false, &other), None, "0000 and not the owner");
        std::os::unix::fs::chown(&shadow, Some(4242), None).expect("chown");
        assert_eq!(check(&r, &shadow, false, &other), Some("read"), "0000 but the owner");
        // An ancestor without search permission hides everything.
        std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(check(&r, &shadow, false, &who), None);
    }

    #[test]
    fn a_profile_beneath_a_write_grant_is_found() {
        let d = tempfile::tempdir().expect("tmp");
        let root = d.path().canonicalize().expect("c");
        let work = root.join("work");
        std::fs::create_dir(&work).expect("work");
        std::fs::write(work.join("p.json"), "{}").expect("p");
        std::fs::write(root.join("q.json"), "{}").expect("q");
        let plan = Plan {
            fs: vec![rule(&work, &[FsRight::ReadFile, FsRight::MakeReg]), rule(&root, &[FsRight::ReadFile])],
            ..Plan::default()
        };
        let hits = writable_profiles(&plan, &[work.join("p.json"), root.join("q.json")]);
        assert_eq!(hits.len(), 1, "{hits:#?}");
        assert_eq!(hits[0].file, work.join("p.json"));
        assert_eq!(hits[0].rights, vec!["make_reg"]);
        // Through a symlink, the canonical path still lies beneath.
        std::os::unix::fs::symlink(&work, root.join("link")).expect("link");
        assert_eq!(writable_profiles(&plan, &[root.join("link/p.json")]).len(), 1);
    }
}
