-- Schema 2: sessions remember the bounds of their event ids.
--
-- The writer keeps first_event/last_event in the same transaction as the
-- events. A session's events are (nearly) one contiguous rowid range, so
-- the range replaces the per-session index: cheaper ingest, and a session
-- scan comes out in recording order with no sort (a LIMIT stops early).
-- Events of sessions written concurrently interleave inside each other's
-- ranges; every query also checks session_id.

ALTER TABLE sessions ADD COLUMN first_event INTEGER;
ALTER TABLE sessions ADD COLUMN last_event INTEGER;

UPDATE sessions SET
    first_event = (SELECT min(id) FROM events WHERE events.session_id = sessions.id),
    last_event  = (SELECT max(id) FROM events WHERE events.session_id = sessions.id);

DROP INDEX events_session_op;
