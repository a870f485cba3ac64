//! `nono run` (supervised) and `nono wrap` (exec in place): enforce a
//! profile on a command.
//!
//! Order matters: the profile is loaded, checked (sensitive paths, a
//! profile the command could rewrite, what cannot be enforced) and the
//! sandbox built while nono is still killable by SIGTERM; only then are
//! the forwarded signals blocked and the command started. Exit codes: the
//! command's own, 125 for nono's failures (nothing ran), 126 when the
//! command exists but cannot be executed, 127 when it does not exist.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};

use crate::cli::common;
use crate::enforce::sensitive::{self, Who};
use crate::enforce::{self, Plan, Prepared};
use crate::learn::LearnContext;
use crate::profile::rights::FsRight;
use crate::profile::{self, Resolved, Vars, Wsl2ProxyPolicy};
use crate::record::{self, BackendChoice, session, spawn};
use crate::store::Store;

/// Options shared by `run` and `wrap`.
#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Profile: a JSON file, a name in ~/.config/nono/profiles (where `nono learn` writes), or a built-in (`nono profile list`).
    #[arg(long, short)]
    pub profile: Option<String>,
    /// Also grant read and write beneath PATH.
    #[arg(long, value_name = "PATH")]
    pub allow: Vec<String>,
    /// Also grant read beneath PATH.
    #[arg(long, value_name = "PATH")]
    pub read: Vec<String>,
    /// Also grant write beneath PATH.
    #[arg(long, value_name = "PATH")]
    pub write: Vec<String>,
    /// Deny all network but Unix sockets (Landlock for TCP, seccomp for the rest).
    #[arg(long)]
    pub block_net: bool,
    /// Fail instead of running with anything the kernel cannot enforce.
    #[arg(long)]
    pub strict: bool,
    /// Let a grant cover this sensitive path (and what is beneath it);
    /// without it, such a grant is refused.
    #[arg(long = "allow-sensitive", value_name = "PATH")]
    pub allow_sensitive: Vec<PathBuf>,
    /// Keep this inherited descriptor open in the command (repeatable);
    /// every other descriptor above 2 is closed.
    #[arg(long = "pass-fd", value_name = "FD", value_parser = parse_fd)]
    pub pass_fd: Vec<i32>,
    /// The command to run.
    #[arg(trailing_var_arg = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

fn parse_fd(s: &str) -> Result<i32, String> {
    let fd: i32 = s.parse().map_err(|e| format!("{s:?} is not a descriptor number: {e}"))?;
    if fd < 3 {
        return Err(format!("{fd}: descriptors 0-2 are always passed; name one above 2"));
    }
    Ok(fd)
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// Record the sandboxed run (denials included) into the audit store.
    #[arg(long)]
    pub audit: bool,
    /// Audit database for --audit.
    #[arg(long, env = "NONO_DB")]
    pub db: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct WrapArgs {
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// Who enforces: `run` has a supervisor (the broker will live there),
/// `wrap` execs in place and has none.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Run,
    Wrap,
}

/// The descriptors to keep, sorted; each must be open now, before nono
/// opens anything of its own.
fn passed_fds(args: &SandboxArgs) -> anyhow::Result<Vec<i32>> {
    let fds: BTreeSet<i32> = args.pass_fd.iter().copied().collect();
    for fd in &fds {
        // SAFETY: F_GETFD on a descriptor number only reads its flags.
        if unsafe { libc::fcntl(*fd, libc::F_GETFD) } < 0 {
            bail!("--pass-fd {fd}: not an open descriptor ({})", std::io::Error::last_os_error());
        }
    }
    Ok(fds.into_iter().collect())
}

/// Resolves the profile and the command-line additions into a plan,
/// refuses what must not run, and builds the sandbox; prints what will
/// not be enforced. `identity`: the user the command will run as (sudo).
fn build(args: &SandboxArgs, identity: Option<&spawn::Identity>, mode: Mode) -> anyhow::Result<(Plan, Prepared)> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let vars = match identity {
        Some(id) => Vars::for_home(cwd.clone(), &id.home),
        None => Vars::from_env(cwd.clone()),
    };
    let mut resolved: Resolved = match &args.profile {
        Some(spec) => profile::load(spec, &vars)?,
        None => profile::resolve(profile::Profile::default(), "(no profile)", &vars)?,
    };
    let all: BTreeSet<FsRight> = FsRight::ALL.into_iter().collect();
    for p in &args.allow {
        resolved.add_cli(p, all.clone(), &vars)?;
    }
    for p in &args.read {
        resolved.add_cli(p, FsRight::read_set(), &vars)?;
    }
    for p in &args.write {
        resolved.add_cli(p, FsRight::write_set(), &vars)?;
    }
    let mut plan = enforce::plan(&resolved);
    if args.block_net {
        plan.block_network();
    }
    if enforce::is_wsl2(Path::new("/")) && plan.block_net && plan.connect_ports.as_ref().is_some_and(|p| !p.is_empty()) {
        match resolved.security.wsl2_proxy_policy {
            Wsl2ProxyPolicy::Error => bail!(
                "this profile blocks the network except a proxy port, which WSL2 cannot enforce (WSL's init claims seccomp user notification); set security.wsl2_proxy_policy = \"insecure_proxy\" to run anyway"
            ),
            Wsl2ProxyPolicy::InsecureProxy => eprintln!(
                "nono: WARNING: WSL2: proxy-only networking is NOT enforced here (insecure_proxy); the command can reach any host"
            ),
        }
    }
    refuse_unsafe_plans(args, &plan, &resolved, &vars, identity)?;
    for s in &plan.skipped {
        eprintln!("nono: note: rule skipped: {s}");
    }
    for w in &plan.warnings {
        eprintln!("nono: warning: {w}");
    }
    if !plan.needs_broker.is_empty() {
        let why = match mode {
            Mode::Wrap => "nono wrap has no supervisor, so it cannot enforce",
            Mode::Run => "not enforced yet (they need the supervisor's broker)",
        };
        if args.strict {
            bail!("--strict: {why}: {}", plan.needs_broker.join("; "));
        }
        eprintln!("nono: warning: {why}:");
        for n in &plan.needs_broker {
            eprintln!("nono: warning:   {n}");
        }
    }
    let prepared = enforce::prepare(&plan, args.strict)?;
    for d in &prepared.degraded {
        eprintln!("nono: warning: Landlock ABI {}: {d}", prepared.abi);
    }
    Ok((plan, prepared))
}

/// Refuses a plan that would expose a sensitive path the sandboxed user
/// could use, or let the command rewrite a profile it was started from.
fn refuse_unsafe_plans(
    args: &SandboxArgs,
    plan: &Plan,
    resolved: &Resolved,
    vars: &Vars,
    identity: Option<&spawn::Identity>,
) -> anyhow::Result<()> {
    let ctx = LearnContext {
        home: vars.home.clone(),
        cwd: vars.cwd.clone(),
        tmpdir: vars.tmpdir.clone(),
        xdg_config_home: vars.xdg_config_home.clone(),
        xdg_cache_home: vars.xdg_cache_home.clone(),
        allow_sensitive: args.allow_sensitive.iter().map(|p| vars.cwd.join(p)).collect(),
    };
    let who =
        identity.map_or_else(Who::current, |id| Who { uid: id.uid, gid: id.gid, groups: id.groups.clone(), is_self: false });
    let exposed = sensitive::exposures(plan, &ctx, &who);
    if !exposed.is_empty() {
        bail!(exposure_report(&exposed, who.uid == 0));
    }
    let writable = sensitive::writable_profiles(plan, &resolved.files);
    if !writable.is_empty() {
        let mut msg = format!("refusing to run: {} profile file(s) could be rewritten by the command:", writable.len());
        for w in &writable {
            let _ = write!(msg, "\n  - {w}");
        }
        bail!(msg);
    }
    Ok(())
}

/// One paragraph per grant: what it covers (the first few in full), and
/// how to allow it.
fn exposure_report(exposed: &[sensitive::Exposure], root: bool) -> String {
    const SHOWN: usize = 4;
    let mut msg = format!("refusing to run: {} sensitive path(s) would be exposed:", exposed.len());
    let mut grants: Vec<(&Path, &[String])> = Vec::new();
    for e in exposed {
        if !grants.iter().any(|(g, _)| *g == e.grant.as_path()) {
            grants.push((&e.grant, &e.origins));
        }
    }
    for (grant, origins) in grants {
        // What exists comes first: creating a missing rc file matters, but
        // reading an existing key matters more.
        let mut mine: Vec<&sensitive::Exposure> = exposed.iter().filter(|e| e.grant == grant).collect();
        mine.sort_by_key(|e| e.how == "create");
        let _ = write!(msg, "\n  the grant on {} (from {}) covers:", grant.display(), origins.join(", "));
        for e in mine.iter().take(SHOWN) {
            let _ = write!(msg, "\n    - {} ({}): the sandboxed user could {} it", e.secret.display(), e.why, e.how);
        }
        if mine.len() > SHOWN {
            let _ = write!(msg, "\n    - and {} more", mine.len() - SHOWN);
        }
    }
    msg.push_str(
        "\n  narrow the grant, or pass --allow-sensitive PATH for each path it may expose (a directory allows all beneath it)",
    );
    if root {
        msg.push_str("\n  (the command would run as root, which can read and write every file: run nono as the user, or as `sudo nono run`, which drops to SUDO_UID)");
    }
    msg
}

/// The pre-exec hook: apply the sandbox in the child, or explain why not.
fn hook(prepared: &mut Option<Prepared>) -> Result<(), i32> {
    let Some(p) = prepared.take() else { return Ok(()) };
    // The listener (only with a Notify rule, none yet) would go to the
    // supervisor; issue 14 wires it.
    p.apply().map(drop).map_err(|e| {
        eprintln!("nono: error: {e}");
        libc::EPERM
    })
}

/// 126/127 when `err` says the command could not be executed.
fn exec_failure(err: &anyhow::Error, args: &SandboxArgs) -> Option<u8> {
    let spawn_err = match err.downcast_ref::<record::RecordError>() {
        Some(record::RecordError::Spawn(s)) => Some(s),
        _ => err.chain().find_map(|e| e.downcast_ref::<spawn::SpawnError>()),
    }?;
    let code = spawn_err.exit_code()?;
    // ENOENT from execve for a file that exists: its interpreter (`#!`
    // line or ELF loader) is missing; shells answer 126 for that.
    Some(if code == 127 && program_exists(&args.command) { 126 } else { code })
}

/// Whether the command names an existing file by path (`./x`, `/bin/x`).
fn program_exists(command: &[OsString]) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    command.first().is_some_and(|p| p.as_bytes().contains(&b'/') && std::fs::symlink_metadata(p).is_ok())
}

#[expect(clippy::needless_pass_by_value, reason = "the dispatcher hands over the parsed arguments")]
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    match run_inner(&args) {
        Ok(code) => Ok(code),
        Err(e) => match exec_failure(&e, &args.sandbox) {
            Some(code) => {
                eprintln!("nono: error: {e:#}");
                Ok(ExitCode::from(code))
            }
            None => Err(e),
        },
    }
}

fn run_inner(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let keep = passed_fds(&args.sandbox)?;
    let identity = spawn::Identity::from_sudo()?;
    let (_plan, prepared) = build(&args.sandbox, identity.as_ref(), Mode::Run)?;
    // Only now, with the sandbox built: until here SIGTERM ends nono (a
    // hostile profile must never make it unkillable). Before any thread:
    // forwarded signals are read from a signalfd.
    let sigfd = session::block_signals()?;
    let cwd = std::env::current_dir()?;
    let mut cmd = spawn::Command::new(args.sandbox.command.clone(), cwd.clone(), identity.clone());
    cmd.keep_fds = Some(keep);
    cmd.program()?;
    let mut prepared = Some(prepared);
    let mut hook_fn = || hook(&mut prepared);
    // Forked while single-threaded: the hook may allocate.
    let gated = spawn::fork_gated_with(&cmd, Some(&mut hook_fn))?;
    if args.audit {
        return supervise_audited(args, gated, sigfd, &cwd, identity.as_ref());
    }
    let status = session::supervise(gated, sigfd)?;
    Ok(ExitCode::from(status.exit_code()))
}

/// `run --audit`: the sandboxed command is recorded like `nono learn`
/// records, so denials (EACCES/EPERM results) land in the audit store.
fn supervise_audited(
    args: &RunArgs,
    gated: spawn::Gated,
    sigfd: nix::sys::signalfd::SignalFd,
    cwd: &Path,
    identity: Option<&spawn::Identity>,
) -> anyhow::Result<ExitCode> {
    let db = crate::cli::common::db_path(args.db.as_deref(), identity)?;
    let offsets = record::btf::running_kernel_offsets().context("reading kernel struct offsets from BTF")?;
    let (mut recorder, _) = crate::cli::learn::load_recorder(BackendChoice::Auto, &offsets, 4 << 20)?;
    let store = Store::open(&db, identity.map(|i| (i.uid, i.gid)))?;
    let backend = recorder.backend();
    let id = store.begin_session(&common::new_session(&args.sandbox.command, cwd, identity, backend))?;
    let (tx, writer) = crate::store::spawn_writer(&db, id)?;
    let outcome = session::run_gated(recorder.as_mut(), gated, session::Progress::Off, tx, sigfd);
    drop(recorder);
    let (outcome, end) = common::close_session(&store, id, outcome, writer.join(), "recording the sandboxed run")?;
    let stored = end.events;
    let denied = store
        .query(&crate::store::Query { session: Some(id), result: Some(crate::store::ResultClass::Denied), ..Default::default() })
        .map_or(0, |rows| rows.len());
    eprintln!(
        "nono: audited as session {id}: {stored} events, {denied} denied (nono audit query --session {id} --result denied)"
    );
    Ok(ExitCode::from(outcome.status.exit_code()))
}

#[expect(clippy::needless_pass_by_value, reason = "the dispatcher hands over the parsed arguments")]
pub fn wrap(args: WrapArgs) -> anyhow::Result<ExitCode> {
    let keep = passed_fds(&args.sandbox)?;
    // No identity change: wrap execs the command as nono itself.
    let (_plan, prepared) = build(&args.sandbox, None, Mode::Wrap)?;
    let program = args.sandbox.command.first().context("no command")?;
    prepared.apply()?;
    spawn::seal_fds(&keep).map_err(|errno| {
        anyhow::Error::from(std::io::Error::from_raw_os_error(errno)).context("closing inherited descriptors")
    })?;
    let err = exec(program, &args.sandbox.command);
    eprintln!("nono: error: cannot execute {}: {err}", program.to_string_lossy());
    let missing = err.kind() == std::io::ErrorKind::NotFound && !program_exists(&args.sandbox.command);
    Ok(ExitCode::from(if missing { 127 } else { 126 }))
}

fn exec(program: &OsString, argv: &[OsString]) -> std::io::Error {
    use std::os::unix::process::CommandExt as _;
    std::process::Command::new(program).args(&argv[1..]).exec()
}
