//! `nono setup`: print the kernel feature matrix.
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// Only report; change nothing.
    #[arg(long)]
    pub check_only: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: &SetupArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
