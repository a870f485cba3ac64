//! `cargo xtask setup`: installs what a fresh machine of this kind lacks,
//! idempotently. Every step first checks whether its work is already done,
//! so a second run only checks (seconds). A failing step names itself and
//! the command to run by hand.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};

/// Debian packages: LLVM 22 to build bpf-linker; QEMU, busybox and cpio for
/// the VM suite; strace, hyperfine and the build tools the end-to-end
/// workloads and benchmarks run (git, make, cc, python3); headless
/// Chromium and `script` for the report and terminal tests;
/// `PostgreSQL` (a throwaway server for the fleet tests and bench), libssl-dev and
/// pkg-config (its TLS client) and openssl (the tests' self-signed cert).
pub const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    "strace",
    "hyperfine",
    "git",
    "make",
    "gcc",
    "python3",
    "python3-venv",
    "iproute2",
    // The HTML report's browser test (tests/report.rs) and README screenshot.
    "chromium",
    // `script`: the pty test of `nono learn --progress`.
    "bsdutils",
    "postgresql",
    "libssl-dev",
    "pkg-config",
    // The BTF reader's test compares its offsets with bpftool's dump of the
    // running kernel.
    "bpftool",
    "openssl",
    // tests/proxy.rs (issue 23): curl through nono's proxy, npm for the
    // Claude Code CLI, keyctl for keyring-held credentials.
    "curl",
    "npm",
    "keyutils",
    // ssh-keygen and ssh-agent: the interop tests of signed profiles and
    // audit seals (tests/trust.rs); `unshare` (util-linux) mounts a private
    // /etc/nono for the system trust policy test.
    "openssh-client",
    "util-linux",
    // Rollback: the bench compares snapshots with `rsync -a`, and the
    // tests and bench loop-mount an XFS image to exercise reflinks.
    "rsync",
    "xfsprogs",
];

/// Where the Claude Code CLI is installed for tests/proxy.rs (it completes
/// a prompt through nono's proxy against a fake Messages API).
pub const CLAUDE_PREFIX: &str = "/opt/nono-test/npm";

const BPF_LINKER_VERSION: &str = "0.13.0";

/// The OCSF export's schema check (tests/fleet/ocsf.rs): the OCSF schema files
/// as the `ocsf-json-schema` package ships them (it also turns a class
/// into a JSON Schema), and `jsonschema` to validate against it. Pinned,
/// with their dependencies, installed with `--no-deps` into a venv in the
/// target directory ([`OCSF_VENV`]), so the test validates against exactly
/// these on every machine.
const OCSF_PACKAGES: &[(&str, &str)] = &[
    ("ocsf-json-schema", "1.2.0"),
    ("jsonschema", "4.26.0"),
    ("jsonschema-specifications", "2025.9.1"),
    ("referencing", "0.37.0"),
    ("rpds-py", "2026.9.1"),
    ("attrs", "26.1.0"),
    ("typing_extensions", "4.16.0"),
];

/// The venv, relative to cargo's target directory (tests/fleet/ocsf.rs finds it
/// there from `CARGO_TARGET_TMPDIR`).
pub const OCSF_VENV: &str = "tools/ocsf-venv";

#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// Only report what is missing; change nothing.
    #[arg(long)]
    pub check: bool,
}

struct Step {
    name: &'static str,
    done: fn() -> anyhow::Result<bool>,
    apply: fn() -> anyhow::Result<()>,
    by_hand: &'static str,
}

const STEPS: &[Step] = &[
    Step {
        name: "apt packages",
        done: apt_done,
        apply: apt_apply,
        by_hand: "apt-get update && apt-get install -y <packages listed above>",
    },
    Step {
        name: "nightly rust-src (eBPF build-std)",
        done: rust_src_done,
        apply: rust_src_apply,
        by_hand: "rustup component add rust-src --toolchain nightly",
    },
    Step {
        name: "bpf-linker",
        done: bpf_linker_done,
        apply: bpf_linker_apply,
        by_hand: "LLVM_PREFIX=/usr/lib/llvm-22 cargo install bpf-linker@0.13.0 --locked --no-default-features --features llvm-22",
    },
    Step {
        name: "Claude Code CLI (tests/proxy.rs)",
        done: || Ok(Path::new(CLAUDE_PREFIX).join("bin/claude").exists()),
        apply: || sh(Command::new("npm").args(["install", "-g", "--prefix", CLAUDE_PREFIX, "@anthropic-ai/claude-code"])),
        by_hand: "npm install -g --prefix /opt/nono-test/npm @anthropic-ai/claude-code",
    },
    Step {
        name: "OCSF schema validator (Python venv)",
        done: ocsf_done,
        apply: ocsf_apply,
        by_hand: "python3 -m venv target/tools/ocsf-venv && target/tools/ocsf-venv/bin/pip install --no-deps <OCSF_PACKAGES pinned in xtask/src/setup.rs>",
    },
    Step {
        name: "securityfs at /sys/kernel/security",
        done: || Ok(mounted(Path::new("/sys/kernel/security/lsm"))),
        apply: || mount("securityfs", "/sys/kernel/security"),
        by_hand: "mount -t securityfs securityfs /sys/kernel/security",
    },
    Step {
        name: "tracefs at /sys/kernel/tracing",
        done: || Ok(mounted(Path::new("/sys/kernel/tracing/events"))),
        apply: || mount("tracefs", "/sys/kernel/tracing"),
        by_hand: "mount -t tracefs tracefs /sys/kernel/tracing",
    },
];

pub fn run(args: &SetupArgs) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    for step in STEPS {
        let done = (step.done)().with_context(|| format!("setup step `{}`: checking", step.name))?;
        if done {
            eprintln!("setup: {:<38} ok", step.name);
            continue;
        }
        if args.check {
            eprintln!("setup: {:<38} MISSING", step.name);
            missing.push(step.name);
            continue;
        }
        eprintln!("setup: {:<38} installing...", step.name);
        (step.apply)().with_context(|| format!("setup step `{}` failed; to do it by hand, run: {}", step.name, step.by_hand))?;
        if !(step.done)()? {
            bail!("setup step `{}` ran but its check still fails; to do it by hand, run: {}", step.name, step.by_hand);
        }
        eprintln!("setup: {:<38} done", step.name);
    }
    if !missing.is_empty() {
        bail!("missing: {}; run `cargo xtask setup`", missing.join(", "));
    }
    Ok(())
}

/// Runs a command, inheriting stdio; fails with the command line on error.
pub fn sh(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Packages whose command may come from elsewhere: a `nodejs` from
/// NodeSource bundles `npm` and conflicts with Debian's `npm` package, so
/// asking apt for it there breaks the whole install. When the command
/// already runs, the package is not needed.
const PROVIDED_BY_COMMAND: &[(&str, &str)] = &[("npm", "npm")];

fn missing_packages() -> Vec<&'static str> {
    APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p])).is_none_or(|s| !s.contains("install ok installed"))
        })
        .filter(|p| {
            !PROVIDED_BY_COMMAND.iter().any(|(pkg, cmd)| pkg == p && output(Command::new(cmd).arg("--version")).is_some())
        })
        .collect()
}

fn apt_done() -> anyhow::Result<bool> {
    Ok(missing_packages().is_empty())
}

fn apt_apply() -> anyhow::Result<()> {
    let missing = missing_packages();
    eprintln!("setup: apt-get install {}", missing.join(" "));
    sh(Command::new("apt-get").arg("update").arg("-q"))?;
    sh(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn rust_src_done() -> anyhow::Result<bool> {
    Ok(output(Command::new("rustup").args(["component", "list", "--installed", "--toolchain", "nightly"]))
        .is_some_and(|s| s.lines().any(|l| l.starts_with("rust-src"))))
}

fn rust_src_apply() -> anyhow::Result<()> {
    if output(Command::new("rustup").args(["toolchain", "list"])).is_none_or(|s| !s.contains("nightly")) {
        sh(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))?;
    }
    sh(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
}

fn bpf_linker_done() -> anyhow::Result<bool> {
    Ok(output(Command::new("bpf-linker").arg("--version")).is_some_and(|v| v.contains(BPF_LINKER_VERSION)))
}

fn bpf_linker_apply() -> anyhow::Result<()> {
    sh(Command::new("cargo")
        .args(["install", &format!("bpf-linker@{BPF_LINKER_VERSION}"), "--locked", "--no-default-features"])
        .args(["--features", "llvm-22"])
        .env("LLVM_PREFIX", "/usr/lib/llvm-22"))
}

fn mounted(probe: &Path) -> bool {
    probe.exists()
}

fn mount(fstype: &str, target: &str) -> anyhow::Result<()> {
    sh(Command::new("mount").args(["-t", fstype, fstype, target]))
}

fn ocsf_venv() -> anyhow::Result<std::path::PathBuf> {
    Ok(crate::target_dir(&crate::workspace_root()?).join(OCSF_VENV))
}

fn ocsf_done() -> anyhow::Result<bool> {
    let python = ocsf_venv()?.join("bin/python");
    if !python.exists() {
        return Ok(false);
    }
    // Every package at its pinned version.
    let check = OCSF_PACKAGES
        .iter()
        .map(|(name, version)| format!("m.version({name:?}) == {version:?}"))
        .collect::<Vec<_>>()
        .join(" and ");
    let script = format!("import importlib.metadata as m, ocsf_json_schema, jsonschema, sys; sys.exit(0 if {check} else 1)");
    Ok(Command::new(python).args(["-c", &script]).output().is_ok_and(|o| o.status.success()))
}

fn ocsf_apply() -> anyhow::Result<()> {
    let venv = ocsf_venv()?;
    if !venv.join("bin/python").exists() {
        sh(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    sh(Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "--no-deps"])
        .args(OCSF_PACKAGES.iter().map(|(name, version)| format!("{name}=={version}"))))
}
