//! `nono learn`: record a command and write a profile.
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct LearnArgs {
    /// The command to run.
    #[arg(trailing_var_arg = true, required = true)]
    pub command: Vec<std::ffi::OsString>,
}

pub fn run(_args: LearnArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
