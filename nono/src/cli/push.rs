//! `nono audit push`: copy finished sessions of the local audit database
//! to the fleet's `PostgreSQL` database (see [`crate::fleet::push`]).
//!
//! The URL comes from `--to` or `NONO_PG_URL` and must not hold a
//! password: that comes from `PGPASSWORD` or `~/.pgpass`, never argv.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::fleet::{self, FleetUrl, Host, PushOptions};
use crate::record::spawn::Identity;
use crate::store::{Store, StoreError};

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// Fleet database: postgres://USER@HOST:PORT/DB?sslmode=disable|prefer|require
    /// (no password in it: use PGPASSWORD or ~/.pgpass).
    #[arg(long, env = "NONO_PG_URL", value_name = "URL")]
    pub to: String,
    /// Create or upgrade the fleet schema first (needs a role that may
    /// create tables in schema `nono`; pushing alone needs INSERT and SELECT).
    #[arg(long)]
    pub migrate: bool,
    /// Local audit database (default: the one `nono learn` records into).
    #[arg(long, env = "NONO_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Events per committed slice (a resumed push restarts after the last one).
    #[arg(long, hide = true, default_value_t = fleet::push::DEFAULT_SLICE)]
    pub slice: usize,
}

pub fn run(args: &PushArgs) -> anyhow::Result<ExitCode> {
    let url = FleetUrl::parse(&args.to)?;
    let host = Host::this()?;
    let path = crate::cli::common::db_path(args.db.as_deref(), Identity::from_sudo()?.as_ref())?;
    let store = match Store::open_read_only(&path) {
        Ok(store) => Some(store),
        // A DBA's machine may have no recordings: `--migrate` alone is fine.
        Err(StoreError::Missing(_)) if args.migrate => None,
        Err(e) => return Err(e.into()),
    };
    let fleet::Connected { mut client, target } = fleet::connect(&url)?;
    if args.migrate {
        let applied = fleet::migrate(&mut client).with_context(|| format!("migrating {target}"))?;
        eprintln!("nono: fleet schema at version {} ({} step(s) applied) in {target}", fleet::SCHEMA_VERSION, applied.len());
    }
    let Some(store) = store else {
        eprintln!("nono: no local audit database at {}: nothing to push", path.display());
        return Ok(ExitCode::SUCCESS);
    };
    let report = fleet::push(&mut client, &store, &host, &PushOptions { slice: args.slice.max(1) }, |n| {
        log::info!("{n} events committed");
    })
    .with_context(|| format!("pushing {} to {target}", path.display()))?;
    #[expect(clippy::cast_precision_loss, reason = "a rate for people to read")]
    let rate = report.events as f64 / report.secs.max(1e-9);
    eprintln!(
        "nono: pushed {} session(s), {} events{} in {:.2} s ({:.0} events/s) to {target}, from host {} (id {}); {} already there, {} still recording",
        report.pushed,
        report.events,
        if report.domains > 0 { format!(", {} domain row(s)", report.domains) } else { String::new() },
        report.secs,
        rate,
        host.label(),
        host.id,
        report.already,
        report.running
    );
    Ok(ExitCode::SUCCESS)
}
