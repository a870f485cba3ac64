//! `nono audit report SESSION --html FILE` and `nono profile report P
//! --html FILE [--against SESSION]`: gather a session's events (streamed
//! through the store, aggregated in [`crate::report`]) or a profile's
//! rules, and write the self-contained page.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::learn::LearnContext;
use crate::profile::{self, Vars};
use crate::record::spawn::Identity;
use crate::report::{self, Aggregator, Header, ProfileReport, Rules, Sensitive};
use crate::store::{Session, SessionState, Store};

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
        value_name = "PATH",
        help = super::audit::DB_HELP
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
    #[arg(long, env = "NONO_DB", value_name = "PATH", help = "Audit database (for --against)")]
    pub db: Option<PathBuf>,
}

fn open(db: Option<&Path>) -> anyhow::Result<Store> {
    let path = crate::cli::common::db_path(db, Identity::from_sudo()?.as_ref())?;
    Ok(Store::open_read_only(&path)?)
}

/// The session's stored learning context, or one for where it ran.
fn context_of(session: &Session) -> anyhow::Result<LearnContext> {
    if let Some(ctx) = session.info.context.as_deref().and_then(|c| serde_json::from_str::<LearnContext>(c).ok()) {
        return Ok(ctx);
    }
    let identity = Identity::from_sudo()?;
    Ok(crate::cli::context::learn_context(Path::new(&session.info.cwd), identity.as_ref(), &[], true))
}

fn vars_of(ctx: &LearnContext) -> Vars {
    Vars {
        home: ctx.home.clone(),
        cwd: ctx.cwd.clone(),
        tmpdir: ctx.tmpdir.clone(),
        xdg_config_home: ctx.xdg_config_home.clone(),
        xdg_cache_home: ctx.xdg_cache_home.clone(),
    }
}

fn header(s: &Session) -> Header {
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
        started: jiff::Timestamp::from_nanosecond(i128::from(s.started_ns))
            .map_or_else(|_| s.started_ns.to_string(), |t| t.to_string()),
        duration_ms: s.ended_ns.map(|e| (e - s.started_ns) / 1_000_000),
        exit: super::audit::exit_text(s),
        events: s.events,
        lost: s.lost(),
        counters: counters.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        note: s.note.clone(),
        profile: None,
        profile_note: None,
    }
}

fn write_page(path: &Path, page: &str) -> anyhow::Result<()> {
    std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))
}

pub fn audit(args: &AuditReportArgs) -> anyhow::Result<ExitCode> {
    let store = open(args.db.as_deref())?;
    let session = store.session(&args.session)?;
    let ctx = context_of(&session)?;
    let vars = vars_of(&ctx);
    let mut head = header(&session);
    // The one it learned, else the one it ran under.
    let spec = args.profile.clone().or_else(|| session.profile_path.clone()).or_else(|| session.info.profile.clone());
    let rules = match &spec {
        None => {
            head.profile_note = Some("the session wrote no profile: no rules to show".to_owned());
            Rules::default()
        }
        Some(spec) => match profile::load(spec, &vars) {
            Ok(r) => {
                head.profile = Some(spec.clone());
                Rules::from_resolved(&r)
            }
            Err(e) => {
                eprintln!("nono: warning: the report shows no rules: {e}");
                head.profile_note = Some(format!("not shown: {e}"));
                Rules::default()
            }
        },
    };
    let end_ns = session.ended_ns.unwrap_or_else(|| jiff::Timestamp::now().as_nanosecond() as i64);
    let mut agg = Aggregator::new(session.started_ns, end_ns - session.started_ns);
    if session.events > 1_000_000 {
        eprintln!("nono: aggregating {} events (streamed; about a second per million)", session.events);
    }
    store.events(session.id, |e| {
        agg.add(&e);
        Ok(())
    })?;
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
            let store = open(args.db.as_deref())?;
            let session = store.session(spec)?;
            (vars_of(&context_of(&session)?), Some((store, session)))
        }
    };
    let resolved = profile::load(&args.profile, &vars)?;
    let mut rules = Rules::from_resolved(&resolved);
    let against = match against {
        None => None,
        Some((store, session)) => {
            // Streamed: memory stays bounded on huge sessions.
            let mut usage = report::Usage::default();
            store.events(session.id, |e| {
                usage.add(&mut rules, &e);
                Ok(())
            })?;
            Some(header(&session))
        }
    };
    let network = super::profile::describe_net(&resolved);
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
