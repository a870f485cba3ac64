//! Command-line interface: clap argument types (validated without syscalls)
//! and the dispatch to each command. This is the only layer that prints.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod amend;
pub mod audit;
mod audit_check;
mod audit_source;
pub mod common;
pub mod context;
mod export;
pub mod learn;
mod learn_fleet;
mod learn_report;
pub mod profile;
mod push;
mod report;
pub mod run;
mod run_summary;
pub mod setup;
mod supervised;

/// Exit code for nono's own failures (distinct from the child's codes,
/// which are passed through). 125 follows `env`/`timeout`/`chroot`.
pub const EXIT_NONO_ERROR: u8 = 125;

/// Learn, audit and enforce least-privilege sandboxes for AI agents.
#[derive(Debug, Parser)]
#[command(name = "nono", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report what this kernel supports (Landlock, BPF LSM, tracepoints, ...).
    Setup(setup::SetupArgs),
    /// Run a command, record everything its process tree touches, write a profile.
    Learn(learn::LearnArgs),
    /// Query recorded sessions and events.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Run a command under a profile's sandbox, supervised.
    Run(run::RunArgs),
    /// Apply a profile's sandbox to nono itself and exec the command.
    Wrap(run::WrapArgs),
    /// Inspect and compare profiles.
    #[command(subcommand)]
    Profile(profile::ProfileCommand),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Setup(args) => setup::run(&args),
        Command::Learn(args) => learn::run(args),
        Command::Audit(cmd) => audit::run(cmd),
        Command::Run(args) => run::run(args),
        Command::Wrap(args) => run::wrap(args),
        Command::Profile(cmd) => profile::run(cmd),
    }
}
