//! `cargo xtask vm-test`: boots Debian cloud kernels under QEMU and runs the
//! privileged end-to-end suite (or any command) inside them, so the BPF LSM
//! recorder backend and older Landlock ABIs are exercised on real kernels.
//!
//! How the guest sees the host: the host's `/` is shared **read-only** over
//! virtio-fs (`virtiofsd` + `vhost-user-fs-pci`), so test binaries, their
//! absolute target-dir paths, `/usr/bin` tools, libc and so on are identical
//! inside and outside. virtio-fs instead of 9p because Debian's cloud kernels
//! are built without 9p (`# CONFIG_NET_9P is not set`) but with virtio-fs
//! (built in on 6.12, a module on 6.1, which the initramfs loads). The guest
//! mounts it with `-o ro`; `virtiofsd` itself has no read-only switch, so the
//! guest's `/init` (ours) is what keeps it read-only. Writable tmpfs goes on
//! `/tmp`, `/root`, `/run`, `/var/tmp` and the target dir's `tmp/`; `/etc`
//! becomes a tmpfs copy, so the tests can add the ordinary users they run
//! nono as (`useradd`).
//!
//! The initramfs is only busybox (`busybox-static`), `/init` (`vm/init.sh`),
//! the run configuration and any modules. `/init` mounts the kernel
//! filesystems (proc, sys, devtmpfs, securityfs, tracefs, debugfs, bpffs,
//! cgroup2) inside the host root, brings `lo` up and `switch_root`s into it
//! (a chroot would leave `/newroot` in front of every path the BPF programs
//! resolve), runs the command, then prints `NONO-VM-EXIT-<nonce>=<status>`
//! and powers off. The nonce keeps command output from forging the sentinel.
//!
//! Cost under TCG (this host; one vCPU, see `qemu.rs`): boot to `/init` ~4 s, a whole
//! guest run with a trivial command ~12 s; `nono learn --backend lsm -- true`
//! with a debug build ~23 s, of which ~5 s are the kernel loading/verifying
//! the 51 programs and most of the rest is debug-build user space (BTF and
//! ELF parsing) running emulated.
//!
//! Host packages: `qemu-system-x86` (its `qemu-system-common` ships
//! `/usr/lib/qemu/virtiofsd` on bookworm), `busybox-static`, and apt lists
//! that include `bookworm-security` or `bookworm-backports` for the 6.12
//! kernel. KVM is tried first when `/dev/kvm` exists; TCG is the fallback.

mod initramfs;
mod kernel;
mod qemu;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};

use crate::{target_dir, workspace_root};

/// Integration tests (`cargo test --test NAME -p nono`) the default suite
/// runs in each guest. `escapes` attacks a learned profile as an ordinary
/// user: on debian-6.12 (Landlock ABI 6) scoping must hold, on debian-6.1
/// (ABI 2) it must be reported as degraded and `--strict` must refuse.
pub const DEFAULT_SUITE: &[&str] = &["learn", "setup", "enforce", "escapes", "broker", "replays", "proxy"];

/// Suites that run on one kernel only (the rest run on every kernel).
/// `replays` learns and replays real workloads, which exercises the LSM
/// backend's exec records on 6.12; on 6.1 it would repeat the host's run
/// at twice the VM time.
const ONLY_ON: &[(&str, &str)] = &[("replays", "debian-6.12")];

/// Environment for every default-suite test binary in the guest (plus
/// `NONO_IN_VM=<kernel name>`).
const SUITE_ENV: &[(&str, &str)] = &[("NONO_TEST_BACKEND", "lsm"), ("NONO_REQUIRE_KERNEL", "1")];

/// Where the static busybox lives on Debian (`busybox-static`).
const BUSYBOX: &str = "/bin/busybox";

#[derive(Debug, clap::Args)]
pub struct VmArgs {
    /// Guest kernel: debian-6.12, debian-6.1 or all.
    #[arg(long, default_value = "all")]
    pub kernel: String,
    /// Seconds per guest before QEMU is killed. The guests run side by
    /// side, one host core each; the 6.12 guest's suite takes about 25
    /// minutes under TCG on an idle 2-core machine (43 and 53 in the last
    /// two CI runs, its escapes suite alone 8 to 11); this leaves room for
    /// a slower run, no more.
    #[arg(long, default_value_t = 4200)]
    pub timeout: u64,
    /// How QEMU runs guest code.
    #[arg(long, value_enum, default_value_t = qemu::Accel::Auto)]
    pub accel: qemu::Accel,
    /// Build the default suite with `--release` (user space runs emulated
    /// under TCG, where a debug build's BTF/ELF parsing costs seconds per run).
    #[arg(long)]
    pub release: bool,
    /// Command to run in the guest (in the current directory) instead of the
    /// default suite.
    #[arg(last = true)]
    pub cmd: Vec<String>,
}

pub fn run(args: &VmArgs) -> Result<()> {
    let specs: Vec<kernel::KernelSpec> = if args.kernel == "all" {
        kernel::KERNELS.to_vec()
    } else {
        let spec = kernel::spec(&args.kernel).with_context(|| {
            let names: Vec<_> = kernel::KERNELS.iter().map(|k| k.name).collect();
            format!("unknown kernel {:?}; expected one of {names:?} or all", args.kernel)
        })?;
        vec![spec]
    };
    ensure!(Path::new(BUSYBOX).is_file(), "{BUSYBOX} missing: install busybox-static");

    let workspace = workspace_root()?;
    let target_dir = target_dir(&workspace);
    let cache = target_dir.join("vm");
    fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    // The guest mounts a scratch tmpfs here; the directory must exist.
    let scratch = target_dir.join("tmp");
    fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let cwd = std::env::current_dir()?;

    let suite = if args.cmd.is_empty() { Some(build_suite(&workspace, args.release)?) } else { None };

    // The guests run side by side (each QEMU has one vCPU, and TCG keeps
    // one host core busy): on a 2-core machine both kernels take the time
    // of the slower one. Their lines carry the kernel's name.
    // Fetched one after the other (apt), booted together.
    let kernels =
        specs.iter().map(|spec| Ok((spec, Instant::now(), kernel::ensure(*spec, &cache)?))).collect::<Result<Vec<_>>>()?;
    let results: Vec<Result<Option<String>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = kernels
            .iter()
            .map(|(spec, started, kernel)| {
                let (suite, cache, cwd, workspace, target_dir) = (&suite, &cache, &cwd, &workspace, &target_dir);
                scope.spawn(move || run_guest(spec, kernel, *started, suite.as_ref(), args, (cache, cwd, workspace, target_dir)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a guest's thread panicked")))).collect()
    });
    let mut failures = Vec::new();
    for r in results {
        if let Some(f) = r? {
            failures.push(f);
        }
    }
    if !failures.is_empty() {
        bail!("vm-test failed: {}", failures.join("; "));
    }
    Ok(())
}

/// Boots one guest kernel and runs the suite (or `args.cmd`) in it;
/// `Some(why)` when it failed.
fn run_guest(
    spec: &kernel::KernelSpec,
    kernel: &kernel::Kernel,
    started: Instant,
    suite: Option<&Suite>,
    args: &VmArgs,
    (cache, cwd, workspace, target_dir): (&Path, &Path, &Path, &Path),
) -> Result<Option<String>> {
    let modules = kernel::virtiofs_modules(kernel)?;
    let nonce = nonce();
    let command = match suite {
        Some(suite) => suite_script(suite, spec.name),
        None => custom_script(&args.cmd, spec.name, cwd),
    };
    let config = guest_config(&nonce, &modules, workspace, target_dir);
    let initrd = cache.join(spec.name).join("initrd.cpio");
    initramfs::write(
        &initrd,
        Path::new(BUSYBOX),
        &initramfs::GuestFiles { config: &config, command: &command, modules: &modules },
    )?;
    let label = format!("[{}] ", spec.name);
    let outcome = qemu::boot(
        &qemu::Boot {
            vmlinuz: &kernel.vmlinuz,
            initrd: &initrd,
            nonce: &nonce,
            timeout: Duration::from_secs(args.timeout),
            work_dir: cache,
            label: &label,
        },
        args.accel,
    )?;
    let took = started.elapsed().as_secs_f32();
    let verdict = match outcome {
        qemu::Outcome::Exited(0) => None,
        qemu::Outcome::Exited(code) => Some(format!("command exited with {code}")),
        qemu::Outcome::NoSentinel { panicked: true, .. } => Some("kernel panic".to_owned()),
        qemu::Outcome::NoSentinel { booted, .. } => Some(format!(
            "guest ended without the exit sentinel ({})",
            if booted { "after /init started" } else { "before /init started" }
        )),
        qemu::Outcome::TimedOut => Some(format!("timed out after {}s", args.timeout)),
    };
    Ok(match verdict {
        None => {
            eprintln!("vm: {} ({}): ok in {took:.1}s", spec.name, kernel.package);
            None
        }
        Some(why) => {
            eprintln!("vm: {} ({}): FAILED in {took:.1}s: {why}", spec.name, kernel.package);
            Some(format!("{}: {why}", spec.name))
        }
    })
}

/// The host-built programs the default suite runs.
struct Suite {
    /// `(test name, absolute executable path)`.
    tests: Vec<(String, PathBuf)>,
    /// The `nono` binary, for `nono setup --check-only`.
    nono: Option<PathBuf>,
}

/// Builds the default suite's test binaries (with the real eBPF object) and
/// collects their paths from cargo's JSON messages.
fn build_suite(workspace: &Path, release: bool) -> Result<Suite> {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    // The guest needs the real eBPF object, whatever the caller's shell says.
    cmd.current_dir(workspace).env_remove("AYA_BUILD_SKIP").args(["test", "--no-run", "--message-format=json", "-p", "nono"]);
    if release {
        cmd.arg("--release");
    }
    for name in DEFAULT_SUITE {
        cmd.args(["--test", name]);
    }
    eprintln!("vm: building the suite: {cmd:?}");
    let out = cmd.stderr(Stdio::inherit()).output().context("running cargo test --no-run")?;
    ensure!(out.status.success(), "building the test binaries failed");
    let mut suite = Suite { tests: Vec::new(), nono: None };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let Some(exe) = msg["executable"].as_str() else { continue };
        let name = msg["target"]["name"].as_str().unwrap_or_default().to_owned();
        let kinds = msg["target"]["kind"].as_array().cloned().unwrap_or_default();
        let is_test = msg["profile"]["test"].as_bool().unwrap_or(false);
        if is_test && kinds.iter().any(|k| k == "test") && DEFAULT_SUITE.contains(&name.as_str()) {
            suite.tests.push((name, PathBuf::from(exe)));
        } else if !is_test && name == "nono" && kinds.iter().any(|k| k == "bin") {
            suite.nono = Some(PathBuf::from(exe));
        }
    }
    ensure!(
        suite.tests.len() == DEFAULT_SUITE.len(),
        "expected test binaries for {DEFAULT_SUITE:?}, cargo reported {:?}",
        suite.tests.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    Ok(suite)
}

/// Single-quotes `s` for a POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn suite_script(suite: &Suite, kernel: &str) -> String {
    let mut s = String::from("failed=0\n");
    let _ = writeln!(s, "export NONO_IN_VM={}", quote(kernel));
    for (key, value) in SUITE_ENV {
        let _ = writeln!(s, "export {key}={}", quote(value));
    }
    if let Some(nono) = &suite.nono {
        let nono = quote(&nono.to_string_lossy());
        let _ = writeln!(s, "echo '== nono setup --check-only'\n{nono} setup --check-only || true");
    }
    for (name, exe) in &suite.tests {
        if ONLY_ON.iter().any(|(suite, only)| suite == name && *only != kernel) {
            let _ =
                writeln!(s, "echo '== test {name}: only on {}'", ONLY_ON.iter().find(|(t, _)| t == name).map_or("", |(_, k)| k));
            continue;
        }
        let exe = exe.to_string_lossy();
        let dir = Path::new(exe.as_ref()).parent().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        let _ = writeln!(
            s,
            "echo '== test {name}'\ncd {dir} && {exe}\nrc=$?\necho \"== test {name}: exit $rc\"\n[ $rc -eq 0 ] || failed=$((failed + 1))",
            dir = quote(&dir),
            exe = quote(&exe),
        );
    }
    s.push_str("exit $failed\n");
    s
}

fn custom_script(cmd: &[String], kernel: &str, cwd: &Path) -> String {
    let words: Vec<String> = cmd.iter().map(|w| quote(w)).collect();
    format!("export NONO_IN_VM={}\ncd {} || exit 125\n{}\n", quote(kernel), quote(&cwd.to_string_lossy()), words.join(" "))
}

/// Shell assignments for `/init`.
fn guest_config(nonce: &str, modules: &[(String, Vec<u8>)], workspace: &Path, target_dir: &Path) -> String {
    let names: Vec<&str> = modules.iter().map(|(n, _)| n.as_str()).collect();
    let path = std::env::var("PATH").unwrap_or_default();
    let guest_path = format!("{path}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    format!(
        "NONCE={}\nMODULES={}\nWORKSPACE={}\nWRITABLE={}\nGUEST_PATH={}\n",
        quote(nonce),
        quote(&names.join(" ")),
        quote(&workspace.to_string_lossy()),
        quote(&target_dir.join("tmp").to_string_lossy()),
        quote(&guest_path),
    )
}

/// A per-run token for the sentinels; unpredictable enough that command
/// output will not contain it by accident.
fn nonce() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("{:x}{:x}", nanos, std::process::id())
}
