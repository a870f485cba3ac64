//! `nono run` (supervised) and `nono wrap` (exec in place): enforce a
//! profile on a command.
//!
//! Order matters: the profile is loaded, checked (sensitive paths, a
//! profile the command could rewrite, what cannot be enforced) and the
//! sandbox built while nono is still killable by SIGTERM; only then are
//! the forwarded signals blocked and the command started. Exit codes: the
//! command's own, 125 for nono's failures (nothing ran), 126 when the
//! command exists but cannot be executed, 127 when it does not exist.
//!
//! Each run gets a private temp dir (`tmp`), `$TTY` is the command's own
//! terminal (`/dev/tty` only when that is also the controlling terminal),
//! and the command's tree ends with nono (`record::guardian`). A plain run
//! ends with what the supervisor refused, or, when the command failed and
//! nothing was seen, one line on how to see why.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};

mod audit_run;
mod proxy;
mod summary;
mod supervised;
mod tmp;

use audit_run::AuditRun;

use crate::enforce::sensitive::{self, Who};
use crate::enforce::{self, Plan, Prepared};
use crate::learn::LearnContext;
use crate::profile::rights::FsRight;
use crate::profile::{self, Resolved, Vars, Wsl2ProxyPolicy};
use crate::record::guardian::Containment;
use crate::record::{self, session, spawn};

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
#[expect(clippy::struct_excessive_bools, reason = "independent command-line switches")]
pub struct RunArgs {
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// Record the sandboxed run (denials included) into the audit store.
    #[arg(long)]
    pub audit: bool,
    /// Audit database for --audit.
    #[arg(long, env = "NONO_DB")]
    pub db: Option<PathBuf>,
    /// With --audit: read Landlock's own denial records from the kernel
    /// audit log, switching kernel audit on for the run if it is off (and
    /// back off after). Needs root (CAP_AUDIT_CONTROL, CAP_AUDIT_READ).
    #[arg(long, requires = "audit")]
    pub kernel_audit: bool,
    /// Run without the supervisor's broker, as if seccomp user
    /// notification were missing (for comparisons; what only the broker
    /// enforces is then reported as not enforced).
    #[arg(long, hide = true)]
    pub no_broker: bool,
    #[command(flatten)]
    pub proxy: proxy::ProxyArgs,
    /// How the command's tree is made to end with nono: `auto` (a pid
    /// namespace where one can be made), or `subreaper` (for tests and
    /// comparisons).
    #[arg(long, hide = true, value_parser = ["auto", "subreaper"], default_value = "auto")]
    pub containment: String,
    /// Snapshot every write grant before the command starts, so that
    /// `nono rollback restore` can undo what it did (also the profile's
    /// `rollback.enabled`).
    #[arg(long, conflicts_with = "no_rollback")]
    pub rollback: bool,
    /// No snapshot, even when the profile asks for one.
    #[arg(long)]
    pub no_rollback: bool,
}

#[derive(Debug, clap::Args)]
pub struct WrapArgs {
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// Who enforces: `run` has a supervisor (its broker answers seccomp
/// notifications where the kernel allows them), `wrap` execs in place and
/// has none.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Run { audit: bool, kernel_audit: bool, broker: bool },
    Wrap,
}

/// A sandbox ready to start, and the broker's part when there is one.
struct Built {
    plan: Plan,
    prepared: Prepared,
    broker: Option<crate::enforce::broker::BrokerPlan>,
    /// The resolved profile, flattened, for `--audit` to store (issue 22 §5).
    enforced: Option<crate::store::EnforcedProfile>,
    /// nono's network proxy (`network.allow_domains`).
    proxy: Option<proxy::RunProxy>,
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
/// not be enforced. `identity`: the user the command will run as (sudo);
/// `tmpdir`: the run's private temp dir (`$TMPDIR`).
fn build(
    args: &SandboxArgs,
    identity: Option<&spawn::Identity>,
    mode: Mode,
    tmpdir: &Path,
    proxy_args: Option<&proxy::ProxyArgs>,
) -> anyhow::Result<Built> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let mut vars = match identity {
        Some(id) => Vars::for_home(cwd.clone(), &id.home),
        None => Vars::from_env(cwd.clone()),
    };
    vars.tmpdir = tmpdir.to_path_buf();
    let mut resolved: Resolved = match &args.profile {
        // Refused unless the trust policy accepts it (signatures).
        Some(spec) => crate::trust::load(spec, &vars)?,
        None => profile::resolve(profile::Profile::default(), "(no profile)", &vars)?,
    };
    terminals(&mut resolved, &vars);
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
    for s in resolved.skipped.iter().chain(&plan.skipped) {
        eprintln!("nono: note: rule skipped: {s}");
    }
    for w in &plan.warnings {
        eprintln!("nono: warning: {w}");
    }
    // The broker needs seccomp user notification (Linux 5.9; WSL2 takes
    // it for itself and answers EBUSY).
    let notify = match mode {
        Mode::Run { broker: false, .. } => Err("--no-broker".to_owned()),
        Mode::Run { .. } => crate::kernel::seccomp_notify(),
        Mode::Wrap => Err("nono wrap has no supervisor".to_owned()),
    };
    let proxy = match (mode, proxy_args) {
        (Mode::Run { .. }, Some(p)) => proxy::start(&mut resolved, &mut plan, identity, &notify, p)?,
        _ if resolved.network.allow_domains.is_some() => {
            bail!("network.allow_domains needs nono's proxy, which only `nono run` has (nono wrap has no supervisor)")
        }
        _ => None,
    };
    let broker = match &notify {
        Ok(()) => {
            let resolv = crate::cli::common::context::nameservers(Path::new("/etc/resolv.conf"));
            let mut b = crate::enforce::broker::BrokerPlan::new(&resolved, &plan, resolv);
            if let Some(p) = &proxy {
                p.confine_broker(&mut b);
            }
            for s in &b.skipped {
                eprintln!("nono: note: brokered rule skipped: {s}");
            }
            Some(b)
        }
        Err(why) => {
            if !plan.needs_broker.is_empty() || !matches!(mode, Mode::Wrap) {
                let why = match mode {
                    Mode::Wrap => "nono wrap has no supervisor, so it cannot enforce".to_owned(),
                    Mode::Run { .. } => format!("seccomp user notification is unavailable here ({why}), so nono cannot enforce"),
                };
                let mut what = plan.needs_broker.clone();
                what.push(
                    "pathname Unix socket connects and metadata changes (chmod, chown, utimensat, xattrs) are not restricted"
                        .to_owned(),
                );
                if args.strict {
                    bail!("--strict: {why}: {}", what.join("; "));
                }
                eprintln!("nono: warning: {why}:");
                for n in &what {
                    eprintln!("nono: warning:   {n}");
                }
            }
            None
        }
    };
    let kernel_audit = matches!(mode, Mode::Run { kernel_audit: true, .. });
    let extras = crate::enforce::Extras {
        rules: broker.as_ref().map(crate::enforce::broker::rules::rules).unwrap_or_default(),
        log_new_exec: kernel_audit,
        // Refusals of the baseline go through the supervisor, which counts
        // them (and records them under --audit): denied calls are rare.
        deny_via_notify: broker.is_some(),
    };
    let prepared = enforce::prepare_with(&plan, args.strict, &extras)?;
    for d in &prepared.degraded {
        eprintln!("nono: warning: Landlock ABI {}: {d}", prepared.abi);
    }
    let enforced = match crate::cli::common::describe::enforced(&resolved, args.block_net) {
        Ok(e) => Some(e),
        Err(e) => {
            log::warn!("the enforced profile cannot be stored with the session: {e}");
            None
        }
    };
    Ok(Built { plan, prepared, broker, enforced, proxy })
}

/// The command reaches only its own terminal (issue 21 §2): `/dev/tty`
/// opens the controlling terminal, so its grant is dropped when that is not
/// the command's own (`$TTY`): a command started with its output
/// redirected from an interactive shell is not handed the user's typing.
/// A grant on all of `/dev/pts` (profiles learned before `$TTY`) reaches
/// every terminal of the user's: kept as written, and warned about.
fn terminals(resolved: &mut Resolved, vars: &Vars) {
    let tty = Path::new("/dev/tty");
    if resolved.grants.iter().any(|g| g.path == tty) && !profile::controlling_terminal_is(vars.tty.as_deref()) {
        let why = match &vars.tty {
            Some(t) => format!("the controlling terminal is not the command's own ({})", t.display()),
            None => {
                "the command was given no terminal (stdin, stdout and stderr are not one), but nono has a controlling terminal"
                    .to_owned()
            }
        };
        let mut dropped = Vec::new();
        resolved.grants.retain(|g| {
            let keep = g.path != tty;
            if !keep && !dropped.contains(&g.origin) {
                dropped.push(g.origin.clone());
            }
            keep
        });
        // Built-ins' skipped rules are not listed (as for missing paths).
        dropped.retain(|o| !o.starts_with("builtin:"));
        if !dropped.is_empty() {
            resolved.skipped.push(format!("/dev/tty ({}): {why}", dropped.join(", ")));
        }
    }
    for g in resolved.grants.iter().filter(|g| g.path == Path::new("/dev/pts") && !g.file) {
        eprintln!(
            "nono: warning: {} grants all of /dev/pts: every terminal of the user (their other shells) can be read and typed into; use $TTY, the command's own terminal",
            g.origin
        );
    }
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
        runtime_dir: None,
        ssh_auth_sock: None,
        nameservers: Vec::new(),
        anticipate: false,
        path_dirs: crate::cli::common::context::path_dirs(),
    };
    let who =
        identity.map_or_else(Who::current, |id| Who { uid: id.uid, gid: id.gid, groups: id.groups.clone(), is_self: false });
    let mut exposed = sensitive::exposures(plan, &ctx, &who);
    // Brokered rules pass the same check: the broker acts for the command.
    exposed.extend(sensitive::brokered_exposures(
        resolved.brokered.iter().map(|b| (b.dir.as_path(), b.names.as_slice(), b.origin.as_str())),
        &ctx,
    ));
    if !exposed.is_empty() {
        let moved = sensitive::CwdMoved {
            cwd: vars.cwd.clone(),
            grants: resolved
                .grants
                .iter()
                .filter(|g| g.spelled.starts_with("$CWD") || g.spelled.starts_with("${CWD}"))
                .map(|g| g.path.clone())
                .collect(),
            home: Some(vars.home.clone()),
        };
        bail!(sensitive::refusal(&exposed, who.uid == 0, Some(&moved)));
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
    let mode = Mode::Run { audit: args.audit, kernel_audit: args.kernel_audit, broker: !args.no_broker };
    let tmp = tmp::PrivateTmp::create(identity.as_ref()).context("creating the run's private temp dir")?;
    let Built { plan, prepared, broker, enforced, proxy } =
        build(&args.sandbox, identity.as_ref(), mode, tmp.path(), Some(&args.proxy))?;
    let mut proxy = proxy;
    let grants = plan.grants(prepared.abi);
    // Only now, with the sandbox built: until here SIGTERM ends nono (a
    // hostile profile must never make it unkillable). Before any thread:
    // forwarded signals are read from a signalfd.
    let sigfd = session::block_signals()?;
    let cwd = std::env::current_dir()?;
    let mut cmd = spawn::Command::new(args.sandbox.command.clone(), cwd.clone(), identity.clone());
    tmp.apply_to(&mut cmd.env);
    cmd.keep_fds = Some(keep);
    cmd.containment = containment(args, &plan, broker.is_some(), proxy.is_some());
    cmd.shield_guardian = !plan.signal_outside;
    if let Some(p) = &proxy {
        p.set_env(&mut cmd);
    }
    cmd.program()?;
    let audit = if args.audit {
        Some(AuditRun::start(args, &cwd, identity.as_ref(), grants, enforced.as_ref(), tmp.path())?)
    } else {
        None
    };
    if let (Some(p), Some(a)) = (proxy.as_mut(), audit.as_ref()) {
        p.record_into(a.store.path(), a.id)?;
    }
    // Snapshot the write grants now, before the command starts; the guard
    // records what the run left when it drops, after the command (issue 24).
    let db = audit
        .as_ref()
        .map(|a| crate::cli::common::db_path(args.db.as_deref(), identity.as_ref()).map(|db| (db, a.id)))
        .transpose()?;
    let rollback = crate::cli::common::rollback::Request {
        flags: (args.rollback, args.no_rollback),
        command: &args.sandbox.command,
        identity: identity.as_ref(),
        audit: db,
    };
    let _rollback = crate::cli::common::rollback::begin(&rollback, &plan, broker.as_ref())?;
    let status = run_command(args, prepared, broker, cmd, sigfd, audit);
    if let Some(p) = proxy {
        p.finish()?;
    }
    drop(tmp);
    status
}

/// Starts the command (under the broker when there is one) and waits.
fn run_command(
    args: &RunArgs,
    prepared: Prepared,
    broker: Option<crate::enforce::broker::BrokerPlan>,
    cmd: spawn::Command,
    sigfd: nix::sys::signalfd::SignalFd,
    audit: Option<AuditRun>,
) -> anyhow::Result<ExitCode> {
    let Some(broker) = broker else {
        // No broker: the child applies everything itself.
        let mut prepared = Some(prepared);
        let mut hook_fn = || hook(&mut prepared);
        // Forked while single-threaded (the hook may allocate), or beside
        // --audit's writer or the proxy's threads (issue 23), where the
        // guardian is then a subreaper forked by glibc's fork, which makes
        // malloc safe in the child; they take no other lock the hook needs.
        let gated = spawn::fork_gated_with(&cmd, Some(&mut hook_fn))?;
        // Nothing of the user's may attach to nono (which may hold the
        // proxy's secrets) from now on; the command was forked dumpable.
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        if let Some(a) = audit {
            return a.supervise(gated, sigfd, None);
        }
        let status = session::supervise(gated, sigfd)?;
        return Ok(ExitCode::from(report_refusals(status, None, args)));
    };
    let deny: Box<crate::enforce::broker::DenyHook> = {
        let baseline = prepared.baseline.clone();
        Box::new(move |n: &crate::enforce::broker::Notif| match baseline.decide(i64::from(n.nr), &n.args) {
            crate::enforce::seccomp::Action::Deny(errno) => {
                Some((i32::from(errno), crate::enforce::broker::seccomp_denial(n, i32::from(errno))))
            }
            _ => None,
        })
    };
    let sink = audit.as_ref().map(|a| crate::enforce::broker::Audit {
        sink: a.tx.clone(),
        decisions: std::sync::Arc::clone(&a.decisions),
        record_performed_fs: a.recorder.backend() == record::Backend::Lsm,
    });
    let refusals = std::sync::Arc::new(crate::enforce::broker::refusals::Refusals::default());
    let mut sup = supervised::start(prepared, broker, cmd, sink, Some(deny), std::sync::Arc::clone(&refusals))?;
    let gated = sup.take_gated().context("the sandboxed command was not started")?;
    let code = if let Some(a) = audit {
        a.supervise(gated, sigfd, Some(sup))?
    } else {
        let status = session::supervise(gated, sigfd);
        sup.finish();
        ExitCode::from(report_refusals(status?, Some(&refusals), args))
    };
    Ok(code)
}

/// How the tree is made to end with nono: a pid namespace, unless the
/// profile lets the command signal processes outside (which a pid
/// namespace would hide from it), or the guardian would be forked by a raw
/// clone while other threads run and its hook allocates (`--audit` or
/// the proxy without the broker).
fn containment(args: &RunArgs, plan: &Plan, broker: bool, proxy: bool) -> Containment {
    if args.containment == "subreaper" || plan.signal_outside || ((args.audit || proxy) && !broker) {
        Containment::Subreaper
    } else {
        Containment::PidNamespace
    }
}

/// The end of a plain run (issue 22 §7): what the supervisor refused, and,
/// when the command failed and nothing was seen, how to see why. Returns
/// the exit code.
fn report_refusals(
    status: session::ChildStatus,
    refusals: Option<&crate::enforce::broker::refusals::Refusals>,
    args: &RunArgs,
) -> u8 {
    const SHOWN: usize = 8;
    let (seen, total) = refusals.map(crate::enforce::broker::refusals::Refusals::summary).unwrap_or_default();
    if total > 0 {
        eprintln!("nono: the sandbox refused {total} call(s) that nono's supervisor saw:");
        for r in seen.iter().take(SHOWN) {
            eprintln!("nono:   {}x {} [{}]", r.count, r.what, r.by);
        }
        if seen.len() > SHOWN {
            eprintln!("nono:   ... and {} more kind(s)", seen.len() - SHOWN);
        }
    }
    let failed = status != session::ChildStatus::Exited(0);
    if failed && total == 0 {
        let profile = args.sandbox.profile.as_deref().map(|p| format!(" --profile {p}")).unwrap_or_default();
        eprintln!(
            "nono: the command failed ({}) and nono's supervisor refused nothing; Landlock's refusals (files, TCP ports) reach only the kernel: to see what the sandbox denied, run `sudo nono run --audit{profile} -- ...` (add --kernel-audit for Landlock's own records)",
            match status {
                session::ChildStatus::Exited(c) => format!("exit {c}"),
                session::ChildStatus::Signaled(s) => format!("signal {s}"),
            }
        );
    }
    status.exit_code()
}

#[expect(clippy::needless_pass_by_value, reason = "the dispatcher hands over the parsed arguments")]
pub fn wrap(args: WrapArgs) -> anyhow::Result<ExitCode> {
    let keep = passed_fds(&args.sandbox)?;
    // No identity change: wrap execs the command as nono itself. The temp
    // dir outlives nono (which becomes the command): the next run or wrap
    // removes it once this process is gone.
    let tmp = tmp::PrivateTmp::create(None).context("creating the run's private temp dir")?;
    let Built { prepared, .. } = build(&args.sandbox, None, Mode::Wrap, tmp.path(), None)?;
    let program = args.sandbox.command.first().context("no command")?;
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    tmp.apply_to(&mut env);
    let tmp = tmp.keep();
    prepared.apply()?;
    spawn::seal_fds(&keep).map_err(|errno| {
        anyhow::Error::from(std::io::Error::from_raw_os_error(errno)).context("closing inherited descriptors")
    })?;
    let err = exec(program, &args.sandbox.command, &env);
    eprintln!("nono: error: cannot execute {}: {err}", program.to_string_lossy());
    // Nothing ran in it: remove it now.
    let _ = std::fs::remove_dir(&tmp);
    let missing = err.kind() == std::io::ErrorKind::NotFound && !program_exists(&args.sandbox.command);
    Ok(ExitCode::from(if missing { 127 } else { 126 }))
}

fn exec(program: &OsString, argv: &[OsString], env: &[(OsString, OsString)]) -> std::io::Error {
    use std::os::unix::process::CommandExt as _;
    std::process::Command::new(program).args(&argv[1..]).env_clear().envs(env.iter().map(|(k, v)| (k, v))).exec()
}
