//! `nono audit seal` and `nono audit verify`: sign a session's chain root
//! with an SSH key, and recompute sessions' hash chains (in the local file
//! or the fleet database) to find edited, deleted, inserted, reordered or
//! truncated events and rewritten headers, checking their seals. The work
//! is `crate::store`'s and `crate::trust`'s; this module prints.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};

use crate::cli::common::Format;
use crate::fleet::{Fleet, FleetUrl};
use crate::profile::Vars;
use crate::record::spawn::Identity;
use crate::store::{ChainCheck, Problem, Session, Store};
use crate::trust::audit::{SealReport, SealTarget, check_seals};
use crate::trust::policy::{Policy, Signers};
use crate::trust::signers::AllowedSigners;
use crate::trust::sshsig::{self, AUDIT_NAMESPACE};

#[derive(Debug, clap::Args)]
pub struct SealArgs {
    /// Session id, or `last`.
    pub session: String,
    /// The SSH private key (OpenSSH format; asks for its passphrase when
    /// encrypted), or a public key whose private half is in ssh-agent.
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// Local audit database.
    #[arg(long, env = "NONO_DB", value_name = "PATH", help = crate::cli::common::source::DB_HELP)]
    pub db: Option<PathBuf>,
    /// Also write the sealed text to FILE and its signature to FILE.sig, to
    /// keep or send elsewhere (`ssh-keygen -Y verify -n nono-audit` checks them).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// A session id, `last`, or `all` (the default).
    #[arg(default_value = "all")]
    pub session: String,
    /// Audit database: a file, or a fleet database (postgres://...).
    #[arg(long, env = "NONO_DB", value_name = "PATH|URL", help = crate::cli::common::source::DB_HELP)]
    pub db: Option<PathBuf>,
    /// Only this host's sessions (fleet databases only).
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Check seals against this allowed-signers file instead of the trust
    /// policy's audit signers.
    #[arg(long, value_name = "FILE")]
    pub allowed_signers: Option<PathBuf>,
    /// With --allowed-signers: the sealer must be one of these identities.
    #[arg(long = "principal", value_name = "ID", requires = "allowed_signers")]
    pub principals: Vec<String>,
    /// Fail unless every session carries a seal that holds.
    #[arg(long)]
    pub require_seal: bool,
    /// Do not fail on sessions recorded before the hash chain existed.
    #[arg(long)]
    pub allow_unchained: bool,
    #[arg(long, default_value = "table")]
    pub format: Format,
}

fn vars() -> anyhow::Result<Vars> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    Ok(match Identity::from_sudo()? {
        Some(id) => Vars::for_home(cwd, &id.home),
        None => Vars::from_env(cwd),
    })
}

/// `nono audit seal SESSION --key K`.
pub fn seal(args: &SealArgs) -> anyhow::Result<ExitCode> {
    if crate::cli::common::source::fleet_url(args.db.as_deref()).is_some() {
        bail!("seal a session where it was recorded (a local database); `audit push` carries the seal to the fleet");
    }
    let path = crate::cli::common::db_path(args.db.as_deref(), Identity::from_sudo()?.as_ref())?;
    let store = Store::open_existing(&path)?;
    let session = store.session(&args.session)?;
    let check = store.verify_chain(session.id)?;
    let signer = sshsig::load_signer(&args.key)?;
    let (seal, text) = crate::trust::audit::seal(&check, &session, &signer)?;
    if let Some(out) = &args.output {
        crate::invoker::fs::write_atomic(out, seal.message.as_bytes(), 0o644)?;
        crate::invoker::fs::write_atomic(&crate::trust::sig_path(out), seal.signature.as_bytes(), 0o644)?;
    }
    store.add_seal(session.id, &seal)?;
    eprintln!(
        "nono: sealed session {} ({} events, root {}) with {} (namespace {AUDIT_NAMESPACE})",
        session.id,
        text.events,
        crate::store::chain::hex(&text.root),
        sshsig::describe(&signer.public())
    );
    if let Some(out) = &args.output {
        eprintln!(
            "nono: the sealed text is in {} and its signature in {}: keep a copy where whoever can write the audit database cannot",
            out.display(),
            crate::trust::sig_path(out).display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One session's verdict, for printing.
#[derive(serde::Serialize)]
struct Verdict {
    session: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    command: String,
    #[serde(flatten)]
    check: ChainCheck,
    seals: Vec<SealReport>,
    /// Everything wrong, chain and seals, in words.
    failures: Vec<String>,
    notes: Vec<String>,
    ok: bool,
}

/// Judges a checked session: its chain, its seals, and whether a seal was needed.
fn judge(
    session: &Session,
    check: ChainCheck,
    seals: Vec<SealReport>,
    host: Option<String>,
    require_seal: Option<String>,
    allow_unchained: bool,
) -> Verdict {
    let mut failures: Vec<String> = Vec::new();
    let mut notes = Vec::new();
    for p in &check.problems {
        if *p == Problem::NotChained && allow_unchained {
            notes.push(p.to_string());
        } else {
            failures.push(p.to_string());
        }
    }
    for s in &seals {
        if let Some(problem) = &s.problem {
            failures.push(format!("seal by {}: {problem}", s.key.as_deref().unwrap_or("an unreadable key")));
        } else if s.unchecked_signer {
            notes.push(format!(
                "sealed by {} (the signer was not checked: no audit signers in the trust policy, no --allowed-signers)",
                s.key.as_deref().unwrap_or("?")
            ));
        }
    }
    let held = seals.iter().any(|s| s.problem.is_none() && !s.unchecked_signer);
    if let Some(why) = require_seal
        && !held
        && check.root.is_some()
    {
        failures.push(format!("not sealed by an accepted signer ({why})"));
    }
    if check.verified() && !held && seals.iter().all(|s| s.problem.is_some()) && check.root.is_some() {
        notes.push(
            "not sealed: the chain is consistent, which proves the events are what was recorded only if its root was \
             signed or copied elsewhere (`nono audit seal`, `nono audit push`) before anyone else could write this database"
                .to_owned(),
        );
    }
    if check.verified() && check.root.is_none() && check.problems.is_empty() {
        notes.push("still recording (or its recorder died and no writer has reaped it yet): no root yet".to_owned());
    }
    let ok = failures.is_empty();
    Verdict {
        session: session.id,
        host,
        command: crate::cli::common::shell_words(&session.info.command),
        check,
        seals,
        failures,
        notes,
        ok,
    }
}

/// The seal signers given on the command line.
fn explicit_signers(args: &VerifyArgs) -> anyhow::Result<Option<Signers>> {
    Ok(match &args.allowed_signers {
        Some(p) => Some(Signers { file: AllowedSigners::read(p)?, principals: args.principals.clone() }),
        None => None,
    })
}

/// `nono audit verify [SESSION|all]`.
pub fn verify(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    if args.format == Format::Csv {
        bail!("--format csv is not available here; use table or json");
    }
    let policy = Policy::load(&vars()?)?;
    let explicit = explicit_signers(args)?;
    let require_seal = if args.require_seal {
        Some("--require-seal".to_owned())
    } else {
        policy.requiring_seals().map(|l| format!("required by {}", l.path.display()))
    };
    let verdicts = if let Some(url) = crate::cli::common::source::fleet_url(args.db.as_deref()) {
        verify_fleet(args, url, &policy, explicit.as_ref(), require_seal.as_ref())?
    } else {
        if args.host.is_some() {
            bail!("--host needs a fleet database (--db postgres://...); a local database holds one host");
        }
        let path = crate::cli::common::db_path(args.db.as_deref(), Identity::from_sudo()?.as_ref())?;
        let store = Store::open_read_only(&path)?;
        let ids = if args.session == "all" { store.session_ids()? } else { vec![store.session(&args.session)?.id] };
        let mut out = Vec::new();
        for id in ids {
            let session = store.session_by_id(id)?;
            let check = store.verify_chain(id)?;
            let root = check.root_hash();
            let seals = check_seals(&store.seals(id)?, &SealTarget::Local(&session), root.as_ref(), &policy, explicit.as_ref());
            out.push(judge(&session, check, seals, None, require_seal.clone(), args.allow_unchained));
        }
        out
    };
    print(&verdicts, args.format)?;
    Ok(if verdicts.iter().all(|v| v.ok) { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn verify_fleet(
    args: &VerifyArgs,
    url: &str,
    policy: &Policy,
    explicit: Option<&Signers>,
    require_seal: Option<&String>,
) -> anyhow::Result<Vec<Verdict>> {
    let mut fleet = Fleet::open(&FleetUrl::parse(url)?, args.host.clone())?;
    let ids: Vec<String> = if args.session == "all" {
        fleet.sessions()?.iter().map(|s| s.session.id.to_string()).collect()
    } else {
        vec![args.session.clone()]
    };
    let mut out = Vec::new();
    for which in ids {
        let (fs, check) = fleet.verify_chain(&which)?;
        let root = check.root_hash();
        let seals = fleet.seals(fs.session.id)?;
        let target = SealTarget::Fleet { session: &fs.session, uuid: fs.uuid };
        let reports = check_seals(&seals, &target, root.as_ref(), policy, explicit);
        out.push(judge(&fs.session, check, reports, Some(fs.hostname.clone()), require_seal.cloned(), args.allow_unchained));
    }
    Ok(out)
}

fn print(verdicts: &[Verdict], format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&verdicts)?);
        return Ok(());
    }
    for v in verdicts {
        let host = v.host.as_ref().map_or(String::new(), |h| format!(" on {}", crate::event::display_safe(h)));
        let status = if !v.ok {
            "FAILED".to_owned()
        } else if v.check.problems.contains(&Problem::NotChained) {
            "not chained".to_owned()
        } else if v.check.root.is_some() {
            "verified".to_owned()
        } else {
            "verified so far".to_owned()
        };
        let root = v.check.root.as_deref().map_or(String::new(), |r| format!(", root {r}"));
        println!(
            "session {}{host} ({}): {status}, {} events{root}",
            v.session,
            crate::event::display_safe(&v.command),
            v.check.events
        );
        for f in &v.failures {
            println!("  - {f}");
        }
        for s in v.seals.iter().filter(|s| s.problem.is_none()) {
            for b in &s.by {
                println!("  sealed by {} ({}, {}:{})", b.principals, b.key, b.file.display(), b.line);
            }
        }
        for n in &v.notes {
            println!("  note: {n}");
        }
    }
    let failed = verdicts.iter().filter(|v| !v.ok).count();
    eprintln!("nono: {} session(s) checked, {failed} failed", verdicts.len());
    Ok(())
}
