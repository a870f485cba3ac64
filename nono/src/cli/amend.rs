//! `nono profile amend P --session S`: the repair loop. A sandboxed run
//! (`nono run --audit`) was denied something; propose the smallest
//! additions to P that would have allowed each sandbox denial, let the user
//! accept them one group at a time (like aa-logprof), show the change as a
//! profile diff and write the profile atomically.
//!
//! Never grants a sensitive path silently: those are listed as refused,
//! and proposed only with `--allow-sensitive PATH`.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};

use crate::cli::common::Format;
use crate::event::Event;
use crate::learn::amend::{self, Amendment, Change, Granted};
use crate::learn::{Grant, Grants, LearnContext};
use crate::profile::rights::FsRight;
use crate::profile::{self, Profile, Vars};
use crate::store::{Session, Store};

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
    /// Output format of --dry-run (json for scripts).
    #[arg(long, default_value = "table")]
    pub format: Format,
}

/// The learning context of a session: stored with it, or rebuilt from its
/// workdir and this environment for sessions recorded before that.
pub(super) fn session_context(session: &Session, allow: &[PathBuf]) -> LearnContext {
    let cwd = PathBuf::from(&session.info.cwd);
    let mut ctx = session
        .info
        .context
        .as_deref()
        .and_then(|c| serde_json::from_str::<LearnContext>(c).ok())
        .unwrap_or_else(|| crate::cli::context::learn_context(&cwd, None, &[], true));
    ctx.allow_sensitive.extend(allow.iter().map(|p| if p.is_absolute() { p.clone() } else { cwd.join(p) }));
    ctx
}

/// The profile file behind `spec` (a path, or a name in the user's
/// profiles directory). Built-ins are part of nono and cannot be amended.
fn profile_file(spec: &str) -> anyhow::Result<PathBuf> {
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
    let identity = crate::record::spawn::Identity::from_sudo()?;
    let db = crate::cli::common::db_path(args.db.as_deref(), identity.as_ref())?;
    let store = Store::open_read_only(&db)?;
    let session = store.session(&args.session)?;
    let ctx = session_context(&session, &args.allow_sensitive);
    let path = profile_file(&args.profile)?;
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let original = Profile::parse(&text, &path.display().to_string())?;
    let vars = Vars {
        home: ctx.home.clone(),
        cwd: ctx.cwd.clone(),
        tmpdir: ctx.tmpdir.clone(),
        xdg_config_home: ctx.xdg_config_home.clone(),
        xdg_cache_home: ctx.xdg_cache_home.clone(),
    };
    let shown = path.display().to_string();
    let resolved = profile::load(&shown, &vars)?;
    let mut events: Vec<Event> = Vec::new();
    store.events(session.id, |e| {
        if matches!(e.outcome, crate::event::Outcome::Denied { .. }) {
            events.push(e);
        }
        Ok(())
    })?;
    let amendment = propose(&events, &ctx, &resolved);
    if args.dry_run {
        print_amendment(&amendment, args.format)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_refused(&amendment);
    if amendment.proposals.is_empty() {
        if amendment.denials == 0 {
            eprintln!("nono: session {} has no sandbox denials: nothing to amend", session.id);
        } else {
            eprintln!("nono: no change to {} would have allowed them (see above)", path.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let accepted = decide(&amendment, args.yes)?;
    if accepted.is_empty() {
        eprintln!("nono: nothing accepted; {} unchanged", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let mut amended = original.clone();
    amend::apply(&mut amended, &accepted);
    let json = amended.to_json_pretty()?;
    // Validate before writing: the result must load.
    profile::load_str(&json, &shown, &vars).context("the amended profile does not validate (nothing was written)")?;
    let before = resolved;
    write_atomically(&path, &json)?;
    let after = profile::load(&shown, &vars)?;
    println!("{}", crate::cli::profile::diff_text(&before, &after));
    eprintln!("nono: {} change(s) written to {}", accepted.len(), path.display());
    Ok(ExitCode::SUCCESS)
}

/// Proposals for `events` against the resolved profile.
fn propose(events: &[Event], ctx: &LearnContext, resolved: &profile::Resolved) -> Amendment {
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
    };
    amend::propose(events, ctx, &granted)
}

fn print_amendment(a: &Amendment, format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(a)?);
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

/// Asks per proposal on a terminal; everything with `--yes`.
fn decide(a: &Amendment, yes: bool) -> anyhow::Result<Vec<Change>> {
    if yes {
        return Ok(a.proposals.iter().map(|p| p.change.clone()).collect());
    }
    if !std::io::stdin().is_terminal() {
        bail!("stdin is not a terminal: pass --yes to accept every proposal, or --dry-run [--format json] to only list them");
    }
    let mut accepted = Vec::new();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    for (i, p) in a.proposals.iter().enumerate() {
        eprintln!("\n[{}/{}] + {}", i + 1, a.proposals.len(), crate::event::display_safe(&p.title));
        if let Some(r) = &p.reason {
            eprintln!("    because: {}", crate::event::display_safe(r));
        }
        loop {
            eprint!("    (y)es / (n)o / (s)kip / (q)uit? ");
            std::io::stderr().flush().ok();
            let Some(line) = lines.next() else { return Ok(accepted) };
            match line?.trim() {
                "y" | "yes" => {
                    accepted.push(p.change.clone());
                    break;
                }
                "n" | "no" | "s" | "skip" | "" => break,
                "q" | "quit" => return Ok(accepted),
                _ => eprintln!("    answer y, n, s or q"),
            }
        }
    }
    Ok(accepted)
}

/// A temp file beside the profile, synced, then renamed over it (mode kept).
fn write_atomically(path: &Path, json: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let tmp = parent.join(format!(".{}.nono-amend", path.file_name().map_or("profile".into(), |n| n.to_string_lossy())));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| format!("creating {} (remove it if a previous amend was interrupted)", tmp.display()))?;
    let written = f.write_all(json.as_bytes()).and_then(|()| f.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", tmp.display()));
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(meta.mode() & 0o7777)).ok();
    let _ = std::os::unix::fs::chown(&tmp, Some(meta.uid()), Some(meta.gid()));
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} over {}", tmp.display(), path.display()))?;
    Ok(())
}
