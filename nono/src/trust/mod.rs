//! Trust: signed profiles and sealed audit sessions, with the SSH keys and
//! `allowed_signers` files people already use for git.
//!
//! This module owns the `sshsig` signing and checking ([`sshsig`]), OpenSSH
//! allowed-signers files and revocation lists ([`signers`]), the trust
//! policy ([`policy`]), profile signatures and the policy check `nono run`
//! applies ([`profiles`]) and audit seals ([`audit`]). The audit hash chain
//! itself is the store's (`store::chain`, written as events are stored);
//! this module signs and checks its roots. It sits above `profile`,
//! `store` and `fleet`, below `cli`; it must not print.
//!
//! # Threat model
//! - A profile decides what an agent may do. Anyone who can write the
//!   user's profiles directory (a teammate's shared file, a compromised
//!   tool, an earlier agent run with too wide a grant) could widen it. With
//!   a policy that requires signatures, `nono run` refuses a profile (or
//!   any profile its `extends` pulls in) unless it carries a valid
//!   signature by an allowed signer, checked over the exact bytes the
//!   loader parsed. The policy and signer files themselves must be owned
//!   by their user (or root, for the system's) and writable by no one
//!   else, and `run` refuses a sandbox that could rewrite any of them.
//! - What this does not cover: grants added on the command line
//!   (`--allow`, typed by the user), an attacker who can write the user's
//!   own `trust.toml` or `allowed_signers` (that is the user), one who
//!   holds an allowed private key, and the built-in profiles (as trusted as
//!   the nono binary; `builtins = "refuse"` refuses them).
//! - The audit chain in a file the attacker controls proves only that the
//!   file is self-consistent: the chain is keyless. A seal (a signature
//!   over the root) or a copy pushed to the fleet before the attacker got
//!   to the file is what makes an edit, deletion, insertion, reordering or
//!   truncation provable.

pub mod audit;
pub mod policy;
pub mod profiles;
pub mod signers;
pub mod sshsig;

use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

pub use policy::{Policy, SYSTEM_POLICY};
pub use profiles::{load, sig_path};

/// Everything that can go wrong with signatures and policies.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file is larger than such a file can reasonably be.
    #[error("{path} is larger than {limit} bytes: not a {what}")]
    TooLarge { path: PathBuf, limit: u64, what: &'static str },
    /// A malformed line in an allowed-signers file or revocation list.
    #[error("{}:{line}: {message}", path.display())]
    AllowedSigners { path: PathBuf, line: usize, message: String },
    /// A malformed trust policy.
    #[error("trust policy {}: {message}", path.display())]
    Policy { path: PathBuf, message: String },
    /// A policy, signer or revocation file someone else could have written.
    #[error("refusing the {what} {}: {why}; fix its owner and mode (chmod go-w)", path.display())]
    Insecure { path: PathBuf, what: String, why: String },
    /// A key that cannot be used.
    #[error("cannot use the key {}: {message}", path.display())]
    Key { path: PathBuf, message: String },
    /// An encrypted key and no terminal to ask for its passphrase.
    #[error(
        "the key {} is encrypted and there is no terminal to ask for its passphrase: load it into ssh-agent (`ssh-add {}`) \
         and pass its public key (--key {}.pub), or sign with `ssh-keygen -Y sign -n NAMESPACE -f KEY FILE` yourself \
         (for a profile, after `nono profile sign` has written its canonical form once, or on a file in canonical form) \
         and check with `nono profile verify`",
        path.display(), path.display(), path.display()
    )]
    Encrypted { path: PathBuf },
    /// Making a signature failed.
    #[error("cannot sign: {0}")]
    Sign(String),
    /// A signature file that does not parse.
    #[error("{}: not a usable SSH signature: {message}", path.display())]
    BadSignature { path: PathBuf, message: String },
    /// A signature made for another namespace.
    #[error("{}: the signature is for namespace {found:?}, not {expected:?}", path.display())]
    Namespace { path: PathBuf, found: String, expected: String },
    /// A signature that does not match the signed bytes.
    #[error("{}: the signature does not match the file (it was changed after signing, or signs another file)", path.display())]
    Forged { path: PathBuf },
    /// A profile the policy does not accept.
    #[error("refusing profile {profile}: the trust policy is not met:\n  - {}\n(see `nono profile verify {profile}` and `nono profile trust`)", reasons.join("\n  - "))]
    Refused { profile: String, reasons: Vec<String> },
    /// Built-in profiles are part of the binary: there is nothing to sign.
    #[error("{0} is a built-in profile (part of the nono binary): copy it to a file to sign it")]
    Builtin(String),
    /// A session that cannot be sealed.
    #[error("cannot seal session {session}: {why}")]
    Unsealable { session: i64, why: String },
    #[error(transparent)]
    Profile(#[from] crate::profile::ProfileError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Fleet(#[from] crate::fleet::FleetError),
    #[error(transparent)]
    File(#[from] crate::invoker::fs::FsError),
}

/// Reads at most `limit` bytes of a regular file (never a FIFO or device).
pub(crate) fn read_bounded(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, TrustError> {
    let err = |source| TrustError::Read { path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(err)?;
    if !meta.is_file() {
        return Err(err(std::io::Error::other("not a regular file")));
    }
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path).map_err(err)?;
    if !f.metadata().map_err(err)?.is_file() {
        return Err(err(std::io::Error::other("not a regular file")));
    }
    let mut buf = Vec::new();
    f.take(limit + 1).read_to_end(&mut buf).map_err(err)?;
    if buf.len() as u64 > limit {
        return Err(TrustError::TooLarge { path: path.to_path_buf(), limit, what });
    }
    Ok(buf)
}

/// [`read_bounded`] for small text files (1 MiB).
pub(crate) fn read_small_bytes(path: &Path, what: &'static str) -> Result<Vec<u8>, TrustError> {
    read_bounded(path, 1 << 20, what)
}

/// [`read_small_bytes`] as UTF-8 text.
pub(crate) fn read_small(path: &Path, what: &'static str) -> Result<String, TrustError> {
    String::from_utf8(read_small_bytes(path, what)?)
        .map_err(|_| TrustError::Read { path: path.to_path_buf(), source: std::io::Error::other("not UTF-8 text") })
}

/// Now, in Unix seconds (validity windows of allowed signers).
pub(crate) fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// The chain roots of `ids` for a learned profile's provenance.
pub fn chain_roots(store: &crate::store::Store, ids: &[i64]) -> Result<Vec<crate::profile::ChainRoot>, TrustError> {
    Ok(store.chain_roots(ids)?.into_iter().map(|(session, root)| crate::profile::ChainRoot { session, root }).collect())
}

/// [`chain_roots`] of fleet sessions.
pub fn fleet_chain_roots(fleet: &mut crate::fleet::Fleet, ids: &[i64]) -> Result<Vec<crate::profile::ChainRoot>, TrustError> {
    let mut out = Vec::new();
    for &id in ids {
        if let Some(root) = fleet.chain_meta(id)?.root {
            out.push(crate::profile::ChainRoot { session: id, root: crate::store::chain::hex(&root) });
        }
    }
    Ok(out)
}
