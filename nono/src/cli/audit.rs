//! `nono audit`: query the audit store.
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// List sessions.
    Sessions,
}

pub fn run(_cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
