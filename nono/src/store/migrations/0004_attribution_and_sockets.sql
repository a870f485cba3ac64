-- Schema 4: who refused an access, what kind of socket an event used, and
-- what a session was.
--
-- `denied_by` (events): for result = 1 (denied), how the denial was
-- attributed to the sandbox (crate::event::DenyBy: 1 landlock-audit,
-- 2 computed, 3 seccomp, 4 broker). NULL on a denied row means the row
-- predates attribution (schema < 4 stored every EACCES/EPERM as denied);
-- readers report it as `unattributed`. No rewrite of old rows: a full-table
-- UPDATE would cost seconds on large databases for no gain.
--
-- `sock_type`, `sock_proto` (events): SOCK_* and IPPROTO_* of the socket
-- of a network event, so a UDP connect is never mistaken for a TCP one.
--
-- `kind` (sessions): 'learn' (recorded to learn a profile) or 'run'
-- (`nono run --audit`: recorded under a sandbox). `context` (sessions):
-- JSON of the values behind the profile variables where the session ran
-- ($HOME, $CWD, $TMPDIR, $XDG_*), so rules can be derived from it later
-- (`learn --from`, `profile amend`) exactly as at the time. `profile`
-- (sessions): the profile a `run` session enforced.

ALTER TABLE events ADD COLUMN denied_by INTEGER;
ALTER TABLE events ADD COLUMN sock_type INTEGER;
ALTER TABLE events ADD COLUMN sock_proto INTEGER;

ALTER TABLE sessions ADD COLUMN kind TEXT NOT NULL DEFAULT 'learn';
ALTER TABLE sessions ADD COLUMN context TEXT;
ALTER TABLE sessions ADD COLUMN profile TEXT;

DROP VIEW events_text;
CREATE VIEW events_text AS
SELECT e.id, e.session_id, e.time_ns, e.pid, e.tid, e.ppid, e.uid,
       c.value AS comm, x.value AS exe, e.op, p.value AS path, q.value AS path2,
       e.access, e.arg, e.file_type,
       CASE e.result WHEN 0 THEN 'ok' WHEN 1 THEN 'denied' ELSE 'error' END AS result,
       CASE WHEN e.result <> 1 THEN NULL
            WHEN e.denied_by = 1 THEN 'landlock-audit' WHEN e.denied_by = 2 THEN 'computed'
            WHEN e.denied_by = 3 THEN 'seccomp' WHEN e.denied_by = 4 THEN 'broker'
            ELSE 'unattributed' END AS denied_by,
       e.errno, e.net_family, e.net_addr, e.net_port, e.sock_type, e.sock_proto, e.incomplete
FROM events e
JOIN strings c ON c.id = e.comm_id
LEFT JOIN strings x ON x.id = e.exe_id
LEFT JOIN strings p ON p.id = e.path_id
LEFT JOIN strings q ON q.id = e.path2_id;
