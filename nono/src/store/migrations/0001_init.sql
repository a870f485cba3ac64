-- nono audit store, schema 1.
--
-- Repeated text (comm, exe and paths) is interned in `strings`: an event row
-- is then a handful of integers, which keeps ingest fast and the file small,
-- and lets a path glob be matched once per distinct path instead of once per
-- event. Never renumber or reuse a string id.

CREATE TABLE sessions (
    id               INTEGER PRIMARY KEY,
    command          TEXT    NOT NULL,          -- JSON array of argv strings
    cwd              TEXT    NOT NULL,
    uid              INTEGER NOT NULL,
    user             TEXT    NOT NULL,
    backend          TEXT    NOT NULL,
    kernel           TEXT    NOT NULL,
    nono_version     TEXT    NOT NULL,
    recorder_pid     INTEGER NOT NULL,
    recorder_start   INTEGER,                   -- /proc/PID/stat start time, clock ticks
    started_ns       INTEGER NOT NULL,
    ended_ns         INTEGER,
    state            TEXT    NOT NULL DEFAULT 'running'
                     CHECK (state IN ('running', 'complete', 'incomplete')),
    exit_code        INTEGER,
    signal           INTEGER,
    events           INTEGER NOT NULL DEFAULT 0,
    ringbuf_drops    INTEGER NOT NULL DEFAULT 0,
    path_failures    INTEGER NOT NULL DEFAULT 0,
    path_truncations INTEGER NOT NULL DEFAULT 0,
    pending_full     INTEGER NOT NULL DEFAULT 0,
    traced_full      INTEGER NOT NULL DEFAULT 0,
    scratch_busy     INTEGER NOT NULL DEFAULT 0,
    decode_errors    INTEGER NOT NULL DEFAULT 0,
    unstored         INTEGER NOT NULL DEFAULT 0,
    profile_path     TEXT,
    note             TEXT
) STRICT;

CREATE TABLE strings (
    id    INTEGER PRIMARY KEY,
    value TEXT NOT NULL UNIQUE                  -- the unique index serves glob prefix ranges
) STRICT;

CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    session_id  INTEGER NOT NULL,               -- sessions.id (checked by the writer, no FK: ingest speed)
    time_ns     INTEGER NOT NULL,
    pid         INTEGER NOT NULL,
    tid         INTEGER NOT NULL,
    ppid        INTEGER NOT NULL,
    uid         INTEGER NOT NULL,
    comm_id     INTEGER NOT NULL,               -- strings.id
    exe_id      INTEGER,                        -- strings.id
    op          INTEGER NOT NULL,               -- crate::event::Op code
    path_id     INTEGER,                        -- strings.id
    path2_id    INTEGER,                        -- strings.id
    access      INTEGER NOT NULL,               -- bits: r=1 w=2 x=4 c=8 t=16 d=32
    arg         INTEGER NOT NULL,               -- u64 bit pattern
    file_type   INTEGER NOT NULL,
    result      INTEGER NOT NULL CHECK (result IN (0, 1, 2)), -- ok, denied, error
    errno       INTEGER NOT NULL,
    net_family  INTEGER,
    net_addr    TEXT,
    net_port    INTEGER,
    incomplete  INTEGER NOT NULL
) STRICT;

-- Two indexes only (each one costs ingest time):
-- a session's events by operation, and a path's events by session.
CREATE INDEX events_session_op ON events (session_id, op);
CREATE INDEX events_path ON events (path_id, session_id, op) WHERE path_id IS NOT NULL;

-- For people using the sqlite3 shell.
CREATE VIEW events_text AS
SELECT e.id, e.session_id, e.time_ns, e.pid, e.tid, e.ppid, e.uid,
       c.value AS comm, x.value AS exe, e.op, p.value AS path, q.value AS path2,
       e.access, e.arg, e.file_type,
       CASE e.result WHEN 0 THEN 'ok' WHEN 1 THEN 'denied' ELSE 'error' END AS result,
       e.errno, e.net_family, e.net_addr, e.net_port, e.incomplete
FROM events e
JOIN strings c ON c.id = e.comm_id
LEFT JOIN strings x ON x.id = e.exe_id
LEFT JOIN strings p ON p.id = e.path_id
LEFT JOIN strings q ON q.id = e.path2_id;
