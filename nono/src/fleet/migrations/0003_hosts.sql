-- nono fleet store, schema 3 (PostgreSQL): hosts by id, dense session
-- ids, and the profile a `run` session enforced.
--
-- A host is its id (/etc/machine-id, or NONO_HOST_ID), never its name: two
-- machines called `vm` are two hosts, shown as `vm#<id prefix>`, and
-- `--host vm` refuses to pick one. Reads by host use this index.
CREATE INDEX sessions_host_id ON nono.sessions (host_id);

-- Session ids are dense: 1, 2, 3, ... in push order, so a gap means a
-- session was deleted. Schema 1 used an identity column, whose sequence
-- also advanced on every `INSERT ... ON CONFLICT DO NOTHING` of a session
-- the fleet already had (each push of every host burned one number per
-- local session: ids jumped from 12 to 37). The next id is taken under a
-- transaction-scoped advisory lock, so concurrent pushers take turns, and
-- a rolled-back insert leaves no gap. VOLATILE: the second statement takes
-- a fresh snapshot after the lock, so it sees the previous holder's row.
-- Pushing needs no new right (EXECUTE on functions is PUBLIC's).
CREATE FUNCTION nono.next_session_id() RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT pg_advisory_xact_lock(1852796784);
    SELECT coalesce(max(id), 0) + 1 FROM nono.sessions;
$$;
ALTER TABLE nono.sessions ALTER COLUMN id DROP IDENTITY;
ALTER TABLE nono.sessions ALTER COLUMN id SET DEFAULT nono.next_session_id();

-- The profile a `run --audit` session enforced, as its host stored it (the
-- local store's migration 0006): `audit show`, `check` and `report` read it
-- from the fleet as from the local file. Written before the session's
-- push_done row, so a visible session has it if its host had it.
CREATE TABLE nono.session_profiles (
    session_id   bigint PRIMARY KEY REFERENCES nono.sessions (id),
    profile_json text   NOT NULL,               -- the resolved profile, flattened
    profile_hash text   NOT NULL,               -- SHA-256 of profile_json, hex
    pushed_at    timestamptz NOT NULL DEFAULT now()
);
