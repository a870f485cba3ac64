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
fn build(args: &SandboxArgs, identity: Option<&spawn::Identity>, mode: Mode) -> anyhow::Result<Built> {
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
    // The broker needs seccomp user notification (Linux 5.9; WSL2 takes
    // it for itself and answers EBUSY).
    let notify = match mode {
        Mode::Run { broker: false, .. } => Err("--no-broker".to_owned()),
        Mode::Run { .. } => crate::kernel::seccomp_notify(),
        Mode::Wrap => Err("nono wrap has no supervisor".to_owned()),
    };
    let broker = match &notify {
        Ok(()) => {
            let resolv = crate::cli::context::nameservers(Path::new("/etc/resolv.conf"));
            let b = crate::enforce::broker::BrokerPlan::new(&resolved, &plan, resolv);
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
    let (audit, kernel_audit) = match mode {
        Mode::Run { audit, kernel_audit, .. } => (audit, kernel_audit),
        Mode::Wrap => (false, false),
    };
    let extras = crate::enforce::Extras {
        rules: broker.as_ref().map(crate::enforce::broker::rules::rules).unwrap_or_default(),
        log_new_exec: kernel_audit,
        deny_via_notify: audit && broker.is_some(),
    };
    let prepared = enforce::prepare_with(&plan, args.strict, &extras)?;
    for d in &prepared.degraded {
        eprintln!("nono: warning: Landlock ABI {}: {d}", prepared.abi);
    }
    Ok(Built { plan, prepared, broker })
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
    let mode = Mode::Run { audit: args.audit, kernel_audit: args.kernel_audit, broker: !args.no_broker };
    let Built { plan, prepared, broker } = build(&args.sandbox, identity.as_ref(), mode)?;
    let grants = plan.grants(prepared.abi);
    // Only now, with the sandbox built: until here SIGTERM ends nono (a
    // hostile profile must never make it unkillable). Before any thread:
    // forwarded signals are read from a signalfd.
    let sigfd = session::block_signals()?;
    let cwd = std::env::current_dir()?;
    let mut cmd = spawn::Command::new(args.sandbox.command.clone(), cwd.clone(), identity.clone());
    cmd.keep_fds = Some(keep);
    cmd.program()?;
    let audit = if args.audit { Some(AuditRun::start(args, &cwd, identity.as_ref(), grants)?) } else { None };
    let Some(broker) = broker else {
        // No broker: the child applies everything itself.
        let mut prepared = Some(prepared);
        let mut hook_fn = || hook(&mut prepared);
        // Forked while single-threaded: the hook may allocate.
        let gated = spawn::fork_gated_with(&cmd, Some(&mut hook_fn))?;
        return match audit {
            Some(a) => a.supervise(gated, sigfd, None),
            None => Ok(ExitCode::from(session::supervise(gated, sigfd)?.exit_code())),
        };
    };
    let deny: Option<Box<crate::enforce::broker::DenyHook>> = audit.as_ref().map(|_| {
        let baseline = prepared.baseline.clone();
        let hook: Box<crate::enforce::broker::DenyHook> =
            Box::new(move |n: &crate::enforce::broker::Notif| match baseline.decide(i64::from(n.nr), &n.args) {
                crate::enforce::seccomp::Action::Deny(errno) => {
                    Some((i32::from(errno), crate::enforce::broker::seccomp_denial(n, i32::from(errno))))
                }
                _ => None,
            });
        hook
    });
    let sink = audit.as_ref().map(|a| crate::enforce::broker::Audit {
        sink: a.tx.clone(),
        decisions: std::sync::Arc::clone(&a.decisions),
        record_performed_fs: a.recorder.backend() == record::Backend::Lsm,
    });
    let mut sup = super::supervised::start(prepared, broker, cmd, sink, deny)?;
    let gated = sup.take_gated().context("the sandboxed command was not started")?;
    match audit {
        Some(a) => a.supervise(gated, sigfd, Some(sup)),
        None => {
            let status = session::supervise(gated, sigfd);
            sup.finish();
            Ok(ExitCode::from(status?.exit_code()))
        }
    }
}

/// `run --audit`: the sandboxed command is recorded like `nono learn`
/// records it, so what it did (and what was denied) lands in the store.
struct AuditRun {
    recorder: Box<dyn record::Recorder>,
    store: Store,
    id: i64,
    tx: tokio::sync::mpsc::Sender<Vec<crate::event::Event>>,
    writer: crate::store::WriterHandle,
    /// The supervisor's own refusals, for attribution.
    decisions: crate::enforce::attribute::DecisionLog,
    /// Landlock's audit records (`--kernel-audit`).
    kaudit: Option<record::kaudit::KernelAudit>,
    grants: crate::learn::Grants,
    who: crate::enforce::sensitive::Who,
    /// How to name the profile in the amend command.
    profile: Option<String>,
}

impl AuditRun {
    /// Loads the recorder and opens the session before the command starts.
    fn start(
        args: &RunArgs,
        cwd: &Path,
        identity: Option<&spawn::Identity>,
        grants: crate::learn::Grants,
    ) -> anyhow::Result<AuditRun> {
        let db = crate::cli::common::db_path(args.db.as_deref(), identity)?;
        let offsets = record::btf::running_kernel_offsets().context("reading kernel struct offsets from BTF")?;
        let (recorder, _) = crate::cli::learn::load_recorder(BackendChoice::Auto, &offsets, 4 << 20)?;
        let store = Store::open(&db, identity.map(|i| (i.uid, i.gid)))?;
        let backend = recorder.backend();
        let ctx = crate::cli::context::learn_context(cwd, identity, &args.sandbox.allow_sensitive, true);
        let id = store.begin_session(&crate::store::NewSession {
            kind: crate::store::SessionKind::Run,
            profile: args.sandbox.profile.clone(),
            context: serde_json::to_string(&ctx).ok(),
            ..common::new_session(&args.sandbox.command, cwd, identity, backend)
        })?;
        let (tx, writer) = crate::store::spawn_writer(&db, id)?;
        let kaudit = if args.kernel_audit {
            Some(record::kaudit::KernelAudit::open(true).context("reading Landlock's records from the kernel audit log")?)
        } else {
            None
        };
        let who = identity.map_or_else(crate::enforce::sensitive::Who::current, |i| crate::enforce::sensitive::Who {
            uid: i.uid,
            gid: i.gid,
            groups: i.groups.clone(),
            is_self: false,
        });
        Ok(AuditRun {
            recorder,
            store,
            id,
            tx,
            writer,
            decisions: std::sync::Arc::default(),
            kaudit,
            grants,
            who,
            profile: args.sandbox.profile.clone(),
        })
    }

    /// Releases and records the command; stops the broker (which shares
    /// the writer's channel) before the session is closed.
    fn supervise(
        mut self,
        gated: spawn::Gated,
        sigfd: nix::sys::signalfd::SignalFd,
        sup: Option<super::supervised::Supervised>,
    ) -> anyhow::Result<ExitCode> {
        let outcome = session::run_gated(self.recorder.as_mut(), gated, session::Progress::Off, self.tx, sigfd);
        drop(self.recorder);
        if let Some(sup) = sup {
            sup.finish();
        }
        let (outcome, end) =
            common::close_session(&self.store, self.id, outcome, self.writer.join(), "recording the sandboxed run")?;
        let id = self.id;
        let landlock = self.kaudit.as_mut().map(|k| k.drain(std::time::Duration::from_millis(300), true)).unwrap_or_default();
        drop(self.kaudit.take());
        let decisions = self.decisions.lock().map(|d| d.clone()).unwrap_or_default();
        let attributor = crate::enforce::attribute::Attributor { grants: self.grants, who: self.who, landlock, decisions };
        let denied = self.store.attribute_denials(id, |e| attributor.classify(e)).context("attributing denials")?;
        eprintln!("nono: audited as session {id}: {} events, {denied} sandbox denial(s)", end.events);
        if denied > 0 {
            super::run_summary::print(&self.store, id, self.profile.as_deref())?;
        }
        Ok(ExitCode::from(outcome.status.exit_code()))
    }
}

#[expect(clippy::needless_pass_by_value, reason = "the dispatcher hands over the parsed arguments")]
pub fn wrap(args: WrapArgs) -> anyhow::Result<ExitCode> {
    let keep = passed_fds(&args.sandbox)?;
    // No identity change: wrap execs the command as nono itself.
    let Built { prepared, .. } = build(&args.sandbox, None, Mode::Wrap)?;
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
