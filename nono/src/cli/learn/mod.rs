//! `nono learn`: record a command's process tree into the audit store,
//! then synthesise and write a least-privilege profile.
//!
//! Order matters for "no data is ever lost": everything that can fail
//! without running the command (output path, database, backend, offsets,
//! loading the programs) is checked first; once the command has run, its
//! events are in the database before synthesis starts, and a failure to
//! write the profile leaves the session in the store (`--from` rebuilds it).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};

mod fleet;
mod proxy;
mod report;

use self::report::{self as learn_report, RunSummary};
use crate::cli::common::recorder::load_recorder;
use crate::cli::common::{self, Format};
use crate::event::Event;
use crate::invoker;
use crate::learn::{LearnContext, Learned, Synthesiser};
use crate::profile::{Profile, Provenance};
use crate::record::{self, Backend, BackendChoice, session, spawn};
use crate::store::{self, SessionEnd, Store};

/// Ring buffer size by default: 4 MiB (fits the 8 MiB memlock limit some
/// hosts cannot raise, with room for the other maps).
const DEFAULT_RING_BYTES: u32 = 4 << 20;

/// `--progress`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressArg {
    Auto,
    Title,
    Line,
    Never,
}

#[derive(Debug, clap::Args)]
#[expect(clippy::struct_excessive_bools, reason = "independent command-line switches")]
pub struct LearnArgs {
    /// Where to write the learned profile (default: NAME.json in
    /// `$XDG_CONFIG_HOME/nono/profiles`, the user's under sudo; `nono run
    /// --profile NAME` finds it there). Keep it out of the workdir: an
    /// agent that can write its profile widens its next sandbox.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Recording backend: auto picks lsm where BPF LSM programs load, else tracepoint.
    #[arg(long, default_value = "auto")]
    pub backend: BackendChoice,
    /// Audit database (default: $XDG_STATE_HOME/nono/audit.db).
    #[arg(long, env = "NONO_DB")]
    pub db: Option<PathBuf>,
    /// Print what was generalised and why.
    #[arg(long)]
    pub explain: bool,
    /// Grant this sensitive path (and what is beneath it) if the command used it.
    #[arg(long = "allow-sensitive", value_name = "PATH")]
    pub allow_sensitive: Vec<PathBuf>,
    /// Don't record: build the profile from these stored sessions (merged).
    #[arg(long = "from", value_name = "SESSION", num_args = 1.., conflicts_with = "command")]
    pub from: Vec<String>,
    /// Don't record: build the profile from every stored session of this
    /// program (matched as `nono audit sessions --command` matches); with
    /// `--from`, only those of the sessions listed.
    #[arg(long, value_name = "NAME", conflicts_with = "command")]
    pub from_command: Option<String>,
    /// With `--from` on a fleet database (`--db postgres://...`): keep only
    /// rules seen on at least K hosts. `--from all` takes every session.
    #[arg(long, value_name = "K", requires = "from")]
    pub min_hosts: Option<u32>,
    /// With `--from` on a fleet database: only this host's sessions.
    #[arg(long, value_name = "HOST", requires = "from")]
    pub host: Option<String>,
    /// Merge the result into this existing profile: rules of both, those
    /// seen in only one marked `seen_in`.
    #[arg(long, value_name = "PROFILE.json")]
    pub merge: Option<PathBuf>,
    /// Profile name written into `meta.name`.
    #[arg(long)]
    pub name: Option<String>,
    /// Summary format: table or json (csv is refused).
    #[arg(long, default_value = "table")]
    pub format: Format,
    /// Ring buffer size in bytes (a power of two, at least 4096).
    #[arg(long, default_value_t = DEFAULT_RING_BYTES, hide = true, value_parser = parse_ring_bytes)]
    pub ring_bytes: u32,
    /// How to show progress while the command runs: `title` (the terminal
    /// title, OSC 2: nothing is drawn on the command's screen), `line` (a
    /// live status line on stderr), `never`, or `auto` (`line` only when
    /// the command's stdin, stdout and stderr are not terminals, else
    /// `title`). The summary always comes after the command exits.
    #[arg(long, value_name = "WHEN", default_value = "auto")]
    pub progress: ProgressArg,
    /// The same as `--progress never`.
    #[arg(long)]
    pub no_progress: bool,
    /// Do not add the rights a later run needs in directories the agent
    /// owns (removing, renaming, rewriting what this run created).
    #[arg(long)]
    pub no_anticipate: bool,
    /// Do not learn host names: no recording proxy, no `HTTPS_PROXY` for
    /// the command, no `network.allow_domains` in the profile.
    #[arg(long)]
    pub no_domains: bool,
    /// Resolve HOST to ADDR in the recording proxy, like curl's --resolve
    /// (HOST[:PORT]=ADDR[:PORT]); for tests and split-horizon setups.
    #[arg(long = "resolve", value_name = "HOST[:PORT]=ADDR[:PORT]")]
    pub resolve: Vec<String>,
    /// Run the command N times in a row (one session each, nothing reset in
    /// between) and merge them: what a later run does to what an earlier
    /// one left is then observed, not anticipated.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100), value_name = "N")]
    pub runs: u32,
    /// The command to run.
    #[arg(trailing_var_arg = true, required_unless_present_any = ["from", "from_command"], value_name = "CMD")]
    pub command: Vec<OsString>,
}

fn parse_ring_bytes(s: &str) -> Result<u32, String> {
    let n: u32 = s.parse().map_err(|e| format!("{e}"))?;
    if n < 4096 || !n.is_power_of_two() {
        return Err(format!("{n} is not a power of two of at least 4096"));
    }
    Ok(n)
}

pub fn run(args: LearnArgs) -> anyhow::Result<ExitCode> {
    // Before any thread exists: signals nono forwards are read from a signalfd.
    let sigfd = session::block_signals()?;
    if args.format == Format::Csv {
        bail!("learn has no CSV summary: use --format table or json");
    }
    let identity = spawn::Identity::from_sudo()?;
    let db_path = common::db_path(args.db.as_deref(), identity.as_ref())?;
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let output = check_output(&args, &cwd, identity.as_ref())?;
    let ctx = crate::cli::common::context::learn_context(&cwd, identity.as_ref(), &args.allow_sensitive, !args.no_anticipate);

    if !args.from.is_empty() || args.from_command.is_some() {
        drop(sigfd);
        if let Some(url) = crate::cli::common::source::fleet_url(args.db.as_deref()) {
            if args.from_command.is_some() {
                bail!("--from-command reads a local audit database; on a fleet database pass the session ids to --from");
            }
            return fleet::run(&args, url, &output);
        }
        if args.min_hosts.is_some() || args.host.is_some() {
            bail!("--min-hosts and --host need a fleet database (--db postgres://...)");
        }
        return from_sessions(&args, &db_path, &ctx, &output);
    }
    let mut cmd = spawn::Command::new(args.command.clone(), cwd.clone(), identity.clone());
    if let Err(e) = cmd.program() {
        // The shell's convention for "command not found".
        eprintln!("nono: error: {e}");
        return Ok(ExitCode::from(127));
    }
    let proxy = if args.no_domains { None } else { proxy::LearnProxy::start(identity.as_ref(), &args.resolve)? };
    if let Some(p) = &proxy {
        p.set_env(&mut cmd);
    }

    let offsets = record::btf::running_kernel_offsets().context("reading kernel struct offsets from BTF")?;
    let store = Store::open(&db_path).with_context(|| format!("opening the audit database {}", db_path.display()))?;
    let mut recorded: Vec<Recorded> = Vec::new();
    let mut sigfd = Some(sigfd);
    for run in 1..=args.runs {
        // Signals are already blocked for every thread: a fresh signalfd per run.
        let fd = match sigfd.take() {
            Some(fd) => fd,
            None => session::block_signals()?,
        };
        if args.runs > 1 {
            eprintln!("nono: run {run} of {}", args.runs);
        }
        let r = record_once(&args, &cmd, &offsets, &store, &db_path, identity.as_ref(), &ctx, fd, run == 1)?;
        if let Some(p) = &proxy {
            p.store_into(&store, r.session)?;
        }
        if !args.no_domains {
            proxy::store_dns(&store, r.session)?;
        }
        let killed = matches!(r.outcome.status, session::ChildStatus::Signaled(_));
        recorded.push(r);
        if killed && run < args.runs {
            eprintln!("nono: run {run} was killed by a signal: not starting the remaining runs");
            break;
        }
    }
    let Some(last) = recorded.last() else { bail!("no run was recorded") };
    let (status, backend) = (last.outcome.status, last.backend);

    // Synthesis reads the stored trail back: the profile is exactly what
    // the audit log shows.
    let mut runs = Vec::with_capacity(recorded.len());
    for r in &recorded {
        runs.push(synthesise_stored(&store, r.session, &ctx)?);
    }
    let learned = if runs.len() == 1 { runs.remove(0) } else { crate::learn::merge(&runs) };
    let sessions: Vec<i64> = recorded.iter().map(|r| r.session).collect();
    let provenance = Provenance {
        chain_roots: crate::trust::chain_roots(&store, &sessions)?,
        sessions,
        nono_version: env!("CARGO_PKG_VERSION").to_owned(),
        backend: backend.as_str().to_owned(),
        lost_events: recorded.iter().map(|r| r.end.counters.lost()).sum(),
        learned_at: jiff::Timestamp::now().to_string(),
    };
    let name = profile_name(&args);
    let mut learned_profile = learned.to_profile(&name, provenance);
    let sessions: Vec<i64> = recorded.iter().map(|r| r.session).collect();
    if let Some(p) = &proxy {
        p.apply(&mut learned_profile, &store, &sessions)?;
    } else if !args.no_domains {
        // No proxy (root without sudo): names resolved by the command.
        proxy::add_domains(&mut learned_profile, &store, &sessions)?;
    }
    drop(proxy);
    let profile = merged(learned_profile, args.merge.as_deref())?.to_json_pretty()?;
    write_profile(&output, &profile)?;
    let output = output.canonicalize().unwrap_or(output);
    for r in &recorded {
        store.set_profile_path(r.session, &output.to_string_lossy())?;
    }
    print_summary(&args, &recorded, &learned, &output, backend);
    Ok(ExitCode::from(status.exit_code()))
}

/// One recorded run.
struct Recorded {
    session: i64,
    backend: Backend,
    outcome: session::Outcome,
    end: SessionEnd,
}

/// Loads the recorder, records one run of `cmd` into a new session and
/// closes it; the recorder is detached before anything else can fail.
#[expect(clippy::too_many_arguments, reason = "the pieces of one recording, prepared once for every run")]
fn record_once(
    args: &LearnArgs,
    cmd: &spawn::Command,
    offsets: &nono_common::KernelOffsets,
    store: &Store,
    db_path: &Path,
    identity: Option<&spawn::Identity>,
    ctx: &LearnContext,
    sigfd: nix::sys::signalfd::SignalFd,
    first: bool,
) -> anyhow::Result<Recorded> {
    let (mut recorder, why) = load_recorder(args.backend, offsets, args.ring_bytes)?;
    let backend = recorder.backend();
    let session = store.begin_session(&crate::store::NewSession {
        // Kept so `learn --from` and `profile amend` derive rules as here.
        context: serde_json::to_string(ctx).ok(),
        ..common::new_session(&args.command, &cmd.cwd, identity, backend)
    })?;
    if first && let Some(why) = &why {
        eprintln!("nono: recording with the {backend} backend ({why})");
    }
    let (tx, writer) = store::spawn_writer(db_path, session)?;
    let progress = match (args.no_progress, args.progress) {
        (true, _) | (false, ProgressArg::Never) => session::Progress::Off,
        (false, ProgressArg::Auto) => session::Progress::auto(),
        (false, ProgressArg::Title) => session::Progress::Title,
        (false, ProgressArg::Line) => session::Progress::Line,
    };
    let outcome = session::run(recorder.as_mut(), cmd, progress, tx, sigfd);
    drop(recorder);
    let (outcome, end) = common::close_session(store, session, outcome, writer.join(), "recording")?;
    Ok(Recorded { session, backend, outcome, end })
}

/// The learned result of one stored session.
fn synthesise_stored(store: &Store, session: i64, ctx: &LearnContext) -> anyhow::Result<Learned> {
    let mut synth = Synthesiser::new(ctx);
    store.events(session, |e: Event| {
        synth.add(&e);
        Ok(())
    })?;
    Ok(synth.finish())
}

/// `--from`: re-synthesise (and merge) stored sessions without recording.
fn from_sessions(args: &LearnArgs, db_path: &Path, ctx: &LearnContext, output: &Path) -> anyhow::Result<ExitCode> {
    // Only reads: works on a read-only database, changes nothing.
    let store = Store::open_read_only(db_path)?;
    let mut runs = Vec::new();
    let mut ids = Vec::new();
    let mut lost = 0;
    let mut backends = Vec::new();
    let mut chosen = Vec::new();
    for s in &args.from {
        if s == "all" {
            chosen.extend(store.sessions()?);
        } else {
            chosen.push(store.session(s)?);
        }
    }
    if let Some(name) = &args.from_command {
        if args.from.is_empty() {
            chosen = store.sessions()?;
        }
        chosen.retain(|s| crate::cli::common::text::command_matches(&s.info.command, name));
        if chosen.is_empty() {
            bail!("no stored session ran {name:?}; list them with `nono audit sessions`");
        }
        eprintln!(
            "nono: learning from {} session(s) of {name}: {}",
            chosen.len(),
            chosen.iter().map(|s| s.id.to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    for session in chosen {
        let learned = synthesise_stored(&store, session.id, ctx)?;
        lost += session.lost();
        ids.push(session.id);
        if !backends.contains(&session.info.backend) {
            backends.push(session.info.backend.clone());
        }
        runs.push(learned);
    }
    let learned = crate::learn::merge(&runs);
    let provenance = Provenance {
        chain_roots: crate::trust::chain_roots(&store, &ids)?,
        sessions: ids,
        nono_version: env!("CARGO_PKG_VERSION").to_owned(),
        backend: backends.join(","),
        lost_events: lost,
        learned_at: jiff::Timestamp::now().to_string(),
    };
    let mut learned_profile = learned.to_profile(&profile_name(args), provenance.clone());
    if !args.no_domains {
        proxy::add_domains(&mut learned_profile, &store, &provenance.sessions)?;
    }
    let profile = merged(learned_profile, args.merge.as_deref())?.to_json_pretty()?;
    write_profile(output, &profile)?;
    eprintln!("nono: profile from {} session(s) written to {}", runs.len(), output.display());
    learn_report::report_learned(&learned, args.explain);
    Ok(ExitCode::SUCCESS)
}

/// `--merge BASE`: the union of BASE's and the new profile's rules and
/// ports; a rule (or right) present on one side only is marked
/// `seen_in: {runs: 1, of: 2}` so the user can judge it.
pub(super) fn merged(new: Profile, base: Option<&Path>) -> anyhow::Result<Profile> {
    use crate::profile::rights::SeenIn;
    let Some(base_path) = base else { return Ok(new) };
    let text = std::fs::read_to_string(base_path).with_context(|| format!("reading {}", base_path.display()))?;
    let base = Profile::parse(&text, &base_path.display().to_string())?;
    let mut out = new.clone();
    let once = Some(SeenIn { runs: 1, of: 2, ..SeenIn::default() });
    let mut rules = Vec::new();
    for r in &new.filesystem.rules {
        let mut r = r.clone();
        match base.filesystem.rules.iter().find(|b| b.path == r.path && b.file == r.file) {
            Some(b) => {
                if b.access != r.access {
                    r.seen_in = once;
                }
                r.access.extend(b.access.iter().copied());
            }
            None => r.seen_in = once,
        }
        rules.push(r);
    }
    for b in &base.filesystem.rules {
        if !rules.iter().any(|r| r.path == b.path && r.file == b.file) {
            let mut b = b.clone();
            b.seen_in = once;
            rules.push(b);
        }
    }
    rules.sort_by(|a, b| a.path.cmp(&b.path));
    out.filesystem.rules = rules;
    let union = |a: &Option<std::collections::BTreeSet<u16>>, b: &Option<std::collections::BTreeSet<u16>>| match (a, b) {
        (Some(x), Some(y)) => Some(x.union(y).copied().collect()),
        (x, y) => x.clone().or_else(|| y.clone()),
    };
    out.network.open_port = union(&new.network.open_port, &base.network.open_port);
    out.network.listen_port = union(&new.network.listen_port, &base.network.listen_port);
    out.network.udp = match (&new.network.udp, &base.network.udp) {
        (Some(a), Some(b)) => Some(crate::profile::Udp { dns: a.dns || b.dns, to: a.to.union(&b.to).copied().collect() }),
        (a, b) => a.clone().or_else(|| b.clone()),
    };
    out.network.icmp = match (&new.network.icmp, &base.network.icmp) {
        (Some(a), Some(b)) => Some(a.union(b).copied().collect()),
        (a, b) => a.clone().or_else(|| b.clone()),
    };
    out.network.unix_connect = match (&new.network.unix_connect, &base.network.unix_connect) {
        (Some(a), Some(b)) => Some(a.iter().chain(b).cloned().collect::<std::collections::BTreeSet<_>>().into_iter().collect()),
        (a, b) => a.clone().or_else(|| b.clone()),
    };
    out.network.families = new
        .network
        .families
        .iter()
        .chain(&base.network.families)
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    out.sandbox = new.sandbox.merge(&base.sandbox);
    out.filesystem.brokered.extend(base.filesystem.brokered.iter().filter(|b| !new.filesystem.brokered.contains(b)).cloned());
    out.extends = base.extends;
    Ok(out)
}

/// The profile's name: `--name`, else the command's file name (`learned`
/// for `--from`).
pub(super) fn profile_name(args: &LearnArgs) -> String {
    args.name.clone().unwrap_or_else(|| match &args.from_command {
        Some(name) => crate::cli::common::text::program_name(&[name.as_str()]).unwrap_or_else(|| "learned".to_owned()),
        None if args.from.is_empty() => default_name(&args.command),
        None => "learned".to_owned(),
    })
}

/// The user's profiles directory: `$XDG_CONFIG_HOME/nono/profiles`, the
/// invoking user's `~/.config/nono/profiles` under sudo.
fn profiles_dir(cwd: &Path, identity: Option<&spawn::Identity>) -> PathBuf {
    match identity {
        Some(id) => crate::profile::Vars::for_home(cwd.to_path_buf(), &id.home).profiles_dir(),
        None => crate::profile::Vars::from_env(cwd.to_path_buf()).profiles_dir(),
    }
}

/// Where the profile goes, checked before anything is recorded: not a
/// directory, not an existing file without `--force`, in a directory the
/// user can write (the default directory is created, 0700, as the user).
fn check_output(args: &LearnArgs, cwd: &Path, identity: Option<&spawn::Identity>) -> anyhow::Result<PathBuf> {
    let output = if let Some(o) = &args.output {
        cwd.join(o)
    } else {
        let name = profile_name(args);
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            bail!("cannot name a profile {name:?}; pass --name NAME or --output FILE");
        }
        let dir = profiles_dir(cwd, identity);
        invoker::fs::make_private_dirs(&dir)?;
        dir.join(format!("{name}.json"))
    };
    let parent = output.parent().unwrap_or(Path::new("/"));
    if !parent.is_dir() {
        bail!("cannot write the profile to {}: {} is not a directory", output.display(), parent.display());
    }
    invoker::fs::check_writable(&output, args.force)
        .with_context(|| format!("cannot write the profile to {}", output.display()))?;
    Ok(output)
}

/// Atomic write, as the user under sudo (see `invoker::fs`).
pub(super) fn write_profile(output: &Path, json: &str) -> anyhow::Result<()> {
    invoker::fs::write_atomic(output, json.as_bytes(), 0o600).with_context(|| format!("writing {}", output.display()))
}

/// The real program's name, past wrappers such as `timeout`, `env` and
/// `sh -c` (see `text::program_name`).
fn default_name(command: &[OsString]) -> String {
    let argv: Vec<String> = command.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    crate::cli::common::text::program_name(&argv).unwrap_or_else(|| "learned".to_owned())
}

fn print_summary(args: &LearnArgs, recorded: &[Recorded], learned: &Learned, output: &Path, backend: Backend) {
    if args.format == Format::Json {
        let runs: Vec<_> = recorded
            .iter()
            .map(|r| {
                serde_json::json!({
                    "session": r.session,
                    "exit_code": r.outcome.status.exit_code(),
                    "duration_ms": r.outcome.duration.as_millis() as u64,
                    "events": r.end.events,
                    "lost": r.end.counters.lost(),
                    "complete": r.end.counters.lost() == 0,
                    "counters": r.outcome.counters,
                })
            })
            .collect();
        let last = recorded.last();
        let summary = serde_json::json!({
            "session": last.map(|r| r.session),
            "sessions": recorded.iter().map(|r| r.session).collect::<Vec<_>>(),
            "backend": backend.as_str(),
            "exit_code": last.map(|r| r.outcome.status.exit_code()),
            "duration_ms": recorded.iter().map(|r| r.outcome.duration.as_millis() as u64).sum::<u64>(),
            "events": recorded.iter().map(|r| r.end.events).sum::<u64>(),
            "lost": recorded.iter().map(|r| r.end.counters.lost()).sum::<u64>(),
            "runs": runs,
            "rules": learned.rules.len(),
            "connect_ports": learned.connect_ports,
            "bind_ports": learned.bind_ports,
            "udp": learned.udp,
            "icmp": learned.icmp,
            "unix_connect": learned.unix_connect,
            "families": learned.families,
            "sandbox": learned.sandbox,
            "notes": learned.notes,
            "sensitive": learned.sensitive,
            "warnings": learned.warnings,
            "profile": output,
        });
        println!("{}", crate::cli::common::text::json_pretty(&summary).unwrap_or_default());
        return;
    }
    for r in recorded {
        learn_report::print_run(
            &RunSummary { session: r.session, outcome: &r.outcome, stored: r.end.events, lost: r.end.counters.lost() },
            backend,
        );
    }
    learn_report::report_learned(learned, args.explain);
    learn_report::print_profile_line(learned, output, &args.command);
}
