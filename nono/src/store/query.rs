//! Read side: filtered event queries and per-session summaries.
//!
//! A path glob is matched against the interned `strings` (one row per
//! distinct path), not against every event: the glob's literal prefix
//! becomes a range on the unique index of `strings`, the survivors are
//! matched with `globset`, and their ids select events through the
//! `events_path` index, one seek per (bucket, path id) in the id range
//! searched (a bucket is 65536 consecutive event ids).

use std::fmt::Write as _;
use std::str::FromStr;

use rusqlite::types::Value;
use serde::Serialize;

use super::{EVENT_SELECT, Store, StoreError, StringCache, event_from_row};
use crate::event::{Event, Op};

/// Events per bucket of the path index: `events_path` leads with
/// `(id >> BUCKET_SHIFT)`, spelled exactly so (schema 3).
const BUCKET_SHIFT: u32 = 16;
/// A seek of the path index costs about as much as scanning this many rows.
const SEEKS_PER_SCANNED_ROW: i64 = 8;
/// Seeking is always preferred below this many (bucket, path) pairs.
const MIN_SEEKS: i64 = 4096;

/// `1,2,3`: integers for an SQL `IN (...)` list.
fn int_list(items: impl IntoIterator<Item = i64>) -> String {
    let mut out = String::new();
    for (i, x) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{x}");
    }
    out
}

/// How a path glob's events are found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(test), expect(dead_code, reason = "tests force each way to compare them"))]
pub(super) enum PathLookup {
    /// Whichever reads less: seeks or a scan of the id range.
    Cheapest,
    /// One seek of `events_path` per (bucket, path id).
    Seek,
    /// A scan of the id range, checking each row's path id.
    Scan,
}

/// The `--result` filter: the class of an event's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultClass {
    Ok,
    Denied,
    Error,
}

impl ResultClass {
    fn code(self) -> i64 {
        match self {
            ResultClass::Ok => 0,
            ResultClass::Denied => 1,
            ResultClass::Error => 2,
        }
    }
}

/// Error for a result class other than ok, denied or error.
#[derive(Debug, thiserror::Error)]
#[error("unknown result class {0:?}; expected ok, denied or error")]
pub struct UnknownResultClass(pub String);

impl FromStr for ResultClass {
    type Err = UnknownResultClass;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ok" => Ok(ResultClass::Ok),
            "denied" => Ok(ResultClass::Denied),
            "error" => Ok(ResultClass::Error),
            other => Err(UnknownResultClass(other.to_owned())),
        }
    }
}

/// Event filters; `None` means "any". All given filters must hold.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub session: Option<i64>,
    /// Shell-like glob on the event's (first) path: `*` and `?` stay within
    /// one component, `**` crosses components, `[...]` is a class.
    pub path_glob: Option<String>,
    pub op: Option<Op>,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub result: Option<ResultClass>,
    /// Inclusive lower bound, nanoseconds since the Unix epoch.
    pub since_ns: Option<i64>,
    /// Exclusive upper bound, nanoseconds since the Unix epoch.
    pub until_ns: Option<i64>,
    pub limit: Option<usize>,
}

/// One matching event with where it is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRow {
    pub id: i64,
    pub session: i64,
    pub event: Event,
}

/// How often one path was used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PathCount {
    pub path: String,
    pub count: u64,
}

/// How often one operation occurred.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OpCount {
    pub op: Op,
    pub count: u64,
}

/// One process seen in a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProcessRow {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    pub exe: Option<String>,
    pub events: u64,
}

/// A failed access pattern: how often `op` on `path` failed with `errno`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErrorCount {
    pub op: Op,
    pub path: Option<String>,
    pub result: ResultClass,
    pub errno: i32,
    pub errno_name: String,
    pub count: u64,
}

impl ErrorCount {
    /// `denied` or `error`.
    #[must_use]
    pub fn result_text(&self) -> &'static str {
        match self.result {
            ResultClass::Ok => "ok",
            ResultClass::Denied => "denied",
            ResultClass::Error => "error",
        }
    }
}

/// Overview of one session.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub session: i64,
    pub events: u64,
    pub ok: u64,
    pub denied: u64,
    pub errors: u64,
    pub ops: Vec<OpCount>,
    pub top_paths: Vec<PathCount>,
    pub processes: Vec<ProcessRow>,
    pub top_errors: Vec<ErrorCount>,
}

/// The symbolic name of an errno (`ENOENT`), or its number.
#[must_use]
pub fn errno_name(errno: i32) -> String {
    let e = nix::errno::Errno::from_raw(errno);
    if e == nix::errno::Errno::UnknownErrno { errno.to_string() } else { format!("{e:?}") }
}

/// A compiled path glob and the literal prefix every match starts with.
struct PathGlob {
    matcher: globset::GlobMatcher,
    prefix: String,
    literal: bool,
}

impl PathGlob {
    fn new(glob: &str) -> Result<PathGlob, StoreError> {
        if glob.is_empty() {
            return Err(StoreError::BadGlob { glob: glob.to_owned(), reason: "empty pattern".into() });
        }
        let matcher = globset::GlobBuilder::new(glob)
            .literal_separator(true)
            .backslash_escape(true)
            .empty_alternates(true)
            .build()
            .map_err(|e| StoreError::BadGlob { glob: glob.to_owned(), reason: e.kind().to_string() })?
            .compile_matcher();
        let meta = glob.find(['*', '?', '[', '{', '\\']);
        let prefix = glob[..meta.unwrap_or(glob.len())].to_owned();
        Ok(PathGlob { matcher, prefix, literal: meta.is_none() })
    }
}

impl Store {
    /// The ids of the distinct paths that match `glob`.
    fn matching_paths(&self, glob: &PathGlob) -> Result<Vec<i64>, StoreError> {
        let conn = self.conn();
        if glob.literal {
            let id: Option<i64> = conn
                .query_row("SELECT id FROM strings WHERE value = ?1", [&glob.prefix], |r| r.get(0))
                .map(Some)
                .or_else(|e| if matches!(e, rusqlite::Error::QueryReturnedNoRows) { Ok(None) } else { Err(e) })
                .map_err(StoreError::sql("matching paths"))?;
            return Ok(id.into_iter().collect());
        }
        // Every match starts with the literal prefix: a range on the unique
        // index. U+10FFFF is the largest character, so `prefix || U+10FFFF`
        // bounds every string that starts with `prefix` (short of one that
        // continues with U+10FFFF itself, which no real path does).
        let mut stmt = conn
            .prepare_cached("SELECT id, value FROM strings WHERE value >= ?1 AND value < ?1 || char(1114111)")
            .map_err(StoreError::sql("matching paths"))?;
        let mut rows = stmt.query([&glob.prefix]).map_err(StoreError::sql("matching paths"))?;
        let mut ids = Vec::new();
        while let Some(r) = rows.next().map_err(StoreError::sql("matching paths"))? {
            let value: String = r.get(1)?;
            if glob.matcher.is_match(&value) {
                ids.push(r.get(0)?);
            }
        }
        Ok(ids)
    }

    /// The smallest and largest event id of `session`, or of the whole
    /// database; `None` when there are no events.
    fn id_range(&self, session: Option<i64>) -> Result<Option<(i64, i64)>, StoreError> {
        let pair = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?));
        let (first, last): (Option<i64>, Option<i64>) = match session {
            Some(s) => self.conn().query_row("SELECT first_event, last_event FROM sessions WHERE id = ?1", [s], pair),
            // Two subqueries: each is a single step down the rowid b-tree.
            None => self.conn().query_row("SELECT (SELECT min(id) FROM events), (SELECT max(id) FROM events)", [], pair),
        }
        .map_err(StoreError::sql("finding the events' id range"))?;
        Ok(first.zip(last))
    }

    /// Events matching every filter of `q`, in recording order.
    pub fn query(&self, q: &Query) -> Result<Vec<EventRow>, StoreError> {
        let Some((sql, args)) = self.query_sql(q, PathLookup::Cheapest)? else { return Ok(Vec::new()) };
        self.run_query(&sql, args)
    }

    /// Runs SQL from [`Self::query_sql`].
    pub(super) fn run_query(&self, sql: &str, args: Vec<Value>) -> Result<Vec<EventRow>, StoreError> {
        let mut stmt = self.conn().prepare(sql).map_err(StoreError::sql("querying events"))?;
        let mut strings = StringCache::new(self.conn())?;
        let mut rows = stmt.query(rusqlite::params_from_iter(args)).map_err(StoreError::sql("querying events"))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(StoreError::sql("querying events"))? {
            out.push(EventRow { id: r.get(0)?, session: r.get(1)?, event: event_from_row(r, 2, &mut strings)? });
        }
        Ok(out)
    }

    /// The SQL and arguments of `q`; `None` when nothing can match.
    pub(super) fn query_sql(&self, q: &Query, lookup: PathLookup) -> Result<Option<(String, Vec<Value>)>, StoreError> {
        let mut sql = String::from(EVENT_SELECT);
        let mut args: Vec<Value> = Vec::new();
        let mut clauses: Vec<String> = Vec::new();
        if let Some(session) = q.session {
            self.session_by_id(session)?;
            args.push(Value::Integer(session));
            let n = args.len();
            // With a path glob the path index is the way in (`+` keeps the
            // planner off the rowid range); without one, the session's rowid
            // range is, and it comes out in order, so a LIMIT stops early.
            let plus = if q.path_glob.is_some() { "+" } else { "" };
            clauses.push(format!(
                "e.session_id = ?{n} AND {plus}e.id BETWEEN (SELECT first_event FROM sessions WHERE id = ?{n}) \
                 AND (SELECT last_event FROM sessions WHERE id = ?{n})"
            ));
        }
        if let Some(glob) = &q.path_glob {
            let glob = PathGlob::new(glob)?;
            let ids = self.matching_paths(&glob)?;
            if ids.is_empty() {
                return Ok(None);
            }
            let Some(range) = self.id_range(q.session)? else { return Ok(None) };
            // The ids and buckets are integers we just read: inlining them
            // is safe, and lets SQLite seek the path index once per
            // (bucket, path) pair. When there are more pairs than a scan of
            // the range would read rows, scan instead.
            let path_ids = int_list(ids.iter().copied());
            let (first_bucket, last_bucket) = (range.0 >> BUCKET_SHIFT, range.1 >> BUCKET_SHIFT);
            let pairs = (last_bucket - first_bucket + 1).saturating_mul(ids.len() as i64);
            let rows = range.1 - range.0 + 1;
            let seek = match lookup {
                PathLookup::Cheapest => pairs <= (rows / SEEKS_PER_SCANNED_ROW).max(MIN_SEEKS),
                PathLookup::Seek => true,
                PathLookup::Scan => false,
            };
            if seek {
                let buckets = int_list(first_bucket..=last_bucket);
                clauses.push(format!("(e.id >> {BUCKET_SHIFT}) IN ({buckets}) AND e.path_id IN ({path_ids})"));
            } else {
                clauses.push(format!("e.id BETWEEN {} AND {} AND +e.path_id IN ({path_ids})", range.0, range.1));
            }
        }
        if let Some(op) = q.op {
            args.push(Value::Integer(i64::from(op.code())));
            clauses.push(format!("e.op = ?{}", args.len()));
        }
        if let Some(pid) = q.pid {
            args.push(Value::Integer(i64::from(pid)));
            clauses.push(format!("e.pid = ?{}", args.len()));
        }
        if let Some(comm) = &q.comm {
            args.push(Value::Text(comm.clone()));
            clauses.push(format!("e.comm_id = (SELECT id FROM strings WHERE value = ?{})", args.len()));
        }
        if let Some(r) = q.result {
            args.push(Value::Integer(r.code()));
            clauses.push(format!("e.result = ?{}", args.len()));
        }
        if let Some(t) = q.since_ns {
            args.push(Value::Integer(t));
            clauses.push(format!("e.time_ns >= ?{}", args.len()));
        }
        if let Some(t) = q.until_ns {
            args.push(Value::Integer(t));
            clauses.push(format!("e.time_ns < ?{}", args.len()));
        }
        if !clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&clauses.join(" AND "));
        }
        // `+e.id`: sort the (few) matches rather than let a LIMIT tempt the
        // planner into walking the whole table in rowid order.
        sql.push_str(if q.path_glob.is_some() { " ORDER BY +e.id" } else { " ORDER BY e.id" });
        if let Some(limit) = q.limit {
            let _ = write!(sql, " LIMIT {limit}");
        }
        Ok(Some((sql, args)))
    }

    /// Counts, top `top` paths and errors, and the processes of a session.
    pub fn summary(&self, session: i64, top: usize) -> Result<Summary, StoreError> {
        self.session_by_id(session)?;
        let conn = self.conn();
        let what = "summarising a session";
        let top = top as i64;

        let mut ops = Vec::new();
        let mut stmt = conn
            .prepare("SELECT op, count(*) FROM events WHERE session_id = ?1 AND id BETWEEN (SELECT first_event FROM sessions WHERE id = ?1) \
                 AND (SELECT last_event FROM sessions WHERE id = ?1) GROUP BY op ORDER BY count(*) DESC, op")
            .map_err(StoreError::sql(what))?;
        let mut rows = stmt.query([session]).map_err(StoreError::sql(what))?;
        while let Some(r) = rows.next().map_err(StoreError::sql(what))? {
            let op = super::op_column(r, 0)?;
            ops.push(OpCount { op, count: r.get::<_, i64>(1)? as u64 });
        }

        let (events, ok, denied, errors): (i64, i64, i64, i64) = conn
            .query_row(
                "SELECT count(*), coalesce(sum(result = 0), 0), coalesce(sum(result = 1), 0), coalesce(sum(result = 2), 0) \
                 FROM events WHERE session_id = ?1 AND id BETWEEN (SELECT first_event FROM sessions WHERE id = ?1) \
                 AND (SELECT last_event FROM sessions WHERE id = ?1)",
                [session],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .map_err(StoreError::sql(what))?;

        let mut top_paths = Vec::new();
        let mut stmt = conn
            .prepare(
                "SELECT s.value, t.n FROM (SELECT path_id, count(*) AS n FROM events WHERE session_id = ?1 AND id BETWEEN (SELECT first_event FROM sessions WHERE id = ?1) \
                 AND (SELECT last_event FROM sessions WHERE id = ?1) \
                 AND path_id IS NOT NULL GROUP BY path_id ORDER BY n DESC LIMIT ?2) t JOIN strings s ON s.id = t.path_id \
                 ORDER BY t.n DESC, s.value",
            )
            .map_err(StoreError::sql(what))?;
        let mut rows = stmt.query(rusqlite::params![session, top]).map_err(StoreError::sql(what))?;
        while let Some(r) = rows.next().map_err(StoreError::sql(what))? {
            top_paths.push(PathCount { path: r.get(0)?, count: r.get::<_, i64>(1)? as u64 });
        }

        let mut processes = Vec::new();
        let mut stmt = conn
            .prepare(
                "SELECT t.pid, t.ppid, c.value, x.value, t.n FROM (SELECT pid, max(ppid) AS ppid, comm_id, exe_id, count(*) AS n \
                 FROM events WHERE session_id = ?1 AND id BETWEEN (SELECT first_event FROM sessions WHERE id = ?1) \
                 AND (SELECT last_event FROM sessions WHERE id = ?1) GROUP BY pid, comm_id, exe_id) t \
                 JOIN strings c ON c.id = t.comm_id LEFT JOIN strings x ON x.id = t.exe_id ORDER BY t.pid, t.n DESC",
            )
            .map_err(StoreError::sql(what))?;
        let mut rows = stmt.query([session]).map_err(StoreError::sql(what))?;
        while let Some(r) = rows.next().map_err(StoreError::sql(what))? {
            processes.push(ProcessRow {
                pid: r.get(0)?,
                ppid: r.get(1)?,
                comm: r.get(2)?,
                exe: r.get(3)?,
                events: r.get::<_, i64>(4)? as u64,
            });
        }

        let mut top_errors = Vec::new();
        let mut stmt = conn
            .prepare(
                "SELECT t.op, s.value, t.result, t.errno, t.n FROM (SELECT op, path_id, result, errno, count(*) AS n \
                 FROM events WHERE session_id = ?1 AND id BETWEEN (SELECT first_event FROM sessions WHERE id = ?1) \
                 AND (SELECT last_event FROM sessions WHERE id = ?1) AND result <> 0 GROUP BY op, path_id, result, errno \
                 ORDER BY n DESC LIMIT ?2) t LEFT JOIN strings s ON s.id = t.path_id ORDER BY t.n DESC, s.value",
            )
            .map_err(StoreError::sql(what))?;
        let mut rows = stmt.query(rusqlite::params![session, top]).map_err(StoreError::sql(what))?;
        while let Some(r) = rows.next().map_err(StoreError::sql(what))? {
            let op = super::op_column(r, 0)?;
            let errno: i32 = r.get(3)?;
            top_errors.push(ErrorCount {
                op,
                path: r.get(1)?,
                result: if r.get::<_, i64>(2)? == 1 { ResultClass::Denied } else { ResultClass::Error },
                errno,
                errno_name: errno_name(errno),
                count: r.get::<_, i64>(4)? as u64,
            });
        }

        Ok(Summary {
            session,
            events: events as u64,
            ok: ok as u64,
            denied: denied as u64,
            errors: errors as u64,
            ops,
            top_paths,
            processes,
            top_errors,
        })
    }
}
