//! Command-line interface: clap argument types (validated without syscalls)
//! and the dispatch to each command. This is the only layer that prints.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod amend;
pub mod audit;
pub mod common;
mod export;
pub mod learn;
pub mod profile;
mod push;
mod report;
pub mod rollback;
pub mod run;
mod seal;
pub mod setup;
mod trust;

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
    /// Snapshots taken by `nono run --rollback`: list, diff, restore, prune.
    #[command(subcommand)]
    Rollback(rollback::RollbackCommand),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Under sudo every command but `setup` (which only reads and mounts
    // kernel filesystems) acts with the invoking user's filesystem
    // identity from here on: see `invoker`.
    if !matches!(cli.command, Command::Setup(_)) {
        crate::invoker::enter()?;
    }
    match cli.command {
        Command::Setup(args) => setup::run(&args),
        Command::Learn(args) => learn::run(args),
        Command::Audit(cmd) => audit::run(cmd),
        Command::Run(args) => run::run(args),
        Command::Wrap(args) => run::wrap(args),
        Command::Profile(cmd) => profile::run(cmd),
        Command::Rollback(cmd) => rollback::run(cmd),
    }
}
