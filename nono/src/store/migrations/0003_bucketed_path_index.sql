-- Schema 3: a path index that ingest can afford, and defaults for the
-- columns most events leave empty.
--
-- The schema 1 index on (path_id, session_id, op) took every new event to
-- a random place in an index as large as the table: each transaction
-- dirtied (and wrote to the WAL) a page per event once the index outgrew
-- the cache, and ingest fell to under 100k events/s at 10M events. The new
-- index leads with the event's bucket, `id >> 16` (65536 consecutive
-- events): a transaction only touches the newest bucket's small part of
-- the index. A path lookup seeks (bucket, path_id) in each bucket of the
-- session's id range.
--
-- The table is rebuilt (SQLite cannot add defaults to columns) with every
-- row copied; ids are kept.

DROP VIEW events_text;

CREATE TABLE events_v3 (
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
    result      INTEGER NOT NULL DEFAULT 0 CHECK (result BETWEEN 0 AND 2), -- ok, denied, error (not IN: that builds a table per row)
    errno       INTEGER NOT NULL DEFAULT 0,
    net_family  INTEGER,
    net_addr    TEXT,
    net_port    INTEGER,
    incomplete  INTEGER NOT NULL DEFAULT 0
) STRICT;

INSERT INTO events_v3 (id, session_id, time_ns, pid, tid, ppid, uid, comm_id, exe_id, op, path_id, path2_id,
                       access, arg, file_type, result, errno, net_family, net_addr, net_port, incomplete)
SELECT id, session_id, time_ns, pid, tid, ppid, uid, comm_id, exe_id, op, path_id, path2_id,
       access, arg, file_type, result, errno, net_family, net_addr, net_port, incomplete
FROM events ORDER BY id;

DROP TABLE events;
ALTER TABLE events_v3 RENAME TO events;

-- Queries must spell the bucket exactly `(id >> 16)` for SQLite to use it.
CREATE INDEX events_path ON events ((id >> 16), path_id, op) WHERE path_id IS NOT NULL;

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
