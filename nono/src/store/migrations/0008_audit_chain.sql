-- Schema 8: the audit hash chain (see store/chain.rs and README "Trust").
--
-- Each session's events are hash-chained as the writer stores them:
--   head    = SHA-256("nono audit chain v1 head\0" || the session's header)
--   state_i = SHA-256 of event i started from state_{i-1} instead of SHA-256's
--             initial value (store::chain::step), state_0 = head
--   root    = SHA-256("nono audit chain v1 root\0" || state_n || n || the session's end record)
-- with the header, events and end record in the canonical encoding of
-- store/chain.rs (values, not interned ids, so the fleet copy hashes the
-- same).
--
-- `events.chain`: the first 4 bytes of state_i as a signed 32-bit integer
-- (4 bytes on disk). It does not make the chain stronger (the states do);
-- it lets a verifier name the first event whose recomputed state differs.
-- NULL for events stored before schema 8.
--
-- `sessions.chain_head`, `chain_state`, `chain_count`: the head, the state
-- after the last stored event and how many events it covers; the writer
-- updates state and count in the same transaction as the events.
-- `chain_root`: set when the session ends (or when a later writer reaps a
-- session whose recorder died). All NULL for sessions recorded before
-- schema 8: they stay unchained (chaining them now would vouch for
-- whatever the file holds today).
--
-- `session_seals`: SSH signatures (sshsig, namespace "nono-audit") over a
-- short text naming a session and its root (`nono audit seal`).

ALTER TABLE events ADD COLUMN chain INTEGER;

ALTER TABLE sessions ADD COLUMN chain_head BLOB;
ALTER TABLE sessions ADD COLUMN chain_state BLOB;
ALTER TABLE sessions ADD COLUMN chain_count INTEGER;
ALTER TABLE sessions ADD COLUMN chain_root BLOB;

CREATE TABLE session_seals (
    id         INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions (id),
    sealed_ns  INTEGER NOT NULL,
    message    TEXT    NOT NULL,                -- the signed text, exactly
    signature  TEXT    NOT NULL,                -- armored SSHSIG ("-----BEGIN SSH SIGNATURE-----")
    UNIQUE (session_id, signature)
) STRICT;
