//! `nono setup`: mount the kernel filesystems nono needs (unless
//! `--check-only`), then print the kernel feature matrix, the recording
//! backend `nono learn` will use, and whether `nono run`'s seccomp
//! baseline installs and bites here.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::kernel::{self, KernelFs, Probes, Status};

#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// Only report; change nothing (no mounts).
    #[arg(long)]
    pub check_only: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Read kernel files under this root instead of `/` (fixture trees);
    /// live probes are then skipped unless --assume-probes gives them.
    #[arg(long, hide = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Probe results to assume with --root (JSON), for fixture tests.
    #[arg(long, hide = true, value_name = "FILE", requires = "root")]
    pub assume_probes: Option<PathBuf>,
}

pub fn run(args: &SetupArgs) -> anyhow::Result<ExitCode> {
    let (report, baseline) = if let Some(root) = &args.root {
        let probes = match &args.assume_probes {
            Some(f) => kernel::load_probes(f)?,
            None => Probes::default(),
        };
        (kernel::report(&KernelFs::new(root).facts(), &probes), None)
    } else {
        if !args.check_only {
            mount_if_missing("securityfs", "/sys/kernel/security", "/sys/kernel/security/lsm");
            mount_if_missing("tracefs", "/sys/kernel/tracing", "/sys/kernel/tracing/events");
        }
        (kernel::running(), Some(crate::enforce::probe_baseline()))
    };
    if args.json {
        let mut doc = serde_json::to_value(&report)?;
        if let (Some(b), Some(obj)) = (&baseline, doc.as_object_mut()) {
            obj.insert("sandbox_baseline".to_owned(), serde_json::json!({"ok": b.is_ok(), "detail": b.as_ref().err()}));
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!("nono setup: kernel feature matrix");
        for c in &report.checks {
            println!("  {:<22} {:<12} {}", c.name, c.status.as_str(), c.detail);
        }
        match &baseline {
            Some(Ok(())) => println!(
                "  {:<22} {:<12} installed in a child; TIOCSTI denied; close_range(CLOEXEC) works",
                "seccomp baseline",
                Status::Available.as_str(),
            ),
            Some(Err(e)) => println!("  {:<22} {:<12} {e}", "seccomp baseline", Status::Unavailable.as_str()),
            None => {}
        }
        for n in &report.notes {
            println!("  note: {n}");
        }
        match report.backend {
            Some(b) => println!("recording backend: {b} ({})", report.backend_reason),
            None => println!("recording backend: none ({})", report.backend_reason),
        }
        let enforce = report.checks.iter().find(|c| c.name == "landlock").map_or(Status::Unavailable, |c| c.status);
        let seccomp = match &baseline {
            Some(Ok(())) => " + the seccomp baseline",
            Some(Err(_)) => " (WITHOUT the seccomp baseline: nono run refuses to start)",
            None => "",
        };
        // Scoping (signals, abstract Unix sockets) needs ABI 6.
        let landlock = match enforce {
            Status::Available if report.landlock_abi >= 6 => "Landlock, fully",
            Status::Available | Status::Degraded => {
                "Landlock, degraded (see above; signal and abstract-socket scoping need ABI 6)"
            }
            Status::Unavailable => "unavailable (no Landlock)",
        };
        println!("enforcement (nono run): {landlock}{seccomp}");
        if args.root.is_none() {
            let mode = crate::enforce::proxy::ProxyMode::detect(
                crate::enforce::kernel_abi(),
                &crate::kernel::seccomp_notify(),
                crate::enforce::is_wsl2(std::path::Path::new("/")),
            );
            println!("network by name (network.allow_domains): {}", mode.describe());
        }
    }
    Ok(if report.backend.is_some() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn mount_if_missing(fstype: &str, target: &str, probe: &str) {
    if std::path::Path::new(probe).exists() {
        return;
    }
    match nix::mount::mount(Some(fstype), target, Some(fstype), nix::mount::MsFlags::empty(), None::<&str>) {
        Ok(()) => eprintln!("nono setup: mounted {fstype} at {target}"),
        Err(e) => {
            eprintln!("nono setup: could not mount {fstype} at {target}: {e} (run as root: mount -t {fstype} {fstype} {target})");
        }
    }
}
