//! Project tasks that cargo alone does not cover: installing what a fresh
//! machine lacks (`setup`), the demo, the full test run, the VM suite for
//! other kernels, and benchmarks. Building the eBPF object is *not* here:
//! `nono/build.rs` does it through aya-build.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use clap::{Parser, Subcommand};

mod bench;
mod demo;
mod pg;
mod setup;
mod test;
mod vm;

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "nono project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install what this machine lacks (apt packages, bpf-linker, rust-src, kernel filesystems).
    Setup(setup::SetupArgs),
    /// Set up, build, and learn a profile for the built-in demo agent.
    Demo(demo::DemoArgs),
    /// Set up and run every test: host suite, VM suite, benchmark smoke run.
    Test(test::TestArgs),
    /// Run the LSM-backend and ABI-matrix suite inside QEMU on Debian kernels.
    VmTest(vm::VmArgs),
    /// Measure nono against native runs and strace, side by side.
    Bench(bench::BenchArgs),
}

/// The workspace root: xtask lives one level below it.
pub fn workspace_root() -> anyhow::Result<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).context("xtask has no parent directory")
}

/// Cargo's target directory for the workspace at `root`.
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup(args) => setup::run(&args),
        Task::Demo(args) => demo::run(&args),
        Task::Test(args) => test::run(&args),
        Task::VmTest(args) => vm::run(&args),
        Task::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
