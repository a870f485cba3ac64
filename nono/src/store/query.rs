//! Read side: filtered event queries and per-session summaries.
//!
//! A path glob is matched against the interned `strings` (one row per
//! distinct path), not against every event: the glob's literal prefix
//! becomes a range on the unique index of `strings` and the survivors are
//! matched with `globset`. Their ids then select events through the path
//! postings (one seek per matching path per chunk of about four million
//! events, see migration 0005), plus a scan of whatever a session's
//! postings do not cover yet; the rows themselves are read by id.
//!
//! A summary reads the aggregates the writer kept, plus a group-by over
//! the events they do not cover yet.

use std::fmt::Write as _;
use std::rc::Rc;
use std::str::FromStr;

use rusqlite::ToSql;
use rusqlite::types::Value;
use serde::Serialize;

use super::tally::decode_postings;
use super::{EVENT_SELECT, Store, StoreError, StringCache, event_from_row};
use crate::event::{DenyBy, Event, Op};

/// The bound parameters of a query.
pub(super) type SqlArgs = Vec<Box<dyn ToSql>>;

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
#[cfg_attr(not(test), expect(dead_code, reason = "tests force a scan to compare it with the postings"))]
pub(super) enum PathLookup {
    /// The path postings, and a scan of what they do not cover yet.
    Postings,
    /// A scan of every session's id range (what postings must agree with).
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
    /// Only denials attributed this way (`Unattributed` also matches rows
    /// stored before attribution existed).
    pub denied_by: Option<DenyBy>,
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
    /// For denials: how the denial was attributed.
    pub denied_by: Option<DenyBy>,
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

/// How many denials one attribution method established.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MethodCount {
    pub method: DenyBy,
    pub count: u64,
}

/// Overview of one session.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub session: i64,
    pub events: u64,
    pub ok: u64,
    /// Accesses the sandbox refused (see [`Self::denied_by`]).
    pub denied: u64,
    /// Failures the sandbox did not cause (ENOENT, a file mode's EACCES, ...).
    pub errors: u64,
    /// Denials by attribution method, most first.
    pub denied_by: Vec<MethodCount>,
    pub ops: Vec<OpCount>,
    pub top_paths: Vec<PathCount>,
    pub processes: Vec<ProcessRow>,
    pub top_errors: Vec<ErrorCount>,
}

/// A summary's counts by outcome, operation and denial method, added up
/// from grouped rows (the local store and the fleet database both group by
/// op, result class and method).
#[derive(Debug, Default)]
pub struct OutcomeTally {
    pub events: u64,
    pub ok: u64,
    pub denied: u64,
    pub errors: u64,
    pub ops: Vec<OpCount>,
    pub methods: Vec<MethodCount>,
}

impl OutcomeTally {
    /// Adds `n` events of `op` with result class `class` (0 ok, 1 denied,
    /// else an error); `method` is the denial's method, for class 1.
    pub fn add(&mut self, op: Op, class: i64, method: Option<DenyBy>, n: u64) {
        self.events += n;
        match class {
            0 => self.ok += n,
            1 => {
                self.denied += n;
                let method = method.unwrap_or(DenyBy::Unattributed);
                match self.methods.iter_mut().find(|m| m.method == method) {
                    Some(m) => m.count += n,
                    None => self.methods.push(MethodCount { method, count: n }),
                }
            }
            _ => self.errors += n,
        }
        match self.ops.iter_mut().find(|o| o.op == op) {
            Some(o) => o.count += n,
            None => self.ops.push(OpCount { op, count: n }),
        }
    }

    /// Most frequent first, ties by name.
    pub fn sort(&mut self) {
        self.ops.sort_by(|a, b| b.count.cmp(&a.count).then(a.op.cmp(&b.op)));
        self.methods.sort_by(|a, b| b.count.cmp(&a.count).then(a.method.cmp(&b.method)));
    }
}

/// The symbolic name of an errno (`ENOENT`), or its number.
#[must_use]
pub fn errno_name(errno: i32) -> String {
    let e = nix::errno::Errno::from_raw(errno);
    if e == nix::errno::Errno::UnknownErrno { errno.to_string() } else { format!("{e:?}") }
}

/// A compiled path glob and the literal prefix every match starts with.
///
/// Stored paths are the escaped text of [`crate::event::escape_bytes`] (a
/// backslash in a name is `\\`, a byte that is not UTF-8 is `\xNN`), and a
/// glob is written in the same form: `\\` and `\xNN` match those, and a
/// backslash before any other character makes it literal (`\*`, `\[`). The
/// glob is matched against the stored text, so `?` and a `[...]` class
/// match one character of it: an invalid byte (four characters) is matched
/// by `*` or spelled out as `\xNN`.
pub struct PathGlob {
    matcher: globset::GlobMatcher,
    /// The stored text every match starts with.
    prefix: String,
    /// No wildcard: the glob is one stored path, `prefix`.
    literal: bool,
}

impl PathGlob {
    /// Whether the stored (escaped) path `text` matches.
    #[must_use]
    pub fn is_match(&self, text: &str) -> bool {
        self.matcher.is_match(text)
    }

    /// The stored text every match starts with.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Compiles `glob` (see the type's documentation for its syntax).
    pub fn new(glob: &str) -> Result<PathGlob, StoreError> {
        let bad = |reason: &str| StoreError::BadGlob { glob: glob.to_owned(), reason: reason.to_owned() };
        if glob.is_empty() {
            return Err(bad("empty pattern"));
        }
        // `pattern` is for globset (its own escapes); `prefix` is stored text.
        let mut pattern = String::with_capacity(glob.len() + 8);
        let mut prefix = String::new();
        let mut wild = false;
        let mut chars = glob.chars().peekable();
        while let Some(c) = chars.next() {
            let literal: String = match c {
                '\\' => match chars.next() {
                    Some('\\') => r"\\".to_owned(),
                    Some('x') => {
                        let hex: String = chars.by_ref().take(2).collect();
                        if hex.len() != 2 || !hex.chars().all(|h| h.is_ascii_hexdigit()) {
                            return Err(bad(r"`\x` must be followed by two hex digits (the escaped form of a byte)"));
                        }
                        format!(r"\x{}", hex.to_ascii_lowercase())
                    }
                    Some(other) => other.to_string(),
                    None => return Err(bad("a trailing backslash escapes nothing")),
                },
                '[' => {
                    // A class goes to globset as written: `[!a-z]`, `[]x]`.
                    wild = true;
                    pattern.push(c);
                    let mut first = true;
                    loop {
                        let Some(k) = chars.next() else { return Err(bad("unclosed character class")) };
                        pattern.push(k);
                        match k {
                            '\\' => pattern.extend(chars.next()),
                            '!' | '^' if first => continue,
                            ']' if !first => break,
                            _ => {}
                        }
                        first = false;
                    }
                    continue;
                }
                '*' | '?' | ']' | '{' | '}' => {
                    wild = true;
                    pattern.push(c);
                    continue;
                }
                other => other.to_string(),
            };
            for l in literal.chars() {
                if !wild {
                    prefix.push(l);
                }
                if matches!(l, '\\' | '*' | '?' | '[' | ']' | '{' | '}') {
                    pattern.push('\\');
                }
                pattern.push(l);
            }
        }
        let matcher = globset::GlobBuilder::new(&pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .empty_alternates(true)
            .build()
            .map_err(|e| bad(&e.kind().to_string()))?
            .compile_matcher();
        Ok(PathGlob { matcher, prefix, literal: !wild })
    }
}

/// The inclusive id range of a session's events that its aggregates (or
/// postings) do not cover yet: `(from, to)`, empty when `from > to`.
fn uncovered(through: Option<i64>, first: Option<i64>, last: Option<i64>) -> (i64, i64) {
    match first.zip(last) {
        Some((first, last)) => (through.map_or(first, |t| (t + 1).max(first)), last),
        None => (1, 0),
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

    /// Events matching every filter of `q`, in recording order.
    pub fn query(&self, q: &Query) -> Result<Vec<EventRow>, StoreError> {
        let Some((sql, args)) = self.query_sql(q, PathLookup::Postings)? else { return Ok(Vec::new()) };
        self.run_query(&sql, args)
    }

    /// Runs SQL from [`Self::query_sql`].
    pub(super) fn run_query(&self, sql: &str, args: SqlArgs) -> Result<Vec<EventRow>, StoreError> {
        let mut stmt = self.conn().prepare(sql).map_err(StoreError::sql("querying events"))?;
        let mut strings = StringCache::new(self.conn())?;
        let mut rows = stmt.query(rusqlite::params_from_iter(args)).map_err(StoreError::sql("querying events"))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(StoreError::sql("querying events"))? {
            out.push(EventRow { id: r.get(0)?, session: r.get(1)?, event: event_from_row(r, 2, &mut strings)? });
        }
        Ok(out)
    }

    /// The ids, ascending, of the events of `session` (every session if
    /// `None`) whose first path is one of `paths`, with operation `op` if given.
    fn path_event_ids(
        &self,
        session: Option<i64>,
        paths: &[i64],
        op: Option<Op>,
        lookup: PathLookup,
    ) -> Result<Vec<i64>, StoreError> {
        let what = "finding a path's events";
        let conn = self.conn();
        let path_list = int_list(paths.iter().copied());
        let op = op.map(|o| i64::from(o.code()));
        let mut ids = Vec::new();
        if lookup == PathLookup::Postings {
            // The path ids are integers just read: inlining them lets SQLite
            // seek the postings once per (chunk, path). CROSS JOIN keeps the
            // chunks outside: without a session, SQLite would otherwise scan
            // every posting.
            let scope = if session.is_some() { "c.session_id = ?1 AND" } else { "" };
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT c.first_event, p.events FROM path_chunks c CROSS JOIN path_postings p ON p.chunk_id = c.id \
                     WHERE {scope} p.path_id IN ({path_list})"
                ))
                .map_err(StoreError::sql(what))?;
            let mut rows = match session {
                Some(s) => stmt.query([s]),
                None => stmt.query([]),
            }
            .map_err(StoreError::sql(what))?;
            while let Some(r) = rows.next().map_err(StoreError::sql(what))? {
                let first: i64 = r.get(0)?;
                let bytes = r.get_ref(1)?.as_blob().map_err(|e| StoreError::Corrupt(format!("path postings: {e}")))?;
                decode_postings(first, bytes, op, &mut ids)?;
            }
        }
        // What the postings do not cover: each session's events after its
        // last chunk (a session still being recorded, or one whose recorder
        // died), or all of them for a scan.
        let mut sessions = conn
            .prepare_cached(
                "SELECT id, first_event, last_event, covered_through FROM sessions WHERE ?1 IS NULL OR id = ?1 ORDER BY id",
            )
            .map_err(StoreError::sql(what))?;
        let tails: Vec<(i64, (i64, i64))> = sessions
            .query_map([session], |r| {
                let through = if lookup == PathLookup::Postings { r.get(3)? } else { None };
                Ok((r.get(0)?, uncovered(through, r.get(1)?, r.get(2)?)))
            })
            .and_then(Iterator::collect)
            .map_err(StoreError::sql(what))?;
        let mut scan = conn
            .prepare(&format!(
                "SELECT id FROM events WHERE session_id = ?1 AND id BETWEEN ?2 AND ?3 AND +path_id IN ({path_list}) \
                 AND (?4 IS NULL OR op = ?4)"
            ))
            .map_err(StoreError::sql(what))?;
        for (id, (from, to)) in tails {
            if from > to {
                continue;
            }
            let found =
                scan.query_map(rusqlite::params![id, from, to, op], |r| r.get::<_, i64>(0)).map_err(StoreError::sql(what))?;
            for f in found {
                ids.push(f.map_err(StoreError::sql(what))?);
            }
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// The SQL and arguments of `q`; `None` when nothing can match.
    pub(super) fn query_sql(&self, q: &Query, lookup: PathLookup) -> Result<Option<(String, SqlArgs)>, StoreError> {
        let mut sql = String::from(EVENT_SELECT);
        let mut args: SqlArgs = Vec::new();
        let mut clauses: Vec<String> = Vec::new();
        let mut by_id = false;
        if let Some(session) = q.session {
            self.session_by_id(session)?;
        }
        if let Some(glob) = &q.path_glob {
            let glob = PathGlob::new(glob)?;
            let paths = self.matching_paths(&glob)?;
            if paths.is_empty() {
                return Ok(None);
            }
            let ids = self.path_event_ids(q.session, &paths, q.op, lookup)?;
            if ids.is_empty() {
                return Ok(None);
            }
            // The matching events by id: the sorted ids drive the loop
            // (CROSS JOIN keeps them outside) and each seeks its row, so the
            // rows come out in id order with no sort, no temporary index of
            // the ids, and a LIMIT stops early.
            let ids: rusqlite::vtab::array::Array = Rc::new(ids.into_iter().map(Value::Integer).collect());
            args.push(Box::new(ids));
            sql = EVENT_SELECT.replace(
                " FROM events e",
                &format!(" FROM rarray(?{}) AS matched CROSS JOIN events e ON e.id = matched.value", args.len()),
            );
            by_id = true;
        } else if let Some(session) = q.session {
            // The session's rowid range is the way in, and it comes out in
            // order, so a LIMIT stops early.
            args.push(Box::new(session));
            let n = args.len();
            clauses.push(format!(
                "e.session_id = ?{n} AND e.id BETWEEN (SELECT first_event FROM sessions WHERE id = ?{n}) \
                 AND (SELECT last_event FROM sessions WHERE id = ?{n})"
            ));
        }
        // (The path postings already held only the events of this operation.)
        if let Some(op) = q.op.filter(|_| !by_id) {
            args.push(Box::new(i64::from(op.code())));
            clauses.push(format!("e.op = ?{}", args.len()));
        }
        if let Some(pid) = q.pid {
            args.push(Box::new(i64::from(pid)));
            clauses.push(format!("e.pid = ?{}", args.len()));
        }
        if let Some(comm) = &q.comm {
            args.push(Box::new(comm.clone()));
            clauses.push(format!("e.comm_id = (SELECT id FROM strings WHERE value = ?{})", args.len()));
        }
        if let Some(r) = q.result {
            args.push(Box::new(r.code()));
            clauses.push(format!("e.result = ?{}", args.len()));
        }
        if let Some(by) = q.denied_by {
            args.push(Box::new(i64::from(by.code())));
            let n = args.len();
            // Rows stored before attribution existed have no method.
            let clause = if by == DenyBy::Unattributed {
                format!("e.result = 1 AND coalesce(e.denied_by, ?{n}) = ?{n}")
            } else {
                format!("e.result = 1 AND e.denied_by = ?{n}")
            };
            clauses.push(clause);
        }
        if let Some(t) = q.since_ns {
            args.push(Box::new(t));
            clauses.push(format!("e.time_ns >= ?{}", args.len()));
        }
        if let Some(t) = q.until_ns {
            args.push(Box::new(t));
            clauses.push(format!("e.time_ns < ?{}", args.len()));
        }
        if !clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&clauses.join(" AND "));
        }
        if !by_id {
            sql.push_str(" ORDER BY e.id");
        }
        if let Some(limit) = q.limit {
            let _ = write!(sql, " LIMIT {limit}");
        }
        Ok(Some((sql, args)))
    }

    /// Counts, top `top` paths, the top `top` denials and the top `top`
    /// errors, and the processes of a session.
    pub fn summary(&self, session: i64, top: usize) -> Result<Summary, StoreError> {
        self.session_by_id(session)?;
        let conn = self.conn();
        let what = "summarising a session";
        let top = top as i64;
        // The aggregates, plus the events they do not cover yet grouped
        // the same way (?2..=?3, usually empty).
        let ((from, to), (details_from, _)) = conn
            .query_row(
                "SELECT covered_through, detailed_through, first_event, last_event FROM sessions WHERE id = ?1",
                [session],
                |r| Ok((uncovered(r.get(0)?, r.get(2)?, r.get(3)?), uncovered(r.get(1)?, r.get(2)?, r.get(3)?))),
            )
            .map_err(StoreError::sql(what))?;
        let tail = "session_id = ?1 AND id BETWEEN ?2 AND ?3";
        let args = rusqlite::params![session, from, to];
        let details_args = rusqlite::params![session, details_from, to];
        let top_args = rusqlite::params![session, details_from, to, top];

        let mut tally = OutcomeTally::default();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT op, result, denied_by, sum(n) FROM (\
                 SELECT op, result, denied_by, n FROM session_counts WHERE session_id = ?1 UNION ALL \
                 SELECT op, result, coalesce(denied_by, 0), count(*) FROM events WHERE {tail} GROUP BY 1, 2, 3) \
                 GROUP BY 1, 2, 3"
            ))
            .map_err(StoreError::sql(what))?;
        let mut rows = stmt.query(args).map_err(StoreError::sql(what))?;
        while let Some(r) = rows.next().map_err(StoreError::sql(what))? {
            let op = super::op_column(r, 0)?;
            let class: i64 = r.get(1)?;
            let method = if class == 1 { Some(method_of(r.get(2)?)?) } else { None };
            tally.add(op, class, method, r.get::<_, i64>(3)? as u64);
        }
        tally.sort();
        let OutcomeTally { events, ok, denied, errors, ops, methods } = tally;

        let mut top_paths = Vec::new();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT s.value, t.n FROM (SELECT path_id, sum(n) AS n FROM (\
                 SELECT path_id, n FROM session_paths WHERE session_id = ?1 UNION ALL \
                 SELECT path_id, count(*) FROM events WHERE {tail} AND path_id IS NOT NULL GROUP BY path_id) \
                 GROUP BY path_id ORDER BY n DESC LIMIT ?4) t JOIN strings s ON s.id = t.path_id ORDER BY t.n DESC, s.value"
            ))
            .map_err(StoreError::sql(what))?;
        let mut rows = stmt.query(top_args).map_err(StoreError::sql(what))?;
        while let Some(r) = rows.next().map_err(StoreError::sql(what))? {
            top_paths.push(PathCount { path: r.get(0)?, count: r.get::<_, i64>(1)? as u64 });
        }

        let mut processes = Vec::new();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT t.pid, t.ppid, c.value, x.value, t.n FROM (SELECT pid, comm_id, exe_id, max(ppid) AS ppid, sum(n) AS n FROM (\
                 SELECT pid, comm_id, exe_id, ppid, n FROM session_procs WHERE session_id = ?1 UNION ALL \
                 SELECT pid, comm_id, coalesce(exe_id, 0), max(ppid), count(*) FROM events WHERE {tail} GROUP BY 1, 2, 3) \
                 GROUP BY 1, 2, 3) t \
                 JOIN strings c ON c.id = t.comm_id LEFT JOIN strings x ON x.id = t.exe_id ORDER BY t.pid, t.n DESC"
            ))
            .map_err(StoreError::sql(what))?;
        let mut rows = stmt.query(details_args).map_err(StoreError::sql(what))?;
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
            .prepare_cached(&format!(
                // The top `top` of each class, denials and errors apart: a
                // flood of ENOENT must not push the denials out.
                "SELECT op, path, result, errno, denied_by, n FROM (\
                 SELECT g.op, s.value AS path, g.result, g.errno, g.denied_by, g.n, \
                 row_number() OVER (PARTITION BY g.result ORDER BY g.n DESC, s.value) AS rk FROM (\
                 SELECT op, path_id, result, errno, denied_by, sum(n) AS n FROM (\
                 SELECT op, path_id, result, errno, denied_by, n FROM session_errors WHERE session_id = ?1 UNION ALL \
                 SELECT op, coalesce(path_id, 0), result, errno, coalesce(denied_by, 0), count(*) FROM events \
                 WHERE {tail} AND result <> 0 GROUP BY 1, 2, 3, 4, 5) \
                 GROUP BY 1, 2, 3, 4, 5) g LEFT JOIN strings s ON s.id = g.path_id) \
                 WHERE rk <= ?4 ORDER BY n DESC, path"
            ))
            .map_err(StoreError::sql(what))?;
        let mut rows = stmt.query(top_args).map_err(StoreError::sql(what))?;
        while let Some(r) = rows.next().map_err(StoreError::sql(what))? {
            let op = super::op_column(r, 0)?;
            let errno: i32 = r.get(3)?;
            let denied = r.get::<_, i64>(2)? == 1;
            top_errors.push(ErrorCount {
                op,
                path: r.get(1)?,
                result: if denied { ResultClass::Denied } else { ResultClass::Error },
                denied_by: if denied { Some(method_of(r.get(4)?)?) } else { None },
                errno,
                errno_name: errno_name(errno),
                count: r.get::<_, i64>(5)? as u64,
            });
        }

        Ok(Summary { session, events, ok, denied, errors, denied_by: methods, ops, top_paths, processes, top_errors })
    }
}

impl Store {
    /// Sandbox denials per session (sessions without any are absent): the
    /// aggregates plus the events they do not cover yet.
    pub fn denial_counts(&self) -> Result<std::collections::HashMap<i64, u64>, StoreError> {
        let what = "counting denials";
        let mut stmt = self
            .conn()
            .prepare_cached(
                "SELECT s.id, \
                 coalesce((SELECT sum(n) FROM session_counts c WHERE c.session_id = s.id AND c.result = 1), 0) + \
                 coalesce((SELECT count(*) FROM events e WHERE e.session_id = s.id AND e.result = 1 \
                   AND e.id BETWEEN max(coalesce(s.covered_through + 1, s.first_event), s.first_event) AND s.last_event), 0) \
                 FROM sessions s",
            )
            .map_err(StoreError::sql(what))?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))).map_err(StoreError::sql(what))?;
        let mut out = std::collections::HashMap::new();
        for r in rows {
            let (id, n) = r.map_err(StoreError::sql(what))?;
            if n > 0 {
                out.insert(id, n as u64);
            }
        }
        Ok(out)
    }
}

/// The attribution method of an aggregate's `denied_by` (0: none recorded).
fn method_of(code: i64) -> Result<DenyBy, StoreError> {
    if code == 0 {
        return Ok(DenyBy::Unattributed);
    }
    u8::try_from(code).ok().and_then(DenyBy::from_code).ok_or_else(|| StoreError::Corrupt(format!("denial attribution {code}")))
}
