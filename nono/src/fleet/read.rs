//! Reading the fleet database back in the local store's types
//! ([`Session`], [`EventRow`], [`Summary`]), so every `nono audit` format
//! and `nono learn --from` work on it unchanged. Only sessions whose push
//! completed are visible; `--host` narrows to one host (name or id).

use postgres::Client;
use postgres::types::ToSql;

use super::host::{FleetHost, id_chars, label, resolve};
use super::{FleetError, FleetUrl};
use crate::event::{DenyBy, Event, NetAddr, Op};
use crate::store::{
    EventRow, LossCounters, NewSession, OutcomeTally, PathCount, PathGlob, ProcessRow, Query, ResultClass, Session, SessionKind,
    SessionState, Summary, access_from_bits, errno_name, outcome_of,
};

/// A fleet session: the local one's fields, under its fleet id, with the host.
#[derive(Clone, Debug)]
pub struct FleetSession {
    pub session: Session,
    pub hostname: String,
    pub host_id: String,
    pub uuid: uuid::Uuid,
}

/// An open fleet database, optionally narrowed to one host.
pub struct Fleet {
    pub(super) client: Client,
    /// The chosen host's id.
    pub(super) host: Option<String>,
    /// Characters of a host id that tell the fleet's hosts apart.
    id_chars: usize,
    /// The server reached, for messages.
    target: String,
}

const SESSION_COLUMNS: &str = "s.id, s.command, s.cwd, s.uid, s.\"user\", s.backend, s.kernel, s.nono_version, \
     s.recorder_pid, s.started_ns, s.ended_ns, s.state, s.exit_code, s.signal, s.events, s.ringbuf_drops, s.path_failures, \
     s.path_truncations, s.pending_full, s.traced_full, s.scratch_busy, s.decode_errors, s.unstored, s.profile_path, \
     s.note, s.kind, s.context, s.profile, s.hostname, s.host_id, s.uuid";

/// Sessions pushed completely.
const DONE: &str = "EXISTS (SELECT 1 FROM nono.push_done d WHERE d.session_id = s.id)";

/// Sessions visible to readers: pushed completely, on the chosen host (by id).
pub(super) const VISIBLE: &str = "EXISTS (SELECT 1 FROM nono.push_done d WHERE d.session_id = s.id) \
     AND ($1::text IS NULL OR s.host_id = $1)";

pub(super) const EVENT_SELECT: &str = "SELECT e.session_id, e.local_id, e.time_ns, e.pid, e.tid, e.ppid, e.uid, e.comm, e.exe, e.op, \
     e.path, e.path2, e.access, e.arg, e.file_type, e.result, e.errno, e.denied_by, e.net_family, e.net_addr, e.net_port, \
     e.sock_type, e.sock_proto, e.incomplete FROM nono.events e";

fn session_from_row(r: &postgres::Row) -> Result<FleetSession, FleetError> {
    let id: i64 = r.get(0);
    let command: String = r.get(1);
    let count = |i: usize| r.get::<_, i64>(i).max(0) as u64;
    let small = |i: usize| u32::try_from(r.get::<_, i64>(i)).map_err(|_| FleetError::Corrupt(format!("session {id} column {i}")));
    let state = match r.get::<_, &str>(11) {
        "running" => SessionState::Running,
        "complete" => SessionState::Complete,
        "incomplete" => SessionState::Incomplete,
        other => return Err(FleetError::Corrupt(format!("session {id} state {other:?}"))),
    };
    let kind = match r.get::<_, &str>(25) {
        "learn" => SessionKind::Learn,
        "run" => SessionKind::Run,
        other => return Err(FleetError::Corrupt(format!("session {id} kind {other:?}"))),
    };
    Ok(FleetSession {
        session: Session {
            id,
            info: NewSession {
                command: serde_json::from_str(&command)
                    .map_err(|e| FleetError::Corrupt(format!("session {id} command {command:?}: {e}")))?,
                cwd: r.get(2),
                uid: small(3)?,
                user: r.get(4),
                backend: r.get(5),
                kernel: r.get(6),
                nono_version: r.get(7),
                kind,
                context: r.get(26),
                profile: r.get(27),
            },
            recorder_pid: small(8)?,
            recorder_start: None,
            started_ns: r.get(9),
            ended_ns: r.get(10),
            state,
            exit_code: r.get(12),
            signal: r.get(13),
            events: count(14),
            counters: LossCounters {
                ringbuf_drops: count(15),
                path_failures: count(16),
                path_truncations: count(17),
                pending_full: count(18),
                traced_full: count(19),
                scratch_busy: count(20),
                decode_errors: count(21),
                unstored: count(22),
            },
            profile_path: r.get(23),
            note: r.get(24),
        },
        hostname: r.get(28),
        host_id: r.get(29),
        uuid: r.get(30),
    })
}

/// Decodes a row of [`EVENT_SELECT`].
pub(super) fn event_from_row(r: &postgres::Row) -> Result<EventRow, FleetError> {
    let session: i64 = r.get(0);
    let id: i64 = r.get(1);
    let bad = |what: &str| FleetError::Corrupt(format!("event {id} of session {session}: {what}"));
    let u32_at = |i: usize| u32::try_from(r.get::<_, i64>(i)).map_err(|_| bad("id out of range"));
    let u16_at = |i: usize| r.get::<_, Option<i32>>(i).map(|v| u16::try_from(v).map_err(|_| bad("socket field out of range")));
    let op_code: i16 = r.get(9);
    let op = u16::try_from(op_code).ok().and_then(Op::from_code).ok_or_else(|| bad("operation code"))?;
    let outcome = outcome_of(i64::from(r.get::<_, i16>(15)), r.get(16), r.get::<_, Option<i16>>(17).map(i64::from))?;
    let net = match u16_at(18).transpose()? {
        None => None,
        Some(family) => {
            let addr: Option<String> = r.get(19);
            Some(NetAddr {
                family,
                addr: addr.map(|a| a.parse().map_err(|_| bad("network address"))).transpose()?,
                port: u16_at(20).transpose()?.unwrap_or(0),
                sock_type: u16_at(21).transpose()?.unwrap_or(0),
                protocol: u16_at(22).transpose()?.unwrap_or(0),
            })
        }
    };
    Ok(EventRow {
        id,
        session,
        event: Event {
            time_ns: r.get(2),
            pid: u32_at(3)?,
            tid: u32_at(4)?,
            ppid: u32_at(5)?,
            uid: u32_at(6)?,
            comm: r.get(7),
            exe: r.get(8),
            op,
            path: r.get(10),
            path2: r.get(11),
            access: access_from_bits(i64::from(r.get::<_, i16>(12))),
            arg: r.get::<_, i64>(13) as u64,
            file_type: u32::try_from(r.get::<_, i64>(14)).map_err(|_| bad("file type"))?,
            outcome,
            net,
            incomplete: r.get(23),
        },
    })
}

fn result_code(r: ResultClass) -> i16 {
    match r {
        ResultClass::Ok => 0,
        ResultClass::Denied => 1,
        ResultClass::Error => 2,
    }
}

fn method_of(code: i16) -> Result<DenyBy, FleetError> {
    if code == 0 {
        return Ok(DenyBy::Unattributed);
    }
    u8::try_from(code).ok().and_then(DenyBy::from_code).ok_or_else(|| FleetError::Corrupt(format!("denial attribution {code}")))
}

fn op_of(code: i16) -> Result<Op, FleetError> {
    u16::try_from(code).ok().and_then(Op::from_code).ok_or_else(|| FleetError::Corrupt(format!("operation code {code}")))
}

/// `LIKE` pattern for "starts with `prefix`".
fn like_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl Fleet {
    /// Connects and checks the schema; `host` narrows every read to one
    /// host (its id, its label, a unique id prefix, or a name only one
    /// host carries).
    pub fn open(url: &FleetUrl, host: Option<String>) -> Result<Fleet, FleetError> {
        let super::Connected { mut client, target } = super::connect(url)?;
        super::conn::check_schema(&mut client)?;
        let mut fleet = Fleet { client, host: None, id_chars: super::MIN_ID_CHARS, target };
        let hosts = fleet.hosts()?;
        fleet.id_chars = id_chars(hosts.iter().map(|h| h.id.as_str()));
        if let Some(spec) = host {
            fleet.host = Some(resolve(&spec, &hosts)?);
        }
        Ok(fleet)
    }

    /// The server, database and role this fleet was read from.
    #[must_use]
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Every host with a completely pushed session, by id; each with the
    /// names it was pushed under, the newest last.
    pub fn hosts(&mut self) -> Result<Vec<FleetHost>, FleetError> {
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT s.host_id, s.hostname, count(*), max(s.id) AS newest FROM nono.sessions s WHERE {DONE} \
                     GROUP BY s.host_id, s.hostname ORDER BY s.host_id, newest"
                ),
                &[],
            )
            .map_err(FleetError::pg("listing the fleet's hosts"))?;
        let mut hosts: Vec<FleetHost> = Vec::new();
        for r in &rows {
            let (id, name, n): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
            match hosts.last_mut() {
                Some(h) if h.id == id => {
                    h.names.push(name);
                    h.sessions += n.max(0) as u64;
                }
                _ => hosts.push(FleetHost { id, names: vec![name], sessions: n.max(0) as u64 }),
            }
        }
        Ok(hosts)
    }

    /// How people see the host of `s`: `NAME#ID-PREFIX`, unique in this fleet.
    #[must_use]
    pub fn host_label(&self, s: &FleetSession) -> String {
        label(&s.hostname, &s.host_id, self.id_chars)
    }

    /// The profile fleet session `id` enforced, as its host stored it
    /// (`None` for a learn session, or one pushed before fleet schema 3).
    pub fn enforced_profile(&mut self, id: i64) -> Result<Option<crate::store::EnforcedProfile>, FleetError> {
        let row = self
            .client
            .query_opt("SELECT profile_json, profile_hash FROM nono.session_profiles WHERE session_id = $1", &[&id])
            .map_err(FleetError::pg("reading a fleet session's enforced profile"))?;
        Ok(row.map(|r| crate::store::EnforcedProfile { json: r.get(0), hash: r.get(1) }))
    }

    /// Completely pushed sessions, in fleet id order.
    pub fn sessions(&mut self) -> Result<Vec<FleetSession>, FleetError> {
        let rows = self
            .client
            .query(&format!("SELECT {SESSION_COLUMNS} FROM nono.sessions s WHERE {VISIBLE} ORDER BY s.id"), &[&self.host])
            .map_err(FleetError::pg("listing fleet sessions"))?;
        rows.iter().map(session_from_row).collect()
    }

    /// Sandbox denials per session (sessions without any are absent).
    pub fn denial_counts(&mut self) -> Result<std::collections::HashMap<i64, u64>, FleetError> {
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT e.session_id, count(*) FROM nono.events e JOIN nono.sessions s ON s.id = e.session_id \
                     WHERE {VISIBLE} AND e.result = 1 GROUP BY e.session_id"
                ),
                &[&self.host],
            )
            .map_err(FleetError::pg("counting fleet denials"))?;
        Ok(rows.iter().map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1) as u64)).collect())
    }

    /// One session by fleet id, or `last` for the newest.
    pub fn session(&mut self, which: &str) -> Result<FleetSession, FleetError> {
        let what = "reading a fleet session";
        let id: Option<i64> = if matches!(which, "last" | "latest") {
            None
        } else {
            Some(which.trim().parse().map_err(|_| FleetError::UnknownSession(which.to_owned()))?)
        };
        let row = self
            .client
            .query_opt(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM nono.sessions s WHERE {VISIBLE} AND ($2::bigint IS NULL OR s.id = $2) \
                     ORDER BY s.id DESC LIMIT 1"
                ),
                &[&self.host, &id],
            )
            .map_err(FleetError::pg(what))?
            .ok_or_else(|| FleetError::UnknownSession(which.to_owned()))?;
        session_from_row(&row)
    }

    /// Streams one session's events, in recording order, to `f`.
    pub fn events<F>(&mut self, session: i64, mut f: F) -> Result<u64, FleetError>
    where
        F: FnMut(Event) -> Result<(), FleetError>,
    {
        let what = "reading fleet events";
        let mut tx = self.client.transaction().map_err(FleetError::pg(what))?;
        // A portal: rows arrive in batches, never the whole session at once.
        let stmt =
            tx.prepare(&format!("{EVENT_SELECT} WHERE e.session_id = $1 ORDER BY e.local_id")).map_err(FleetError::pg(what))?;
        let portal = tx.bind(&stmt, &[&session]).map_err(FleetError::pg(what))?;
        let mut n = 0;
        loop {
            let rows = tx.query_portal(&portal, 10_000).map_err(FleetError::pg(what))?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                f(event_from_row(r)?.event)?;
                n += 1;
            }
        }
        tx.commit().map_err(FleetError::pg(what))?;
        Ok(n)
    }

    /// Events matching every filter of `q`, in session then recording order.
    pub fn query(&mut self, q: &Query) -> Result<Vec<EventRow>, FleetError> {
        let glob = q.path_glob.as_deref().map(PathGlob::new).transpose()?;
        let mut args: Vec<Box<dyn ToSql + Sync>> = vec![Box::new(self.host.clone())];
        let mut clauses = vec![format!("e.session_id IN (SELECT s.id FROM nono.sessions s WHERE {VISIBLE})")];
        let mut push = |args: &mut Vec<Box<dyn ToSql + Sync>>, v: Box<dyn ToSql + Sync>, clause: &dyn Fn(usize) -> String| {
            args.push(v);
            clauses.push(clause(args.len()));
        };
        if let Some(s) = q.session {
            push(&mut args, Box::new(s), &|n| format!("e.session_id = ${n}"));
        }
        if let Some(g) = &glob {
            push(&mut args, Box::new(like_prefix(g.prefix())), &|n| format!("e.path LIKE ${n}"));
        }
        if let Some(op) = q.op {
            push(&mut args, Box::new(op.code() as i16), &|n| format!("e.op = ${n}"));
        }
        if let Some(pid) = q.pid {
            push(&mut args, Box::new(i64::from(pid)), &|n| format!("e.pid = ${n}"));
        }
        if let Some(comm) = &q.comm {
            push(&mut args, Box::new(comm.clone()), &|n| format!("e.comm = ${n}"));
        }
        if let Some(r) = q.result {
            push(&mut args, Box::new(result_code(r)), &|n| format!("e.result = ${n}"));
        }
        if let Some(by) = q.denied_by {
            let unattributed = by == DenyBy::Unattributed;
            push(&mut args, Box::new(i16::from(by.code())), &|n| {
                if unattributed {
                    format!("e.result = 1 AND coalesce(e.denied_by, ${n}) = ${n}")
                } else {
                    format!("e.result = 1 AND e.denied_by = ${n}")
                }
            });
        }
        if let Some(t) = q.since_ns {
            push(&mut args, Box::new(t), &|n| format!("e.time_ns >= ${n}"));
        }
        if let Some(t) = q.until_ns {
            push(&mut args, Box::new(t), &|n| format!("e.time_ns < ${n}"));
        }
        let sql = format!("{EVENT_SELECT} WHERE {} ORDER BY e.session_id, e.local_id", clauses.join(" AND "));
        let what = "querying fleet events";
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect();
        let mut tx = self.client.transaction().map_err(FleetError::pg(what))?;
        let stmt = tx.prepare(&sql).map_err(FleetError::pg(what))?;
        let portal = tx.bind(&stmt, &params).map_err(FleetError::pg(what))?;
        let mut out = Vec::new();
        'rows: loop {
            let rows = tx.query_portal(&portal, 10_000).map_err(FleetError::pg(what))?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let row = event_from_row(r)?;
                if let Some(g) = &glob
                    && !row.event.path.as_deref().is_some_and(|p| g.is_match(p))
                {
                    continue;
                }
                out.push(row);
                if q.limit.is_some_and(|l| out.len() >= l) {
                    break 'rows;
                }
            }
        }
        tx.commit().map_err(FleetError::pg(what))?;
        Ok(out)
    }

    /// Counts, top `top` paths and errors, and the processes of a session,
    /// ordered as the local store orders them.
    pub fn summary(&mut self, session: i64, top: usize) -> Result<Summary, FleetError> {
        let what = "summarising a fleet session";
        let top = i64::try_from(top).unwrap_or(i64::MAX);
        let c = &mut self.client;
        let mut tally = OutcomeTally::default();
        for r in c
            .query(
                "SELECT op, result, coalesce(denied_by, 0::smallint), count(*) FROM nono.events WHERE session_id = $1 \
                 GROUP BY 1, 2, 3",
                &[&session],
            )
            .map_err(FleetError::pg(what))?
        {
            let op = op_of(r.get(0))?;
            let class = i64::from(r.get::<_, i16>(1));
            let method = if class == 1 { Some(method_of(r.get(2))?) } else { None };
            tally.add(op, class, method, r.get::<_, i64>(3) as u64);
        }
        tally.sort();
        let OutcomeTally { events, ok, denied, errors, ops, methods } = tally;

        let top_paths = c
            .query(
                "SELECT path, count(*) AS n FROM nono.events WHERE session_id = $1 AND path IS NOT NULL \
                 GROUP BY path ORDER BY n DESC, path COLLATE \"C\" LIMIT $2",
                &[&session, &top],
            )
            .map_err(FleetError::pg(what))?
            .iter()
            .map(|r| PathCount { path: r.get(0), count: r.get::<_, i64>(1) as u64 })
            .collect();

        let mut processes = Vec::new();
        for r in c
            .query(
                "SELECT pid, max(ppid), comm, exe, count(*) AS n FROM nono.events WHERE session_id = $1 \
                 GROUP BY pid, comm, exe ORDER BY pid, n DESC",
                &[&session],
            )
            .map_err(FleetError::pg(what))?
        {
            let id = |i: usize| u32::try_from(r.get::<_, i64>(i)).map_err(|_| FleetError::Corrupt("process id".into()));
            processes.push(ProcessRow {
                pid: id(0)?,
                ppid: id(1)?,
                comm: r.get(2),
                exe: r.get(3),
                events: r.get::<_, i64>(4) as u64,
            });
        }

        let mut top_errors = Vec::new();
        for r in c
            .query(
                // The top of each class apart, as the local store does.
                "SELECT op, path, result, errno, denied_by, n FROM (\
                 SELECT op, path, result, errno, coalesce(denied_by, 0::smallint) AS denied_by, count(*) AS n, \
                 row_number() OVER (PARTITION BY result ORDER BY count(*) DESC, path COLLATE \"C\" NULLS FIRST) AS rk FROM nono.events \
                 WHERE session_id = $1 AND result <> 0 GROUP BY op, path, result, errno, coalesce(denied_by, 0::smallint)) t \
                 WHERE rk <= $2 ORDER BY n DESC, path COLLATE \"C\" NULLS FIRST",
                &[&session, &top],
            )
            .map_err(FleetError::pg(what))?
        {
            let is_denied = r.get::<_, i16>(2) == 1;
            let errno: i32 = r.get(3);
            top_errors.push(crate::store::ErrorCount {
                op: op_of(r.get(0))?,
                path: r.get(1),
                result: if is_denied { ResultClass::Denied } else { ResultClass::Error },
                denied_by: if is_denied { Some(method_of(r.get(4))?) } else { None },
                errno,
                errno_name: errno_name(errno),
                count: r.get::<_, i64>(5) as u64,
            });
        }
        Ok(Summary { session, events, ok, denied, errors, denied_by: methods, ops, top_paths, processes, top_errors })
    }
}
