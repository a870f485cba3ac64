//! The sensitive list and the rules that keep it out of profiles: secrets
//! (credentials, private keys, history) and persistence files (shell rc
//! files, git config, autostart, `$PATH` directories in `$HOME`, editor
//! and agent configuration: files that run code outside the sandbox), see
//! `list` for every entry and why. The learner never grants a right that
//! exposes one (see `exposure`), nor any such right on a directory that
//! contains one, unless the user allows it (`LearnContext::allow_sensitive`);
//! `nono run` refuses such a grant with the same function.
//!
//! Why "contains" matters: a Landlock rule on a directory applies to every
//! path beneath it and cannot carve out a subpath, so granting `$HOME`
//! would grant `~/.ssh`.
//!
//! Companions: a name that extends an entry's name with `.`, `-`, `_` or
//! `~` (`.bashrc.d`, `.zshrc.local`, `.gitconfig.lock`, `.netrc~`,
//! `/etc/shadow-`) is that entry's: rc files commonly source such
//! companions (Fedora's `~/.bashrc` sources `~/.bashrc.d/*`, git's
//! `[include]`), editors' backups of a secret hold the secret, and a lock
//! or temp file renamed over the entry replaces it.
//!
//! An entry that is `$HOME`, the workdir or one of their parents (`/root`
//! for a root session) is dropped: it would refuse everything.
//!
//! Deliberately absent: `$CWD/.env` and the workdir's `.git/config`. The
//! workdir is the agent's job; a file inside it cannot be protected by
//! Landlock without refusing the workdir itself, which would make every
//! learned profile useless. The learner warns instead.

mod exposure;
mod glob;
mod list;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use self::exposure::{Exposed, Reach, changes_entries, exposure, forbidden};
pub use self::glob::{glob_intersects, glob_matches};
use self::list::{BUILTIN, Base, PATH_WHY, SOCKETS};
use super::LearnContext;
use super::paths::{child_toward, is_at_or_beneath, is_strictly_beneath, normalise_root, parent};
use super::rights::Mask;

/// What kind of sensitive path an entry is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Credentials, keys, history: neither read nor written.
    #[default]
    Secret,
    /// Runs code outside the sandbox: read, never written.
    Persistence,
}

impl Class {
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Class::Secret => "secret",
            Class::Persistence => "persistence",
        }
    }
}

/// Characters after which a longer name is an entry's companion.
const COMPANION_SEPARATORS: [u8; 4] = [b'.', b'-', b'_', b'~'];

/// Whether `name` extends `base` as a companion (`.bashrc.local`).
#[must_use]
pub fn is_companion(name: &[u8], base: &[u8]) -> bool {
    name.len() > base.len() && name.starts_with(base) && COMPANION_SEPARATORS.contains(&name[base.len()])
}

/// One expanded sensitive path and why it is on the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sensitive {
    pub path: String,
    pub why: &'static str,
    pub class: Class,
    /// A socket: sensitive to connect to, not as a file.
    pub socket: bool,
}

/// The expanded list and the user's exceptions.
#[derive(Clone, Debug, Default)]
pub(crate) struct SensitiveSet {
    entries: Vec<Sensitive>,
    allow: Vec<String>,
}

impl SensitiveSet {
    pub(crate) fn new(ctx: &LearnContext) -> SensitiveSet {
        let home = normalise_root(&ctx.home);
        let config = normalise_root(&ctx.xdg_config_home);
        let home_config = home.as_deref().map(|h| join(h, ".config"));
        let runtime = ctx.runtime_dir.as_deref().and_then(normalise_root);
        let cwd = normalise_root(&ctx.cwd);
        let mut entries: Vec<Sensitive> = Vec::new();
        let mut push = |path: String, why: &'static str, class: Class, socket: bool| {
            if !entries.iter().any(|e| e.path == path) {
                entries.push(Sensitive { path, why, class, socket });
            }
        };
        let files = BUILTIN.iter().map(|&(b, rel, class, why)| (b, rel, class, why, false));
        let sockets = SOCKETS.iter().map(|&(b, rel, why)| (b, rel, Class::Secret, why, true));
        for (base, rel, class, why, socket) in files.chain(sockets) {
            match base {
                Base::Root => push(rel.to_owned(), why, class, socket),
                Base::Home => {
                    if let Some(h) = &home {
                        push(join(h, rel), why, class, socket);
                    }
                }
                Base::Runtime => {
                    if let Some(r) = &runtime {
                        push(join(r, rel), why, class, socket);
                    }
                }
                Base::Config => {
                    // Both spellings: tools differ in whether they honour
                    // XDG_CONFIG_HOME.
                    for dir in [&config, &home_config].into_iter().flatten() {
                        push(join(dir, rel), why, class, socket);
                    }
                }
            }
        }
        // `$PATH`'s own directories: a program placed there runs instead of
        // the command the user meant. Those inside a workdir below `$HOME`
        // (`$CWD/node_modules/.bin`) are the agent's job, like the workdir.
        let project = cwd.as_deref().filter(|c| home.as_deref().is_none_or(|h| !is_at_or_beneath(h, c)));
        for dir in &ctx.path_dirs {
            let Some(d) = normalise_root(dir) else { continue };
            if project.is_some_and(|c| is_at_or_beneath(&d, c)) {
                continue;
            }
            push(d, PATH_WHY, Class::Persistence, false);
        }
        if let Some(sock) = ctx.ssh_auth_sock.as_deref().and_then(normalise_root) {
            push(sock, "the ssh-agent socket ($SSH_AUTH_SOCK): signs with the user's SSH keys", Class::Secret, true);
        }
        // An entry that holds $HOME or the workdir (`/root` when running as
        // root) would refuse the whole session; the entries below $HOME
        // still protect what matters there.
        entries.retain(|e| [&home, &cwd].into_iter().flatten().all(|p| !is_at_or_beneath(p, &e.path)));
        let allow = ctx.allow_sensitive.iter().filter_map(|p| normalise_root(p)).collect();
        SensitiveSet { entries, allow }
    }

    pub(crate) fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.path.as_str())
    }

    /// The user allowed `p` (it or one of its parents is in `allow_sensitive`).
    pub(crate) fn is_allowed(&self, p: &str) -> bool {
        self.allow.iter().any(|a| is_at_or_beneath(p, a))
    }

    /// The entry `p` is, lies beneath, or is a companion of (or lies
    /// beneath one), unless the user allowed `p` (or, for a companion, the
    /// entry). Sockets count only for connects ([`Self::socket`]).
    pub(crate) fn inside(&self, p: &str) -> Option<&Sensitive> {
        self.all_inside(p).next()
    }

    /// Every entry [`Self::inside`] could answer for `p`.
    pub(crate) fn all_inside<'s, 'p>(&'s self, p: &'p str) -> impl Iterator<Item = &'s Sensitive> + use<'s, 'p> {
        self.entries.iter().filter(move |e| !e.socket && within(p, &e.path) && !self.allowed_within(p, &e.path))
    }

    /// `p` (within entry `e`) is allowed: itself, or as a companion of an
    /// allowed entry.
    fn allowed_within(&self, p: &str, e: &str) -> bool {
        self.is_allowed(p) || (!is_at_or_beneath(p, e) && self.is_allowed(e))
    }

    /// Rights that `p`'s own rule must not have: those that would expose an
    /// entry it lies inside.
    pub(crate) fn forbidden_within(&self, p: &str) -> Mask {
        self.all_inside(p).fold(Mask::EMPTY, |m, e| m.union(class_mask(e.class, Reach::Within)))
    }

    /// The entry a connect to socket `p` would reach (any entry: a socket,
    /// or a socket inside a sensitive directory), unless allowed.
    pub(crate) fn socket(&self, p: &str) -> Option<&Sensitive> {
        let hit = self.entries.iter().find(|e| is_at_or_beneath(p, &e.path))?;
        (!self.is_allowed(p)).then_some(hit)
    }

    /// Non-allowed entries strictly beneath directory `d`: granting `d`
    /// grants them too. Sockets do not count (see [`SOCKETS`]).
    pub(crate) fn contained<'s, 'd>(&'s self, d: &'d str) -> impl Iterator<Item = &'s Sensitive> + use<'s, 'd> {
        let all_allowed = self.is_allowed(d);
        self.entries
            .iter()
            .filter(move |e| !all_allowed && !e.socket && is_strictly_beneath(&e.path, d) && !self.is_allowed(&e.path))
    }

    /// A non-allowed entry strictly beneath directory `d`.
    pub(crate) fn contained_in(&self, d: &str) -> Option<&Sensitive> {
        self.contained(d).next()
    }

    /// The rights a rule on directory `d` must not have, and the first
    /// entry each class that forbids them belongs to.
    pub(crate) fn forbidden_above(&self, d: &str) -> (Mask, Option<&Sensitive>) {
        let mut mask = Mask::EMPTY;
        let mut first: Option<&Sensitive> = None;
        for e in self.contained(d) {
            mask = mask.union(class_mask(e.class, Reach::Above));
            // A secret explains more than a persistence file.
            if first.is_none_or(|f| f.class == Class::Persistence && e.class == Class::Secret) {
                first = Some(e);
            }
        }
        (mask, first)
    }

    /// The first non-allowed entry that a name matching `glob` in the
    /// directory `dir` would be, contain or be a companion of.
    pub(crate) fn glob_hit(&self, dir: &str, glob: &str) -> Option<&Sensitive> {
        if let Some(e) = self.inside(dir) {
            return Some(e);
        }
        self.contained(dir).find(|e| {
            let child = child_toward(dir, &e.path);
            let name = child.rsplit('/').next().unwrap_or_default();
            if glob_intersects(glob.as_bytes(), name.as_bytes()) {
                return true;
            }
            // A companion of an entry directly in `dir`.
            child == e.path
                && COMPANION_SEPARATORS.iter().any(|&s| {
                    let mut companions = name.as_bytes().to_vec();
                    companions.extend([s, b'*']);
                    glob_intersects(glob.as_bytes(), &companions)
                })
        })
    }
}

/// `p` is at or beneath `entry`, or at or beneath a companion of it.
fn within(p: &str, entry: &str) -> bool {
    if is_at_or_beneath(p, entry) {
        return true;
    }
    let Some(dir) = parent(entry) else { return false };
    if !is_strictly_beneath(p, dir) {
        return false;
    }
    let name = entry.rsplit('/').next().unwrap_or_default();
    let child = child_toward(dir, p);
    let child_name = child.rsplit('/').next().unwrap_or_default();
    is_companion(child_name.as_bytes(), name.as_bytes())
}

/// The rights a rule at `reach` from an entry of `class` must not have.
pub(crate) fn class_mask(class: Class, reach: Reach) -> Mask {
    // Two classes, two reaches: computed once.
    static MASKS: std::sync::OnceLock<[Mask; 4]> = std::sync::OnceLock::new();
    let masks = MASKS.get_or_init(|| {
        let m = |c, r| Mask::from_set(&forbidden(c, r));
        [
            m(Class::Secret, Reach::Within),
            m(Class::Secret, Reach::Above),
            m(Class::Persistence, Reach::Within),
            m(Class::Persistence, Reach::Above),
        ]
    });
    masks[usize::from(class == Class::Persistence) * 2 + usize::from(reach == Reach::Above)]
}

fn join(dir: &str, rel: &str) -> String {
    if dir == "/" { format!("/{rel}") } else { format!("{dir}/{rel}") }
}

/// The built-in sensitive paths, expanded for this context.
#[must_use]
pub fn sensitive_paths(ctx: &LearnContext) -> Vec<PathBuf> {
    SensitiveSet::new(ctx).paths().map(PathBuf::from).collect()
}

/// One expanded entry of the sensitive list, for enforcement-time checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SensitiveEntry {
    pub path: PathBuf,
    pub why: &'static str,
    pub class: Class,
    /// A socket (Docker's, the ssh-agent's, the D-Bus session bus): sensitive
    /// to connect to (`network.unix_connect`), not as a file. A filesystem
    /// grant that contains it does not expose it.
    pub socket: bool,
}

/// The sensitive list, expanded for this context, with what each entry is.
/// Entries the user allowed (`allow_sensitive`) are left out.
#[must_use]
pub fn sensitive_entries(ctx: &LearnContext) -> Vec<SensitiveEntry> {
    let set = SensitiveSet::new(ctx);
    set.entries
        .iter()
        .filter(|e| !set.is_allowed(&e.path))
        .map(|e| SensitiveEntry {
            path: crate::event::unescape_path(&e.path).unwrap_or_else(|_| PathBuf::from(&e.path)),
            why: e.why,
            class: e.class,
            socket: e.socket,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> LearnContext {
        LearnContext {
            home: "/home/u".into(),
            cwd: "/home/u/proj".into(),
            tmpdir: "/tmp".into(),
            xdg_config_home: "/home/u/.config".into(),
            xdg_cache_home: "/home/u/.cache".into(),
            path_dirs: vec!["/home/u/.nvm/versions/node/v20/bin".into(), "/usr/bin".into(), "/home/u/proj/bin".into()],
            ..LearnContext::default()
        }
    }

    #[test]
    fn companions_extend_a_name_with_a_separator() {
        assert!(is_companion(b".bashrc.d", b".bashrc"));
        assert!(is_companion(b".netrc~", b".netrc"));
        assert!(is_companion(b"shadow-", b"shadow"));
        assert!(!is_companion(b".bashrc", b".bashrc"));
        assert!(!is_companion(b".envrc", b".env"));
        let set = SensitiveSet::new(&ctx());
        assert_eq!(set.inside("/home/u/.gitconfig.lock").map(|e| e.path.as_str()), Some("/home/u/.gitconfig"));
        assert_eq!(set.inside("/home/u/.bashrc.d/evil.sh").map(|e| e.path.as_str()), Some("/home/u/.bashrc"));
        assert!(set.inside("/home/u/.claude.json").is_none(), "only ~/.claude/settings.json is on the list");
        assert!(set.inside("/etc/shadow-").is_some());
    }

    #[test]
    fn path_directories_in_home_are_persistence_but_not_the_workdirs() {
        let set = SensitiveSet::new(&ctx());
        let e = set.inside("/home/u/.nvm/versions/node/v20/bin/npm").expect("on $PATH");
        assert_eq!(e.class, Class::Persistence);
        assert!(set.inside("/home/u/proj/bin/tool").is_none(), "the workdir is the agent's");
        assert_eq!(set.inside("/usr/bin/ls").map(|e| e.class), Some(Class::Persistence), "file permissions decide at run time");
    }

    #[test]
    fn reading_persistence_is_allowed_writing_it_is_not() {
        let set = SensitiveSet::new(&ctx());
        let f = set.forbidden_within("/home/u/.bashrc");
        assert!(f.intersect(Mask::read_class()).is_empty(), "{}", f.label());
        assert!(!f.intersect(Mask::of(crate::profile::rights::FsRight::WriteFile)).is_empty());
        let (above, first) = set.forbidden_above("/home/u");
        assert_eq!(first.map(|e| e.class), Some(Class::Secret), "the secret explains the refusal");
        assert!(!above.contains_all(Mask::of(crate::profile::rights::FsRight::ReadDir)));
        assert!(above.contains_all(Mask::of(crate::profile::rights::FsRight::ReadFile)));
    }

    #[test]
    fn a_glob_that_can_match_a_sensitive_name_is_found() {
        let set = SensitiveSet::new(&ctx());
        for g in [".b?shrc", ".ssh.*", ".ssh*", "*", ".gitconfig.*", ".*rc", ".local"] {
            assert!(set.glob_hit("/home/u", g).is_some(), "{g}");
        }
        for g in [".claude.json", ".claude.json.tmp.*", ".app.json.lock", "notes.txt"] {
            assert!(set.glob_hit("/home/u", g).is_none(), "{g}: {:?}", set.glob_hit("/home/u", g));
        }
        assert!(set.glob_hit("/home/u/.ssh", "known_hosts.*").is_some(), "a directory inside a secret");
        let allowed = SensitiveSet::new(&LearnContext { allow_sensitive: vec!["/home/u/.gitconfig".into()], ..ctx() });
        assert!(allowed.glob_hit("/home/u", ".gitconfig.lock").is_none());
        assert!(allowed.glob_hit("/home/u", ".gitconfig").is_none());
    }
}
