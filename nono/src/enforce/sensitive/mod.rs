//! Run-time checks of a plan before anything runs (`nono run`, `nono wrap`):
//! - a grant that would let the sandboxed user use a sensitive path
//!   (`learn`'s list: secrets and persistence files, plus nono's own audit
//!   trail under `$XDG_STATE_HOME`) is refused. What a grant's rights do to
//!   an entry is `learn::exposure`, the function the learner uses to keep
//!   such grants out of profiles, so `learn` never writes what `run`
//!   refuses; here file permissions then decide whether the user could;
//! - a brokered rule whose directory lies in a sensitive path, or one of
//!   whose name globs can match a sensitive name there (`.b?shrc`,
//!   `.ssh*`, a companion such as `.bashrc.d`), is refused whatever the
//!   permissions: the broker performs its operations for the command;
//! - a profile file (or any `extends` file) beneath a grant that allows
//!   modifying it is refused: the command could rewrite its own next
//!   sandbox.
//!
//! # Threat model
//! The command may be hostile. A grant that exposes a secret leaks it; one
//! that lets the command modify a persistence file (`~/.bashrc`,
//! `~/.gitconfig`, a `$PATH` directory) runs its code outside the sandbox
//! the next time the user starts a shell or runs git. Both are refused
//! unless `--allow-sensitive PATH` names the path.
//!
//! # Exactness
//! Landlock cannot carve a subpath out of a directory rule, so a grant on
//! `$HOME` grants `~/.ssh`. But a grant on `/etc` does not expose
//! `/etc/shadow` to a user who cannot read it anyway. So a sensitive path
//! counts as exposed only if file permissions let the sandboxed user do
//! what the grant's rights allow:
//! - reading contents (`read_file`, `execute`; secrets only): an existing
//!   file readable, a directory searchable or listable; `read_dir` alone
//!   shows names, not contents, and exposes nothing;
//! - writing (`write_file`, `truncate`): a file writable, a directory
//!   searchable;
//! - entries (`make_*`, `remove_*`, `refer`): inside a directory entry, the
//!   directory writable and searchable; the entry itself in its parent
//!   (creating a missing `~/.bashrc`, replacing or removing an existing
//!   one): the parent writable and searchable (for a missing path, its
//!   nearest existing ancestor).
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

mod message;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

pub use self::message::{CwdMoved, refusal};
use super::{Plan, PlanRule};
use crate::learn::{Class, Exposed, LearnContext, Reach, exposure, glob_intersects, is_companion, sensitive_entries};
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

/// A sensitive path one grant (or brokered rule) exposes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exposure {
    /// The rule's path (a brokered rule's directory) and the profiles (or
    /// command line) that grant it.
    pub grant: PathBuf,
    pub origins: Vec<String>,
    /// The sensitive path (as the list spells it).
    pub secret: PathBuf,
    pub why: &'static str,
    pub class: Class,
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

/// nono's audit trail where `$XDG_STATE_HOME` moves it (the list has the
/// default place, and nono's profiles).
fn nono_own() -> Option<(PathBuf, &'static str)> {
    let state = std::env::var_os("XDG_STATE_HOME").map(PathBuf::from).filter(|p| p.is_absolute())?;
    Some((state.join("nono"), "nono's audit trail: every recorded command line and path; writing it rewrites history"))
}

const READ: [FsRight; 3] = [FsRight::ReadFile, FsRight::ReadDir, FsRight::Execute];

/// A sensitive path, resolved once.
struct Entry {
    path: PathBuf,
    why: &'static str,
    class: Class,
    /// What it resolves to, when it exists (symlinks followed).
    target: Option<(PathBuf, std::fs::Metadata)>,
    exists: bool,
    /// Its nearest existing ancestor, canonical: where it would be created,
    /// replaced or removed.
    anchor: Option<PathBuf>,
}

impl Entry {
    fn new(path: PathBuf, why: &'static str, class: Class) -> Entry {
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
        Entry { path, why, class, target, exists, anchor }
    }

    /// The entry's path and, when it differs, its canonical target.
    fn spellings(&self) -> impl Iterator<Item = &Path> {
        std::iter::once(self.path.as_path()).chain(self.target.as_ref().map(|(t, _)| t.as_path()).filter(|t| *t != self.path))
    }
}

/// The list for `ctx` (without the user's `--allow-sensitive` exceptions),
/// resolved.
fn entries(ctx: &LearnContext) -> Vec<Entry> {
    let allowed: Vec<PathBuf> = ctx.allow_sensitive.iter().map(|p| canonical_or_lexical(p)).collect();
    let is_allowed = |p: &Path| allowed.iter().any(|a| p.starts_with(a) || canonical_or_lexical(p).starts_with(a));
    // Sockets (Docker's, the ssh-agent's) are sensitive to connect to, which
    // the broker rules; a filesystem grant holding them exposes nothing.
    let mut out: Vec<Entry> = sensitive_entries(ctx)
        .into_iter()
        .filter(|e| !e.socket && !is_allowed(&e.path))
        .map(|e| Entry::new(e.path, e.why, e.class))
        .collect();
    if let Some((p, why)) = nono_own().filter(|(p, _)| !is_allowed(p)) {
        out.push(Entry::new(p, why, Class::Secret));
    }
    out
}

/// Every sensitive path a rule of `plan` exposes to `who`. `ctx` gives
/// the list's variables and the user's `--allow-sensitive` exceptions.
#[must_use]
pub fn exposures(plan: &Plan, ctx: &LearnContext, who: &Who) -> Vec<Exposure> {
    let list = entries(ctx);
    let mut out = Vec::new();
    for rule in &plan.fs {
        let grant = canonical_or_lexical(&rule.path);
        for entry in &list {
            if let Some(how) = exposed(rule, &grant, entry, who) {
                let e = Exposure {
                    grant: rule.path.clone(),
                    origins: rule.origins.clone(),
                    secret: entry.path.clone(),
                    why: entry.why,
                    class: entry.class,
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

/// Every sensitive path a brokered rule could reach: its directory lies
/// in one, or one of its name globs can match a sensitive name (or a
/// companion of one) in its directory. File permissions do not excuse
/// these: nobody needs a brokered rule on such a name.
#[must_use]
/// Each rule is `(directory, name globs, origin)`.
pub fn brokered_exposures<'a>(
    brokered: impl IntoIterator<Item = (&'a Path, &'a [String], &'a str)>,
    ctx: &LearnContext,
) -> Vec<Exposure> {
    let list = entries(ctx);
    let mut out = Vec::new();
    for (dir, names, origin) in brokered {
        let dirs = [dir.to_path_buf(), canonical_or_lexical(dir)];
        for entry in &list {
            let hit = entry.spellings().any(|e| dirs.iter().any(|d| within(d, e) || names.iter().any(|g| glob_reaches(d, g, e))));
            if hit {
                let e = Exposure {
                    grant: dir.to_path_buf(),
                    origins: vec![origin.to_owned()],
                    secret: entry.path.clone(),
                    why: entry.why,
                    class: entry.class,
                    how: "have the broker create, replace or remove",
                };
                if !out.contains(&e) {
                    out.push(e);
                }
            }
        }
    }
    out
}

/// A name matching `glob` in `dir` is `entry`, holds it, or is one of
/// its companions.
fn glob_reaches(dir: &Path, glob: &str, entry: &Path) -> bool {
    let Ok(rest) = entry.strip_prefix(dir) else { return false };
    let Some(first) = rest.components().next() else { return false };
    let name = crate::event::escape_path(Path::new(first.as_os_str()));
    let g = glob.as_bytes();
    if glob_intersects(g, name.as_bytes()) {
        return true;
    }
    // Companions only of an entry directly in `dir`.
    rest.components().count() == 1
        && [b'.', b'-', b'_', b'~'].iter().any(|&sep| {
            let mut companions = name.as_bytes().to_vec();
            companions.extend([sep, b'*']);
            glob_intersects(g, &companions)
        })
}

/// `p` is `entry`, lies beneath it, or is (or lies beneath) a companion of
/// it (`~/.bashrc.d/x` for `~/.bashrc`).
fn within(p: &Path, entry: &Path) -> bool {
    if p.starts_with(entry) {
        return true;
    }
    let (Some(dir), Some(name)) = (entry.parent(), entry.file_name()) else { return false };
    let Ok(rest) = p.strip_prefix(dir) else { return false };
    rest.components().next().is_some_and(|c| is_companion(c.as_os_str().as_bytes(), name.as_bytes()))
}

/// The profile files (`files`: as spelled and canonical) that a rule with
/// modifying rights covers.
#[must_use]
pub fn writable_profiles(plan: &Plan, files: &[PathBuf]) -> Vec<WritableProfile> {
    let mut out = Vec::new();
    for file in files {
        let canonical = canonical_or_lexical(file);
        // Where the name itself lives (a link there can be replaced by the
        // command): the parent resolved, so `w/../p.json` is not taken to
        // lie beneath `w`.
        let named = match (file.parent().map(canonical_or_lexical), file.file_name()) {
            (Some(dir), Some(name)) => dir.join(name),
            _ => file.clone(),
        };
        for rule in &plan.fs {
            let modifying: Vec<&'static str> =
                rule.rights.iter().filter(|r| !READ.contains(r) && **r != FsRight::IoctlDev).map(|r| r.name()).collect();
            if modifying.is_empty() {
                continue;
            }
            let grant = canonical_or_lexical(&rule.path);
            let hit =
                [named.as_path(), canonical.as_path()].iter().any(|f| covers(rule, &grant, f) || covers(rule, &rule.path, f));
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

/// How `rule` (whose canonical path is `grant`) exposes `entry` to `who`,
/// if it does: `learn::exposure` says what the rights could do, file
/// permissions whether the user can.
fn exposed(rule: &PlanRule, grant: &Path, entry: &Entry, who: &Who) -> Option<&'static str> {
    let rights = rule.rights.iter().copied();
    // The grant is the entry or lies inside it: its own object is at stake.
    if entry.spellings().any(|e| within(grant, e) || within(&rule.path, e)) {
        let is_dir = std::fs::metadata(grant).is_ok_and(|m| m.is_dir());
        for what in exposure(entry.class, Reach::Within, rights) {
            if let Some(how) = object(what, grant, is_dir, who) {
                return Some(how);
            }
        }
        return None;
    }
    if rule.file {
        return None;
    }
    let set = exposure(entry.class, Reach::Above, rights);
    // The object itself, beneath the grant (following symlinks, as the kernel does).
    if let Some((target, meta)) = &entry.target
        && target.starts_with(grant)
    {
        for what in &set {
            if let Some(how) = object(*what, target, meta.is_dir(), who) {
                return Some(how);
            }
        }
    }
    // The entry in its parent: create it, or replace, move or remove it.
    if set.contains(&Exposed::Replace) {
        let anchor = entry.anchor.as_deref()?;
        if anchor.starts_with(grant) && may(who, anchor, W | X) {
            return Some(if entry.exists { "replace or remove" } else { "create" });
        }
    }
    None
}

/// Whether `who` can do `what` to the existing object at `path`.
fn object(what: Exposed, path: &Path, is_dir: bool, who: &Who) -> Option<&'static str> {
    // The permissions that allow it (any one of them).
    let (modes, how): (&[u32], &'static str) = match (what, is_dir) {
        (Exposed::Read, false) => (&[R], "read"),
        (Exposed::Read, true) => (&[X, R], "read"),
        (Exposed::List, true) => (&[R], "list"),
        (Exposed::Write, false) => (&[W], "write"),
        (Exposed::Write, true) => (&[X], "write files in"),
        (Exposed::Entries, true) => (&[W | X], "create or remove entries in"),
        // Not on such an object; the entry in its parent is the caller's.
        (Exposed::List | Exposed::Entries, false) | (Exposed::Replace, _) => return None,
    };
    modes.iter().any(|m| may(who, path, *m)).then_some(how)
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
mod tests;
