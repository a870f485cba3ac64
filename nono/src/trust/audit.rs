//! Audit seals: an SSH signature (namespace [`AUDIT_NAMESPACE`]) over a
//! short text that names a session and its chain root, and checking seals
//! against a recomputed root.
//!
//! The sealed text, exactly (lines end in `\n`):
//!
//! ```text
//! nono audit seal v1
//! session: <fleet UUID of the session>
//! host: <host id>
//! local-id: <the session's id in the host's database>
//! started-ns: <its start time>
//! events: <events the chain covers>
//! root: <chain root, 64 hex digits>
//! ```
//!
//! The UUID is the one `audit push` gives the session in the fleet
//! (derived from host id, local id and start time), so the same seal checks
//! the local file and the fleet's copy. A seal proves that the holder of a
//! key vouched for that root at some time; checked against the allowed
//! signers, it proves the events are what that person sealed, whoever has
//! held the file since.

use std::path::Path;

use super::policy::{Policy, Signers};
use super::profiles::SignedBy;
use super::sshsig::{self, AUDIT_NAMESPACE, Signer};
use super::{TrustError, now_secs};
use crate::store::chain::{self, Hash};
use crate::store::{ChainCheck, Seal, Session};

/// What a seal's text says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealText {
    pub uuid: uuid::Uuid,
    pub host: String,
    pub local_id: i64,
    pub started_ns: i64,
    pub events: u64,
    pub root: Hash,
}

impl SealText {
    /// The exact text that is signed.
    #[must_use]
    pub fn render(&self) -> String {
        format!(
            "nono audit seal v1\nsession: {}\nhost: {}\nlocal-id: {}\nstarted-ns: {}\nevents: {}\nroot: {}\n",
            self.uuid,
            self.host,
            self.local_id,
            self.started_ns,
            self.events,
            chain::hex(&self.root)
        )
    }

    /// Parses a seal's text; only the exact rendering is accepted.
    pub fn parse(text: &str) -> Result<SealText, String> {
        let mut lines = text.lines();
        if lines.next() != Some("nono audit seal v1") {
            return Err("not a nono audit seal (v1)".to_owned());
        }
        let mut field = |name: &str| -> Result<String, String> {
            let l = lines.next().ok_or_else(|| format!("no {name} line"))?;
            l.strip_prefix(&format!("{name}: ")).map(ToOwned::to_owned).ok_or_else(|| format!("expected {name}: in {l:?}"))
        };
        let uuid = field("session")?.parse().map_err(|e| format!("session: {e}"))?;
        let host = field("host")?;
        let local_id = field("local-id")?.parse().map_err(|e| format!("local-id: {e}"))?;
        let started_ns = field("started-ns")?.parse().map_err(|e| format!("started-ns: {e}"))?;
        let events = field("events")?.parse().map_err(|e| format!("events: {e}"))?;
        let root = chain::from_hex(&field("root")?).ok_or("root: not 64 hex digits")?;
        let seal = SealText { uuid, host, local_id, started_ns, events, root };
        if seal.render() != text {
            return Err("not in the exact form nono writes".to_owned());
        }
        Ok(seal)
    }
}

/// The fleet UUID of local session `s` on host `host_id`.
#[must_use]
pub fn session_uuid(host_id: &str, s: &Session) -> uuid::Uuid {
    crate::fleet::session_uuid(&crate::fleet::Host { id: host_id.to_owned(), name: String::new() }, s)
}

/// Seals a local session that verified: signs its root.
pub fn seal(check: &ChainCheck, session: &Session, signer: &Signer) -> Result<(Seal, SealText), TrustError> {
    if !check.verified() {
        let why = check.problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        return Err(TrustError::Unsealable { session: session.id, why });
    }
    let Some(root) = check.root_hash() else {
        return Err(TrustError::Unsealable {
            session: session.id,
            why: "it has not ended (no chain root yet); seal it after the recording finishes".to_owned(),
        });
    };
    let host = crate::fleet::Host::this().map_err(|e| TrustError::Sign(e.to_string()))?;
    let text = SealText {
        uuid: crate::fleet::session_uuid(&host, session),
        host: host.id,
        local_id: session.id,
        started_ns: session.started_ns,
        events: check.chained.unwrap_or(0),
        root,
    };
    let message = text.render();
    let signature = sshsig::sign(signer, AUDIT_NAMESPACE, message.as_bytes())?;
    let sealed_ns = jiff::Timestamp::now().as_nanosecond() as i64;
    Ok((Seal { sealed_ns, message, signature }, text))
}

/// What one seal says about a session.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SealReport {
    pub sealed_ns: i64,
    /// The key that made it.
    pub key: Option<String>,
    /// The allowed signers that accept it (one per policy layer naming
    /// audit signers, or the file given on the command line).
    pub by: Vec<SignedBy>,
    /// Empty when the seal holds.
    pub problem: Option<String>,
    /// No allowed signers were configured: only the cryptography was checked.
    pub unchecked_signer: bool,
}

/// Where a seal's identity must come from, and how to recompute its UUID.
pub enum SealTarget<'a> {
    /// A local session: the UUID follows from the seal's host id and the
    /// session's own id and start time.
    Local(&'a Session),
    /// A fleet session: the UUID is the fleet row's.
    Fleet { session: &'a Session, uuid: uuid::Uuid },
}

/// Checks each seal of a session against its recomputed `root` (`None`:
/// the chain did not verify) and the signers: `explicit` (from the command
/// line) if given, else every policy layer that names audit signers.
#[must_use]
pub fn check_seals(
    seals: &[Seal],
    target: &SealTarget<'_>,
    root: Option<&Hash>,
    policy: &Policy,
    explicit: Option<&Signers>,
) -> Vec<SealReport> {
    let now = now_secs();
    seals.iter().map(|s| check_one(s, target, root, policy, explicit, now)).collect()
}

fn check_one(
    seal: &Seal,
    target: &SealTarget<'_>,
    root: Option<&Hash>,
    policy: &Policy,
    explicit: Option<&Signers>,
    now: i64,
) -> SealReport {
    let mut report = SealReport { sealed_ns: seal.sealed_ns, key: None, by: Vec::new(), problem: None, unchecked_signer: false };
    let here = Path::new("(stored seal)");
    let sig = match sshsig::parse(&seal.signature, here) {
        Ok(sig) => sig,
        Err(e) => {
            report.problem = Some(e.to_string());
            return report;
        }
    };
    let key = sig.public_key().clone();
    report.key = Some(sshsig::describe(&key));
    if let Err(e) = sshsig::verify(&sig, AUDIT_NAMESPACE, seal.message.as_bytes(), here) {
        report.problem = Some(format!("the seal's signature does not hold: {e}"));
        return report;
    }
    let text = match SealText::parse(&seal.message) {
        Ok(t) => t,
        Err(e) => {
            report.problem = Some(format!("the sealed text is malformed: {e}"));
            return report;
        }
    };
    let identity = match target {
        SealTarget::Local(s) => {
            text.local_id == s.id && text.started_ns == s.started_ns && text.uuid == session_uuid(&text.host, s)
        }
        SealTarget::Fleet { uuid, session } => text.uuid == *uuid && text.started_ns == session.started_ns,
    };
    if !identity {
        report.problem = Some(format!("the seal names another session ({})", text.uuid));
        return report;
    }
    match root {
        None => {
            report.problem = Some("the chain does not verify, so the seal cannot hold".to_owned());
            return report;
        }
        Some(r) if *r != text.root => {
            report.problem = Some(format!(
                "the session changed after it was sealed: sealed root {}, now {}",
                chain::hex(&text.root),
                chain::hex(r)
            ));
            return report;
        }
        Some(_) => {}
    }
    if let Some((file, line)) = policy.revoked.find(&key) {
        report.problem = Some(format!("sealed with a revoked key ({}:{line})", file.display()));
        return report;
    }
    let signers: Vec<&Signers> = match explicit {
        Some(s) => vec![s],
        None => policy.audit_signers().into_iter().map(|(_, s)| s).collect(),
    };
    if signers.is_empty() {
        report.unchecked_signer = true;
        return report;
    }
    for s in signers {
        match s.file.allows(&key, AUDIT_NAMESPACE, &s.principals, now) {
            Ok(e) => report.by.push(SignedBy {
                principals: e.principals.clone(),
                file: s.file.path.clone(),
                line: e.line,
                key: sshsig::describe(&key),
            }),
            Err(r) => {
                report.problem =
                    Some(format!("sealed by {}, not accepted by {}: {r}", sshsig::describe(&key), s.file.path.display()));
                return report;
            }
        }
    }
    report
}
