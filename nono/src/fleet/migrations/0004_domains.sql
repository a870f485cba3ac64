-- nono fleet store, schema 4 (PostgreSQL): domain rows (issue 23).
--
-- The local store's `domain_events` (its migration 0007): one row per
-- decision of nono's network proxy during `nono run --audit` (a tunnel or
-- request let through, refused, or failed upstream), and one per DNS
-- question seen while recording, so `audit query --domain`, `check`,
-- `report` and `export` read them from the fleet as from the host's file.
-- `session_id` is the fleet's session id; `local_id` the row's id in its
-- host's database. The key on both is what keeps a second push (or two
-- at once) from adding a row twice: the pusher inserts only rows past the
-- largest `local_id` the fleet has for the session, `ON CONFLICT DO
-- NOTHING`. Domain rows are few per session (one per connection), so a
-- b-tree key costs nothing that matters here, unlike on `nono.events`.
--
-- Not in the audit hash chain (schema 2): neither is the local table.
-- Insert-only like everything the pusher writes; the push role gets
-- `SELECT, INSERT` on it from the recipe's default privileges.

CREATE TABLE nono.domain_events (
    session_id  bigint   NOT NULL REFERENCES nono.sessions (id),
    local_id    bigint   NOT NULL,
    time_ns     bigint   NOT NULL,
    source      text     NOT NULL CHECK (source IN ('connect', 'http', 'credential', 'dns')),
    domain      text     NOT NULL,
    port        integer  NOT NULL CHECK (port BETWEEN 0 AND 65535),
    result      smallint NOT NULL CHECK (result IN (0, 1, 2)),
    reason      text,
    addr        text,
    credential  text,
    pid         bigint,
    pushed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, local_id)
);
-- `audit query --domain NAME` across the fleet.
CREATE INDEX domain_events_domain ON nono.domain_events (domain, session_id);
