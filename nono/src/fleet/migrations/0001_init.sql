-- nono fleet store, schema 1 (PostgreSQL).
--
-- Sessions pushed from many hosts' local audit databases. A session is
-- known by `uuid`, derived from the host id, its local id and its start
-- time, so pushing it again is a no-op. `id` is the fleet's own number for
-- it (what `nono audit show ID --db postgres://...` takes).
--
-- Events are denormalised (text paths, not interned ids): COPY then needs
-- no lookups, and SQL against the table reads as it looks.
--
-- Progress: every committed slice of a session's events adds a
-- `push_chunks` row in the same transaction as the slice, holding the last
-- local event id it copied; a resumed push starts after the largest. A
-- `push_done` row marks a session complete: readers show only those.
-- The pushing role only ever INSERTs and SELECTs: no UPDATE, no DELETE.

CREATE TABLE nono.sessions (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid             uuid    NOT NULL UNIQUE,
    host_id          text    NOT NULL,
    hostname         text    NOT NULL,
    local_id         bigint  NOT NULL,
    command          text    NOT NULL,          -- JSON array of argv strings
    cwd              text    NOT NULL,
    uid              bigint  NOT NULL,
    "user"           text    NOT NULL,
    backend          text    NOT NULL,
    kernel           text    NOT NULL,
    nono_version     text    NOT NULL,
    kind             text    NOT NULL,
    context          text,
    profile          text,
    recorder_pid     bigint  NOT NULL,
    started_ns       bigint  NOT NULL,
    ended_ns         bigint,
    state            text    NOT NULL,
    exit_code        integer,
    signal           integer,
    events           bigint  NOT NULL,
    ringbuf_drops    bigint  NOT NULL,
    path_failures    bigint  NOT NULL,
    path_truncations bigint  NOT NULL,
    pending_full     bigint  NOT NULL,
    traced_full      bigint  NOT NULL,
    scratch_busy     bigint  NOT NULL,
    decode_errors    bigint  NOT NULL,
    unstored         bigint  NOT NULL,
    profile_path     text,
    note             text,
    pushed_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_host ON nono.sessions (hostname);

CREATE TABLE nono.events (
    session_id  bigint   NOT NULL,              -- sessions.id (no FK: COPY speed; the pusher checks)
    local_id    bigint   NOT NULL,              -- the event's id in its host's database
    time_ns     bigint   NOT NULL,
    pid         bigint   NOT NULL,
    tid         bigint   NOT NULL,
    ppid        bigint   NOT NULL,
    uid         bigint   NOT NULL,
    comm        text     NOT NULL,
    exe         text,
    op          smallint NOT NULL,              -- crate::event::Op code
    path        text,
    path2       text,
    access      smallint NOT NULL,              -- bits: r=1 w=2 x=4 c=8 t=16 d=32
    arg         bigint   NOT NULL,              -- u64 bit pattern
    file_type   bigint   NOT NULL,
    result      smallint NOT NULL,              -- 0 ok, 1 denied, 2 error
    errno       integer  NOT NULL,
    denied_by   smallint,                       -- crate::event::DenyBy code, for denials
    net_family  integer,
    net_addr    text,
    net_port    integer,
    sock_type   integer,
    sock_proto  integer,
    incomplete  boolean  NOT NULL
);
-- A session's events arrive together and in order, so a BRIN index finds
-- them at almost no cost to COPY; a b-tree primary key on (session_id,
-- local_id) cost a sixth of the push rate. Duplicates are excluded by the
-- pusher instead: a slice and its high-water mark commit together, under
-- a per-session advisory lock, and push_chunks' key refuses a second
-- commit of the same slice.
CREATE INDEX events_session ON nono.events USING brin (session_id, local_id) WITH (pages_per_range = 32);

CREATE TABLE nono.push_chunks (
    session_id bigint NOT NULL REFERENCES nono.sessions (id),
    through    bigint NOT NULL,                 -- last local event id of the slice
    events     bigint NOT NULL,
    pushed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, through)
);

CREATE TABLE nono.push_done (
    session_id bigint PRIMARY KEY REFERENCES nono.sessions (id),
    events     bigint NOT NULL,                 -- events in nono.events for the session
    pushed_at  timestamptz NOT NULL DEFAULT now()
);
