-- Schema 7 (issue 23): domain names. One row per decision of nono's
-- network proxy during `nono run --audit` (a tunnel or request let
-- through, refused, or failed upstream), and one per DNS question seen
-- while recording. Kept apart from `events`: a domain row has no path,
-- no access bits and no process of its own (the proxy sees a loopback
-- connection, not a pid), and most sessions have none.
--
-- `source`: 'connect' (CONNECT tunnel), 'http' (plain HTTP through the
-- proxy), 'credential' (the credential endpoint), 'dns' (a question).
-- `domain`: the normalised name (or IP literal as the client wrote it);
-- '' when the client named none. `result`: 0 ok, 1 refused by the
-- proxy's policy (a sandbox denial), 2 error (could not be reached).
-- `reason`: why it was refused or failed. `addr`: the upstream address
-- connected to (`IP:PORT`), or an address a DNS answer led to.
-- `credential`: the credential injected. `pid`: the asking process,
-- when known (DNS).
--
-- Written after 0006 (another issue's columns); touches nothing else.

CREATE TABLE domain_events (
    id          INTEGER PRIMARY KEY,
    session_id  INTEGER NOT NULL,
    time_ns     INTEGER NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('connect', 'http', 'credential', 'dns')),
    domain      TEXT NOT NULL,
    port        INTEGER NOT NULL,
    result      INTEGER NOT NULL CHECK (result IN (0, 1, 2)),
    reason      TEXT,
    addr        TEXT,
    credential  TEXT,
    pid         INTEGER
) STRICT;

CREATE INDEX domain_events_session ON domain_events (session_id, domain);
CREATE INDEX domain_events_domain ON domain_events (domain, session_id);
