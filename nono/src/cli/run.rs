//! `nono run` (supervised) and `nono wrap` (exec in place): enforce a
//! profile on a command.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};

use crate::cli::common;
use crate::enforce::{self, Plan, Prepared};
use crate::profile::rights::FsRight;
use crate::profile::{self, Resolved, Vars, Wsl2ProxyPolicy};
use crate::record::{self, BackendChoice, session, spawn};
use crate::store::Store;

/// Options shared by `run` and `wrap`.
#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Profile: a built-in name (see `nono profile list`) or a JSON file.
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
    /// The command to run.
    #[arg(trailing_var_arg = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
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

/// Resolves the profile and the command-line additions into a plan and
/// builds the sandbox; prints what will not be enforced.
fn build(args: &SandboxArgs) -> anyhow::Result<(Plan, Prepared)> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let vars = Vars::from_env(cwd);
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
    if enforce::is_wsl2(std::path::Path::new("/")) && plan.block_net && plan.connect_ports.as_ref().is_some_and(|p| !p.is_empty())
    {
        match resolved.security.wsl2_proxy_policy {
            Wsl2ProxyPolicy::Error => bail!(
                "this profile blocks the network except a proxy port, which WSL2 cannot enforce (WSL's init claims seccomp user notification); set security.wsl2_proxy_policy = \"insecure_proxy\" to run anyway"
            ),
            Wsl2ProxyPolicy::InsecureProxy => eprintln!(
                "nono: WARNING: WSL2: proxy-only networking is NOT enforced here (insecure_proxy); the command can reach any host"
            ),
        }
    }
    for s in &plan.skipped {
        eprintln!("nono: note: rule skipped: {s}");
    }
    let prepared = enforce::prepare(&plan, args.strict)?;
    for d in &prepared.degraded {
        eprintln!("nono: warning: Landlock ABI {}: {d}", prepared.abi);
    }
    Ok((plan, prepared))
}

/// The pre-exec hook: apply the sandbox in the child, or explain why not.
fn hook(prepared: &mut Option<Prepared>) -> Result<(), i32> {
    let Some(p) = prepared.take() else { return Ok(()) };
    p.apply().map_err(|e| {
        eprintln!("nono: error: {e}");
        libc::EPERM
    })
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    // Before any thread: forwarded signals are read from a signalfd.
    let sigfd = session::block_signals()?;
    let (_plan, prepared) = build(&args.sandbox)?;
    let identity = spawn::Identity::from_sudo()?;
    let cwd = std::env::current_dir()?;
    let cmd = spawn::Command::new(args.sandbox.command.clone(), cwd.clone(), identity.clone());
    if let Err(e) = cmd.program() {
        eprintln!("nono: error: {e}");
        return Ok(ExitCode::from(127));
    }
    let mut prepared = Some(prepared);
    let mut hook_fn = || hook(&mut prepared);
    // Forked while single-threaded: the hook may allocate.
    let gated = spawn::fork_gated_with(&cmd, Some(&mut hook_fn))?;
    if args.audit {
        return supervise_audited(&args, gated, sigfd, &cwd, identity.as_ref());
    }
    let status = session::supervise(gated, sigfd).map_err(|e| match e {
        record::RecordError::Spawn(s) => anyhow::Error::from(s),
        other => anyhow::Error::from(other),
    })?;
    Ok(ExitCode::from(status.exit_code()))
}

/// `run --audit`: the sandboxed command is recorded like `nono learn`
/// records, so denials (EACCES/EPERM results) land in the audit store.
fn supervise_audited(
    args: &RunArgs,
    gated: spawn::Gated,
    sigfd: nix::sys::signalfd::SignalFd,
    cwd: &std::path::Path,
    identity: Option<&spawn::Identity>,
) -> anyhow::Result<ExitCode> {
    let db = crate::cli::common::db_path(args.db.as_deref(), identity)?;
    let offsets = record::btf::running_kernel_offsets().context("reading kernel struct offsets from BTF")?;
    let (mut recorder, _) = crate::cli::learn::load_recorder(BackendChoice::Auto, &offsets, 4 << 20)?;
    let store = Store::open(&db, identity.map(|i| (i.uid, i.gid)))?;
    let backend = recorder.backend();
    let id = store.begin_session(&crate::store::NewSession {
        kind: crate::store::SessionKind::Run,
        profile: args.sandbox.profile.clone(),
        ..common::new_session(&args.sandbox.command, cwd, identity, backend)
    })?;
    let (tx, writer) = crate::store::spawn_writer(&db, id)?;
    let outcome = session::run_gated(recorder.as_mut(), gated, session::Progress::Off, tx, sigfd);
    drop(recorder);
    let (outcome, end) = common::close_session(&store, id, outcome, writer.join(), "recording the sandboxed run")?;
    let stored = end.events;
    let denied = store
        .query(&crate::store::Query { session: Some(id), result: Some(crate::store::ResultClass::Denied), ..Default::default() })
        .map(|rows| rows.len())
        .unwrap_or(0);
    eprintln!(
        "nono: audited as session {id}: {stored} events, {denied} denied (nono audit query --session {id} --result denied)"
    );
    Ok(ExitCode::from(outcome.status.exit_code()))
}

pub fn wrap(args: WrapArgs) -> anyhow::Result<ExitCode> {
    let (_plan, prepared) = build(&args.sandbox)?;
    let program = args.sandbox.command.first().context("no command")?;
    prepared.apply()?;
    let err = exec(program, &args.sandbox.command);
    eprintln!("nono: error: cannot execute {}: {err}", program.to_string_lossy());
    Ok(ExitCode::from(if err.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 }))
}

fn exec(program: &OsString, argv: &[OsString]) -> std::io::Error {
    use std::os::unix::process::CommandExt as _;
    std::process::Command::new(program).args(&argv[1..]).exec()
}
