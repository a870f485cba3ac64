//! The trust policy: which profiles must be signed, and by whom; who may
//! seal audit sessions. Two files, both optional:
//!
//! - `/etc/nono/trust.toml`, the system's: root's, and refused (an error,
//!   not ignored) unless it, `/etc/nono` and every file it names are owned
//!   by root and writable by no one else;
//! - `$XDG_CONFIG_HOME/nono/trust.toml` (else `~/.config/nono/trust.toml`),
//!   the user's (the invoking user's under sudo): refused unless owned by
//!   that user or root and writable by no one else, like the files it names.
//!
//! ```toml
//! [profiles]
//! require = "all"                      # or "none" (the default), or patterns:
//! # require = ["claude", "team-*", "~/src/team/profiles/**"]
//! allowed_signers = "~/.config/nono/allowed_signers"
//! principals = ["alice@example.com"]   # optional: who may sign (default: any line of the file)
//! revoked = ["~/.config/nono/revoked_keys"]  # optional: public keys never accepted
//! builtins = "trust"                   # or "refuse"
//!
//! [audit]
//! allowed_signers = "/etc/nono/auditors"   # who may seal sessions (default: [profiles]')
//! principals = ["audit@example.com"]
//! require_seal = true                  # `audit verify` fails on an unsealed session
//! ```
//!
//! A pattern without `/` matches a profile file's name (its stem:
//! `claude` for `.../claude.json`); one with `/` (absolute, or `~/...` in
//! the user's file) is a glob on its canonical path (`*` within a
//! component, `**` across).
//!
//! How the two combine (the stricter wins, so the user's file can only add):
//! - a profile must be signed if either file requires it, and its one
//!   signature must satisfy *each* file that requires it (that file's
//!   allowed signers and principals);
//! - a file that requires any profile of an `extends` graph requires every
//!   profile file in it (so an unsigned parent cannot widen a signed
//!   profile, nor an unsigned child run a signed one with more);
//! - revocation lists of both files apply to every signature;
//! - built-in profiles (part of the nono binary, so as trusted as nono
//!   itself) are refused if either file says `builtins = "refuse"`;
//! - `require_seal` holds if either file sets it; a seal must be made by a
//!   signer of every file that names audit signers.
//!
//! A file that requires signatures but names no allowed signers is an
//! error: nono fails closed rather than guess.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::TrustError;
use super::signers::{AllowedSigners, Revoked};
use crate::profile::Vars;

/// Where the system's policy lives.
pub const SYSTEM_POLICY: &str = "/etc/nono/trust.toml";

/// Where a policy came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    System,
    User,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    profiles: Option<ProfilesSection>,
    #[serde(default)]
    audit: Option<AuditSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfilesSection {
    #[serde(default)]
    require: Option<RequireSpec>,
    #[serde(default)]
    allowed_signers: Option<String>,
    #[serde(default)]
    principals: Vec<String>,
    #[serde(default)]
    revoked: Option<OneOrMany>,
    #[serde(default)]
    builtins: Builtins,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditSection {
    #[serde(default)]
    allowed_signers: Option<String>,
    #[serde(default)]
    principals: Vec<String>,
    #[serde(default)]
    revoked: Option<OneOrMany>,
    #[serde(default)]
    require_seal: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RequireSpec {
    Word(String),
    Patterns(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// Whether built-in profiles may be used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Builtins {
    /// They are part of the nono binary: as trusted as nono itself.
    #[default]
    Trust,
    Refuse,
}

/// One `require` pattern.
#[derive(Clone, Debug)]
pub enum Pattern {
    /// Matches a profile file's name (its stem).
    Name { spelled: String, glob: globset::GlobMatcher },
    /// Matches a profile file's canonical path.
    Path { spelled: String, glob: globset::GlobMatcher },
}

impl Pattern {
    /// As written in the policy.
    #[must_use]
    pub fn spelled(&self) -> &str {
        match self {
            Pattern::Name { spelled, .. } | Pattern::Path { spelled, .. } => spelled,
        }
    }
}

/// Which profiles a layer requires to be signed.
#[derive(Clone, Debug)]
pub enum Require {
    None,
    All,
    Matching(Vec<Pattern>),
}

impl Require {
    /// Whether a profile file (`canonical` path) must be signed.
    #[must_use]
    pub fn covers(&self, canonical: &Path) -> bool {
        match self {
            Require::None => false,
            Require::All => true,
            Require::Matching(patterns) => {
                let name = canonical.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
                patterns.iter().any(|p| match p {
                    Pattern::Name { glob, .. } => glob.is_match(name),
                    Pattern::Path { glob, .. } => glob.is_match(canonical),
                })
            }
        }
    }

    /// For display: `all`, `none`, or the patterns.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Require::None => "none".to_owned(),
            Require::All => "all".to_owned(),
            Require::Matching(p) => p.iter().map(Pattern::spelled).collect::<Vec<_>>().join(", "),
        }
    }
}

/// Who may sign: an allowed-signers file and, optionally, the identities
/// (principals) accepted from it.
#[derive(Clone, Debug)]
pub struct Signers {
    pub file: AllowedSigners,
    /// Empty: any principal of a matching line.
    pub principals: Vec<String>,
}

/// One policy file, read and checked.
#[derive(Clone, Debug)]
pub struct Layer {
    pub scope: Scope,
    pub path: PathBuf,
    pub require: Require,
    pub profile_signers: Option<Signers>,
    pub builtins: Builtins,
    pub audit_signers: Option<Signers>,
    pub require_seal: bool,
}

/// The policy in force: the layers found (system first), the revoked keys
/// of all of them, and every file that went into it.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub layers: Vec<Layer>,
    pub revoked: Revoked,
    /// Every file read: policies, allowed signers, revocation lists.
    pub files: Vec<PathBuf>,
    /// Policy files looked for and not found.
    pub absent: Vec<PathBuf>,
}

/// Who nono acts for, for the ownership checks of the user's files.
fn acting_uid() -> u32 {
    crate::invoker::invoker().map_or_else(|| nix::unistd::getuid().as_raw(), |id| id.uid)
}

impl Policy {
    /// The policy in force for a user whose paths are `vars`.
    pub fn load(vars: &Vars) -> Result<Policy, TrustError> {
        Policy::load_from(Path::new(SYSTEM_POLICY), &user_policy_path(vars), &vars.home)
    }

    /// [`Policy::load`] from explicit paths (tests, `profile trust`).
    pub fn load_from(system: &Path, user: &Path, home: &Path) -> Result<Policy, TrustError> {
        let mut policy = Policy::default();
        for (scope, path) in [(Scope::System, system), (Scope::User, user)] {
            match std::fs::symlink_metadata(path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    policy.absent.push(path.to_path_buf());
                    continue;
                }
                Err(source) => return Err(TrustError::Read { path: path.to_path_buf(), source }),
                Ok(_) => {}
            }
            let layer = read_layer(scope, path, home, &mut policy)?;
            policy.layers.push(layer);
        }
        Ok(policy)
    }

    /// No policy file exists: nothing is required.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The layers that require `canonical` to be signed.
    #[must_use]
    pub fn requiring(&self, canonical: &Path) -> Vec<&Layer> {
        self.layers.iter().filter(|l| l.require.covers(canonical)).collect()
    }

    /// The layer that refuses built-in profiles, if one does.
    #[must_use]
    pub fn refusing_builtins(&self) -> Option<&Layer> {
        self.layers.iter().find(|l| l.builtins == Builtins::Refuse)
    }

    /// The layers that name audit signers.
    #[must_use]
    pub fn audit_signers(&self) -> Vec<(&Layer, &Signers)> {
        self.layers.iter().filter_map(|l| l.audit_signers.as_ref().map(|s| (l, s))).collect()
    }

    /// The layer that requires seals, if one does.
    #[must_use]
    pub fn requiring_seals(&self) -> Option<&Layer> {
        self.layers.iter().find(|l| l.require_seal)
    }
}

/// `$XDG_CONFIG_HOME/nono/trust.toml` of the user `vars` describe.
#[must_use]
pub fn user_policy_path(vars: &Vars) -> PathBuf {
    vars.xdg_config_home.join("nono/trust.toml")
}

/// Refuses a file (or directory) that someone other than its rightful
/// owner could have written.
fn check_owner(path: &Path, scope: Scope, what: &str) -> Result<(), TrustError> {
    let meta = std::fs::metadata(path).map_err(|source| TrustError::Read { path: path.to_path_buf(), source })?;
    let uid = acting_uid();
    let (owner_ok, owners) = match scope {
        Scope::System => (meta.uid() == 0, "root".to_owned()),
        Scope::User => (meta.uid() == uid || meta.uid() == 0, format!("uid {uid} or root")),
    };
    let insecure = |why: String| TrustError::Insecure { path: path.to_path_buf(), what: what.to_owned(), why };
    if !owner_ok {
        return Err(insecure(format!("it is owned by uid {}, not {owners}", meta.uid())));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(insecure(format!("it is writable by its group or others (mode {:o})", meta.mode() & 0o7777)));
    }
    Ok(())
}

/// A path named in a policy file: absolute, `~/...` (the user's file
/// only), or relative to the policy file's directory.
fn policy_path(spelled: &str, policy: &Path, scope: Scope, home: &Path) -> Result<PathBuf, TrustError> {
    let bad = |message: String| TrustError::Policy { path: policy.to_path_buf(), message };
    if let Some(rest) = spelled.strip_prefix("~/") {
        if scope == Scope::System {
            return Err(bad(format!("{spelled:?}: `~` has no meaning in the system policy")));
        }
        return Ok(home.join(rest));
    }
    let p = Path::new(spelled);
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    if spelled.is_empty() {
        return Err(bad("an empty path".to_owned()));
    }
    Ok(policy.parent().unwrap_or(Path::new("/")).join(p))
}

fn read_layer(scope: Scope, path: &Path, home: &Path, policy: &mut Policy) -> Result<Layer, TrustError> {
    if scope == Scope::System
        && let Some(dir) = path.parent()
    {
        check_owner(dir, scope, "the directory of the system trust policy")?;
    }
    check_owner(path, scope, "trust policy")?;
    let text = super::read_small(path, "trust policy")?;
    policy.files.push(path.to_path_buf());
    let file: PolicyFile =
        toml::from_str(&text).map_err(|e| TrustError::Policy { path: path.to_path_buf(), message: e.to_string() })?;
    let bad = |message: String| TrustError::Policy { path: path.to_path_buf(), message };
    let profiles = file.profiles.unwrap_or_default();
    let audit = file.audit.unwrap_or_default();

    let require = match profiles.require {
        None => Require::None,
        Some(RequireSpec::Word(w)) if w == "all" => Require::All,
        Some(RequireSpec::Word(w)) if w == "none" => Require::None,
        Some(RequireSpec::Word(w)) => {
            return Err(bad(format!("[profiles] require = {w:?}: expected \"all\", \"none\" or a list of patterns")));
        }
        Some(RequireSpec::Patterns(list)) => {
            Require::Matching(list.iter().map(|p| pattern(p, path, scope, home)).collect::<Result<Vec<_>, _>>()?)
        }
    };

    let signers = |spelled: Option<&String>, principals: &[String], policy: &mut Policy| -> Result<Option<Signers>, TrustError> {
        let Some(spelled) = spelled else { return Ok(None) };
        let p = policy_path(spelled, path, scope, home)?;
        check_owner(&p, scope, "allowed signers file")?;
        let file = AllowedSigners::read(&p)?;
        policy.files.push(p);
        if principals.iter().any(String::is_empty) {
            return Err(bad("an empty principal".to_owned()));
        }
        Ok(Some(Signers { file, principals: principals.to_vec() }))
    };
    let profile_signers = signers(profiles.allowed_signers.as_ref(), &profiles.principals, policy)?;
    if !matches!(require, Require::None) && profile_signers.is_none() {
        return Err(bad("[profiles] requires signatures but names no allowed_signers file".to_owned()));
    }
    if profile_signers.is_none() && !profiles.principals.is_empty() {
        return Err(bad("[profiles] principals without allowed_signers".to_owned()));
    }
    let audit_signers = match audit.allowed_signers.as_ref() {
        Some(s) => signers(Some(s), &audit.principals, policy)?,
        None if !audit.principals.is_empty() => {
            return Err(bad("[audit] principals without allowed_signers".to_owned()));
        }
        // Seals default to the profile signers.
        None => profile_signers.clone(),
    };
    if audit.require_seal && audit_signers.is_none() {
        return Err(bad("[audit] require_seal needs allowed_signers (in [audit] or [profiles])".to_owned()));
    }
    for spelled in profiles.revoked.map(OneOrMany::into_vec).into_iter().chain(audit.revoked.map(OneOrMany::into_vec)).flatten() {
        let p = policy_path(&spelled, path, scope, home)?;
        check_owner(&p, scope, "revocation list")?;
        policy.revoked.read_into(&p)?;
        policy.files.push(p);
    }
    Ok(Layer {
        scope,
        path: path.to_path_buf(),
        require,
        profile_signers,
        builtins: profiles.builtins,
        audit_signers,
        require_seal: audit.require_seal,
    })
}

/// Parses one `require` pattern.
fn pattern(spelled: &str, policy: &Path, scope: Scope, home: &Path) -> Result<Pattern, TrustError> {
    let bad = |message: String| TrustError::Policy { path: policy.to_path_buf(), message };
    if spelled.is_empty() {
        return Err(bad("an empty pattern in require".to_owned()));
    }
    let is_path = spelled.contains('/');
    let text = if is_path {
        let p = policy_path(spelled, policy, scope, home)?;
        if !Path::new(spelled).is_absolute() && !spelled.starts_with("~/") {
            return Err(bad(format!("require pattern {spelled:?}: a path pattern must be absolute or start with ~/")));
        }
        p.to_string_lossy().into_owned()
    } else {
        spelled.to_owned()
    };
    let glob = globset::GlobBuilder::new(&text)
        .literal_separator(true)
        .build()
        .map_err(|e| bad(format!("require pattern {spelled:?}: {e}")))?
        .compile_matcher();
    Ok(if is_path {
        Pattern::Path { spelled: spelled.to_owned(), glob }
    } else {
        Pattern::Name { spelled: spelled.to_owned(), glob }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO+prPqwnjNf1DJeajBJSvvfBzLqLh+zM0bXgv8TWFNI";

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).expect("chmod");
    }

    #[test]
    fn patterns_match_names_and_canonical_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        let user = home.join(".config/nono/trust.toml");
        write(&home.join(".config/nono/allowed_signers"), &format!("a@x {KEY}\n"));
        write(&user, "[profiles]\nrequire = [\"team-*\", \"~/shared/**/*.json\"]\nallowed_signers = \"allowed_signers\"\n");
        let p = Policy::load_from(&dir.path().join("none.toml"), &user, &home).expect("loads");
        assert_eq!(p.layers.len(), 1);
        assert_eq!(p.absent.len(), 1);
        assert!(!p.requiring(Path::new("/x/team-a.json")).is_empty());
        assert!(p.requiring(Path::new("/x/other.json")).is_empty());
        assert!(!p.requiring(&home.join("shared/a/b/c.json")).is_empty());
        assert!(p.requiring(&home.join("elsewhere/c.json")).is_empty());
        assert_eq!(p.files.len(), 2);
    }

    #[test]
    fn bad_policies_fail_closed_with_the_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        let user = home.join(".config/nono/trust.toml");
        write(&home.join(".config/nono/allowed_signers"), &format!("a@x {KEY}\n"));
        for (text, needle) in [
            ("[profiles]\nrequire = \"all\"\n", "names no allowed_signers"),
            ("[profiles]\nrequire = \"some\"\nallowed_signers = \"allowed_signers\"\n", "expected \"all\""),
            ("[profiles]\nrequire = [\"rel/path\"]\nallowed_signers = \"allowed_signers\"\n", "absolute"),
            ("[profiles]\nrequre = \"all\"\n", "unknown field"),
            ("[audit]\nrequire_seal = true\n", "require_seal needs"),
            ("[profiles]\nrequire = \"all\"\nallowed_signers = \"missing\"\n", "missing"),
            ("[profiles]\nbuiltins = \"maybe\"\n", "unknown variant"),
        ] {
            write(&user, text);
            let err = Policy::load_from(Path::new("/nonexistent/trust.toml"), &user, &home).expect_err(text).to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        // A policy others may write is refused, not ignored.
        write(&user, "[profiles]\nrequire = \"none\"\n");
        std::fs::set_permissions(&user, std::os::unix::fs::PermissionsExt::from_mode(0o666)).expect("chmod");
        let err = Policy::load_from(Path::new("/nonexistent/trust.toml"), &user, &home).expect_err("0666").to_string();
        assert!(err.contains("writable by its group or others"), "{err}");
    }
}
