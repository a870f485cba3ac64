//! `nono profile sign | verify | trust`: sign a profile with an SSH key,
//! check a profile (and everything it `extends`) against the trust policy
//! or an allowed-signers file, and show the policy in force. The work is
//! `crate::trust`'s; this module parses, prints and picks exit codes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;

use crate::cli::common::Format;
use crate::profile::Vars;
use crate::trust::policy::{Builtins, Layer, Policy, Require, Scope, Signers};
use crate::trust::profiles::{self, LinkReport, Verdict};
use crate::trust::signers::AllowedSigners;
use crate::trust::sshsig::{self, PROFILE_NAMESPACE};

#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The profile: a JSON file or a name in ~/.config/nono/profiles.
    pub profile: String,
    /// The SSH private key (OpenSSH format; asks for its passphrase when
    /// encrypted), or a public key whose private half is in ssh-agent.
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The profile: a JSON file, a name in ~/.config/nono/profiles, or a built-in.
    pub profile: String,
    /// Also require every profile file of the graph to be signed by a
    /// signer of this allowed-signers file (OpenSSH format).
    #[arg(long, value_name = "FILE")]
    pub allowed_signers: Option<PathBuf>,
    /// With --allowed-signers: the signer must be one of these identities.
    #[arg(long = "principal", value_name = "ID", requires = "allowed_signers")]
    pub principals: Vec<String>,
    #[arg(long, default_value = "table")]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct TrustArgs {
    #[arg(long, default_value = "table")]
    pub format: Format,
}

fn no_csv(format: Format) -> anyhow::Result<()> {
    if format == Format::Csv {
        bail!("--format csv is not available here; use table or json");
    }
    Ok(())
}

/// `nono profile sign P --key K`.
pub fn sign(args: &SignArgs, vars: &Vars) -> anyhow::Result<ExitCode> {
    let signer = sshsig::load_signer(&args.key)?;
    let signed = profiles::sign(&args.profile, vars, &signer)?;
    if signed.canonicalized {
        eprintln!("nono: rewrote {} in canonical form (the signed bytes are the file's)", signed.profile.display());
    }
    eprintln!(
        "nono: signed {} with {}; signature in {} (namespace {PROFILE_NAMESPACE})",
        signed.profile.display(),
        signed.key,
        signed.signature.display()
    );
    eprintln!(
        "nono: check with `nono profile verify {}`, or `ssh-keygen -Y verify -f ALLOWED_SIGNERS -I IDENTITY -n {PROFILE_NAMESPACE} \
         -s {} < {}`",
        args.profile,
        signed.signature.display(),
        signed.profile.display()
    );
    // A signature the policy would refuse is worth knowing about now.
    let policy = Policy::load(vars)?;
    if !policy.is_empty()
        && let Ok((_, sources)) = profiles::load_sources(&args.profile, vars)
    {
        for r in profiles::judge(&policy, &sources[..1], crate::trust::now_secs()) {
            if let Verdict::Refused { reason, .. } = r.verdict {
                eprintln!("nono: warning: the trust policy would still refuse {}: {reason}", r.profile);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A policy of one layer built from `--allowed-signers`: every file must
/// be signed by it.
fn explicit_policy(path: &Path, principals: &[String], revoked: &crate::trust::signers::Revoked) -> anyhow::Result<Policy> {
    let file = AllowedSigners::read(path)?;
    Ok(Policy {
        layers: vec![Layer {
            scope: Scope::User,
            path: path.to_path_buf(),
            require: Require::All,
            profile_signers: Some(Signers { file, principals: principals.to_vec() }),
            builtins: Builtins::Trust,
            audit_signers: None,
            require_seal: false,
        }],
        revoked: revoked.clone(),
        files: vec![path.to_path_buf()],
        absent: Vec::new(),
    })
}

fn verdict_text(v: &Verdict) -> String {
    match v {
        Verdict::Builtin { refused_by: None } => "built-in (part of the nono binary: trusted as nono is)".to_owned(),
        Verdict::Builtin { refused_by: Some(p) } => format!("REFUSED: built-in profiles are refused by {}", p.display()),
        Verdict::Accepted { by, .. } => {
            let who: Vec<String> =
                by.iter().map(|b| format!("{} ({}, {}:{})", b.principals, b.key, b.file.display(), b.line)).collect();
            format!("signed by {}", who.join("; "))
        }
        Verdict::NotRequired { signature } => format!("not required to be signed ({signature})"),
        Verdict::Refused { reason, .. } => format!("REFUSED: {reason}"),
    }
}

/// `nono profile verify P`.
pub fn verify(args: &VerifyArgs, vars: &Vars) -> anyhow::Result<ExitCode> {
    no_csv(args.format)?;
    let policy = Policy::load(vars)?;
    let (_, sources) = profiles::load_sources(&args.profile, vars)?;
    let now = crate::trust::now_secs();
    let under_policy = profiles::judge(&policy, &sources, now);
    let explicit = match &args.allowed_signers {
        Some(path) => Some(profiles::judge(&explicit_policy(path, &args.principals, &policy.revoked)?, &sources, now)),
        None => None,
    };
    let refused = under_policy.iter().chain(explicit.iter().flatten()).any(|r| r.verdict.refused());
    let checked_anything = explicit.is_some()
        || under_policy.iter().any(|r| matches!(r.verdict, Verdict::Accepted { .. } | Verdict::Refused { .. }));
    if args.format == Format::Json {
        let doc = serde_json::json!({
            "profile": args.profile,
            "policy": under_policy,
            "allowed_signers": explicit,
            "verified": !refused && checked_anything,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        let print = |title: &str, reports: &[LinkReport]| {
            println!("{title}");
            for r in reports {
                println!("  {}: {}", crate::event::display_safe(&r.profile), verdict_text(&r.verdict));
            }
        };
        if policy.is_empty() {
            println!("trust policy: none (see `nono profile trust`)");
        }
        print(&format!("{} under the trust policy:", args.profile), &under_policy);
        if let (Some(r), Some(path)) = (&explicit, &args.allowed_signers) {
            print(&format!("{} against {}:", args.profile, path.display()), r);
        }
    }
    if refused {
        return Ok(ExitCode::from(1));
    }
    if !checked_anything {
        eprintln!(
            "nono: nothing verified: no trust policy requires {} to be signed; pass --allowed-signers FILE to check its signer",
            args.profile
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn describe_signers(s: Option<&Signers>) -> String {
    match s {
        None => "none".to_owned(),
        Some(s) => format!(
            "{} ({} line(s)){}",
            s.file.path.display(),
            s.file.entries.len(),
            if s.principals.is_empty() { ", any principal".to_owned() } else { format!(", as {}", s.principals.join(" or ")) }
        ),
    }
}

/// `nono profile trust`.
pub fn trust(args: &TrustArgs, vars: &Vars) -> anyhow::Result<ExitCode> {
    no_csv(args.format)?;
    let policy = Policy::load(vars)?;
    if args.format == Format::Json {
        let layers: Vec<_> = policy
            .layers
            .iter()
            .map(|l| {
                serde_json::json!({
                    "scope": l.scope,
                    "path": l.path,
                    "require": l.require.describe(),
                    "profile_signers": l.profile_signers.as_ref().map(|s| serde_json::json!({"file": s.file.path, "principals": s.principals})),
                    "builtins": l.builtins,
                    "audit_signers": l.audit_signers.as_ref().map(|s| serde_json::json!({"file": s.file.path, "principals": s.principals})),
                    "require_seal": l.require_seal,
                })
            })
            .collect();
        let doc = serde_json::json!({
            "layers": layers,
            "absent": policy.absent,
            "revoked_keys": policy.revoked.keys.len(),
            "files": policy.files,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::from("trust policy (each file can only add requirements; see README \"Trust\"):\n");
    for p in &policy.absent {
        let _ = writeln!(out, "  {}: not present", p.display());
    }
    for l in &policy.layers {
        let scope = match l.scope {
            Scope::System => "system",
            Scope::User => "user",
        };
        let _ = writeln!(out, "  {} ({scope}):", l.path.display());
        let _ = writeln!(out, "    profiles that must be signed: {}", l.require.describe());
        let _ = writeln!(out, "    profile signers: {}", describe_signers(l.profile_signers.as_ref()));
        let _ = writeln!(
            out,
            "    built-in profiles: {}",
            if l.builtins == Builtins::Refuse { "refused" } else { "trusted (part of the binary)" }
        );
        let _ = writeln!(out, "    audit seal signers: {}", describe_signers(l.audit_signers.as_ref()));
        let _ = writeln!(out, "    seals required: {}", if l.require_seal { "yes" } else { "no" });
    }
    let _ = writeln!(out, "  revoked keys: {}", policy.revoked.keys.len());
    let in_force = if policy.is_empty() {
        "nothing is required: any profile file runs, signed or not".to_owned()
    } else {
        let requiring: Vec<String> = policy
            .layers
            .iter()
            .filter(|l| !matches!(l.require, Require::None))
            .map(|l| format!("{} ({})", l.require.describe(), l.path.display()))
            .collect();
        if requiring.is_empty() {
            "no profile is required to be signed".to_owned()
        } else {
            format!(
                "profiles matching {} must be signed, each by a signer every requiring file accepts, with everything they extend",
                requiring.join(" and ")
            )
        }
    };
    let _ = writeln!(out, "in force: {in_force}");
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}
