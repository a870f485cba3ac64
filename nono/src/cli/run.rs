//! `nono run` and `nono wrap`: enforce a profile.
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[arg(trailing_var_arg = true, required = true)]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, clap::Args)]
pub struct WrapArgs {
    #[arg(trailing_var_arg = true, required = true)]
    pub command: Vec<std::ffi::OsString>,
}

pub fn run(_args: RunArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}

pub fn wrap(_args: WrapArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
