//! `nono profile amend P --session S`: the repair loop. A sandboxed run
//! (`nono run --audit`) was denied something; propose the smallest
//! additions to P that would have allowed each sandbox denial, let the user
//! accept them one group at a time (like aa-logprof), show the change as a
//! profile diff and write the profile atomically.
//!
//! Never grants a sensitive path silently: those are listed as refused,
//! and proposed only with `--allow-sensitive PATH`. Names nono's proxy
//! refused become `network.allow_domains` proposals
//! (`learn::amend_domains`); IP literals and `localhost` never do.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};

use crate::cli::common::Format;
use crate::cli::common::context::session_context;
use crate::enforce::sensitive::Who;
use crate::event::Event;
use crate::learn::amend::{self, Amendment, Change, Granted};
use crate::learn::{Grant, Grants, LearnContext};
use crate::profile::rights::FsRight;
use crate::profile::{self, Profile, Vars};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct AmendArgs {
    /// The profile file to amend (a learned profile's path, or a name in the user's profiles directory).
    pub profile: String,
    /// The session of a sandboxed run (`nono run --audit`): an id, or `last`.
    #[arg(long)]
    pub session: String,
    /// Audit database (default: as for `nono audit`).
    #[arg(long, env = "NONO_DB")]
    pub db: Option<PathBuf>,
    /// Accept every proposal without asking.
    #[arg(long)]
    pub yes: bool,
    /// Only show the proposals; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Allow proposals for this sensitive path (and what is beneath it).
    #[arg(long = "allow-sensitive", value_name = "PATH")]
    pub allow_sensitive: Vec<PathBuf>,
    /// Output format of --dry-run: table, or json for scripts (csv is refused).
    #[arg(long, default_value = "table")]
    pub format: Format,
}

/// The profile file behind `spec` (a path, or a name in the user's
/// profiles directory). Built-ins are part of nono and cannot be amended.
fn profile_file(spec: &str) -> anyhow::Result<PathBuf> {
    if let Some(name) = spec.strip_prefix("builtin:") {
        bail!(
            "{name} is a built-in profile, part of nono: copy it to a file (`nono profile show builtin:{name} --format json`) or learn one with `nono learn`, then amend that"
        );
    }
    if spec.contains('/') || spec.ends_with(".json") {
        return Ok(PathBuf::from(spec));
    }
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let vars = match crate::record::spawn::Identity::from_sudo()? {
        Some(id) => Vars::for_home(cwd, &id.home),
        None => Vars::from_env(cwd),
    };
    let candidate = vars.profiles_dir().join(format!("{spec}.json"));
    if candidate.is_file() {
        return Ok(candidate);
    }
    if profile::builtin(spec).is_ok() {
        bail!(
            "{spec} is a built-in profile, part of nono: copy it to a file (`nono profile show {spec} --format json`) or learn one with `nono learn`, then amend that"
        );
    }
    bail!("no profile {spec:?}: give the path of a profile file")
}

pub fn run(args: &AmendArgs) -> anyhow::Result<ExitCode> {
    match (args.format, args.dry_run) {
        (Format::Csv, _) => bail!("profile amend has no CSV output: use --dry-run --format json (or table)"),
        (Format::Json, false) => bail!("--format json prints the proposals without changing anything: add --dry-run"),
        _ => {}
    }
    let identity = crate::record::spawn::Identity::from_sudo()?;
    let db = crate::cli::common::db_path(args.db.as_deref(), identity.as_ref())?;
    let store = Store::open_read_only(&db)?;
    let session = store.session(&args.session)?;
    let ctx = session_context(&session, &args.allow_sensitive);
    let path = profile_file(&args.profile)?;
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let original = Profile::parse(&text, &path.display().to_string())?;
    let mut vars = Vars::for_home(ctx.cwd.clone(), &ctx.home);
    vars.tmpdir.clone_from(&ctx.tmpdir);
    vars.xdg_config_home.clone_from(&ctx.xdg_config_home);
    vars.xdg_cache_home.clone_from(&ctx.xdg_cache_home);
    // A past session: no terminal of its own to name.
    vars.tty = None;
    let shown = path.display().to_string();
    let resolved = profile::load(&shown, &vars)?;
    if let Some(w) = other_profile_warning(&store, &session, &path, &resolved)? {
        eprintln!("nono: WARNING: {}", crate::event::display_safe(&w));
    }
    let who = match &identity {
        Some(id) => Who { uid: id.uid, gid: id.gid, groups: id.groups.clone(), is_self: false },
        None => Who::current(),
    };
    let mut events: Vec<Event> = Vec::new();
    // The other connects too: they name the process behind each of the
    // proxy's refusals (which sees only a loopback connection).
    let mut connects: Vec<Event> = Vec::new();
    store.events(session.id, |e| {
        if matches!(e.outcome, crate::event::Outcome::Denied { .. }) {
            events.push(e);
        } else if e.op == crate::event::Op::Connect {
            connects.push(e);
        }
        Ok(())
    })?;
    let mut amendment = propose(&events, &ctx, &resolved, &who);
    // What nono's proxy refused by name (issue 23).
    let rows = store.domains(&crate::store::DomainQuery { session: Some(session.id), refused: true, ..Default::default() })?;
    let named = crate::learn::amend_domains::propose_domains(&rows, &connects, resolved.network.allow_domains.as_deref());
    amendment.denials += named.refusals;
    amendment.proposals.extend(named.proposals);
    amendment.unexplained.extend(named.unexplained);
    if args.dry_run {
        print_amendment(&amendment, args.format)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_refused(&amendment);
    if amendment.proposals.is_empty() {
        if amendment.denials == 0 {
            eprintln!("nono: session {} has no sandbox denials or refused names: nothing to amend", session.id);
        } else {
            eprintln!("nono: no change to {} would have allowed them (see above)", path.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(accepted) = decide(&amendment, args.yes)? else {
        eprintln!("nono: aborted: {} unchanged", path.display());
        return Ok(ExitCode::from(1));
    };
    if accepted.is_empty() {
        eprintln!("nono: nothing accepted; {} unchanged", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let mut amended = original.clone();
    amend::apply(&mut amended, &accepted);
    let json = amended.to_json_pretty()?;
    // Validate before writing: the result must load, and `nono run` must
    // not refuse it (a grant that exposes a sensitive path).
    let checked =
        profile::load_str(&json, &shown, &vars).context("the amended profile does not validate (nothing was written)")?;
    let exposed = crate::enforce::sensitive::exposures(&crate::enforce::plan(&checked), &ctx, &who);
    if !exposed.is_empty() {
        let list: Vec<String> = exposed.iter().map(ToString::to_string).collect();
        bail!(
            "`nono run` would refuse the amended profile (nothing was written): {}; accept fewer changes, or pass --allow-sensitive",
            list.join("; ")
        );
    }
    let before = resolved;
    write_atomically(&path, &json)?;
    let after = profile::load(&shown, &vars)?;
    println!("{}", crate::cli::common::describe::diff_text(&before, &after));
    eprintln!("nono: {} change(s) written to {}", accepted.len(), path.display());
    Ok(ExitCode::SUCCESS)
}

/// A warning when the session did not run under the profile being
/// amended (another file, a learn session, or an older version of it).
fn other_profile_warning(
    store: &Store,
    session: &crate::store::Session,
    path: &Path,
    resolved: &profile::Resolved,
) -> anyhow::Result<Option<String>> {
    use crate::store::SessionKind;
    let id = session.id;
    if session.info.kind != SessionKind::Run {
        return Ok(Some(format!(
            "session {id} is a learning session, not a sandboxed run (`nono run --audit`): it has no sandbox denials to amend from"
        )));
    }
    let ran = session.info.profile.clone().unwrap_or_else(|| "(no profile)".to_owned());
    let same_file = {
        let named = Path::new(&ran);
        let a = std::fs::canonicalize(path).ok();
        a.is_some()
            && (a == std::fs::canonicalize(named).ok()
                || a == profile_file(&ran).ok().and_then(|f| std::fs::canonicalize(f).ok()))
    };
    if !same_file {
        return Ok(Some(format!(
            "session {id} ran under {ran}, not {}: its denials are measured against that profile, so some proposals may already be granted here, or missing",
            path.display()
        )));
    }
    if let Some(stored) = store.enforced_profile(id)? {
        let now = crate::cli::common::describe::enforced(resolved, false)?;
        if now.hash != stored.hash {
            return Ok(Some(format!(
                "{} changed since session {id} ran under it (sha256 {} then, {} now): the proposals are against the file as it is now",
                path.display(),
                &stored.hash[..12.min(stored.hash.len())],
                &now.hash[..12.min(now.hash.len())]
            )));
        }
    }
    Ok(None)
}

/// Proposals for `events` against the resolved profile.
fn propose(events: &[Event], ctx: &LearnContext, resolved: &profile::Resolved, who: &Who) -> Amendment {
    let net = &resolved.network;
    let grants = Grants {
        fs: resolved.grants.iter().map(|g| Grant { path: g.path.clone(), rights: g.rights.clone(), file: g.file }).collect(),
        handled: FsRight::ALL.into_iter().collect(),
        connect_ports: if net.block { Some(Default::default()) } else { net.open_port.clone() },
        bind_ports: if net.block { Some(Default::default()) } else { net.listen_port.clone() },
        block_net: net.block,
    };
    let expand = |p: &str| amend::expand_with(ctx, p);
    let unix = resolved.unix_connect.clone().unwrap_or_default();
    let granted = Granted {
        grants: &grants,
        profile_udp: net.udp.as_ref(),
        icmp: net.icmp.as_ref(),
        unix_connect: &unix,
        families: &net.families,
        facilities: &resolved.sandbox.allow,
        signal_outside: resolved.sandbox.signal_outside,
        abstract_unix_outside: resolved.sandbox.abstract_unix_outside,
        expand: &expand,
        exists: &|p: &Path| p.exists(),
        // The check `nono run` makes before it runs anything.
        exposes: &|p: &Path, rights: &std::collections::BTreeSet<FsRight>| {
            let plan = crate::enforce::Plan {
                fs: vec![crate::enforce::PlanRule {
                    path: p.to_path_buf(),
                    rights: rights.clone(),
                    file: false,
                    origins: vec!["amend".to_owned()],
                }],
                ..crate::enforce::Plan::default()
            };
            crate::enforce::sensitive::exposures(&plan, ctx, who).first().map(|e| e.secret.display().to_string())
        },
    };
    amend::propose(events, ctx, &granted)
}

fn print_amendment(a: &Amendment, format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        println!("{}", crate::cli::common::text::json_pretty(a)?);
        return Ok(());
    }
    print_refused(a);
    if a.proposals.is_empty() {
        println!("no change proposed ({} sandbox denial(s) considered)", a.denials);
    }
    for p in &a.proposals {
        println!("+ {}", crate::event::display_safe(&p.title));
        if let Some(r) = &p.reason {
            println!("    because: {}", crate::event::display_safe(r));
        }
    }
    Ok(())
}

fn print_refused(a: &Amendment) {
    for h in &a.refused_sensitive {
        eprintln!(
            "nono: NOT proposed: {} is sensitive ({}); pass --allow-sensitive {} to grant it",
            crate::event::display_safe(&h.path),
            crate::event::display_safe(&h.why),
            crate::event::display_safe(&h.matched)
        );
    }
    for u in &a.unexplained {
        eprintln!("nono: denied, but no profile change would allow it: {}", crate::event::display_safe(u));
    }
}

/// Asks per proposal on a terminal; everything with `--yes`. `None`: the
/// user aborted (nothing is written).
///
/// Answers (documented in the README): `y` accept this change, `n` (or
/// Enter) leave it out, `a` accept this and every later one, `d` done:
/// leave out the rest and write what was accepted, `q` abort: write
/// nothing.
fn decide(a: &Amendment, yes: bool) -> anyhow::Result<Option<Vec<Change>>> {
    if yes {
        return Ok(Some(a.proposals.iter().map(|p| p.change.clone()).collect()));
    }
    if !std::io::stdin().is_terminal() {
        bail!("stdin is not a terminal: pass --yes to accept every proposal, or --dry-run [--format json] to only list them");
    }
    let mut accepted = Vec::new();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut all = false;
    for (i, p) in a.proposals.iter().enumerate() {
        eprintln!("\n[{}/{}] + {}", i + 1, a.proposals.len(), crate::event::display_safe(&p.title));
        if let Some(r) = &p.reason {
            eprintln!("    because: {}", crate::event::display_safe(r));
        }
        if all {
            accepted.push(p.change.clone());
            continue;
        }
        loop {
            eprint!("    (y)es / (n)o / (a)ll the rest / (d)one, write what is accepted / (q)uit without writing? ");
            std::io::stderr().flush().ok();
            // End of input: like `q`, nothing half-decided is written.
            let Some(line) = lines.next() else { return Ok(None) };
            match line?.trim() {
                "y" | "yes" => {
                    accepted.push(p.change.clone());
                    break;
                }
                "n" | "no" | "" => break,
                "a" | "all" => {
                    accepted.push(p.change.clone());
                    all = true;
                    break;
                }
                "d" | "done" => return Ok(Some(accepted)),
                "q" | "quit" | "abort" => return Ok(None),
                _ => eprintln!("    answer y, n, a, d or q"),
            }
        }
    }
    Ok(Some(accepted))
}

/// A temp file beside the profile, synced, then renamed over it (mode
/// kept), as the invoking user under sudo (see `invoker::fs`).
fn write_atomically(path: &Path, json: &str) -> anyhow::Result<()> {
    crate::invoker::fs::write_atomic(path, json.as_bytes(), 0o600).with_context(|| format!("writing {}", path.display()))
}
