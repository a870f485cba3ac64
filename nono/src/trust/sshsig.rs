//! SSH signatures in OpenSSH's `sshsig` format (PROTOCOL.sshsig), the
//! format `ssh-keygen -Y sign/verify` and git use, through `ssh-key`.
//!
//! Namespaces: [`PROFILE_NAMESPACE`] for profiles, [`AUDIT_NAMESPACE`] for
//! audit seals; a signature made for one is refused for the other (and an
//! allowed-signers line can be limited to either with `namespaces=`).
//!
//! Keys: an unencrypted OpenSSH private key is used in-process (Ed25519,
//! ECDSA P-256/384/521, RSA). For an encrypted one nono asks for the
//! passphrase on the terminal (`/dev/tty`, never echoed). Given a *public*
//! key (`--key ~/.ssh/id_ed25519.pub`), nono has `ssh-keygen -Y sign` make
//! the signature with the matching key in ssh-agent (or a FIDO token), so
//! keys that never leave the agent work too.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ssh_key::private::KeypairData;
use ssh_key::public::KeyData;
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, SshSig};

use super::TrustError;

/// The namespace of profile signatures.
pub const PROFILE_NAMESPACE: &str = "nono-profile";
/// The namespace of audit seals.
pub const AUDIT_NAMESPACE: &str = "nono-audit";

/// What signs.
pub enum Signer {
    /// A private key held in memory.
    Key(Box<PrivateKey>),
    /// The private key behind this public key, through `ssh-keygen -Y sign`
    /// (ssh-agent, a token).
    Agent { public: PathBuf, key: KeyData },
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signer::Key(k) => write!(f, "Signer::Key({})", fingerprint(k.public_key().key_data())),
            Signer::Agent { public, .. } => write!(f, "Signer::Agent({})", public.display()),
        }
    }
}

impl Signer {
    /// The public half.
    #[must_use]
    pub fn public(&self) -> KeyData {
        match self {
            Signer::Key(k) => k.public_key().key_data().clone(),
            Signer::Agent { key, .. } => key.clone(),
        }
    }
}

/// `SHA256:...` of a public key, as `ssh-keygen -l` prints it.
#[must_use]
pub fn fingerprint(key: &KeyData) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// `ED25519 SHA256:...`: the algorithm and fingerprint, for messages.
#[must_use]
pub fn describe(key: &KeyData) -> String {
    format!("{} {}", key.algorithm().as_str(), fingerprint(key))
}

/// Loads what `--key PATH` names: a private key (asking for its passphrase
/// on the terminal when encrypted), or a public key to sign with through
/// ssh-agent.
pub fn load_signer(path: &Path) -> Result<Signer, TrustError> {
    let bad = |message: String| TrustError::Key { path: path.to_path_buf(), message };
    let text = super::read_small(path, "key").map_err(|e| bad(e.to_string()))?;
    let trimmed = text.trim_start();
    if trimmed.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----") {
        let key = PrivateKey::from_openssh(trimmed).map_err(|e| bad(format!("not a valid OpenSSH private key: {e}")))?;
        if !key.is_encrypted() {
            return Ok(Signer::Key(Box::new(key)));
        }
        let pass = ask_passphrase(path)?;
        let key = key.decrypt(pass.as_bytes()).map_err(|_| bad("wrong passphrase".to_owned()))?;
        return Ok(Signer::Key(Box::new(key)));
    }
    if trimmed.starts_with("-----BEGIN") {
        return Err(bad(
            "a PEM private key; nono reads OpenSSH's format: convert a copy with `ssh-keygen -p -f COPY` (which rewrites it \
             in the OpenSSH format), or pass the public key to sign through ssh-agent"
                .to_owned(),
        ));
    }
    match ssh_key::PublicKey::from_openssh(trimmed.trim()) {
        Ok(public) => Ok(Signer::Agent { public: path.to_path_buf(), key: public.key_data().clone() }),
        Err(_) => Err(bad("neither an OpenSSH private key nor a public key".to_owned())),
    }
}

/// Reads a passphrase from the controlling terminal with echo off.
fn ask_passphrase(key: &Path) -> Result<zeroize_string::Secret, TrustError> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let no_tty = || TrustError::Encrypted { path: key.to_path_buf() };
    let mut tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").map_err(|_| no_tty())?;
    let saved = tcgetattr(&tty).map_err(|_| no_tty())?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    tcsetattr(&tty, SetArg::TCSANOW, &quiet).map_err(|_| no_tty())?;
    let _ = write!(tty, "Enter passphrase for {}: ", key.display());
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    let read = loop {
        match tty.read(&mut byte) {
            Ok(0) => break Ok(()),
            Ok(_) if byte[0] == b'\n' => break Ok(()),
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    let _ = tcsetattr(&tty, SetArg::TCSANOW, &saved);
    read.map_err(|_| no_tty())?;
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(zeroize_string::Secret(line))
}

/// A passphrase, wiped from memory when dropped.
mod zeroize_string {
    pub struct Secret(pub Vec<u8>);

    impl Secret {
        pub fn as_bytes(&self) -> &[u8] {
            &self.0
        }
    }

    impl Drop for Secret {
        fn drop(&mut self) {
            for b in &mut self.0 {
                // SAFETY: `b` is a valid, aligned, exclusive reference; the
                // volatile write keeps the compiler from dropping the wipe.
                unsafe { std::ptr::write_volatile(b, 0) };
            }
        }
    }
}

/// Signs `data` in `namespace`; returns the armored signature
/// (`-----BEGIN SSH SIGNATURE-----`), as `ssh-keygen -Y sign` writes it.
pub fn sign(signer: &Signer, namespace: &str, data: &[u8]) -> Result<String, TrustError> {
    match signer {
        Signer::Key(key) => {
            let sig = match key.key_data() {
                KeypairData::Rsa(rsa_key) => sign_rsa(key, rsa_key, namespace, data)?,
                _ => key.sign(namespace, HashAlg::Sha512, data).map_err(|e| TrustError::Sign(e.to_string()))?,
            };
            sig.to_pem(LineEnding::LF).map_err(|e| TrustError::Sign(e.to_string()))
        }
        Signer::Agent { public, key } => {
            let armored = sign_with_ssh_keygen(public, namespace, data)?;
            // Make sure the agent signed with the key asked for.
            let sig = parse(&armored, public)?;
            if sig.public_key() != key {
                return Err(TrustError::Sign(format!("ssh-keygen signed with another key than {}", public.display())));
            }
            Ok(armored)
        }
    }
}

/// An RSA signature (rsa-sha2-512, as `ssh-keygen` makes them). Done
/// here rather than by `ssh-key` 0.6.7, whose conversion to an RSA key
/// passes the prime p twice (and so fails for every real key).
fn sign_rsa(key: &PrivateKey, kp: &ssh_key::private::RsaKeypair, namespace: &str, data: &[u8]) -> Result<SshSig, TrustError> {
    use rsa::signature::{SignatureEncoding as _, Signer as _};
    let fail = |what: &str| TrustError::Sign(format!("RSA key: {what}"));
    let big =
        |m: &ssh_key::Mpint| m.as_positive_bytes().map(rsa::BigUint::from_bytes_be).ok_or_else(|| fail("a negative number"));
    let private = rsa::RsaPrivateKey::from_components(
        big(&kp.public.n)?,
        big(&kp.public.e)?,
        big(&kp.private.d)?,
        vec![big(&kp.private.p)?, big(&kp.private.q)?],
    )
    .map_err(|e| fail(&e.to_string()))?;
    let signed = SshSig::signed_data(namespace, HashAlg::Sha512, data).map_err(|e| TrustError::Sign(e.to_string()))?;
    let raw = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha512>::new(private).try_sign(&signed).map_err(|e| fail(&e.to_string()))?;
    let sig = ssh_key::Signature::new(Algorithm::Rsa { hash: Some(HashAlg::Sha512) }, raw.to_vec())
        .map_err(|e| TrustError::Sign(e.to_string()))?;
    SshSig::new(key.public_key().key_data().clone(), namespace, HashAlg::Sha512, sig).map_err(|e| TrustError::Sign(e.to_string()))
}

/// `ssh-keygen -Y sign -f PUBLIC -n NAMESPACE` with `data` on stdin.
fn sign_with_ssh_keygen(public: &Path, namespace: &str, data: &[u8]) -> Result<String, TrustError> {
    let mut child = Command::new("ssh-keygen")
        .args(["-q", "-Y", "sign", "-n", namespace, "-f"])
        .arg(public)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| TrustError::Sign(format!("cannot run ssh-keygen to sign with the agent's key: {e}")))?;
    let mut stdin = child.stdin.take().ok_or_else(|| TrustError::Sign("ssh-keygen has no stdin".to_owned()))?;
    // A small profile fits the pipe; a writer thread keeps a large one
    // from deadlocking against ssh-keygen's output.
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().map_err(|e| TrustError::Sign(format!("waiting for ssh-keygen: {e}")))?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(TrustError::Sign(format!(
            "ssh-keygen -Y sign with {} failed ({}): {}; is the key loaded in ssh-agent (`ssh-add -l`)?",
            public.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    String::from_utf8(out.stdout).map_err(|_| TrustError::Sign("ssh-keygen wrote a signature that is not text".to_owned()))
}

/// Parses an armored signature; `path` names it in errors.
pub fn parse(armored: &str, path: &Path) -> Result<SshSig, TrustError> {
    SshSig::from_pem(armored.trim()).map_err(|e| TrustError::BadSignature {
        path: path.to_path_buf(),
        message: match e {
            ssh_key::Error::AlgorithmUnknown | ssh_key::Error::AlgorithmUnsupported { .. } => {
                format!("{e} (certificate and security-key signatures are not supported)")
            }
            other => other.to_string(),
        },
    })
}

/// Checks that `sig` signs `data` in `namespace` (cryptographically; who
/// may sign is the allowed-signers file's business).
pub fn verify(sig: &SshSig, namespace: &str, data: &[u8], path: &Path) -> Result<(), TrustError> {
    if sig.namespace() != namespace {
        return Err(TrustError::Namespace {
            path: path.to_path_buf(),
            found: sig.namespace().to_owned(),
            expected: namespace.to_owned(),
        });
    }
    ssh_key::PublicKey::from(sig.public_key().clone())
        .verify(namespace, data, sig)
        .map_err(|_| TrustError::Forged { path: path.to_path_buf() })
}
