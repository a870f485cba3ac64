//! Sessions: their lifecycle (begin, finish, reaping those whose recorder
//! died), the types that describe them, and reading them back.

use rusqlite::{OptionalExtension as _, params};
use serde::Serialize;

use super::{Store, StoreError, busy_or, now_ns, tally};

/// Lifecycle state of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    /// The recorder is (or was, if it died) still writing.
    Running,
    /// Finished with nothing lost.
    Complete,
    /// Finished with lost events, or the recorder died.
    Incomplete,
}

impl SessionState {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            SessionState::Running => "running",
            SessionState::Complete => "complete",
            SessionState::Incomplete => "incomplete",
        }
    }

    fn parse(s: &str) -> Result<SessionState, StoreError> {
        match s {
            "running" => Ok(SessionState::Running),
            "complete" => Ok(SessionState::Complete),
            "incomplete" => Ok(SessionState::Incomplete),
            other => Err(StoreError::Corrupt(format!("session state {other:?}"))),
        }
    }
}

/// Why a session was recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    /// `nono learn`: recorded to learn a profile.
    #[default]
    Learn,
    /// `nono run --audit`: recorded under an enforced profile.
    Run,
}

impl SessionKind {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            SessionKind::Learn => "learn",
            SessionKind::Run => "run",
        }
    }

    fn parse(s: &str) -> Result<SessionKind, StoreError> {
        match s {
            "learn" => Ok(SessionKind::Learn),
            "run" => Ok(SessionKind::Run),
            other => Err(StoreError::Corrupt(format!("session kind {other:?}"))),
        }
    }
}

/// What is known when a recording starts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NewSession {
    pub command: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub user: String,
    pub backend: String,
    pub kernel: String,
    pub nono_version: String,
    pub kind: SessionKind,
    /// JSON text of the learning context: the values behind the profile
    /// variables where the session ran ($HOME, $CWD, $TMPDIR, $XDG_*).
    pub context: Option<String>,
    /// The profile a `run` session enforced (its path, or built-in name).
    pub profile: Option<String>,
}

/// The profile a `run` session enforced, stored when it started (schema 6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EnforcedProfile {
    /// The resolved profile, flattened: loads on its own.
    pub json: String,
    /// SHA-256 of `json`, in hex.
    pub hash: String,
}

/// Loss and degradation counters of a session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LossCounters {
    pub ringbuf_drops: u64,
    pub path_failures: u64,
    pub path_truncations: u64,
    pub pending_full: u64,
    pub traced_full: u64,
    pub scratch_busy: u64,
    pub decode_errors: u64,
    pub unstored: u64,
}

impl LossCounters {
    /// Events that never reached the database (incomplete paths are not
    /// lost: their records are stored with `incomplete` set).
    #[must_use]
    pub fn lost(&self) -> u64 {
        self.ringbuf_drops + self.pending_full + self.traced_full + self.scratch_busy + self.decode_errors + self.unstored
    }
}

/// What is known when a recording ends.
#[derive(Clone, Debug)]
pub struct SessionEnd {
    pub state: SessionState,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// Events stored.
    pub events: u64,
    pub counters: LossCounters,
    pub note: Option<String>,
}

impl SessionEnd {
    /// A recording that failed before the command's end was seen.
    #[must_use]
    pub fn failed(note: &str) -> SessionEnd {
        SessionEnd {
            state: SessionState::Incomplete,
            exit_code: None,
            signal: None,
            events: 0,
            counters: LossCounters::default(),
            note: Some(note.to_owned()),
        }
    }
}

/// One stored session.
#[derive(Clone, Debug, Serialize)]
pub struct Session {
    pub id: i64,
    /// What was known at the start.
    #[serde(flatten)]
    pub info: NewSession,
    pub recorder_pid: u32,
    /// The recorder's start time (clock ticks since boot), which tells it
    /// from a later process with the same pid.
    #[serde(skip)]
    pub recorder_start: Option<i64>,
    pub started_ns: i64,
    pub ended_ns: Option<i64>,
    pub state: SessionState,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub events: u64,
    pub counters: LossCounters,
    pub profile_path: Option<String>,
    pub note: Option<String>,
}

impl Session {
    /// Events lost (see [`LossCounters::lost`]).
    #[must_use]
    pub fn lost(&self) -> u64 {
        self.counters.lost()
    }

    /// A session still marked running whose recorder is gone (killed, or
    /// its pid now belongs to another process). Only a writer's open marks
    /// it incomplete in the database ([`Store::reap_stale`]).
    #[must_use]
    pub fn recorder_gone(&self) -> bool {
        self.state == SessionState::Running && !recorder_alive(self.recorder_pid, self.recorder_start)
    }
}

const SESSION_COLUMNS: &str = "id, command, cwd, uid, user, backend, kernel, nono_version, recorder_pid, started_ns, \
     ended_ns, state, exit_code, signal, events, ringbuf_drops, path_failures, path_truncations, pending_full, \
     traced_full, scratch_busy, decode_errors, unstored, profile_path, note, kind, context, profile, recorder_start";

fn session_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Session, StoreError>> {
    let command: String = r.get(1)?;
    let state: String = r.get(11)?;
    let kind: String = r.get(25)?;
    let count = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
    let counters = LossCounters {
        ringbuf_drops: count(15)?,
        path_failures: count(16)?,
        path_truncations: count(17)?,
        pending_full: count(18)?,
        traced_full: count(19)?,
        scratch_busy: count(20)?,
        decode_errors: count(21)?,
        unstored: count(22)?,
    };
    let id: i64 = r.get(0)?;
    let session = (|| -> Result<Session, StoreError> {
        Ok(Session {
            id,
            info: NewSession {
                command: serde_json::from_str(&command)
                    .map_err(|e| StoreError::Corrupt(format!("session {id} command {command:?}: {e}")))?,
                cwd: r.get(2)?,
                uid: r.get(3)?,
                user: r.get(4)?,
                backend: r.get(5)?,
                kernel: r.get(6)?,
                nono_version: r.get(7)?,
                kind: SessionKind::parse(&kind)?,
                context: r.get(26)?,
                profile: r.get(27)?,
            },
            recorder_pid: r.get(8)?,
            recorder_start: r.get(28)?,
            started_ns: r.get(9)?,
            ended_ns: r.get(10)?,
            state: SessionState::parse(&state)?,
            exit_code: r.get(12)?,
            signal: r.get(13)?,
            events: count(14)?,
            counters,
            profile_path: r.get(23)?,
            note: r.get(24)?,
        })
    })();
    Ok(session)
}

/// Start time of a process in clock ticks since boot (field 22 of
/// `/proc/PID/stat`), which tells a live recorder from a reused pid.
fn process_start(pid: u32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may hold spaces and parentheses: fields restart after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the recorder that wrote a 'running' session is still alive.
fn recorder_alive(pid: u32, start: Option<i64>) -> bool {
    let Ok(raw) = i32::try_from(pid) else { return false };
    if raw <= 0 {
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Err(nix::errno::Errno::ESRCH) => false,
        // EPERM: alive but not ours to signal; check identity below.
        Ok(()) | Err(_) => match (start, process_start(pid)) {
            (Some(recorded), Some(now)) => recorded == now,
            // No start time recorded: fall back to the name.
            (None, _) => std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == "nono"),
            (Some(_), None) => false,
        },
    }
}

impl Store {
    /// Records the start of a recording by this process; returns its id.
    pub fn begin_session(&self, s: &NewSession) -> Result<i64, StoreError> {
        let command = serde_json::to_string(&s.command).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let pid = std::process::id();
        self.conn
            .execute(
                "INSERT INTO sessions (command, cwd, uid, user, backend, kernel, nono_version, recorder_pid, \
                 recorder_start, started_ns, state, kind, context, profile) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'running', ?11, ?12, ?13)",
                params![
                    command,
                    s.cwd,
                    s.uid,
                    s.user,
                    s.backend,
                    s.kernel,
                    s.nono_version,
                    pid,
                    process_start(pid),
                    now_ns(),
                    s.kind.as_str(),
                    s.context,
                    s.profile
                ],
            )
            .map_err(self.busy("starting a session"))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records the end of a recording.
    pub fn finish_session(&self, id: i64, end: &SessionEnd) -> Result<(), StoreError> {
        let c = &end.counters;
        let n = self
            .conn
            .execute(
                "UPDATE sessions SET ended_ns = ?2, state = ?3, exit_code = ?4, signal = ?5, events = ?6, \
                 ringbuf_drops = ?7, path_failures = ?8, path_truncations = ?9, pending_full = ?10, traced_full = ?11, \
                 scratch_busy = ?12, decode_errors = ?13, unstored = ?14, note = ?15 WHERE id = ?1",
                params![
                    id,
                    now_ns(),
                    end.state.as_str(),
                    end.exit_code,
                    end.signal,
                    end.events as i64,
                    c.ringbuf_drops as i64,
                    c.path_failures as i64,
                    c.path_truncations as i64,
                    c.pending_full as i64,
                    c.traced_full as i64,
                    c.scratch_busy as i64,
                    c.decode_errors as i64,
                    c.unstored as i64,
                    end.note,
                ],
            )
            .map_err(self.busy("finishing a session"))?;
        if n == 0 {
            return Err(StoreError::UnknownSession(id.to_string()));
        }
        // The hash chain's root binds the events to this end record.
        self.seal_chain(id)
    }

    /// Records where the session's learned profile was written.
    pub fn set_profile_path(&self, id: i64, path: &str) -> Result<(), StoreError> {
        let n = self
            .conn
            .execute("UPDATE sessions SET profile_path = ?2 WHERE id = ?1", params![id, path])
            .map_err(self.busy("recording the profile path"))?;
        if n == 0 {
            return Err(StoreError::UnknownSession(id.to_string()));
        }
        Ok(())
    }

    /// Stores the profile session `id` enforces (once, at its start).
    pub fn set_enforced_profile(&self, id: i64, p: &EnforcedProfile) -> Result<(), StoreError> {
        let n = self
            .conn
            .execute("UPDATE sessions SET profile_json = ?2, profile_hash = ?3 WHERE id = ?1", params![id, p.json, p.hash])
            .map_err(self.busy("recording the enforced profile"))?;
        if n == 0 {
            return Err(StoreError::UnknownSession(id.to_string()));
        }
        Ok(())
    }

    /// The profile session `id` enforced, if it stored one.
    pub fn enforced_profile(&self, id: i64) -> Result<Option<EnforcedProfile>, StoreError> {
        let row: Option<(Option<String>, Option<String>)> = self
            .conn
            .query_row("SELECT profile_json, profile_hash FROM sessions WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(StoreError::sql("reading the enforced profile"))?;
        match row {
            None => Err(StoreError::UnknownSession(id.to_string())),
            Some((Some(json), Some(hash))) => Ok(Some(EnforcedProfile { json, hash })),
            Some(_) => Ok(None),
        }
    }

    /// Marks 'running' sessions whose recorder is gone (killed, or its pid
    /// now belongs to another process) as incomplete with note "recorder
    /// died". Returns how many were marked.
    pub fn reap_stale(&self) -> Result<usize, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, recorder_pid, recorder_start FROM sessions WHERE state = 'running'")
            .map_err(StoreError::sql("listing running sessions"))?;
        let running: Vec<(i64, u32, Option<i64>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(Iterator::collect)
            .map_err(StoreError::sql("listing running sessions"))?;
        let mut reaped = 0;
        for (id, pid, start) in running {
            if recorder_alive(pid, start) {
                continue;
            }
            // Count what the dead writer left uncounted; the event count
            // is then what actually made it to the file.
            tally::settle(&self.conn, id).map_err(|e| match e {
                StoreError::Sql { source, .. } => {
                    busy_or(&self.path, source, StoreError::sql("settling a dead recorder's session"))
                }
                other => other,
            })?;
            reaped += self
                .conn
                .execute(
                    "UPDATE sessions SET state = 'incomplete', note = 'recorder died', \
                     events = (SELECT coalesce(sum(n), 0) FROM session_counts WHERE session_id = ?1), \
                     ended_ns = coalesce(ended_ns, (SELECT time_ns FROM events WHERE id = last_event)) \
                     WHERE id = ?1 AND state = 'running'",
                    params![id],
                )
                .map_err(self.busy("marking a dead recorder's session"))?;
        }
        // Their chains' roots (and any missed between finishing and sealing).
        self.seal_unsealed()?;
        Ok(reaped)
    }

    /// All sessions, oldest first.
    pub fn sessions(&self) -> Result<Vec<Session>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {SESSION_COLUMNS} FROM sessions ORDER BY id"))
            .map_err(StoreError::sql("listing sessions"))?;
        let rows = stmt.query_map([], session_from_row).map_err(StoreError::sql("listing sessions"))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r.map_err(StoreError::sql("listing sessions"))??);
        }
        Ok(out)
    }

    /// One session by id, or `last` for the newest.
    pub fn session(&self, which: &str) -> Result<Session, StoreError> {
        let id: i64 = if matches!(which, "last" | "latest") {
            self.conn
                .query_row("SELECT max(id) FROM sessions", [], |r| r.get::<_, Option<i64>>(0))
                .map_err(StoreError::sql("finding the last session"))?
                .ok_or_else(|| StoreError::UnknownSession(which.to_owned()))?
        } else {
            which.trim().parse().map_err(|_| StoreError::UnknownSession(which.to_owned()))?
        };
        self.session_by_id(id)
    }

    /// One session by id.
    pub fn session_by_id(&self, id: i64) -> Result<Session, StoreError> {
        self.conn
            .query_row(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1"), [id], session_from_row)
            .optional()
            .map_err(StoreError::sql("reading a session"))?
            .ok_or_else(|| StoreError::UnknownSession(id.to_string()))?
    }
}
