-- nono fleet store, schema 2 (PostgreSQL): the audit hash chain.
--
-- Pushed as the host recorded it (see the local store's migration 0008 and
-- store/chain.rs): each event's 4-byte link, each session's head, final
-- state, event count and root, and the seals (SSH signatures over a
-- session's root) made on the host. `nono audit verify --db postgres://...`
-- recomputes every link and the root from the rows here, so an edit on the
-- server is found as it would be in the host's file, and a seal made on
-- the host shows that what the server holds is what the host recorded.
-- NULL for sessions pushed before schema 2 (or recorded before the local
-- schema 8): they are not chained.

ALTER TABLE nono.events ADD COLUMN chain integer;

ALTER TABLE nono.sessions
    ADD COLUMN chain_head  bytea,
    ADD COLUMN chain_state bytea,
    ADD COLUMN chain_count bigint,
    ADD COLUMN chain_root  bytea;

-- Insert-only like everything the pusher writes; a seal made after its
-- session was pushed is added by the next push.
CREATE TABLE nono.session_seals (
    session_id bigint NOT NULL REFERENCES nono.sessions (id),
    sealed_ns  bigint NOT NULL,
    message    text   NOT NULL,                 -- the signed text, exactly
    signature  text   NOT NULL,                 -- armored SSHSIG, namespace "nono-audit"
    pushed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, signature)
);
