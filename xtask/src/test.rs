//! `cargo xtask test`: the one command that runs every test (CI's
//! `.ci/run` calls exactly this). Sets the machine up first, then runs the
//! workspace tests on the host kernel, the VM suite on Debian kernels, and
//! the benchmark harness in `--quick` mode so it cannot rot.

use std::process::Command;

use crate::setup::{self, sh};

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Skip the QEMU suite (LSM backend and Landlock ABI matrix on Debian kernels).
    #[arg(long)]
    pub no_vm: bool,
    /// Skip the quick benchmark smoke run.
    #[arg(long)]
    pub no_bench: bool,
}

pub fn run(args: &TestArgs) -> anyhow::Result<()> {
    setup::run(&setup::SetupArgs { check: false })?;
    // The VM suite and the benchmarks run as their own xtask invocations,
    // exactly as a developer would type them.
    let me = std::env::current_exe()?;
    eprintln!("xtask test: host suite (cargo test)");
    sh(Command::new("cargo").args(["test", "--release", "--locked"]))?;
    if args.no_vm {
        eprintln!("xtask test: VM suite skipped (--no-vm)");
    } else {
        eprintln!("xtask test: VM suite");
        sh(Command::new(&me).args(["vm-test", "--kernel", "all", "--release"]))?;
    }
    if args.no_bench {
        eprintln!("xtask test: benchmark smoke run skipped (--no-bench)");
    } else {
        sh(Command::new(&me).args(["bench", "--quick"]))?;
    }
    eprintln!("xtask test: all passed");
    Ok(())
}
