//! Signed profiles: signing a profile file in its canonical form, checking
//! each profile of an `extends` graph against the policy, and loading a
//! profile for `nono run`/`wrap` only when the policy accepts it.
//!
//! A profile file `P` is signed by `P.sig` beside it (beside the file a
//! link points to, for a linked profile): an armored `sshsig` signature,
//! namespace [`PROFILE_NAMESPACE`], over `P`'s exact bytes. `nono profile
//! sign` first rewrites `P` in its canonical form (parsed and written back
//! as `nono learn` writes profiles), then signs those bytes, so `ssh-keygen
//! -Y verify -n nono-profile -s P.sig < P` checks the file as it lies on
//! disk. Verification checks the bytes the profile loader parsed, not a
//! second read, so a file swapped in between cannot slip through.

use std::path::{Path, PathBuf};

use super::policy::{Layer, Policy};
use super::signers::Refusal;
use super::sshsig::{self, PROFILE_NAMESPACE, Signer};
use super::{TrustError, now_secs};
use crate::profile::{self, Link, Profile, Resolved, Vars};

/// Largest signature file read.
const MAX_SIG_BYTES: u64 = 64 << 10;

/// The signature file of a profile file.
#[must_use]
pub fn sig_path(profile: &Path) -> PathBuf {
    let mut s = profile.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

/// One profile of a graph, as read.
#[derive(Clone, Debug)]
pub enum Source {
    File { path: PathBuf, canonical: PathBuf, text: String },
    Builtin(String),
}

impl Source {
    fn from_link(l: Link<'_>) -> Source {
        match l {
            Link::File { path, canonical, text } => {
                Source::File { path: path.to_path_buf(), canonical: PathBuf::from(canonical), text: text.to_owned() }
            }
            Link::Builtin(name) => Source::Builtin(name.to_owned()),
        }
    }

    /// For messages: the path, or `built-in NAME`.
    #[must_use]
    pub fn name(&self) -> String {
        match self {
            Source::File { path, .. } => path.display().to_string(),
            Source::Builtin(n) => format!("built-in {n}"),
        }
    }
}

/// Who signed a profile (or a seal).
#[derive(Clone, Debug, serde::Serialize)]
pub struct SignedBy {
    /// The principals of the allowed-signers line that accepted it.
    pub principals: String,
    /// The allowed-signers file and line.
    pub file: PathBuf,
    pub line: usize,
    /// `ALGORITHM SHA256:...`.
    pub key: String,
}

/// The verdict on one profile of a graph.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Verdict {
    /// A built-in: part of the binary.
    Builtin { refused_by: Option<PathBuf> },
    /// Signed, and accepted by every policy that requires it.
    Accepted { by: Vec<SignedBy>, required_by: Vec<PathBuf> },
    /// Not required by any policy (`signature` says what is beside it).
    NotRequired { signature: String },
    /// Required and refused.
    Refused { reason: String, required_by: Vec<PathBuf> },
}

impl Verdict {
    #[must_use]
    pub fn refused(&self) -> bool {
        matches!(self, Verdict::Refused { .. } | Verdict::Builtin { refused_by: Some(_) })
    }
}

/// A profile of a graph and its verdict.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LinkReport {
    pub profile: String,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// Reads a profile's signature file, if there is one.
fn read_sig(sig: &Path) -> Result<Option<String>, TrustError> {
    match std::fs::symlink_metadata(sig) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(TrustError::Read { path: sig.to_path_buf(), source }),
        Ok(_) => {}
    }
    let bytes = super::read_bounded(sig, MAX_SIG_BYTES, "signature")?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| TrustError::BadSignature { path: sig.to_path_buf(), message: "not text".into() })
}

/// Checks `text` (the profile file `canonical`'s bytes) against its
/// signature for every layer in `layers`; `Ok` names the signers.
fn check_signed(policy: &Policy, layers: &[&Layer], canonical: &Path, text: &str, now: i64) -> Result<Vec<SignedBy>, String> {
    let sig_file = sig_path(canonical);
    let armored = match read_sig(&sig_file) {
        Ok(Some(a)) => a,
        Ok(None) => return Err(format!("unsigned: there is no {}", sig_file.display())),
        Err(e) => return Err(e.to_string()),
    };
    let sig = sshsig::parse(&armored, &sig_file).map_err(|e| e.to_string())?;
    sshsig::verify(&sig, PROFILE_NAMESPACE, text.as_bytes(), &sig_file).map_err(|e| e.to_string())?;
    let key = sig.public_key();
    if let Some((file, line)) = policy.revoked.find(key) {
        return Err(format!("signed by {}, which is revoked ({}:{line})", sshsig::describe(key), file.display()));
    }
    let mut by = Vec::new();
    for layer in layers {
        let Some(signers) = &layer.profile_signers else {
            return Err(format!("{} requires a signature but names no allowed signers", layer.path.display()));
        };
        match signers.file.allows(key, PROFILE_NAMESPACE, &signers.principals, now) {
            Ok(e) => by.push(SignedBy {
                principals: e.principals.clone(),
                file: signers.file.path.clone(),
                line: e.line,
                key: sshsig::describe(key),
            }),
            Err(r) => {
                let who = if signers.principals.is_empty() {
                    String::new()
                } else {
                    format!(" as {}", signers.principals.join(" or "))
                };
                return Err(format!(
                    "signed by {}, not accepted by {}{who} (required by {}): {}",
                    sshsig::describe(key),
                    signers.file.path.display(),
                    layer.path.display(),
                    refusal_hint(&r)
                ));
            }
        }
    }
    Ok(by)
}

fn refusal_hint(r: &Refusal) -> String {
    match r {
        Refusal::UnknownKey => "the key is not listed".to_owned(),
        other => other.to_string(),
    }
}

/// The verdicts on every profile of a graph (`sources`, as read), under
/// `policy` at time `now`: see the policy module for the rules.
#[must_use]
pub fn judge(policy: &Policy, sources: &[Source], now: i64) -> Vec<LinkReport> {
    // A layer that requires any file of the graph requires them all.
    let graph_layers: Vec<&Layer> = policy
        .layers
        .iter()
        .filter(|l| sources.iter().any(|s| matches!(s, Source::File { canonical, .. } if l.require.covers(canonical))))
        .collect();
    sources
        .iter()
        .map(|s| {
            let verdict = match s {
                Source::Builtin(_) => Verdict::Builtin { refused_by: policy.refusing_builtins().map(|l| l.path.clone()) },
                Source::File { canonical, text, .. } if !graph_layers.is_empty() => {
                    let required_by = graph_layers.iter().map(|l| l.path.clone()).collect();
                    match check_signed(policy, &graph_layers, canonical, text, now) {
                        Ok(by) => Verdict::Accepted { by, required_by },
                        Err(reason) => Verdict::Refused { reason, required_by },
                    }
                }
                Source::File { canonical, text, .. } => Verdict::NotRequired { signature: describe_signature(canonical, text) },
            };
            LinkReport { profile: s.name(), verdict }
        })
        .collect()
}

/// What the signature beside an unrequired profile says, for `verify`.
fn describe_signature(canonical: &Path, text: &str) -> String {
    let sig_file = sig_path(canonical);
    match read_sig(&sig_file) {
        Ok(None) => "unsigned".to_owned(),
        Err(e) => e.to_string(),
        Ok(Some(a)) => match sshsig::parse(&a, &sig_file)
            .and_then(|sig| sshsig::verify(&sig, PROFILE_NAMESPACE, text.as_bytes(), &sig_file).map(|()| sig))
        {
            Ok(sig) => {
                format!("a valid signature by {} (not checked against allowed signers)", sshsig::describe(sig.public_key()))
            }
            Err(e) => e.to_string(),
        },
    }
}

/// Loads `spec` with its `extends` graph, keeping every profile's bytes.
pub fn load_sources(spec: &str, vars: &Vars) -> Result<(Resolved, Vec<Source>), TrustError> {
    let mut sources = Vec::new();
    let resolved = profile::load_observed(spec, vars, &mut |l| sources.push(Source::from_link(l)))?;
    Ok((resolved, sources))
}

/// Loads a profile for `nono run`/`wrap`: resolved as `profile::load`
/// does, then refused unless the policy in force accepts every profile of
/// its graph. The files that vouched for it (policies, allowed signers,
/// revocation lists, signatures) join `Resolved::files`, so `run` also
/// refuses a sandbox that could rewrite them.
pub fn load(spec: &str, vars: &Vars) -> Result<Resolved, TrustError> {
    let policy = Policy::load(vars)?;
    let (mut resolved, sources) = load_sources(spec, vars)?;
    if policy.is_empty() {
        return Ok(resolved);
    }
    let reports = judge(&policy, &sources, now_secs());
    let refused: Vec<String> = reports
        .iter()
        .filter(|r| r.verdict.refused())
        .map(|r| match &r.verdict {
            Verdict::Refused { reason, .. } => format!("{}: {reason}", r.profile),
            Verdict::Builtin { refused_by: Some(by), .. } => {
                format!("{}: built-in profiles are refused by {}", r.profile, by.display())
            }
            _ => r.profile.clone(),
        })
        .collect();
    if !refused.is_empty() {
        return Err(TrustError::Refused { profile: spec.to_owned(), reasons: refused });
    }
    resolved.files.extend(policy.files.iter().cloned());
    for s in &sources {
        if let Source::File { canonical, .. } = s {
            let sig = sig_path(canonical);
            if sig.exists() {
                resolved.files.push(sig);
            }
        }
    }
    Ok(resolved)
}

/// What `sign` did.
#[derive(Debug)]
pub struct Signed {
    pub profile: PathBuf,
    pub signature: PathBuf,
    /// The file was rewritten in its canonical form first.
    pub canonicalized: bool,
    pub key: String,
}

/// Finds the profile file `spec` names (a path, or a name in the user's
/// profiles directory; built-ins cannot be signed).
pub fn locate_file(spec: &str, vars: &Vars) -> Result<PathBuf, TrustError> {
    let (_, sources) = load_sources(spec, vars)?;
    match sources.into_iter().next() {
        Some(Source::File { canonical, .. }) => Ok(canonical),
        Some(Source::Builtin(name)) => Err(TrustError::Builtin(name)),
        None => Err(TrustError::Policy { path: PathBuf::from(spec), message: "no profile".into() }),
    }
}

/// Signs profile `spec`: validates it (with its `extends`), rewrites it in
/// canonical form, signs those bytes and writes `P.sig` beside it, both
/// as the invoking user and never through a link.
pub fn sign(spec: &str, vars: &Vars, signer: &Signer) -> Result<Signed, TrustError> {
    let path = locate_file(spec, vars)?;
    let text = super::read_bounded(&path, crate::profile::MAX_PROFILE_BYTES, "profile")?;
    let text = String::from_utf8(text)
        .map_err(|_| TrustError::Read { path: path.clone(), source: std::io::Error::from(std::io::ErrorKind::InvalidData) })?;
    let parsed = Profile::parse(&text, &path.display().to_string())?;
    let canonical = parsed.to_json_pretty().map_err(|e| TrustError::Sign(e.to_string()))?;
    let canonicalized = canonical != text;
    let armored = sshsig::sign(signer, PROFILE_NAMESPACE, canonical.as_bytes())?;
    if canonicalized {
        crate::invoker::fs::write_atomic(&path, canonical.as_bytes(), 0o600)?;
    }
    let signature = sig_path(&path);
    crate::invoker::fs::write_atomic(&signature, armored.as_bytes(), 0o644)?;
    Ok(Signed { profile: path, signature, canonicalized, key: sshsig::describe(&signer.public()) })
}
