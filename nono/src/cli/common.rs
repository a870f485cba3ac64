//! Pieces shared by several commands: output formats and the default
//! audit-database location.

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::record::spawn::Identity;

/// Output format for people (`table`) or tools (`json`, `csv`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Csv,
}

/// The audit database: `--db`/`NONO_DB`, else `$XDG_STATE_HOME/nono/audit.db`,
/// else `~/.local/state/nono/audit.db`. Under sudo the invoking user's home
/// is used, so their audit trail stays theirs.
pub fn db_path(explicit: Option<&Path>, identity: Option<&Identity>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(id) = identity {
        return Ok(id.home.join(".local/state/nono/audit.db"));
    }
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        return Ok(state.join("nono/audit.db"));
    }
    match std::env::var_os("HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        Some(home) => Ok(home.join(".local/state/nono/audit.db")),
        None => bail!("cannot place the audit database: neither XDG_STATE_HOME nor HOME is set; pass --db PATH"),
    }
}
