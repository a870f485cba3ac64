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

use crate::cli::common::{self, Format};
use crate::event::Event;
use crate::learn::{LearnContext, Learned, Synthesiser};
use crate::profile::{Profile, Provenance};
use crate::record::{self, Backend, BackendChoice, Recorder, session, spawn};
use crate::store::{self, Store};

/// Ring buffer size by default: 4 MiB (fits the 8 MiB memlock limit some
/// hosts cannot raise, with room for the other maps).
const DEFAULT_RING_BYTES: u32 = 4 << 20;

#[derive(Debug, clap::Args)]
pub struct LearnArgs {
    /// Where to write the learned profile.
    #[arg(long, short, default_value = "learned.json")]
    pub output: PathBuf,
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
    /// Merge the result into this existing profile: rules of both, those
    /// seen in only one marked `seen_in`.
    #[arg(long, value_name = "PROFILE.json")]
    pub merge: Option<PathBuf>,
    /// Profile name written into `meta.name`.
    #[arg(long)]
    pub name: Option<String>,
    /// Summary format.
    #[arg(long, default_value = "table")]
    pub format: Format,
    /// Ring buffer size in bytes (a power of two, at least 4096).
    #[arg(long, default_value_t = DEFAULT_RING_BYTES, hide = true, value_parser = parse_ring_bytes)]
    pub ring_bytes: u32,
    /// No live progress line.
    #[arg(long)]
    pub no_progress: bool,
    /// The command to run.
    #[arg(trailing_var_arg = true, required_unless_present = "from", value_name = "CMD")]
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
    let identity = spawn::Identity::from_sudo()?;
    let owner = identity.as_ref().map(|i| (i.uid, i.gid));
    let db_path = common::db_path(args.db.as_deref(), identity.as_ref())?;
    check_output(&args.output, args.force)?;
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let ctx = learn_context(&cwd, identity.as_ref(), &args.allow_sensitive);

    if !args.from.is_empty() {
        drop(sigfd);
        return from_sessions(&args, &db_path, &ctx);
    }
    let cmd = spawn::Command::new(args.command.clone(), cwd.clone(), identity.clone());
    if let Err(e) = cmd.program() {
        // The shell's convention for "command not found".
        eprintln!("nono: error: {e}");
        return Ok(ExitCode::from(127));
    }

    let offsets = record::btf::running_kernel_offsets().context("reading kernel struct offsets from BTF")?;
    let (mut recorder, why) = load_recorder(args.backend, &offsets, args.ring_bytes)?;
    let backend = recorder.backend();
    let store = Store::open(&db_path, owner).with_context(|| format!("opening the audit database {}", db_path.display()))?;
    let session_id = store.begin_session(&common::new_session(&args.command, &cwd, identity.as_ref(), backend))?;
    if let Some(why) = &why {
        eprintln!("nono: recording with the {backend} backend ({why})");
    }
    let (tx, writer) = store::spawn_writer(&db_path, session_id)?;
    let progress = if args.no_progress { session::Progress::Off } else { session::Progress::Auto };
    let outcome = session::run(recorder.as_mut(), &cmd, progress, tx, sigfd);
    // Detach every program before anything else can fail.
    drop(recorder);
    let (outcome, end) = common::close_session(&store, session_id, outcome, writer.join(), "recording")?;
    let (stored, lost) = (end.events, end.counters.lost());

    // Synthesis reads the stored trail back: the profile is exactly what
    // the audit log shows.
    let mut synth = Synthesiser::new(&ctx);
    store.events(session_id, |e: Event| {
        synth.add(&e);
        Ok(())
    })?;
    let learned = synth.finish();
    let provenance = Provenance {
        sessions: vec![session_id],
        nono_version: env!("CARGO_PKG_VERSION").to_owned(),
        backend: backend.as_str().to_owned(),
        lost_events: lost,
        learned_at: jiff::Timestamp::now().to_string(),
    };
    let name = args.name.clone().unwrap_or_else(|| default_name(&args.command));
    let profile = merged(Profile::from_learned(&learned, &name, provenance), args.merge.as_deref())?.to_json_pretty()?;
    write_profile(&args.output, &profile)?;
    let output = args.output.canonicalize().unwrap_or_else(|_| args.output.clone());
    store.set_profile_path(session_id, &output.to_string_lossy())?;
    if let Some((uid, gid)) = owner {
        let _ = std::os::unix::fs::chown(&output, Some(uid), Some(gid));
    }
    print_summary(&args, session_id, &outcome, stored, lost, &learned, &output, backend);
    Ok(ExitCode::from(outcome.status.exit_code()))
}

/// `--from`: re-synthesise (and merge) stored sessions without recording.
fn from_sessions(args: &LearnArgs, db_path: &Path, ctx: &LearnContext) -> anyhow::Result<ExitCode> {
    // Only reads: works on a read-only database, changes nothing.
    let store = Store::open_read_only(db_path)?;
    let mut runs = Vec::new();
    let mut ids = Vec::new();
    let mut lost = 0;
    let mut backends = Vec::new();
    for s in &args.from {
        let session = store.session(s)?;
        let mut synth = Synthesiser::new(ctx);
        store.events(session.id, |e: Event| {
            synth.add(&e);
            Ok(())
        })?;
        lost += session.lost();
        ids.push(session.id);
        if !backends.contains(&session.info.backend) {
            backends.push(session.info.backend.clone());
        }
        runs.push(synth.finish());
    }
    let learned = crate::learn::merge(&runs);
    let provenance = Provenance {
        sessions: ids,
        nono_version: env!("CARGO_PKG_VERSION").to_owned(),
        backend: backends.join(","),
        lost_events: lost,
        learned_at: jiff::Timestamp::now().to_string(),
    };
    let profile =
        merged(Profile::from_learned(&learned, args.name.as_deref().unwrap_or("learned"), provenance), args.merge.as_deref())?
            .to_json_pretty()?;
    write_profile(&args.output, &profile)?;
    eprintln!("nono: profile from {} session(s) written to {}", runs.len(), args.output.display());
    report_learned(&learned, args.explain);
    Ok(ExitCode::SUCCESS)
}

/// Loads the requested backend; `auto` tries BPF LSM (a real load is the
/// only reliable probe: some kernels list `bpf` among the LSMs and still
/// refuse the programs) and falls back to tracepoints, saying why.
pub(crate) fn load_recorder(
    choice: BackendChoice,
    offsets: &nono_common::KernelOffsets,
    ring_bytes: u32,
) -> anyhow::Result<(Box<dyn Recorder>, Option<String>)> {
    let load = |b: Backend| record::load(b, offsets, ring_bytes).with_context(|| format!("loading the {b} recorder"));
    match choice {
        BackendChoice::Lsm => Ok((load(Backend::Lsm)?, None)),
        BackendChoice::Tracepoint => Ok((load(Backend::Tracepoint)?, None)),
        BackendChoice::Auto => {
            let lsm_listed =
                std::fs::read_to_string("/sys/kernel/security/lsm").is_ok_and(|l| l.trim().split(',').any(|m| m == "bpf"));
            if !lsm_listed {
                let why = "BPF LSM is not active (no `bpf` in /sys/kernel/security/lsm)".to_owned();
                return Ok((load(Backend::Tracepoint)?, Some(why)));
            }
            match record::load(Backend::Lsm, offsets, ring_bytes) {
                Ok(r) => Ok((r, None)),
                Err(e) => {
                    let why = format!(
                        "BPF LSM programs are refused here: {}",
                        anyhow::Error::from(e).chain().last().map(ToString::to_string).unwrap_or_default()
                    );
                    Ok((load(Backend::Tracepoint)?, Some(why)))
                }
            }
        }
    }
}

/// `--merge BASE`: the union of BASE's and the new profile's rules and
/// ports; a rule (or right) present on one side only is marked
/// `seen_in: {runs: 1, of: 2}` so the user can judge it.
fn merged(new: Profile, base: Option<&Path>) -> anyhow::Result<Profile> {
    use crate::profile::rights::SeenIn;
    let Some(base_path) = base else { return Ok(new) };
    let text = std::fs::read_to_string(base_path).with_context(|| format!("reading {}", base_path.display()))?;
    let base = Profile::parse(&text, &base_path.display().to_string())?;
    let mut out = new.clone();
    let once = Some(SeenIn { runs: 1, of: 2 });
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
    out.extends = base.extends;
    Ok(out)
}

fn check_output(output: &Path, force: bool) -> anyhow::Result<()> {
    if output.exists() && !force {
        bail!("{} already exists; pass --force to overwrite it or --output to choose another file", output.display());
    }
    let parent = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !parent.is_dir() {
        bail!("cannot write the profile to {}: {} is not a directory", output.display(), parent.display());
    }
    Ok(())
}

/// Atomic write: a temp file in the same directory, then rename.
fn write_profile(output: &Path, json: &str) -> anyhow::Result<()> {
    let parent = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = parent.join(format!(".{}.nono-tmp", output.file_name().map_or("profile".into(), |n| n.to_string_lossy())));
    std::fs::write(&tmp, json.as_bytes()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, output).with_context(|| format!("renaming {} to {}", tmp.display(), output.display()))?;
    Ok(())
}

fn learn_context(cwd: &Path, identity: Option<&spawn::Identity>, allow_sensitive: &[PathBuf]) -> LearnContext {
    let home = identity
        .map(|i| i.home.clone())
        .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/root"));
    let env_dir = |var: &str, default: PathBuf| {
        // Under sudo, nono's own XDG variables are root's: use the user's defaults.
        if identity.is_some() {
            return default;
        }
        std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_absolute()).unwrap_or(default)
    };
    LearnContext {
        cwd: cwd.to_path_buf(),
        tmpdir: std::env::var_os("TMPDIR")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| PathBuf::from("/tmp")),
        xdg_config_home: env_dir("XDG_CONFIG_HOME", home.join(".config")),
        xdg_cache_home: env_dir("XDG_CACHE_HOME", home.join(".cache")),
        allow_sensitive: allow_sensitive.iter().map(|p| if p.is_absolute() { p.clone() } else { cwd.join(p) }).collect(),
        home,
    }
}

fn default_name(command: &[OsString]) -> String {
    command
        .first()
        .and_then(|c| Path::new(c).file_name())
        .map_or_else(|| "learned".to_owned(), |n| n.to_string_lossy().into_owned())
}

#[expect(clippy::too_many_arguments, reason = "one summary of one session")]
fn print_summary(
    args: &LearnArgs,
    session_id: i64,
    outcome: &session::Outcome,
    stored: u64,
    lost: u64,
    learned: &Learned,
    output: &Path,
    backend: Backend,
) {
    if args.format == Format::Json {
        let summary = serde_json::json!({
            "session": session_id,
            "backend": backend.as_str(),
            "exit_code": outcome.status.exit_code(),
            "duration_ms": outcome.duration.as_millis() as u64,
            "events": stored,
            "lost": lost,
            "complete": lost == 0,
            "counters": outcome.counters,
            "rules": learned.rules.len(),
            "connect_ports": learned.connect_ports,
            "bind_ports": learned.bind_ports,
            "sensitive": learned.sensitive,
            "warnings": learned.warnings,
            "profile": output,
        });
        println!("{}", serde_json::to_string_pretty(&summary).unwrap_or_default());
        return;
    }
    eprintln!(
        "nono: session {session_id} ({backend}): {} after {:.1?}, {stored} events recorded",
        describe_status(outcome.status),
        outcome.duration
    );
    if lost > 0 {
        eprintln!(
            "nono: WARNING: {lost} events were lost ({} ring-buffer drops, {} unreadable paths, {} truncated paths, {} pending-table overflows, {} tree-table overflows, {} undecodable, {} unstored).",
            outcome.counters.ringbuf_drops,
            outcome.counters.path_failures,
            outcome.counters.path_truncations,
            outcome.counters.pending_full,
            outcome.counters.traced_full,
            outcome.decode_errors,
            lost.saturating_sub(outcome.counters.lost() + outcome.decode_errors),
        );
        eprintln!("nono: WARNING: the profile may be incomplete; re-run `nono learn`, or merge sessions with --from.");
    }
    if outcome.still_running > 0 {
        eprintln!(
            "nono: note: {} process(es) of the tree were still running when the command exited; their later actions were not recorded.",
            outcome.still_running
        );
    }
    report_learned(learned, args.explain);
    eprintln!(
        "nono: profile: {} rules, {} connect port(s), {} listen port(s) -> {}",
        learned.rules.len(),
        learned.connect_ports.len(),
        learned.bind_ports.len(),
        output.display()
    );
    eprintln!("nono: enforce it with: nono run --profile {} -- {}", output.display(), shell_words(&args.command));
}

fn report_learned(learned: &Learned, explain: bool) {
    for hit in &learned.sensitive {
        eprintln!(
            "nono: SENSITIVE: {} ({}) was used by {} and NOT granted: {}. Grant it with --allow-sensitive {}",
            hit.path,
            hit.matched,
            hit.comms.join(","),
            hit.why,
            hit.path
        );
    }
    for w in &learned.warnings {
        eprintln!("nono: warning: {w}");
    }
    if explain {
        for x in &learned.explanations {
            eprintln!("nono: explain: {} <- {} path(s) ({}): {}", x.rule_path, x.paths, x.reason, x.from.join(", "));
        }
    }
}

fn describe_status(status: session::ChildStatus) -> String {
    match status {
        session::ChildStatus::Exited(c) => format!("exited with {c}"),
        session::ChildStatus::Signaled(s) => format!("killed by signal {s}"),
    }
}

fn shell_words(argv: &[OsString]) -> String {
    argv.iter()
        .map(|a| {
            let s = a.to_string_lossy();
            if s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@".contains(c)) && !s.is_empty() {
                s.into_owned()
            } else {
                format!("'{}'", s.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
