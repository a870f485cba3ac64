-- Schema 5: per-session aggregates and path postings, both written by the
-- writer as it goes, in place of the bucketed path index.
--
-- Summaries. `audit summary` grouped every event of a session: 12-20 s at
-- 10M events. The writer now counts as it stores (see store/tally.rs) and
-- adds its counts here in the same transaction as the events; a summary
-- reads these few rows, plus whatever the counts do not cover yet.
--
-- Keys use 0 for "none" (no path, no exe, not attributed): SQLite treats
-- NULLs in a key as distinct, which would defeat the upserts.
--
-- Path lookups. The schema 3 index ((id >> 16), path_id, op) cost a seek
-- per matching path per 65536 events (170k seeks, 165 ms, for a glob of
-- 1111 paths on 10M events), and 40% of ingest time to maintain. Coarser
-- buckets cut the seeks but make every commit rewrite the bucket's whole
-- index region. Instead the writer keeps, in memory, each path's event
-- ids for a chunk of about four million events and appends them once, sorted,
-- as one `path_postings` row per (chunk, path): `events` is a list of
-- (id delta, op) pairs as unsigned LEB128 varints, the first delta from
-- the chunk's `first_event`. A glob seeks once per matching path per
-- chunk.
--
-- How far they reach: every event of a session up to
-- `sessions.covered_through` is in a chunk and in `session_counts`; every
-- one up to `sessions.detailed_through` (never past `covered_through`) is
-- also in `session_paths`, `session_procs` and `session_errors`, which the
-- writer adds less often (at the end of a recording or when large: each
-- costs a row per distinct key). None after. Events after a mark (a
-- session still being recorded, or one whose recorder died) are grouped or
-- scanned at read time; a writer opening the database settles a dead
-- recorder's session for good.

CREATE TABLE session_counts (
    session_id INTEGER NOT NULL,
    op         INTEGER NOT NULL,
    result     INTEGER NOT NULL,
    denied_by  INTEGER NOT NULL,                -- 0: not a denial, or not attributed
    n          INTEGER NOT NULL,
    PRIMARY KEY (session_id, op, result, denied_by)
) STRICT, WITHOUT ROWID;

CREATE TABLE session_paths (
    session_id INTEGER NOT NULL,
    path_id    INTEGER NOT NULL,                -- strings.id of the event's first path
    n          INTEGER NOT NULL,
    PRIMARY KEY (session_id, path_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE session_procs (
    session_id INTEGER NOT NULL,
    pid        INTEGER NOT NULL,
    comm_id    INTEGER NOT NULL,
    exe_id     INTEGER NOT NULL,                -- 0: none
    ppid       INTEGER NOT NULL,                -- the largest seen
    n          INTEGER NOT NULL,
    PRIMARY KEY (session_id, pid, comm_id, exe_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE session_errors (
    session_id INTEGER NOT NULL,
    op         INTEGER NOT NULL,
    path_id    INTEGER NOT NULL,                -- 0: none
    result     INTEGER NOT NULL,                -- 1 denied, 2 error
    errno      INTEGER NOT NULL,
    denied_by  INTEGER NOT NULL,                -- 0: not a denial, or not attributed
    n          INTEGER NOT NULL,
    PRIMARY KEY (session_id, op, path_id, result, errno, denied_by)
) STRICT, WITHOUT ROWID;

CREATE TABLE path_chunks (
    id          INTEGER PRIMARY KEY,
    session_id  INTEGER NOT NULL,
    first_event INTEGER NOT NULL,
    last_event  INTEGER NOT NULL
) STRICT;
CREATE INDEX path_chunks_session ON path_chunks (session_id);

CREATE TABLE path_postings (
    chunk_id INTEGER NOT NULL,
    path_id  INTEGER NOT NULL,
    events   BLOB    NOT NULL,
    PRIMARY KEY (chunk_id, path_id)
) STRICT, WITHOUT ROWID;

ALTER TABLE sessions ADD COLUMN covered_through INTEGER;
ALTER TABLE sessions ADD COLUMN detailed_through INTEGER;

DROP INDEX events_path;

-- The migration's hook then counts and indexes every existing session once
-- (store::tally::settle), inside this migration's transaction.
