//! Project tasks that cargo alone does not cover: installing what a fresh
//! machine lacks (`setup`), the demo, the full test run, the VM suite for
//! other kernels, and benchmarks. Building the eBPF object is *not* here:
//! `nono/build.rs` does it through aya-build.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod vm;

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "nono project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Run the LSM-backend and ABI-matrix suite inside QEMU on Debian kernels.
    VmTest(vm::VmArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::VmTest(args) => vm::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
