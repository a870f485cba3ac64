//! `nono profile`: inspect and compare profiles.
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum ProfileCommand {
    /// Show what changes between two profiles.
    Diff { a: std::path::PathBuf, b: std::path::PathBuf },
}

pub fn run(_cmd: ProfileCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
