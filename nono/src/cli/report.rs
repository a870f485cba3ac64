//! `nono audit report SESSION --html FILE` and `nono profile report P
//! --html FILE [--against SESSION]`: gather a session's events (streamed
//! from the local store or the fleet database, aggregated in
//! [`crate::report`]) or a profile's rules, and write the self-contained
//! page.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::common::source::{self, HostView, Source};
use crate::learn::LearnContext;
use crate::profile::{self, Vars};
use crate::record::spawn::Identity;
use crate::report::{self, Aggregator, Header, ProfileReport, Rules, Sensitive};
use crate::store::{Session, SessionState};

/// `nono audit report`.
#[derive(Debug, clap::Args)]
pub struct AuditReportArgs {
    /// Session id, or `last`.
    pub session: String,
    /// Write the HTML report here.
    #[arg(long, value_name = "FILE")]
    pub html: PathBuf,
    /// Show the rules of this profile instead of the one the session learned.
    #[arg(long)]
    pub profile: Option<String>,
    #[arg(
        long,
        env = "NONO_DB",
        value_name = "PATH|URL",
        help = crate::cli::common::source::DB_HELP
    )]
    pub db: Option<PathBuf>,
}

/// `nono profile report`.
#[derive(Debug, clap::Args)]
pub struct ProfileReportArgs {
    /// A JSON file, a name in ~/.config/nono/profiles, or a built-in.
    pub profile: String,
    /// Write the HTML report here.
    #[arg(long, value_name = "FILE")]
    pub html: PathBuf,
    /// A session (id or `last`): which rules it used, which it never touched.
    #[arg(long, value_name = "SESSION")]
    pub against: Option<String>,
    #[arg(
        long,
        env = "NONO_DB",
        value_name = "PATH|URL",
        help = "Audit database for --against: a file, or a fleet's postgres:// URL"
    )]
    pub db: Option<PathBuf>,
}

fn open(db: Option<&Path>) -> anyhow::Result<Source> {
    source::open_db(db, None)
}

/// The session's stored learning context, or one for where it ran.
fn context_of(session: &Session) -> anyhow::Result<LearnContext> {
    if let Some(ctx) = session.info.context.as_deref().and_then(|c| serde_json::from_str::<LearnContext>(c).ok()) {
        return Ok(ctx);
    }
    let identity = Identity::from_sudo()?;
    Ok(crate::cli::common::context::learn_context(Path::new(&session.info.cwd), identity.as_ref(), &[], true))
}

fn vars_of(ctx: &LearnContext) -> Vars {
    let mut vars = Vars::for_home(ctx.cwd.clone(), &ctx.home);
    vars.tmpdir.clone_from(&ctx.tmpdir);
    vars.xdg_config_home.clone_from(&ctx.xdg_config_home);
    vars.xdg_cache_home.clone_from(&ctx.xdg_cache_home);
    // A past session: no terminal of its own to name.
    vars.tty = None;
    vars
}

/// The rules a session's report shows: `--profile` when given; for a
/// `run` session, the profile it enforced as stored with it (a later amend
/// or `learn --force` of the file does not change it); else the profile
/// it learned (its file as it is now), else the one it ran under.
fn session_rules(
    store: &mut Source,
    session: &Session,
    explicit: Option<&str>,
    vars: &Vars,
) -> anyhow::Result<(Option<profile::Resolved>, Option<String>, Option<String>)> {
    if explicit.is_none()
        && let Some(stored) = store.enforced_profile(session.id)?
    {
        let name = session.info.profile.clone().unwrap_or_else(|| "(no profile)".to_owned());
        let shown = format!("{name} (as enforced, sha256 {})", short_hash(&stored.hash));
        return match profile::load_str(&stored.json, &format!("session {}'s enforced profile", session.id), vars) {
            Ok(r) => Ok((Some(r), Some(shown), None)),
            Err(e) => Ok((None, None, Some(format!("the stored profile does not load: {e}")))),
        };
    }
    let spec = explicit.map(str::to_owned).or_else(|| session.profile_path.clone()).or_else(|| session.info.profile.clone());
    let Some(spec) = spec else {
        return Ok((None, None, Some("the session wrote no profile: no rules to show".to_owned())));
    };
    match profile::load(&spec, vars) {
        Ok(r) => {
            let note = (explicit.is_none() && session.info.kind == crate::store::SessionKind::Run)
                .then(|| "the session stored no profile (recorded before nono stored them): shown as the file is now".to_owned());
            Ok((Some(r), Some(spec), note))
        }
        Err(e) => {
            eprintln!("nono: warning: the report shows no rules: {e}");
            Ok((None, None, Some(format!("not shown: {e}"))))
        }
    }
}

/// The first 12 hex digits of a hash, for people.
fn short_hash(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

/// Which version of a profile `profile report --against` compares, and
/// whether it is the one the session ran under.
fn version_note(store: &mut Source, session: &Session, spec: &str, resolved: &profile::Resolved) -> anyhow::Result<String> {
    let now = crate::cli::common::describe::enforced(resolved, false)?;
    let mut note = format!("compared: {spec} as it is now (sha256 {})", short_hash(&now.hash));
    match store.enforced_profile(session.id)? {
        Some(ran) if ran.hash == now.hash => note.push_str("; the session ran under this same version"),
        Some(ran) => {
            let _ = std::fmt::Write::write_fmt(
                &mut note,
                format_args!(
                    "; the session ran under {} (sha256 {}): the profile changed since",
                    session.info.profile.as_deref().unwrap_or("another profile"),
                    short_hash(&ran.hash)
                ),
            );
        }
        None => note.push_str(
            "; the session stored no profile to compare with (a learn session, or one recorded before nono stored them)",
        ),
    }
    Ok(note)
}

fn header(s: &Session, host: &HostView) -> Header {
    let c = &s.counters;
    let counters = [
        ("ringbuf_drops", c.ringbuf_drops),
        ("pending_full", c.pending_full),
        ("traced_full", c.traced_full),
        ("scratch_busy", c.scratch_busy),
        ("decode_errors", c.decode_errors),
        ("unstored", c.unstored),
        ("path_failures", c.path_failures),
        ("path_truncations", c.path_truncations),
    ];
    Header {
        id: s.id,
        command: s.info.command.clone(),
        cwd: s.info.cwd.clone(),
        backend: s.info.backend.clone(),
        kernel: s.info.kernel.clone(),
        state: if s.recorder_gone() { "running (recorder gone)".to_owned() } else { s.state.as_str().to_owned() },
        complete: s.state == SessionState::Complete && s.lost() == 0,
        // To the second, in UTC: the page is read anywhere, and a short
        // value stays on one line of its cell.
        started: jiff::Timestamp::from_nanosecond(i128::from(s.started_ns))
            .map_or_else(|_| s.started_ns.to_string(), |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()),
        duration_ms: s.ended_ns.map(|e| (e - s.started_ns) / 1_000_000),
        exit: crate::cli::common::text::exit_text(s),
        events: s.events,
        lost: s.lost(),
        counters: counters.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        note: s.note.clone(),
        profile: None,
        profile_note: None,
        host: Some(host.label.clone()),
        ..Header::default()
    }
}

/// Written as the invoking user under sudo, atomically, and never through
/// a symbolic link: an agent can plant `report.html -> /etc/...` in the
/// workdir where a reviewer later runs `sudo nono audit report`.
fn write_page(path: &Path, page: &str) -> anyhow::Result<()> {
    crate::invoker::fs::write_atomic(path, page.as_bytes(), 0o644).with_context(|| format!("writing {}", path.display()))
}

pub fn audit(args: &AuditReportArgs) -> anyhow::Result<ExitCode> {
    let mut store = open(args.db.as_deref())?;
    let session = store.session(&args.session)?;
    let ctx = context_of(&session)?;
    let vars = vars_of(&ctx);
    let host = store.host_of(session.id)?;
    let mut head = header(&session, &host);
    if let Ok(db) = crate::cli::common::db_path(args.db.as_deref(), Identity::from_sudo()?.as_ref()) {
        head.snapshot = crate::cli::common::rollback::snapshot_of_session(&db, session.id);
    }
    let (resolved, shown, note) = session_rules(&mut store, &session, args.profile.as_deref(), &vars)?;
    head.profile = shown;
    head.profile_note = note;
    let rules = resolved.as_ref().map(Rules::from_resolved).unwrap_or_default();
    let end_ns = session.ended_ns.unwrap_or_else(|| jiff::Timestamp::now().as_nanosecond() as i64);
    let mut agg = Aggregator::new(session.started_ns, end_ns - session.started_ns);
    if session.events > 1_000_000 {
        eprintln!("nono: aggregating {} events (streamed; about a second per million)", session.events);
    }
    store.events(session.id, |e| agg.add(&e))?;
    // The network proxy's decisions by name (issue 23).
    for r in store.domains(session.id)? {
        agg.add_named(&r.domain, r.port, r.addr.as_deref(), r.result == 1, r.result >= 2);
    }
    let data = agg.finish(head, rules, &Sensitive::new(&ctx), &session.info.command);
    let page = report::html::render(&data)?;
    write_page(&args.html, &page)?;
    println!("{}", args.html.display());
    eprintln!(
        "nono: report of session {}: {} events, {} tree nodes{}, {} KiB",
        session.id,
        data.events,
        data.nodes.len(),
        if data.capped_nodes > 0 { format!(" ({} folded)", data.capped_nodes) } else { String::new() },
        page.len() / 1024
    );
    Ok(ExitCode::SUCCESS)
}

pub fn profile(args: &ProfileReportArgs, vars: &Vars) -> anyhow::Result<ExitCode> {
    let (vars, against) = match &args.against {
        None => (vars.clone(), None),
        Some(spec) => {
            let mut store = open(args.db.as_deref())?;
            let session = store.session(spec)?;
            (vars_of(&context_of(&session)?), Some((store, session)))
        }
    };
    let resolved = profile::load(&args.profile, &vars)?;
    let mut rules = Rules::from_resolved(&resolved);
    let against = match against {
        None => None,
        Some((mut store, session)) => {
            // Streamed: memory stays bounded on huge sessions.
            let mut usage = report::Usage::default();
            let mut denied = 0;
            store.events(session.id, |e| {
                usage.add(&mut rules, &e);
                denied += u64::from(e.outcome.class() == "denied");
            })?;
            let host = store.host_of(session.id)?;
            let mut head = header(&session, &host);
            head.denied = denied;
            let note = version_note(&mut store, &session, &args.profile, &resolved)?;
            eprintln!("nono: {}", crate::event::display_safe(&note));
            head.profile = Some(args.profile.clone());
            head.profile_note = Some(note);
            Some(head)
        }
    };
    let network = crate::cli::common::describe::describe_net(&resolved);
    let data = ProfileReport::new(&resolved.profile, rules, against, network);
    let page = report::html::render(&data)?;
    write_page(&args.html, &page)?;
    println!("{}", args.html.display());
    if data.against.is_some() {
        let unused = data.rules.iter().filter(|r| r.used == 0).count();
        eprintln!("nono: {} rule(s), {unused} never used by the session", data.rules.len());
    }
    Ok(ExitCode::SUCCESS)
}
