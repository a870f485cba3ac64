//! Credentials the sandbox uses without holding them: where each real
//! secret comes from, the random per-run phantom that stands in for it,
//! and the swap of one for the other in a request header.
//!
//! Secrets are loaded on the proxy's own thread, after it took the
//! invoking user's identity (see `mod.rs`): a `file:` path is opened
//! with the user's rights, never root's (a profile cannot make nono send
//! `/etc/shadow` anywhere), and `keyring` reads the user's keyrings. They
//! live in `Zeroizing` buffers that are wiped when the proxy stops.

use std::fmt::Write as _;
use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;

use zeroize::Zeroizing;

/// Largest secret accepted (an API key is well under 1 KiB).
pub const MAX_SECRET_BYTES: usize = 16 << 10;
/// The phantom's recognisable prefix; 64 hex digits of randomness follow.
pub const PHANTOM_PREFIX: &str = "nono-phantom-";

/// A secret's bytes, wiped on drop.
pub type Secret = Zeroizing<Vec<u8>>;

/// Where a secret comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// The value of the invoking environment's variable, taken by the
    /// caller before the proxy started (the variable name is for errors).
    Env { var: String, value: Option<Secret> },
    /// A file owned by the user, not readable by group or others.
    File(PathBuf),
    /// The Linux kernel keyring: a `user` key with this description,
    /// searched from the session keyring, then the user keyring.
    Keyring(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Env { var, .. } => write!(f, "env:{var}"),
            Source::File(p) => write!(f, "file:{}", p.display()),
            Source::Keyring(d) => write!(f, "keyring:{d}"),
        }
    }
}

/// One credential the proxy injects.
#[derive(Clone, Debug)]
pub struct CredentialSpec {
    /// Its name in the profile (for the audit trail and errors).
    pub name: String,
    /// The upstream's host name (HTTPS).
    pub domain: String,
    /// The upstream's port (443).
    pub port: u16,
    /// The request header that carries it (`x-api-key`, `authorization`).
    pub header: http::HeaderName,
    pub source: Source,
}

/// Why a credential could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("credential {name}: the variable {var} is not set in nono's environment")]
    EnvUnset { name: String, var: String },
    #[error("credential {name}: reading {path}")]
    Read {
        name: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "credential {name}: {path} must be a regular file owned by uid {uid} and not readable by group or others (chmod 600); it is {what}"
    )]
    Unsafe { name: String, path: String, uid: u32, what: String },
    #[error(
        "credential {name}: no `user` key {desc:?} in the session or user keyring ({why}); add it with `keyctl padd user {desc} @u < keyfile` in the same login session, or use from: \"file:PATH\""
    )]
    Keyring { name: String, desc: String, why: String },
    #[error("credential {name}: the secret is empty, longer than {MAX_SECRET_BYTES} bytes, or holds a control character")]
    BadValue { name: String },
    #[error("reading random bytes for a phantom token: {0}")]
    Random(String),
}

/// A loaded credential: the spec, its real value and its phantom.
pub struct Loaded {
    pub spec: CredentialSpec,
    pub secret: Secret,
    pub phantom: String,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded").field("spec", &self.spec).field("secret", &"<redacted>").finish_non_exhaustive()
    }
}

/// A fresh phantom: the prefix and 256 random bits in hex.
pub fn phantom() -> Result<String, CredentialError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| CredentialError::Random(e.to_string()))?;
    let mut s = String::with_capacity(PHANTOM_PREFIX.len() + 64);
    s.push_str(PHANTOM_PREFIX);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    Ok(s)
}

/// Loads `spec`'s secret as the current thread's user and gives it a phantom.
pub fn load(spec: CredentialSpec) -> Result<Loaded, CredentialError> {
    let name = spec.name.clone();
    let raw: Secret = match &spec.source {
        Source::Env { var, value } => {
            value.clone().ok_or_else(|| CredentialError::EnvUnset { name: name.clone(), var: var.clone() })?
        }
        Source::File(path) => read_private_file(&name, path)?,
        Source::Keyring(desc) => read_keyring(&name, desc)?,
    };
    let secret = trim(&raw);
    let ok = !secret.is_empty()
        && secret.len() <= MAX_SECRET_BYTES
        && secret.iter().all(|b| *b == b'\t' || (*b >= 0x20 && *b != 0x7f));
    if !ok {
        return Err(CredentialError::BadValue { name });
    }
    Ok(Loaded { spec, secret, phantom: phantom()? })
}

/// Without surrounding whitespace (a file usually ends in a newline).
fn trim(raw: &[u8]) -> Secret {
    let start = raw.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(raw.len());
    let end = raw.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    Zeroizing::new(raw[start..end].to_vec())
}

fn read_private_file(name: &str, path: &std::path::Path) -> Result<Secret, CredentialError> {
    let shown = path.display().to_string();
    let read_err = |source| CredentialError::Read { name: name.to_owned(), path: shown.clone(), source };
    let mut f = std::fs::File::open(path).map_err(read_err)?;
    let meta = f.metadata().map_err(read_err)?;
    // SAFETY: geteuid has no preconditions; on this thread it is the
    // user nono runs the command as.
    let uid = u32::try_from(unsafe { libc::syscall(libc::SYS_geteuid) }).unwrap_or(u32::MAX);
    let what = if !meta.is_file() {
        Some("not a regular file".to_owned())
    } else if meta.uid() != uid {
        Some(format!("owned by uid {}", meta.uid()))
    } else if meta.mode() & 0o077 != 0 {
        Some(format!("mode {:o}", meta.mode() & 0o7777))
    } else {
        None
    };
    if let Some(what) = what {
        return Err(CredentialError::Unsafe { name: name.to_owned(), path: shown, uid, what });
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(256));
    let limit = u64::try_from(MAX_SECRET_BYTES + 1).unwrap_or(u64::MAX);
    (&mut f).take(limit).read_to_end(&mut buf).map_err(read_err)?;
    Ok(buf)
}

fn read_keyring(name: &str, desc: &str) -> Result<Secret, CredentialError> {
    use linux_keyutils::{KeyRing, KeyRingIdentifier};
    let err = |why: String| CredentialError::Keyring { name: name.to_owned(), desc: desc.to_owned(), why };
    let mut why = Vec::new();
    for ring in [KeyRingIdentifier::Session, KeyRingIdentifier::User] {
        let found = KeyRing::from_special_id(ring, false).and_then(|r| r.search(desc)).and_then(|k| k.read_to_vec());
        match found {
            Ok(v) => return Ok(Zeroizing::new(v)),
            Err(e) => why.push(format!("{ring:?}: {e:?}")),
        }
    }
    Err(err(why.join(", ")))
}

/// Compares without an early exit, so the time taken says nothing about
/// how much of a guess was right.
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// If `value` is exactly the phantom or `SCHEME <phantom>` (`Bearer`),
/// the same with the secret in its place.
#[must_use]
pub fn swap(value: &[u8], phantom: &str, secret: &[u8]) -> Option<Secret> {
    let (prefix, token) = match value.iter().rposition(|b| *b == b' ') {
        Some(i) => value.split_at(i + 1),
        None => (&[][..], value),
    };
    if !constant_time_eq(token, phantom.as_bytes()) {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(prefix.len() + secret.len()));
    out.extend_from_slice(prefix);
    out.extend_from_slice(secret);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn spec(source: Source) -> CredentialSpec {
        CredentialSpec {
            name: "t".into(),
            domain: "api.example.com".into(),
            port: 443,
            header: http::HeaderName::from_static("x-api-key"),
            source,
        }
    }

    #[test]
    fn phantoms_are_fresh_and_swap_only_exact_tokens() {
        let a = phantom().expect("random");
        let b = phantom().expect("random");
        assert_ne!(a, b);
        assert_eq!(a.len(), PHANTOM_PREFIX.len() + 64);
        assert_eq!(swap(a.as_bytes(), &a, b"sk-real").expect("swapped").as_slice(), b"sk-real");
        let bearer = format!("Bearer {a}");
        assert_eq!(swap(bearer.as_bytes(), &a, b"sk-real").expect("swapped").as_slice(), b"Bearer sk-real");
        assert!(swap(b.as_bytes(), &a, b"sk-real").is_none());
        assert!(swap(format!("{a}x").as_bytes(), &a, b"sk-real").is_none());
        assert!(swap(format!("x{a}").as_bytes(), &a, b"sk-real").is_none());
    }

    #[test]
    fn files_must_be_private_and_are_trimmed() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("key");
        std::fs::write(&p, "  sk-test-123\n").expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = load(spec(Source::File(p.clone()))).expect_err("0644 refused");
        assert!(e.to_string().contains("mode 644"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let l = load(spec(Source::File(p))).expect("loaded");
        assert_eq!(l.secret.as_slice(), b"sk-test-123");
        assert!(!format!("{l:?}").contains("sk-test"));
        assert!(load(spec(Source::File(dir.path().to_owned()))).is_err());
    }

    #[test]
    fn env_values_must_be_set_and_clean() {
        let unset = load(spec(Source::Env { var: "X".into(), value: None })).expect_err("unset");
        assert!(unset.to_string().contains("not set"));
        let ctl = load(spec(Source::Env { var: "X".into(), value: Some(Zeroizing::new(b"a\r\nb".to_vec())) }));
        assert!(matches!(ctl, Err(CredentialError::BadValue { .. })));
        let ok = load(spec(Source::Env { var: "X".into(), value: Some(Zeroizing::new(b"sk".to_vec())) })).expect("ok");
        assert_eq!(ok.secret.as_slice(), b"sk");
    }

    #[test]
    fn keyring_keys_are_found_in_the_session_keyring() {
        use linux_keyutils::{KeyRing, KeyRingIdentifier};
        // A thread's own keyring is not searched; the session keyring is.
        let Ok(ring) = KeyRing::from_special_id(KeyRingIdentifier::Session, true) else {
            eprintln!("skip: no session keyring here");
            return;
        };
        let desc = format!("nono-test:{}", std::process::id());
        let key = ring.add_key(&desc, b"sk-from-keyring").expect("add key");
        let l = load(spec(Source::Keyring(desc.clone()))).expect("loaded");
        assert_eq!(l.secret.as_slice(), b"sk-from-keyring");
        let _ = key.invalidate();
        let e = load(spec(Source::Keyring(format!("{desc}-missing")))).expect_err("missing");
        assert!(e.to_string().contains("keyctl padd"), "{e}");
    }
}
