//! Pieces shared by several commands: output formats, the default
//! audit-database location, and opening and closing a recorded session.

pub mod context;
pub mod describe;
pub mod recorder;
pub mod rollback;
pub mod source;
pub mod text;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::record::Backend;
use crate::record::RecordError;
use crate::record::session::{ChildStatus, Outcome};
use crate::record::spawn::Identity;
use crate::store::{LossCounters, NewSession, SessionEnd, SessionState, Store, StoreError, WriterStats};

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

/// What a session records at its start: the command, where and as whom it
/// runs (the invoking user under sudo), the backend and this kernel.
pub fn new_session(command: &[OsString], cwd: &Path, identity: Option<&Identity>, backend: Backend) -> NewSession {
    NewSession {
        command: command.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
        cwd: cwd.to_string_lossy().into_owned(),
        uid: identity.map_or_else(|| nix::unistd::getuid().as_raw(), |i| i.uid),
        user: identity.map_or_else(current_user_name, |i| i.name.clone()),
        backend: backend.as_str().to_owned(),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned(),
        nono_version: env!("CARGO_PKG_VERSION").to_owned(),
        // A learning session unless the caller says otherwise (`run
        // --audit` sets the kind and the profile it enforced).
        ..NewSession::default()
    }
}

fn current_user_name() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map_or_else(|| nix::unistd::getuid().to_string(), |u| u.name)
}

/// Closes session `id` after a recording. A failed recording marks it
/// failed and returns the error (with `what` as context). Otherwise it is
/// complete only when nothing was lost and the writer stored everything; a
/// writer error is reported here, not returned, because what was stored
/// stays usable.
pub fn close_session(
    store: &Store,
    id: i64,
    outcome: Result<Outcome, RecordError>,
    writer: Result<WriterStats, StoreError>,
    what: &'static str,
) -> anyhow::Result<(Outcome, SessionEnd)> {
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            let _ = store.finish_session(id, &SessionEnd::failed(&e.to_string()));
            return Err(e).context(what);
        }
    };
    let stored = writer.as_ref().map_or(0, |s| s.events);
    let unstored = outcome.events.saturating_sub(stored) + outcome.unstored;
    let mut end = session_end(&outcome, stored, unstored);
    if writer.is_err() {
        end.state = SessionState::Incomplete;
    }
    store.finish_session(id, &end)?;
    if let Err(e) = &writer {
        eprintln!("nono: error: the audit store failed while recording: {e}; {unstored} events were not stored");
    }
    Ok((outcome, end))
}

/// What the store keeps of a finished recording: `stored` events reached
/// the database and `unstored` did not. Complete only when nothing was lost.
fn session_end(outcome: &Outcome, stored: u64, unstored: u64) -> SessionEnd {
    let (exit_code, signal) = match outcome.status {
        ChildStatus::Exited(c) => (Some(c), None),
        ChildStatus::Signaled(s) => (None, Some(s)),
    };
    let k = &outcome.counters;
    let counters = LossCounters {
        ringbuf_drops: k.ringbuf_drops,
        path_failures: k.path_failures,
        path_truncations: k.path_truncations,
        pending_full: k.pending_full,
        traced_full: k.traced_full,
        scratch_busy: k.scratch_busy,
        decode_errors: outcome.decode_errors,
        unstored,
    };
    SessionEnd {
        state: if counters.lost() == 0 { SessionState::Complete } else { SessionState::Incomplete },
        exit_code,
        signal,
        events: stored,
        counters,
        note: outcome.store_error.clone(),
    }
}

/// The command line as a shell would need it typed (each word quoted
/// unless it is plainly safe).
pub fn shell_words<S: AsRef<std::ffi::OsStr>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| {
            let s = a.as_ref().to_string_lossy();
            if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c)) {
                s.into_owned()
            } else {
                format!("'{}'", s.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
